"""benchmarks/student.py's report: one column per encoder, each ratio to the teacher's figure."""

from __future__ import annotations


def _row(recall: float, speed: float, cosine: float) -> dict:
    return {
        "two_tower": {"recall@10": recall, "ndcg@10": recall / 2},
        "frozen_teacher_model": {"recall@10": recall - 0.01, "ndcg@10": 0.0},
        "text_knn": {"recall@10": 0.1, "ndcg@10": 0.05},
        "mean_cosine_to_teacher": cosine,
        "texts_per_s_served": speed,
        "texts_per_s_offline_sorted": 40.0,
        "params": 1000,
        "saved_model_mib": 10.0,
        "train_seconds": 60.0,
    }


def test_the_report_has_a_column_per_encoder_with_ratios_to_the_teacher(bench) -> None:
    student = bench("student")
    record = {
        "texts": 3,
        "student_settings": {"embedding_dim": 8},
        "distill": {"seconds": 5.0},
        "retrieval_weight": 0.1,
        "retrieval_distill": {"retrieval_pairs": 50, "seconds": 6.0},
        "rows": {
            "teacher": _row(0.2, 40.0, 1.0),
            "student": _row(0.19, 4000.0, 0.95),
            "student_retrieval": _row(0.1, 4000.0, 0.9),
        },
    }
    meta = {"date": "2026-12-01", "machine": "m", "load": "l", "command": "c", "wall_seconds": 1.0}
    lines = student.render(record, meta).splitlines()
    header = next(line for line in lines if line.startswith("| | "))
    assert header == "| | teacher (MiniLM) | student | student + retrieval term |"
    assert "| Retrained two-tower, B recall@10 | 0.2000 | 0.1900 (0.950x) | 0.1000 (0.500x) |" in lines
    assert "| texts/s (served graph) | 40 | 4000 (100.000x) | 4000 (100.000x) |" in lines
    assert any("weight 0.1, 50 TRAIN pairs" in line for line in lines)
    del record["rows"]["student_retrieval"]
    two = student.render(record, meta).splitlines()
    assert "| | teacher (MiniLM) | student |" in two
