"""Tests for tfrec_llm.config.choices: the one list of each closed set of names."""

import pytest

from tfrec_llm.config import ExperimentConfig, choices, load_config, replace
from tfrec_llm.data import splits
from tfrec_llm.evaluation import protocols


def test_splits_and_evaluator_use_the_same_lists():
    assert splits.PROTOCOLS is choices.PROTOCOLS
    assert protocols.METRICS is choices.METRICS
    assert choices.PROTOCOLS == ("loo", "cold-items", "cold-users")
    assert splits.SELECTION_PROTOCOL is choices.SELECTION_PROTOCOL
    assert splits.ITEM_SELECTION_PROTOCOL is choices.ITEM_SELECTION_PROTOCOL
    assert choices.SPLIT_NAMES == (*choices.PROTOCOLS, "cold-users-select", "cold-items-select")
    assert dict(choices.SELECTION_SPLITS) == {
        "cold-users-select": "cold-users",
        "cold-items-select": "cold-items",
    }
    assert choices.METRICS == ("recall", "hr", "ndcg")


def test_variants_are_config_overrides_that_build_valid_configs():
    assert dict(choices.VARIANT_NAMES) == {
        "id": "TwoTower-ID",
        "text": "TwoTower-TextOnly",
        "bert": "TwoTower-BERT",
        "sasrec": "SASRec-style (ids)",
        "mean": "TwoTower-BERT-MeanPool",
    }
    switches = {k: dict(v) for k, v in choices.VARIANTS.items()}
    assert switches["id"] == {
        "model.use_ids": True,
        "model.use_text": False,
        "model.use_categories": False,
        "model.user_text": False,
    }
    assert switches["text"] == {"model.use_ids": False, "model.use_text": True, "model.use_categories": True}
    assert switches["bert"] == {"model.use_ids": True, "model.use_text": True, "model.use_categories": True}
    # The SASRec-style peer: attention over ids only, no user features, full softmax.
    assert switches["sasrec"]["model.history_encoder"] == "attention"
    assert not switches["sasrec"]["model.use_text"] and not switches["sasrec"]["model.use_user_ids"]
    assert switches["mean"]["model.history_encoder"] == "mean"
    assert switches["mean"]["model.objective"] == "interaction"
    for name, fields in choices.VARIANTS.items():
        cfg = replace(ExperimentConfig(), **{k.replace(".", "__"): v for k, v in fields.items()})
        for key, value in fields.items():
            section, field = key.split(".")
            assert getattr(getattr(cfg, section), field) == value, (name, key)
        assert choices.variant_uses_text(name) == cfg.model.use_text
        # built on the main command's config (model.user_text: true), a variant without item
        # text cannot read a user's text (BERT is not in its graph): it must switch it off
        main = load_config("pipelines/movielens_100k.yaml")
        variant = replace(main, **{k.replace(".", "__"): v for k, v in fields.items()})
        assert variant.model.use_text or not variant.model.user_text, name
    assert not choices.variant_uses_text("no-such-variant")
    # the reference mean-pooling model stays the model it was (no user text)
    assert switches["mean"]["model.user_text"] is False


def test_variants_are_read_only():
    with pytest.raises(TypeError):
        choices.VARIANTS["id"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        choices.VARIANTS["id"]["model.use_ids"] = False  # type: ignore[index]


def test_data_sources_are_movielens_then_generic():
    assert choices.DATA_SOURCES == choices.MOVIELENS_SOURCES + choices.GENERIC_SOURCES
    assert not set(choices.MOVIELENS_SOURCES) & set(choices.GENERIC_SOURCES)
