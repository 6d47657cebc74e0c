"""quality.png: TEST NDCG@10 and Recall@10 per protocol, one horizontal bar per model.

Rows with known user ids only (the hidden-user-id rows are in quality.md's table); the
per-encoder rows (``row == "encoder"``) in a lighter shade of the tfrec_llm colour.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from quality_report import cell_value, known_ids, model_names

from tfrec_llm.evaluation.report import PROTOCOL_LETTERS


def render_png(records: list[dict[str, Any]], protocols: Sequence[str], title: str) -> bytes:
    """Grouped horizontal bars: TEST NDCG@10 and Recall@10 per protocol, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    records = known_ids(records)
    models = model_names(records)
    colors = {
        "baseline": "#9e9e9e",
        "peer": "#4c72b0",
        "tfrec_llm": "#dd8452",
        "tfrec_llm encoders": "#f2c29b",
    }
    family = {
        r["model"]: "tfrec_llm encoders" if r.get("row") == "encoder" else r.get("family", "peer")
        for r in records
    }
    shown = [c for c in colors if c in family.values()]
    fig, axes = plt.subplots(
        2,
        len(protocols),
        figsize=(4.2 * len(protocols), 0.45 * len(models) * 2 + 2),
        squeeze=False,
        sharey=True,
    )
    for col, protocol in enumerate(protocols):
        for row, metric in enumerate(("ndcg", "recall")):
            ax = axes[row][col]
            cells = [cell_value(records, m, protocol, metric, 10) for m in models]
            values = [v or 0.0 for v in cells]
            ax.barh(range(len(models)), values, color=[colors[family[m]] for m in models])
            ax.set_yticks(range(len(models)), models)
            ax.invert_yaxis()
            ax.set_title(f"{PROTOCOL_LETTERS[protocol]} ({protocol}) {metric}@10", fontsize=10)
            for i, v in enumerate(cells):
                ax.text(v or 0.0, i, " -" if v is None else f" {v:.3f}", va="center", fontsize=7)
            ax.set_xlim(0, max(values + [1e-3]) * 1.3)
            ax.xaxis.set_major_locator(MaxNLocator(4))
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[c]) for c in shown]
    fig.legend(handles, shown, loc="lower center", ncol=len(shown), fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
