"""The tables of the quality benchmark: quality.md and the summary printed at the end.

``quality.json`` holds the records of ``tfrec-llm evaluate --json`` plus ``users``,
``eval_seconds``, ``fit_seconds``, ``family`` and, for peers, the chosen ``params``;
``quality.md`` the tables (TEST at K = 10 with fit and eval seconds, every TEST and VALID
metric), the machine and the command; ``quality.png`` the bar chart (``quality_plot.py``).
``quality.py`` writes the files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from machine import load_line, machine_line

from tfrec_llm.config.choices import PROTOCOLS
from tfrec_llm.evaluation.report import PROTOCOL_LETTERS, records_to_table

HEADLINE_METRIC = dict(zip(PROTOCOLS, ("ndcg", "recall", "ndcg"), strict=True))
"""The TEST metric@10 each protocol is summed up by: A and C rank known items (NDCG), B finds
cold items at all (Recall)."""

_METRIC_LABEL = {"ndcg": "NDCG", "recall": "Recall", "hr": "HR"}


def cell_value(
    records: Sequence[dict[str, Any]], model: str, protocol: str, metric: str, k: int
) -> float | None:
    """The TEST value of ``model`` under ``protocol`` for ``metric``@``k`` (None if absent)."""
    for r in records:
        if (r["model"], r["protocol"], r["split"], r["metric"], r["k"]) == (
            model,
            protocol,
            "test",
            metric,
            k,
        ):
            return float(r["value"])
    return None


def model_names(records: Sequence[dict[str, Any]]) -> list[str]:
    """The models of ``records``, in the order they first appear."""
    out: list[str] = []
    for r in records:
        if r["model"] not in out:
            out.append(r["model"])
    return out


def summary_table(
    records: Sequence[dict[str, Any]], protocols: Sequence[str], details: dict[str, Any]
) -> str:
    """TEST NDCG@10 / Recall@10 per protocol, best per column in bold, with fit/eval seconds."""
    letters = [PROTOCOL_LETTERS[p] for p in protocols]
    header = ["model"] + [f"{L} {m}@10" for L in letters for m in ("ndcg", "recall")]
    header += [f"fit s ({'/'.join(letters)})", f"eval s ({'/'.join(letters)})"]
    best = {
        (p, m): max((cell_value(records, mod, p, m, 10) or 0.0) for mod in model_names(records))
        for p in protocols
        for m in ("ndcg", "recall")
    }
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in model_names(records):
        row = [model]
        for p in protocols:
            for m in ("ndcg", "recall"):
                value = cell_value(records, model, p, m, 10)
                text = "-" if value is None else f"{value:.4f}"
                row.append(f"**{text}**" if value is not None and value == best[(p, m)] else text)
        fits, evals = [], []
        for p in protocols:
            info = details[p]["models"].get(model, {})
            fits.append(f"{info['fit_seconds']:.1f}" if "fit_seconds" in info else "-")
            evals.append(f"{info['eval_seconds']:.1f}" if "eval_seconds" in info else "-")
        row += ["/".join(fits), "/".join(evals)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def best_of(
    records: Sequence[dict[str, Any]], family: str, protocol: str, metric: str
) -> tuple[str, float] | None:
    """(model, value) of the best TEST ``metric``@10 among one family's models."""
    rows = [
        (r["model"], r["value"])
        for r in records
        if r.get("family") == family
        and r["protocol"] == protocol
        and r["split"] == "test"
        and r["metric"] == metric
        and r["k"] == 10
    ]
    return max(rows, key=lambda x: x[1]) if rows else None


def headline(records: Sequence[dict[str, Any]], protocols: Sequence[str]) -> list[str]:
    """'Best tfrec_llm model vs best peer' lines (A NDCG@10, B Recall@10, C NDCG@10)."""
    lines = []
    for protocol, metric in HEADLINE_METRIC.items():
        if protocol not in protocols:
            continue
        ours = best_of(records, "tfrec_llm", protocol, metric)
        peer = best_of(records, "peer", protocol, metric)
        if ours is None or peer is None:
            continue
        ratio = ours[1] / peer[1] if peer[1] > 0 else float("inf")
        label = f"{PROTOCOL_LETTERS[protocol]} {_METRIC_LABEL[metric]}@10"
        lines.append(
            f"- {label}: best tfrec_llm {ours[0]} {ours[1]:.4f} vs best peer {peer[0]} "
            f"{peer[1]:.4f} ({ratio:.2f}x)"
        )
    return lines


def render_markdown(records: list[dict[str, Any]], details: dict[str, Any], meta: dict[str, Any]) -> str:
    """The whole quality.md."""
    protocols = meta["protocols"]
    machine = meta["machine"]
    policy = (
        "refit on TRAIN+VALID with the chosen hyperparameters / best epoch count"
        if meta["refit"]
        else "fit on TRAIN only (no refit on TRAIN+VALID)"
    )
    out = [
        f"# Quality benchmark: {meta['dataset']} (protocols {', '.join(protocol_labels(protocols))})",
        "",
        f"- Machine: {machine_line(machine)}; {load_line(machine['load_average'], meta['load_end'])}",
        f"- Command: `{meta['command']}` ({meta['seconds']:.0f} s wall, {meta['date']})"
        + "".join(f"\n  - merged from: `{c}`" for c in meta.get("merged_commands", [])),
        f"- Every model: {policy}; hyperparameters (peers: grid on VALID NDCG@10) and early "
        "stopping (two-tower: VALID NDCG@10, config defaults) on VALID; TEST histories are "
        "TRAIN+VALID (A, B) or each cold user's first 5 interactions (C), history items "
        "excluded, ties broken by the fixed "
        "item priority (docs/evaluation.md).",
        "- fit s: wall seconds of the final fit (two-tower: the whole training run including its "
        "per-epoch VALID evaluation; peers: the chosen grid point; the grid search itself is in "
        "quality.json as tune_seconds). eval s: VALID + TEST evaluation.",
    ]
    if "cold-items" in protocols:
        out += [
            "- B: the ID-only models (MostPop, the peers, TwoTower-ID) have learned nothing "
            "about cold items; where they give every cold item the same score their row is the "
            "evaluator's fixed tie order over the cold items, i.e. chance level like Random "
            "(another draw of chance). Only "
            "the text-aware variants can rank cold items.",
        ]
    out += [
        "",
        "## TEST, K = 10 (best per column in bold)",
        "",
        summary_table(records, protocols, details),
        "",
    ]
    lines = headline(records, protocols)
    if lines:
        out += ["Best tfrec_llm model vs best peer:", "", *lines, ""]
    out += [
        "## All TEST metrics",
        "",
        records_to_table([r for r in records if r["split"] == "test"]),
        "",
        "## VALID",
        "",
        records_to_table([r for r in records if r["split"] == "valid"]),
        "",
        "## Users and chosen settings",
        "",
    ]
    for protocol in protocols:
        d = details[protocol]
        out.append(
            f"- {protocol}: {d['train_interactions']} TRAIN interactions, "
            f"{d['valid_users']} VALID users, {d['test_users']} TEST users."
        )
        for model, info in d["models"].items():
            if "params" in info:
                out.append(
                    f"  - {model}: {json.dumps(info['params'])} (grid of {len(info['grid'])}, "
                    f"{info['tune_seconds']:.1f} s)"
                )
            elif "best_epoch" in info:
                cached = ", cached" if info["cached"] else ""
                out.append(f"  - {model}: best epoch {info['best_epoch']} of {info['epochs_run']}{cached}")
    return "\n".join(out) + "\n"


def protocol_labels(protocols: Sequence[str]) -> list[str]:
    """``["A loo", "B cold-items", ...]``: letter and name of each protocol."""
    return [f"{PROTOCOL_LETTERS[p]} {p}" for p in protocols]
