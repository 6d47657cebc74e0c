"""What every benchmark output names: the machine, the command, the software; atomic writes.

EVALUATION.md: a speed or quality figure is always published with the machine it ran on. This
module reads the CPU model from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere), the
cores this process may use, the memory and the load average, which on a shared machine says
how much the other tenants were running at the time.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path
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


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Binary twin of `write_text_atomic` (used for the PNG chart)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
