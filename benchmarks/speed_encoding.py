"""Speed benchmark, section (a): item-text encoding against plain BERT loops, and the matmul rate.

``tfrec_llm.text.encoder.encode_texts`` (tokenize once, sort by length, pad each batch to its
longest text rounded up to 8) runs against a plain loop over the same ``TFBertModel`` (Hugging
Face tokenizer, input order, fixed padding to 64, and padding to the longest text of each
unsorted batch). Rates are also given as a fraction of the machine's fp32 matmul rate, measured
in the same run (`MatmulProbe`); the FLOP count is in ``speed.py``'s docstring (`bert_flops`).

`bench_encoder_speed` (run by ``encoder_speed.py``) times, in one interleaved run, wall and CPU
seconds of: ``encode_texts`` (the passes of ``tfrec_llm.text.fast_encode.plan_batches``), the
batching it replaced (`LegacySortedEncoder`: 128 sorted texts a pass, padded to the longest
rounded up to 8), the same batches through an XLA-compiled function, a plain ``TFBertModel``
loop and the matmul probe.
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
    """(rows, padded width) per batch of `LegacySortedEncoder` (sorted, rounded up to 8): the
    batching of ``encode_texts`` until 2026-11-30."""
    import numpy as np

    ordered = np.sort(np.asarray(lengths), kind="stable")
    shapes = []
    for start in range(0, len(ordered), batch_size):
        rows = ordered[start : start + batch_size]
        longest = int(rows.max())
        shapes.append((len(rows), min(-(-longest // 8) * 8, max(longest, max_length))))
    return shapes


def fast_widths(lengths: Sequence[int], batch_size: int) -> list[tuple[int, int]]:
    """(rows, padded width) per pass of ``encode_texts`` (``fast_encode.plan_batches``)."""
    from tfrec_llm.text.fast_encode import padded_shapes, plan_batches

    return padded_shapes(lengths, plan_batches(lengths, batch_size))


def bench_encoding(encoder: Any, texts: list[str], rounds: int, batch_size: int) -> dict[str, Any]:
    """Section (a) of speed.py: texts/s and FLOP fractions of our encoder vs the plain loops.

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
        "tfrec_llm encode_texts (sorted, DP passes, pad to longest)": lambda: encode_texts(
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
        next(iter(contenders)): fast_widths(lengths, batch_size),
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


# ----------------------------------------------------------------------------- encoder speed


class LegacySortedEncoder:
    """``encode_texts`` as it was until 2026-11-30: tokenize once, sort by token count, passes of
    ``batch_size`` texts padded to the longest rounded up to 8 (capped at ``max_length``).

    With ``jit_compile`` the passes run through an XLA-compiled function (one compilation per
    distinct shape, paid on the first call) instead of the encoder's ``[None, None]`` one.
    """

    def __init__(self, encoder: Any, batch_size: int, jit_compile: bool = False) -> None:
        import tensorflow as tf

        self.encoder, self.batch_size = encoder, batch_size
        self.function = encoder.graph_encode_tokens
        if jit_compile:
            self.function = tf.function(
                lambda ids, mask: encoder.encode_tokens(ids, mask, training=False),
                jit_compile=True,
            )

    def __call__(self, texts: Sequence[str]) -> Any:
        import numpy as np
        import tensorflow as tf

        from tfrec_llm.text.encoder import _tokenize

        ids = _tokenize(self.encoder, list(texts))
        lengths = np.array([len(row) for row in ids])
        order = np.argsort(lengths, kind="stable")
        pad_id = int(self.encoder.tokenizer.pad_token_id)
        output = np.zeros((len(ids), self.encoder.hidden_size), dtype=np.float32)
        shapes = ours_widths(lengths, self.batch_size, self.encoder.max_length)
        for start, (rows_count, width) in zip(range(0, len(ids), self.batch_size), shapes, strict=True):
            rows = order[start : start + rows_count]
            input_ids = np.full((len(rows), width), pad_id, dtype=np.int32)
            mask = np.zeros((len(rows), width), dtype=np.int32)
            for i, row in enumerate(rows):
                input_ids[i, : lengths[row]] = ids[row]
                mask[i, : lengths[row]] = 1
            output[rows] = self.function(tf.constant(input_ids), tf.constant(mask)).numpy()
        return output


def time_wall_and_cpu(contenders: dict[str, Any], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """`common.interleave` of argument-free calls: (wall seconds, process CPU seconds) of each.

    CPU seconds (``time.process_time``: every thread of this process) count the work done, which
    other jobs on a shared machine disturb much less than the wall time.
    """
    import time

    def timed(function: Any) -> Any:
        def call(_: int) -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            function()
            return time.perf_counter() - wall, time.process_time() - cpu

        return call

    return common.interleave({name: timed(f) for name, f in contenders.items()}, rounds)


FAST = "encode_texts (fast_encode: sorted, DP passes, exact padding)"
BEFORE = "encode_texts before (sorted, 128 a pass, padded to longest rounded up to 8)"
BEFORE_XLA = "the same batches, XLA (jit_compile=True)"
PLAIN = "plain TFBertModel loop, pad to longest (unsorted)"


def bench_encoder_speed(
    encoder: Any, texts: list[str], rounds: int, batch_size: int, xla: bool = True
) -> dict[str, Any]:
    """Texts/s, texts per CPU-second and matmul fractions of four encoders, in one run.

    Every contender uses the encoder's own ``TFBertModel`` (same weights). Each first runs once
    untimed but recorded (``first_call_seconds``: tracing, XLA compilation); then ``rounds``
    interleaved rounds of all of them and of the matmul probe.

    Returns:
        ``{"rows": [...], "matmul": {...}, "mean_tokens", ...}``; fractions divide useful (real
        token) FLOPs per second, wall or CPU, by the matmul's FLOPs per second of the same kind.
    """
    import time

    import numpy as np

    from tfrec_llm.text.encoder import _tokenize, encode_texts

    tokenize_seconds = []
    for _ in range(3):
        start = time.perf_counter()
        lengths = [len(ids) for ids in _tokenize(encoder, texts)]
        tokenize_seconds.append(time.perf_counter() - start)
    plain = PlainBertLoop(encoder.model_path, batch_size, "longest", bert=encoder.bert)
    contenders = {
        FAST: lambda: encode_texts(encoder, texts, batch_size),
        BEFORE: lambda: LegacySortedEncoder(encoder, batch_size)(texts),
        PLAIN: lambda: plain(texts),
    }
    if xla:
        compiled = LegacySortedEncoder(encoder, batch_size, jit_compile=True)
        contenders[BEFORE_XLA] = lambda: compiled(texts)
    first, vectors = {}, {}
    for name, function in contenders.items():
        start = time.perf_counter()
        vectors[name] = function()
        first[name] = time.perf_counter() - start
    shapes = {
        FAST: fast_widths(lengths, batch_size),
        BEFORE: ours_widths(lengths, batch_size, encoder.max_length),
        BEFORE_XLA: ours_widths(lengths, batch_size, encoder.max_length),
        PLAIN: list(plain.widths),
    }
    probe = MatmulProbe()
    times = time_wall_and_cpu({**contenders, "matmul probe": probe}, rounds)
    matmul_pairs = times.pop("matmul probe")
    matmul_wall = common.median([w for w, _ in matmul_pairs])
    matmul_cpu = common.median([c for _, c in matmul_pairs])
    matmul = {
        "n": probe.n,
        "calls_per_round": probe.calls,
        "gflops_wall": probe.flops / matmul_wall / 1e9,
        "gflops_per_cpu_second": probe.flops / matmul_cpu / 1e9,
    }
    useful = bert_flops(lengths, encoder.bert.config)
    rows = []
    for name, pairs in times.items():
        wall = common.median([w for w, _ in pairs])
        cpu = common.median([c for _, c in pairs])
        rows.append(
            {
                "contender": name,
                "texts": len(texts),
                "median_wall_seconds": wall,
                "median_cpu_seconds": cpu,
                "texts_per_second": len(texts) / wall,
                "texts_per_cpu_second": len(texts) / cpu,
                "cores_used": cpu / wall,
                "passes": len(shapes[name]),
                "distinct_shapes": len(set(map(tuple, shapes[name]))),
                "padded_tokens": int(sum(n * w for n, w in shapes[name])),
                "real_tokens": int(sum(lengths)),
                "useful_gflops": useful / wall / 1e9,
                "useful_fraction_of_matmul": useful / wall / 1e9 / matmul["gflops_wall"],
                "useful_fraction_of_matmul_cpu": useful / cpu / 1e9 / matmul["gflops_per_cpu_second"],
                "first_call_seconds": first[name],
                "max_abs_diff_vs_plain": float(np.abs(vectors[name] - vectors[PLAIN]).max()),
                "rounds": [list(pair) for pair in pairs],
            }
        )
    return {
        "batch_size": batch_size,
        "matmul": matmul,
        "matmul_rounds": [list(pair) for pair in matmul_pairs],
        "mean_tokens": float(np.mean(lengths)),
        "max_tokens": int(max(lengths)),
        "useful_flops_per_text": useful / len(texts),
        "tokenize_seconds": common.median(tokenize_seconds),
        "rows": rows,
    }
