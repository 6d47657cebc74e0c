"""quality.png: TEST NDCG@10 and Recall@10 per protocol, one horizontal bar per model."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from quality_report import cell_value, model_names

from tfrec_llm.evaluation.report import PROTOCOL_LETTERS


def render_png(records: list[dict[str, Any]], protocols: Sequence[str], title: str) -> bytes:
    """Grouped horizontal bars: TEST NDCG@10 and Recall@10 per protocol, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    models = model_names(records)
    colors = {"baseline": "#9e9e9e", "peer": "#4c72b0", "tfrec_llm": "#dd8452"}
    family = {r["model"]: r.get("family", "peer") for r in records}
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
            values = [cell_value(records, m, protocol, metric, 10) or 0.0 for m in models]
            ax.barh(range(len(models)), values, color=[colors[family[m]] for m in models])
            ax.set_yticks(range(len(models)), models)
            ax.invert_yaxis()
            ax.set_title(f"{PROTOCOL_LETTERS[protocol]} ({protocol}) {metric}@10", fontsize=10)
            for i, v in enumerate(values):
                ax.text(v, i, f" {v:.3f}", va="center", fontsize=7)
            ax.set_xlim(0, max(values + [1e-3]) * 1.3)
            ax.xaxis.set_major_locator(MaxNLocator(4))
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    fig.legend(handles, list(colors), loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
