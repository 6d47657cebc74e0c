"""What every benchmark output names: the machine, the command, the software.

docs/evaluation.md: a speed or quality figure is always published with the machine it ran on.
This module reads the CPU model from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere), the
cores this process may use, the memory and the load average, which on a shared machine says how
much the other tenants were running at the time.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Sequence
from typing import Any

_CPUINFO = "/proc/cpuinfo"
_MEMINFO = "/proc/meminfo"


def _cpu_model() -> str:
    """The ``model name`` line of /proc/cpuinfo, or ``platform.processor()``."""
    try:
        with open(_CPUINFO, encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _memory_gib() -> float | None:
    """Total memory from /proc/meminfo, in GiB (None when unavailable)."""
    try:
        with open(_MEMINFO, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def describe_machine() -> dict[str, Any]:
    """The machine and software a benchmark runs on.

    Returns:
        ``{"cpu", "logical_cores", "usable_cores", "memory_gib", "os", "python",
        "tensorflow", "load_average"}`` (TensorFlow's version only when it is already
        imported, so calling this never imports it).
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    tf_module = sys.modules.get("tensorflow")
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count() or 0,
        "usable_cores": usable,
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "tensorflow": getattr(tf_module, "__version__", None),
        "load_average": _load_average(),
    }


def machine_line(info: dict[str, Any]) -> str:
    """One line naming the machine, e.g. ``Intel Xeon @ 2.80GHz, 2 cores, 23.4 GiB, ...``."""
    parts = [info["cpu"], f"{info['usable_cores']} cores"]
    if info["usable_cores"] != info["logical_cores"]:
        parts[-1] += f" (of {info['logical_cores']})"
    if info.get("memory_gib"):
        parts.append(f"{info['memory_gib']} GiB RAM")
    parts.append(info["os"])
    parts.append(f"Python {info['python']}")
    if info.get("tensorflow"):
        parts.append(f"TensorFlow {info['tensorflow']}")
    return ", ".join(parts)


def load_line(start: list[float] | None, end: list[float] | None) -> str:
    """``load average (1/5/15 min) at start 0.5/0.4/0.3, at end ...`` or an empty string."""
    if not start or not end:
        return ""
    fmt = "/".join
    return (
        f"load average (1/5/15 min) at start {fmt(f'{v:g}' for v in start)}, "
        f"at end {fmt(f'{v:g}' for v in end)}"
    )


def command_line(script: str, argv: list[str]) -> str:
    """The command that reproduces this run, e.g. ``python benchmarks/quality.py --quick``."""
    return shlex.join(["python", script, *argv])


def provenance(script: str, argv: Sequence[str] | None, machine: dict[str, Any]) -> dict[str, Any]:
    """The fields every report starts with: machine, load at the end, command and date.

    Args:
        script: The script's path in the checkout, e.g. ``benchmarks/quality.py``.
        argv: The script's options (None: ``sys.argv[1:]``).
        machine: `describe_machine` taken when the run started (its load average is the
            start's); TensorFlow's version is filled in now, as it is imported by the end.

    Returns:
        ``{"machine", "load_end", "command", "date"}``.
    """
    from datetime import UTC, datetime

    end = describe_machine()
    return {
        "machine": {**machine, "tensorflow": end["tensorflow"]},
        "load_end": end["load_average"],
        "command": command_line(script, list(argv if argv is not None else sys.argv[1:])),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
