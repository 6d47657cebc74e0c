"""The classic peers of the quality benchmark: ItemKNN, EASE, implicit ALS and BPR, tuned on VALID.

Each peer (``tfrec_llm.evaluation.peers``) is fitted on TRAIN for every point of its
``default_grid`` and the point with the best VALID NDCG@10 is kept (``tune_on_valid``); with
``refit`` it is then fitted again on TRAIN+VALID with those hyperparameters.
"""

from __future__ import annotations

import time
from typing import Any

PEERS = ("ItemKNN", "EASE", "ALS", "BPR")

QUICK_PEER_OVERRIDES = {"ALS": {"iterations": 3}, "BPR": {"iterations": 10}}
"""``--quick``: the first grid point of each peer, with these fields shortened."""


def peer_grid(name: str, quick: bool) -> list[dict[str, Any]]:
    """The VALID grid of a peer (its ``default_grid``; one shortened point with ``quick``)."""
    from tfrec_llm.evaluation import peers

    grid = getattr(peers, f"{name}Scorer").default_grid()
    if quick:
        grid = [{**grid[0], **QUICK_PEER_OVERRIDES.get(name, {})}]
    return grid


def tuned_peer(name: str, split: Any, quick: bool, refit: bool) -> tuple[Any, dict[str, Any]]:
    """Tunes a peer on VALID (``tune_on_valid``).

    Returns:
        (TEST scorer, info with ``fit_seconds``, ``tune_seconds``, the chosen ``params`` and
        the VALID NDCG@10 of every grid point).
    """
    from tfrec_llm.evaluation import peers

    cls = getattr(peers, f"{name}Scorer")
    start = time.perf_counter()
    best, scorer, rows = peers.tune_on_valid(lambda p: cls(split, **p), peer_grid(name, quick), split)
    tune_seconds = time.perf_counter() - start
    if refit:
        scorer = cls(split, **best, fit_on="train_valid")
        scorer.name = name
    info = {
        "fit_seconds": round(float(scorer.fit_seconds), 3),
        "tune_seconds": round(tune_seconds, 2),
        "params": best,
        "grid": [{"params": r["params"], "valid_ndcg@10": r.get("valid/ndcg@10")} for r in rows],
    }
    return scorer, info


def content_peers(prepared: Any) -> list[Any]:
    """The content-only peers (no interaction training), when the split has item text.

    ``MiniLM item-kNN`` (the frozen text embeddings of the config's text model, cosine to the
    mean of the history) and ``TF-IDF profile`` (stop words removed): on cold items (B) the
    floor that a text-aware model must clear. Empty without text embeddings.
    """
    from tfrec_llm.evaluation.content_peers import TextKNNScorer, TfidfProfileScorer

    if prepared.text_embeddings is None:
        return []
    return [
        TextKNNScorer(prepared.split, prepared.text_embeddings, label="MiniLM item-kNN"),
        TfidfProfileScorer(prepared.split, prepared.item_texts),
    ]
