"""The tables of the quality benchmark: quality.md and the summary printed at the end.

``quality.json`` holds the records of ``tfrec-llm evaluate --json`` plus ``users``,
``eval_seconds``, ``fit_seconds``, ``family``, for peers the chosen ``params`` and, for two-tower
rows, ``variant``, ``history_encoder``, ``row`` and ``user_ids`` (``known``, or ``hidden`` for
the ``<model> (hidden ids)`` rows); ``quality.md`` the tables (TEST at K = 10 with fit and eval
seconds, known vs hidden user ids, every TEST and VALID metric), the machine and the command;
``quality.png`` the bar chart (``quality_plot.py``). ``quality.py`` writes the files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from machine import load_line, machine_line

from tfrec_llm.config.choices import PROTOCOLS
from tfrec_llm.evaluation.report import PROTOCOL_LETTERS, records_to_table

HIDDEN_SUFFIX = " (hidden ids)"
"""Name suffix of a two-tower row evaluated with every user scored as unknown."""

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


def known_ids(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of every row but the hidden-user-id ones (``user_ids == "hidden"``)."""
    return [r for r in records if r.get("user_ids") != "hidden"]


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
    """TEST NDCG@10 / Recall@10 per protocol, best per column in bold, with fit/eval seconds.

    The hidden-user-id rows are left out (`hidden_ids_table` shows them).
    """
    records = known_ids(records)
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
    """(model, value) of the best TEST ``metric``@10 among one family's models (known ids)."""
    rows = [
        (r["model"], r["value"])
        for r in known_ids(records)
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


def relative_change(known: float | None, hidden: float | None) -> str:
    """``hidden`` relative to ``known`` in percent, signed (``-`` when undefined)."""
    if known is None or hidden is None or known == 0:
        return "-"
    return f"{100.0 * (hidden - known) / known:+.1f}%"


def hidden_ids_table(
    records: Sequence[dict[str, Any]], protocols: Sequence[str], details: dict[str, Any]
) -> str | None:
    """TEST NDCG@10 of every two-tower row with known and with hidden user ids, side by side.

    One row per model that has a ``<model> (hidden ids)`` twin, columns per protocol that has
    any (A, C): known, hidden and hidden's change relative to known in percent; then the
    history encoder and the fit seconds per protocol. None when no row has a twin.
    """
    hidden = {r["model"] for r in records if r.get("user_ids") == "hidden"}
    known = [r["model"] for r in records if r.get("user_ids") == "known"]
    twins = {model: model + HIDDEN_SUFFIX for model in known if model + HIDDEN_SUFFIX in hidden}
    cols = [p for p in protocols if any(r["protocol"] == p and r["model"] in hidden for r in records)]
    if not twins or not cols:
        return None
    encoder = {r["model"]: r.get("history_encoder", "-") for r in records}
    letters = [PROTOCOL_LETTERS[p] for p in cols]
    header = ["model", "encoder"]
    header += [f"{L} {h}" for L in letters for h in ("known", "hidden", "hidden vs known")]
    header += [f"fit s ({'/'.join(letters)})"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, twin in twins.items():
        row = [model, encoder[model]]
        fits = []
        for p in cols:
            known_value = cell_value(records, model, p, "ndcg", 10)
            hidden_value = cell_value(records, twin, p, "ndcg", 10)
            row += [_number(known_value), _number(hidden_value), relative_change(known_value, hidden_value)]
            info = details.get(p, {}).get("models", {}).get(model, {})
            fits.append(f"{info['fit_seconds']:.1f}" if "fit_seconds" in info else "-")
        lines.append("| " + " | ".join(row + ["/".join(fits)]) + " |")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


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
        "stopping (two-tower: VALID NDCG@10, the config with each variant's overrides) on VALID; "
        "TEST histories are "
        "TRAIN+VALID (A, B) or each cold user's first 5 interactions (C), history items "
        "excluded, ties broken by the fixed "
        "item priority (docs/evaluation.md).",
        "- fit s: wall seconds of the final fit (two-tower: the whole training run including its "
        "per-epoch VALID evaluation; peers: the chosen grid point; the grid search itself is in "
        "quality.json as tune_seconds). eval s: VALID + TEST evaluation.",
    ]
    if any(r.get("row") for r in records):
        out.append(
            "- Two-tower rows: the variants of `tfrec_llm.config.choices.VARIANTS` (SASRec-style "
            "(ids): causal attention over ids only, no text, the peer that shows what the text adds; "
            "TwoTower-BERT-MeanPool: the original mean-pooling two-tower with its own training "
            "settings)"
            + (
                " and, under A and C, one row per history encoder, `TwoTower-BERT/<encoder>`: the "
                "bert variant with `model.history_encoder=<encoder>`, everything else as in the config"
                if any(r.get("row") == "encoder" for r in records)
                else ""
            )
            + ". A row whose config equals an earlier row's shows that model (not trained again; "
            "listed at the end)."
        )
    if "cold-items" in protocols:
        out += [
            "- B: the ID-only models (MostPop, the peers, TwoTower-ID, SASRec-style (ids)) have learned nothing "
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
    from quality_compare import comparison_section  # it imports this module

    section = comparison_section(details, protocols)
    if section is not None:
        out += [section, ""]
    table = hidden_ids_table(records, protocols, details)
    if table is not None:
        out += [
            "## Known vs hidden user ids (TEST NDCG@10)",
            "",
            "hidden: the same trained model with every user scored as unknown (the unknown-user "
            "row: no user id, no profile), so the history alone makes the query, as for a "
            "logged-out user; no extra training. A model without user ids or profile scores the "
            "same both ways. hidden vs known: relative change. fit s: the model's training.",
            "",
            table,
            "",
        ]
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
            elif "hidden_ids_of" in info:
                continue
            elif "same_model_as" in info:
                out.append(f"  - {model}: the model of {info['same_model_as']} (same config)")
            elif "best_epoch" in info:
                cached = ", cached" if info["cached"] else ""
                out.append(f"  - {model}: best epoch {info['best_epoch']} of {info['epochs_run']}{cached}")
    return "\n".join(out) + "\n"


def protocol_labels(protocols: Sequence[str]) -> list[str]:
    """``["A loo", "B cold-items", ...]``: letter and name of each protocol."""
    return [f"{PROTOCOL_LETTERS[p]} {p}" for p in protocols]
