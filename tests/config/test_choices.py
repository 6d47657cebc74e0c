"""Tests for tfrec_llm.config.choices: the one list of each closed set of names."""

import pytest

from tfrec_llm.config import ExperimentConfig, choices, replace
from tfrec_llm.data import splits
from tfrec_llm.evaluation import protocols


def test_splits_and_evaluator_use_the_same_lists():
    assert splits.PROTOCOLS is choices.PROTOCOLS
    assert protocols.METRICS is choices.METRICS
    assert choices.PROTOCOLS == ("loo", "cold-items", "cold-users")
    assert choices.METRICS == ("recall", "hr", "ndcg")


def test_variants_name_the_candidate_tower_switches():
    assert dict(choices.VARIANT_NAMES) == {
        "id": "TwoTower-ID",
        "text": "TwoTower-TextOnly",
        "bert": "TwoTower-BERT",
    }
    assert {k: dict(v) for k, v in choices.VARIANTS.items()} == {
        "id": {"use_ids": True, "use_text": False, "use_categories": False},
        "text": {"use_ids": False, "use_text": True, "use_categories": True},
        "bert": {"use_ids": True, "use_text": True, "use_categories": True},
    }
    for switches in choices.VARIANTS.values():
        cfg = replace(ExperimentConfig(), **{f"model__{k}": v for k, v in switches.items()})
        assert [getattr(cfg.model, k) for k in switches] == list(switches.values())


def test_variants_are_read_only():
    with pytest.raises(TypeError):
        choices.VARIANTS["id"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        choices.VARIANTS["id"]["use_ids"] = False  # type: ignore[index]


def test_data_sources_are_movielens_then_generic():
    assert choices.DATA_SOURCES == choices.MOVIELENS_SOURCES + choices.GENERIC_SOURCES
    assert not set(choices.MOVIELENS_SOURCES) & set(choices.GENERIC_SOURCES)
