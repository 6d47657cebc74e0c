"""Student benchmark: the distilled item encoder against its BERT teacher, in one run.

For ML-100K under protocol B (cold items), this script

1. distills the student (`tfrec_llm.experiments.distill`) on the item texts only (the cold
   items' TEXT is legitimate input: protocol B hides only their interactions);
2. trains the two-tower ``bert`` variant twice with the same config and seed: once on the
   teacher's (MiniLM) item vectors, once with every item's vector replaced by the student's;
3. scores the MiniLM item-kNN content peer (no training) with teacher and with student vectors;
4. measures texts/s of both encoders on the same batch of item texts (raw strings in, the
   in-graph tokenizer included, as served; and the teacher's offline length-sorted path),
   parameter counts and the size on disk of each ``item_encoder`` SavedModel.

Outputs ``student.md`` and ``student.json`` in ``--out``. Runs are cached under ``--model-dir``
(``cold-items/bert-teacher``, ``cold-items/bert-student``, ``student``), so a rerun only
evaluates.

    python benchmarks/student.py --set train.epochs=15
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from machine import command_line, describe_machine, load_line, machine_line

DEFAULT_MODEL_DIR = os.path.join("runs", "student_bench")
PROTOCOL = "cold-items"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The student benchmark's options."""
    parser.add_argument("--config", default=None, help="experiment YAML (default: built-in)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="F=V")
    parser.add_argument("--out", default=common.DEFAULT_OUT, help="folder for student.md/.json")
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR, help="cached runs")
    parser.add_argument("--student-epochs", type=int, default=40)
    parser.add_argument("--embedding-dim", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=0)
    parser.add_argument(
        "--retrieval-weight",
        type=float,
        default=0.1,
        help="weight of the third column's retrieval term (frozen teacher two-tower; 0 = no third column)",
    )
    parser.add_argument("--speed-repeats", type=int, default=3, help="timed passes (median)")
    parser.add_argument("--quiet", action="store_true")


def _texts_per_second(encode: Any, texts: list[str], repeats: int) -> float:
    """Median texts/s of ``encode(texts)`` over ``repeats`` timed passes (after one warm-up)."""
    encode(texts)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encode(texts)
        times.append(time.perf_counter() - start)
    return len(texts) / sorted(times)[len(times) // 2]


def _saved_model_mib(module: Any, folder: str) -> float:
    import tensorflow as tf

    tf.saved_model.save(module, folder, signatures={"serving_default": module.serve})
    size = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    return size / (1 << 20)


def _speed_and_size(cfg: Any, student_text: Any, texts: list[str], repeats: int) -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf

    from tfrec_llm.experiments.prepare import text_model_path
    from tfrec_llm.export.serving_module import ItemEncoderModule
    from tfrec_llm.text.encoder import TextEncoder, encode_texts

    teacher = TextEncoder(text_model_path(cfg.text), max_length=cfg.text.max_length, pooling=cfg.text.pooling)
    out: dict[str, Any] = {}
    batch = 128
    for name, encoder in (("teacher", teacher), ("student", student_text)):
        module = ItemEncoderModule(encoder)

        def served(batch_texts: list[str], module: Any = module) -> None:
            for start in range(0, len(batch_texts), batch):
                module.serve(tf.constant(batch_texts[start : start + batch]))["embedding"].numpy()

        params = int(sum(np.prod(w.shape) for w in encoder.weights if w.dtype.is_floating))
        with tempfile.TemporaryDirectory() as tmp:
            size = _saved_model_mib(module, os.path.join(tmp, "1"))
        out[name] = {
            "texts_per_s_served": _texts_per_second(served, texts, repeats),
            "params": params,
            "saved_model_mib": size,
        }
    out["teacher"]["texts_per_s_offline_sorted"] = _texts_per_second(
        lambda t: encode_texts(teacher, t, batch_size=batch), texts, repeats
    )
    return out


def _vectors(encoder: Any, texts: list[str]) -> Any:
    """[len(texts), dim] vectors of ``encoder`` (raw strings in), 256 texts a call."""
    import numpy as np

    return np.concatenate(
        [encoder(np.asarray(texts[i : i + 256], dtype=object)).numpy() for i in range(0, len(texts), 256)]
    )


def _swapped(model: Any, table: Any, catalog: Any, split: Any) -> dict[str, float]:
    """Protocol B metrics of the teacher-trained ``model`` with its text table replaced by ``table``.

    What serving a student ``item_encoder`` beside the teacher's retrieval model gives (no
    retraining); the model's own table is put back afterwards.
    """
    from tfrec_llm.evaluation.protocols import evaluate
    from tfrec_llm.models.scorer import TwoTowerScorer

    text_table = model.item_tower.text_table
    own = text_table.numpy()
    text_table.assign(table)
    try:
        return evaluate(TwoTowerScorer(model, catalog), split.test, split.item_ids, ks=(10,))
    finally:
        text_table.assign(own)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Distills, trains both two-tower models, evaluates and measures; returns the record."""
    import numpy as np

    from tfrec_llm.config import load_config, replace
    from tfrec_llm.evaluation.content_peers import TextKNNScorer
    from tfrec_llm.evaluation.protocols import evaluate
    from tfrec_llm.experiments.distill import StudentSettings, distill_student
    from tfrec_llm.experiments.prepare import prepare, text_model_path
    from tfrec_llm.experiments.runs import load_or_train
    from tfrec_llm.models.scorer import TwoTowerScorer
    from tfrec_llm.text.student import StudentTextEncoder

    cfg = replace(load_config(args.config, args.overrides), train__model_dir=args.model_dir)
    verbose = 0 if args.quiet else 2
    prepared = prepare(cfg, PROTOCOL)
    settings = StudentSettings(
        embedding_dim=args.embedding_dim, num_layers=args.num_layers, epochs=args.student_epochs
    )
    start = time.perf_counter()
    student, meta = distill_student(
        cfg, settings, prepared, os.path.join(args.model_dir, "student"), verbose=verbose
    )
    distill_seconds = time.perf_counter() - start
    if "result" not in meta:  # reused: the result of the run that trained it
        result_path = os.path.join(args.model_dir, "student", "result.json")
        meta["result"] = {**json.loads(Path(result_path).read_text(encoding="utf-8")), "reused": True}
    student_text = StudentTextEncoder(student, text_model_path(cfg.text), cfg.text.max_length)
    texts = list(prepared.item_texts)
    teacher_vectors = prepared.text_embeddings
    student_vectors = _vectors(student_text, texts)
    cosine = float(np.mean(np.sum(student_vectors * teacher_vectors, axis=1)))
    split = prepared.split
    teacher_model, _ = load_or_train(
        cfg, prepared, "bert", os.path.join(args.model_dir, PROTOCOL, "bert-teacher"), verbose=verbose
    )
    vectors = {"teacher": teacher_vectors, "student": student_vectors}
    retrieval_meta = None
    if args.retrieval_weight > 0:  # the frozen teacher two-tower was trained on B's TRAIN only
        settings_r = dataclasses.replace(settings, retrieval_weight=args.retrieval_weight)
        student_r, retrieval_meta = distill_student(
            cfg, settings_r, prepared, os.path.join(args.model_dir, "student-retrieval"),
            verbose=verbose, frozen=teacher_model,
        )  # fmt: skip
        if "result" not in retrieval_meta:  # reused: the result of the run that trained it
            result_path = os.path.join(args.model_dir, "student-retrieval", "result.json")
            retrieval_meta["result"] = json.loads(Path(result_path).read_text(encoding="utf-8"))
        vectors["student_retrieval"] = _vectors(
            StudentTextEncoder(student_r, text_model_path(cfg.text), cfg.text.max_length), texts
        )
    rows: dict[str, Any] = {}
    for name, table in vectors.items():
        data = dataclasses.replace(prepared, text_embeddings=table)
        directory = os.path.join(args.model_dir, PROTOCOL, f"bert-{name.replace('_', '-')}")
        model, info = load_or_train(cfg, data, "bert", directory, verbose=verbose)
        scorer = TwoTowerScorer(model, data.catalog, name=f"TwoTower-BERT ({name} vectors)")
        rows[name] = {
            "two_tower": evaluate(scorer, split.test, split.item_ids, ks=(10,)),
            "frozen_teacher_model": _swapped(teacher_model, table, data.catalog, split),
            "text_knn": evaluate(
                TextKNNScorer(split, table, f"TextKNN ({name})"), split.test, split.item_ids, ks=(10,)
            ),
            "train_seconds": info.get("train_seconds"),
            "best_epoch": info.get("best_epoch"),
            "mean_cosine_to_teacher": float(np.mean(np.sum(table * teacher_vectors, axis=1))),
        }
    speed = _speed_and_size(cfg, student_text, texts, args.speed_repeats)
    for name in rows:  # the two students share one architecture, so one speed
        rows[name].update(speed["teacher" if name == "teacher" else "student"])
    return {
        "protocol": PROTOCOL,
        "texts": len(texts),
        "student_settings": dataclasses.asdict(settings),
        "distill": {**meta.get("result", {}), "wall_seconds": round(distill_seconds, 1)},
        "mean_cosine_to_teacher": cosine,
        "retrieval_weight": args.retrieval_weight,
        "retrieval_distill": (retrieval_meta or {}).get("result"),
        "rows": rows,
    }


COLUMNS = (
    ("teacher", "teacher (MiniLM)"),
    ("student", "student"),
    ("student_retrieval", "student + retrieval term"),
)


def render(record: dict[str, Any], meta: dict[str, Any]) -> str:
    """The Markdown report."""
    rows = record["rows"]
    columns = [(key, label) for key, label in COLUMNS if key in rows]
    teacher = rows["teacher"]

    def cells(value: Any, fmt: str) -> str:
        parts = []
        for key, _ in columns:
            own = value(rows[key])
            ratio = "" if key == "teacher" else f" ({own / value(teacher):.3f}x)" if value(teacher) else ""
            parts.append(f"{own:{fmt}}{ratio}")
        return " | ".join(parts)

    retrieval = record.get("retrieval_distill") or {}
    lines = [
        f"# Student item encoder vs BERT teacher, protocol B ({meta['date']})",
        "",
        f"- Machine: {meta['machine']}; {meta['load']}.",
        f"- Command: `{meta['command']}` ({meta['wall_seconds']:.0f} s wall)",
        f"- Student: {json.dumps(record['student_settings'])}; distilled on the {record['texts']} item "
        "texts (teacher-matching cosine loss), cold items' text included: protocol B hides only "
        "their interactions.",
        "- Student + retrieval term: the same, plus the retrieval term (weight "
        f"{record.get('retrieval_weight')}, {retrieval.get('retrieval_pairs')} TRAIN pairs): the frozen "
        "teacher-vector two-tower (trained on protocol B's TRAIN only, the first column's model) must "
        "retrieve each next item from its student vector alone, its id replaced by the unknown row.",
        "- Retrained two-tower: the config's `bert` variant, same config and seed, trained on each "
        "column's item text vectors. Frozen teacher model: the first column's trained model with "
        "its text table replaced by the column's vectors, no retraining (a student item_encoder "
        "served beside the teacher's retrieval model).",
        "- texts/s: all item texts, batches of 128, raw strings in (in-graph classic TF Text "
        "tokenizer included), the item_encoder serving module; median of the timed passes. Both "
        "students share one architecture, measured once.",
        "",
        "| | " + " | ".join(label for _, label in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for label, part, metric in (
        ("Retrained two-tower, B recall@10", "two_tower", "recall@10"),
        ("Retrained two-tower, B ndcg@10", "two_tower", "ndcg@10"),
        ("Frozen teacher model, B recall@10", "frozen_teacher_model", "recall@10"),
        ("TextKNN (content peer), B recall@10", "text_knn", "recall@10"),
        ("TextKNN, B ndcg@10", "text_knn", "ndcg@10"),
    ):
        lines.append(f"| {label} | " + cells(lambda r, p=part, m=metric: r[p][m], ".4f") + " |")
    lines.append(
        "| mean cosine to the teacher | " + cells(lambda r: r["mean_cosine_to_teacher"], ".4f") + " |"
    )
    lines.append("| texts/s (served graph) | " + cells(lambda r: r["texts_per_s_served"], ".0f") + " |")
    lines.append("| parameters | " + cells(lambda r: r["params"], ",") + " |")
    lines.append("| item_encoder SavedModel MiB | " + cells(lambda r: r["saved_model_mib"], ".1f") + " |")
    seconds = ", ".join(f"{key} {rows[key]['train_seconds']}" for key, _ in columns)
    lines += [
        "",
        f"Teacher's offline length-sorted path (`encode_texts`): {teacher['texts_per_s_offline_sorted']:.0f} texts/s.",
        f"Two-tower training seconds: {seconds}. Distillation: {record['distill'].get('seconds')} s"
        + (" (in an earlier invocation; reused here)" if record["distill"].get("reused") else "")
        + (f"; with the retrieval term {retrieval.get('seconds')} s." if retrieval else "."),
        "",
        "Targets (issue 10): student >= 95% of the teacher's protocol B Recall@10, at >= 5x its texts/s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and writes ``student.md`` and ``student.json``."""
    import sys

    common.setup_environment()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    start_load = os.getloadavg()
    start = time.perf_counter()
    record = run(args)
    wall = time.perf_counter() - start
    machine = describe_machine()
    meta = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": machine_line(machine),
        "load": load_line(list(start_load), list(os.getloadavg())),
        "command": command_line("benchmarks/student.py", argv),
        "wall_seconds": wall,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "student.json").write_text(json.dumps({**meta, **record}, indent=1) + "\n", encoding="utf-8")
    (out / "student.md").write_text(render(record, meta), encoding="utf-8")
    print(render(record, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
