"""The statistics and the report of the serving load test: rows, the GIL verdict, serving_load.md.

A round is what the clients of one contender answered in one timed slot (`one_round`); a row
pools a contender's rounds (`level_row` for one-user requests, `batch_row` for batches). QPS and
users/s divide by the pooled wall time; latencies are numpy's linear percentiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from machine import load_line, machine_line

GIL_MARGIN = 1.15
"""Processes beating threads by more than this factor in QPS = the threads were GIL-bound."""


def summarize(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/mean of latencies (numpy's linear percentiles); None when there are none."""
    import numpy as np

    if not latencies_ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
    values = np.asarray(latencies_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "mean_ms": float(values.mean()),
    }


def one_round(results: Sequence[dict[str, Any]], start_at: float, cpu_s: float) -> dict[str, Any]:
    """Merges the ``client_loop`` results of the clients of one timed round.

    Returns:
        ``{"latencies_ms", "errors", "first_error", "wall_s", "cpu_s"}``; ``wall_s`` runs from
        ``start_at`` to the last answer of any client.
    """
    errors = [r["first_error"] for r in results if r["first_error"]]
    return {
        "latencies_ms": [v for r in results for v in r["latencies_ms"]],
        "errors": sum(r["errors"] for r in results),
        "first_error": errors[0] if errors else "",
        "wall_s": max(r["end"] for r in results) - start_at,
        "cpu_s": cpu_s,
    }


def merge_rounds(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pools the rounds of one contender: all latencies, summed errors, wall and CPU time."""
    errors = [r["first_error"] for r in rounds if r["first_error"]]
    return {
        "latencies_ms": [v for r in rounds for v in r["latencies_ms"]],
        "errors": sum(r["errors"] for r in rounds),
        "first_error": errors[0] if errors else "",
        "wall_s": sum(r["wall_s"] for r in rounds),
        "cpu_s": sum(r["cpu_s"] for r in rounds),
    }


def level_row(path: str, clients: str, concurrency: int, rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A table row of one-user requests: QPS = answers / wall time, latency percentiles."""
    merged = merge_rounds(rounds)
    latencies, wall = merged["latencies_ms"], merged["wall_s"]
    return {
        "path": path,
        "clients": clients,
        "concurrency": concurrency,
        "rounds": len(rounds),
        "requests": len(latencies),
        "errors": merged["errors"],
        "first_error": merged["first_error"],
        "seconds": wall,
        "qps": len(latencies) / wall if wall > 0 else 0.0,
        **summarize(latencies),
        "cpu_cores": merged["cpu_s"] / wall if wall > 0 else 0.0,
    }


def batch_row(path: str, batch: int, rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A table row of batch requests: users/s = batch x calls / wall time."""
    merged = merge_rounds(rounds)
    calls, wall = len(merged["latencies_ms"]), merged["wall_s"]
    return {
        "path": path,
        "batch": batch,
        "rounds": len(rounds),
        "calls": calls,
        "errors": merged["errors"],
        "users_per_second": batch * calls / wall if wall > 0 else 0.0,
        **summarize(merged["latencies_ms"]),
    }


def gil_verdict(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Compares threads and processes at the highest concurrency measured with both."""
    by = {(r["clients"], r["concurrency"]): r for r in rows}
    both = sorted(c for (kind, c) in by if kind == "threads" and ("processes", c) in by)
    if not both:
        return {"concurrency": None, "ratio": None, "text": "only one kind of client was run"}
    c = both[-1]
    threads, processes = by[("threads", c)], by[("processes", c)]
    ratio = processes["qps"] / threads["qps"] if threads["qps"] > 0 else float("inf")
    if ratio > GIL_MARGIN:
        text = (
            f"client threads are GIL-bound: at concurrency {c} client processes answer "
            f"{ratio:.2f}x the QPS of client threads"
        )
    elif ratio < 1 / GIL_MARGIN:
        text = (
            f"client threads are not the limit: at concurrency {c} client processes reach only "
            f"{ratio:.2f}x the QPS of threads (they compete with the server for the cores)"
        )
    else:
        text = (
            f"client threads are not the limit: at concurrency {c} processes and threads "
            f"reach the same QPS within {100 * (GIL_MARGIN - 1):.0f}% ({ratio:.2f}x); the "
            "server process is"
        )
    return {"concurrency": c, "ratio": ratio, "text": text}


def milliseconds(value: float | None) -> str:
    """``12.35`` (two decimals) or ``-`` for a missing latency."""
    return "-" if value is None else f"{value:.2f}"


def target_lines(targets: Sequence[dict[str, Any]]) -> list[str]:
    """The targets section: each target per server and client kind, met or missed by how much."""
    if not targets:
        return []
    lines = ["## Targets (issue 13)", ""]
    for t in targets:
        if t["target"] == "overhead":
            what = f"gRPC batch-1 p50 / in-process p50 = **{t['value']:.2f}x** (target <= {t['limit']:g}x)"
            miss = f"missed by {100 * (t['value'] / t['limit'] - 1):.0f}%"
        else:
            what = (
                f"QPS at the highest / at concurrency 1 = **{t['value']:.2f}x** (target >= {t['limit']:g}x; "
                f"p99 there {milliseconds(t['p99_ms'])} ms)"
            )
            miss = f"missed: {100 * t['value'] / t['limit']:.0f}% of the target"
        lines.append(f"- {t['path']}, client {t['clients']}: {what}: {'met' if t['met'] else miss}.")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """serving_load.md: the load table, the overhead ratio and the batch-256 throughput."""
    model, server = report["model"], report["server"]
    lines = [
        "# Serving load test",
        "",
        f"- Machine: {machine_line(report['machine'])}; "
        f"{load_line(report['machine']['load_average'], report['load_end'])}",
        f"- Command: `{report['command']}` ({report['seconds']:.0f} s wall, {report['date']}).",
        f"- Model: {model['source']}; data {model['dataset']}, "
        f"{model['catalog_items'] or '?'} items, top-{report['k']}; {model['known_users']} known "
        "users, drawn uniformly at random.",
        f"- Server: {server['kind']} on {server['host']} ({server['max_workers']} worker "
        "threads), in the benchmark process. Not the C++ tensorflow/serving binary.",
        f"- {report['seconds_per_level']:g} s per contender in {report['rounds']} interleaved "
        "round(s) (every contender once per round, the first one rotating); a client sends its "
        "next request when the last one is answered (closed loop); latency = "
        "`GrpcClient.recommend([user], k)` round trip, in process = signature call + "
        "`.numpy()`. CPU cores = process CPU time of server and clients / wall time.",
        "",
        "| path | clients | concurrency | requests | errors | QPS | p50 ms | p95 ms | p99 ms | CPU cores |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in [*report["grpc"], report["in_process"]]:
        lines.append(
            f"| {r['path']} | {r['clients']} | {r['concurrency']} | {r['requests']} | "
            f"{r['errors']} | {r['qps']:.0f} | {milliseconds(r['p50_ms'])} | {milliseconds(r['p95_ms'])} | "
            f"{milliseconds(r['p99_ms'])} | {r['cpu_cores']:.2f} |"
        )
    lines += ["", "Overhead at concurrency 1, gRPC p50 / in-process p50: " + ", ".join(
        f"**{v:.1f}x** ({kind})" for kind, v in report["overhead"].items()
    ) + "."]  # fmt: skip
    lines += [
        "",
        f"| batch of {report['batch_size']} | calls | users/s | p50 ms per call |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['path']} | {r['calls']} | {r['users_per_second']:.0f} | {milliseconds(r['p50_ms'])} |"
        for r in report["batch"]
    ]
    lines += ["", f"Clients: {report['gil']['text']}."]
    lines += ["", *target_lines(report.get("targets", []))]
    return "\n".join(lines) + "\n"
