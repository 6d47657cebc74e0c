"""Which differences of the quality tables are real: paired per-user comparisons (issue 14).

Under each protocol, the best tfrec_llm row (known user ids, by the protocol's headline metric:
NDCG@10 for A and C, Recall@10 for B) is compared with the best peer and with the mean-pooling
two-tower (``TwoTower-BERT-MeanPool``), user by user on the same TEST task, with
`tfrec_llm.evaluation.compare`: the mean difference (ours - theirs), its seeded percentile
bootstrap 95% CI, the paired test (Wilcoxon signed-rank, or the exact sign test without scipy)
and team-draft interleaving with the held-out item as the click. A difference is called real
when its CI excludes 0.

``quality.py`` keeps the scorers it evaluated and calls `compare_protocol` at the end of each
protocol; the results are plain dicts in ``details[protocol]["comparisons"]`` (so ``--merge``
keeps them), and `comparison_section` renders them for quality.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from quality_report import HEADLINE_METRIC, best_of

from tfrec_llm.config.choices import VARIANT_NAMES
from tfrec_llm.evaluation.report import PROTOCOL_LETTERS

MEAN_POOL = VARIANT_NAMES["mean"]
"""The mean-pooling two-tower's row name, the in-house reference."""

K = 10
CONFIDENCE = 0.95


def comparison_pairs(records: Sequence[dict[str, Any]], protocol: str) -> list[tuple[str, str, str]]:
    """(what A is, model A, model B) pairs to test under ``protocol``; B is our best row.

    A is the best peer (``"best peer"``) and the mean-pooling two-tower (``"mean pooling"``),
    each when it has a row and is not B itself.
    """
    metric = HEADLINE_METRIC[protocol]
    ours = best_of(records, "tfrec_llm", protocol, metric)
    if ours is None:
        return []
    pairs = []
    peer = best_of(records, "peer", protocol, metric)
    if peer is not None:
        pairs.append(("best peer", peer[0], ours[0]))
    has_mean = any(r["model"] == MEAN_POOL and r["protocol"] == protocol for r in records)
    if has_mean and ours[0] != MEAN_POOL:
        pairs.append(("mean pooling", MEAN_POOL, ours[0]))
    return pairs


def comparison_record(result: Any, protocol: str, versus: str) -> dict[str, Any]:
    """The JSON-able summary of one `tfrec_llm.evaluation.compare.ComparisonResult`."""
    head = result.metrics[0]
    inter = result.interleaving
    return {
        "protocol": protocol,
        "versus": versus,
        "metric": head.key,
        "a": result.a.name,
        "b": result.b.name,
        "users": int(result.a.user_ids.size),
        "mean_a": head.mean_a,
        "mean_b": head.mean_b,
        "difference": head.difference,
        "ci": [float(head.ci[0]), float(head.ci[1])],
        "confidence": result.confidence,
        "test": head.test.name,
        "p_value": float(head.test.p_value),
        "n_nonzero": int(head.test.n_nonzero),
        "significant": bool(head.significant),
        "interleaving": {
            "wins_a": int(inter.wins_a),
            "wins_b": int(inter.wins_b),
            "ties": int(inter.ties),
            "p_value": float(inter.test.p_value),
        },
    }


def compare_protocol(
    records: Sequence[dict[str, Any]],
    scorers: Mapping[str, Any],
    task: Any,
    item_ids: Any,
    protocol: str,
    n_resamples: int = 10000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Paired comparisons of `comparison_pairs` under one protocol.

    Args:
        records: The protocol's records (quality.json rows).
        scorers: Row name -> the scorer that produced it (rows without one are skipped).
        task: The TEST task the records were computed on (``split.test``).
        item_ids: The catalog (``split.item_ids``).
        protocol: The protocol name.
        n_resamples: Bootstrap resamples.
        seed: Seed of the bootstrap and the interleaving.

    Returns:
        One `comparison_record` per pair, each model scored once.
    """
    from tfrec_llm.evaluation.compare import compare_evaluations, user_evaluation

    metric = f"{HEADLINE_METRIC[protocol]}@{K}"
    evaluations: dict[str, Any] = {}
    out = []
    for versus, name_a, name_b in comparison_pairs(records, protocol):
        if name_a not in scorers or name_b not in scorers:
            continue
        for name in (name_a, name_b):
            if name not in evaluations:
                evaluations[name] = user_evaluation(scorers[name], task, item_ids, ks=(K,), depth=K)
        # The scorer of a reused row may carry the first row's name: report the rows' names.
        a, b = evaluations[name_a], evaluations[name_b]
        result = compare_evaluations(
            a, b, metric, n_resamples, CONFIDENCE, seed, label=f"protocol {protocol}, test"
        )
        record = comparison_record(result, protocol, versus)
        out.append({**record, "a": name_a, "b": name_b})
    return out


def comparison_section(details: Mapping[str, Any], protocols: Sequence[str]) -> str | None:
    """The quality.md section of the comparisons in ``details`` (None when there are none)."""
    rows = [c for p in protocols for c in details.get(p, {}).get("comparisons", [])]
    if not rows:
        return None
    pct = int(round(rows[0]["confidence"] * 100))
    lines = [
        "## Which differences are real (paired, per user, TEST)",
        "",
        "Best tfrec_llm row (B) vs the best peer and vs the mean-pooling two-tower (A), on the "
        f"same users: B - A of the protocol's headline metric, its {pct}% percentile bootstrap CI "
        "over users (seeded), the paired test (zero differences dropped) and team-draft "
        "interleaving with the held-out item as the click (wins of B / A, sign-test p). "
        "real: the CI excludes 0.",
        "",
        f"| protocol | metric | B (ours) | A | value B | value A | B - A | {pct}% CI | test p | real? | interleaving B/A (p) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        inter = c["interleaving"]
        real = ("yes, B better" if c["difference"] > 0 else "yes, A better") if c["significant"] else "no"
        lines.append(
            f"| {PROTOCOL_LETTERS[c['protocol']]} | {c['metric']} | {c['b']} | {c['a']} ({c['versus']}) | "
            f"{c['mean_b']:.4f} | {c['mean_a']:.4f} | {c['difference']:+.4f} | "
            f"[{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}] | {c['test']} {c['p_value']:.3g} | {real} | "
            f"{inter['wins_b']}/{inter['wins_a']} ({inter['p_value']:.3g}) |"
        )
    return "\n".join(lines)
