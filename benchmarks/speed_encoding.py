"""Speed benchmark, section (a): item-text encoding against plain BERT loops, and the matmul rate.

``tfrec_llm.text.encoder.encode_texts`` (tokenize once, sort by length, pad each batch to its
longest text rounded up to 8) runs against a plain loop over the same ``TFBertModel`` (Hugging
Face tokenizer, input order, fixed padding to 64, and padding to the longest text of each
unsorted batch). Rates are also given as a fraction of the machine's fp32 matmul rate, measured
in the same run (`MatmulProbe`); the FLOP count is in ``speed.py``'s docstring (`bert_flops`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import common

FIXED_LENGTH = 64
MATMUL_N = 2048


# ----------------------------------------------------------------------------- matmul


class MatmulProbe:
    """An ``n x n`` fp32 ``tf.function`` matmul (2 n^3 FLOPs per call), run ``calls`` times."""

    def __init__(self, n: int = MATMUL_N, calls: int = 3) -> None:
        import tensorflow as tf

        self.n, self.calls = n, calls
        self.flops = 2 * n**3 * calls
        self.a = tf.random.stateless_normal([n, n], seed=[1, 2])
        self.b = tf.random.stateless_normal([n, n], seed=[3, 4])
        self.function = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
        self.function(self.a, self.b).numpy()  # trace

    def __call__(self) -> None:
        for _ in range(self.calls):
            self.function(self.a, self.b).numpy()


def matmul_gflops(rounds: int, n: int = MATMUL_N) -> dict[str, Any]:
    """Median fp32 GFLOP/s of the matmul probe, measured on its own."""
    probe = MatmulProbe(n, calls=1)
    seconds = common.time_calls({"matmul": probe}, max(rounds, 5))["matmul"]
    median = common.median(seconds)
    return {
        "n": n,
        "flops_per_call": 2 * n**3,
        "median_seconds": median,
        "gflops": probe.flops / median / 1e9,
        "calls": len(seconds),
    }


# ----------------------------------------------------------------------------- encoding


def bert_flops(lengths: Sequence[int], config: Any) -> float:
    """Forward FLOPs of BERT over sequences of the given lengths (formula in the module doc)."""
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    params = layers * (4 * hidden * hidden + 2 * hidden * inter)
    return float(sum(2 * params * L + 4 * layers * L * L * hidden for L in lengths))


class PlainBertLoop:
    """The baseline: Hugging Face tokenizer + ``TFBertModel`` in input order, mean pool, L2."""

    def __init__(self, model_path: str, batch_size: int, padding: str, bert: Any = None) -> None:
        import tensorflow as tf
        from transformers import BertTokenizerFast

        from tfrec_llm.text.bert_loader import load_bert

        self.tokenizer = BertTokenizerFast.from_pretrained(model_path, local_files_only=True)
        self.bert = bert if bert is not None else load_bert(model_path)
        self.batch_size = batch_size
        self.padding = padding  # "max_length" (fixed 64) or "longest"
        self.widths: list[tuple[int, int]] = []  # (rows, padded width) per batch of the last call
        spec = tf.TensorSpec([None, None], tf.int32)

        @tf.function(input_signature=[spec, spec])
        def forward(ids: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
            hidden = self.bert(
                input_ids=ids,
                attention_mask=mask,
                token_type_ids=tf.zeros_like(ids),
                training=False,
            ).last_hidden_state
            m = tf.cast(mask, hidden.dtype)[:, :, tf.newaxis]
            pooled = tf.reduce_sum(hidden * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1e-9)
            return tf.math.l2_normalize(pooled, axis=-1)

        self.forward = forward

    def __call__(self, texts: Sequence[str]) -> Any:
        import numpy as np

        out, self.widths = [], []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=self.padding,
                truncation=True,
                max_length=FIXED_LENGTH,
                return_tensors="np",
            )
            ids = batch["input_ids"].astype(np.int32)
            self.widths.append(ids.shape)
            out.append(self.forward(ids, batch["attention_mask"].astype(np.int32)).numpy())
        return np.concatenate(out)


def ours_widths(lengths: Sequence[int], batch_size: int, max_length: int) -> list[tuple[int, int]]:
    """(rows, padded width) per batch of ``encode_texts`` (sorted, rounded up to 8)."""
    import numpy as np

    ordered = np.sort(np.asarray(lengths), kind="stable")
    shapes = []
    for start in range(0, len(ordered), batch_size):
        rows = ordered[start : start + batch_size]
        longest = int(rows.max())
        shapes.append((len(rows), min(-(-longest // 8) * 8, max(longest, max_length))))
    return shapes


def bench_encoding(encoder: Any, texts: list[str], rounds: int, batch_size: int) -> dict[str, Any]:
    """Section (a): texts/s and FLOP fractions of our encoder vs the plain loops.

    The plain loops run the encoder's own ``TFBertModel`` (same weights, same class) in their own
    ``tf.function``, so only tokenization, padding and order differ. The matmul probe runs as one
    more interleaved contender, so the fractions compare rates measured under the same load.
    """
    import numpy as np

    from tfrec_llm.text.encoder import _tokenize, encode_texts

    path = encoder.model_path
    fixed = PlainBertLoop(path, batch_size, "max_length", bert=encoder.bert)
    longest = PlainBertLoop(path, batch_size, "longest", bert=encoder.bert)
    lengths = [len(ids) for ids in _tokenize(encoder, texts)]
    contenders = {
        "tfrec_llm encode_texts (sorted, pad to longest, x8)": lambda: encode_texts(
            encoder, texts, batch_size
        ),
        "plain TFBertModel loop, pad to longest (unsorted)": lambda: longest(texts),
        f"plain TFBertModel loop, fixed padding to {FIXED_LENGTH}": lambda: fixed(texts),
    }
    results = {name: fn() for name, fn in contenders.items()}  # warm-up: traces every batch shape
    ours = results[next(iter(results))]
    max_diff = {name: float(np.abs(vec - ours).max()) for name, vec in results.items()}
    probe = MatmulProbe()
    times = common.time_calls({**contenders, "matmul probe": probe}, rounds)
    matmul_seconds = times.pop("matmul probe")
    matmul = probe.flops / common.median(matmul_seconds) / 1e9
    shapes = {
        next(iter(contenders)): ours_widths(lengths, batch_size, encoder.max_length),
        list(contenders)[1]: list(longest.widths),
        list(contenders)[2]: list(fixed.widths),
    }
    useful = bert_flops(lengths, encoder.bert.config)
    rows = []
    for name, seconds in times.items():
        median = common.median(seconds)
        executed = sum(bert_flops([w] * n, encoder.bert.config) for n, w in shapes[name])
        padded_tokens = sum(n * w for n, w in shapes[name])
        rows.append(
            {
                "contender": name,
                "texts": len(texts),
                "median_seconds": median,
                "texts_per_second": len(texts) / median,
                "seconds": seconds,
                "padded_tokens": padded_tokens,
                "real_tokens": int(sum(lengths)),
                "useful_gflops": useful / median / 1e9,
                "executed_gflops": executed / median / 1e9,
                "useful_fraction_of_matmul": useful / median / 1e9 / matmul,
                "executed_fraction_of_matmul": executed / median / 1e9 / matmul,
                "max_abs_diff_vs_ours": max_diff[name],
            }
        )
    return {
        "batch_size": batch_size,
        "matmul_gflops_interleaved": matmul,
        "matmul_seconds": matmul_seconds,
        "mean_tokens": float(np.mean(lengths)),
        "max_tokens": int(max(lengths)),
        "flops_useful_total": useful,
        "rows": rows,
    }
