"""Fine-tuning the top BERT layers of the item tower (``text.fine_tune_layers``), tiny BERT.

References are independent of the tower's text path: a fresh frozen ``TextEncoder`` that
tokenizes in-graph, and the pretrained weights reloaded from the folder.
"""

import re

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.config import (
    ExperimentConfig,
    ModelConfig,
    TextConfig,
    dump_config,
    load_config,
    replace,
)
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.errors import ConfigError
from tfrec_llm.evaluation.protocols import evaluate
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.experiments.prepare import item_texts, tokenize_item_texts
from tfrec_llm.models.retrieval import TwoTowerModel
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.models.towers import ItemTower
from tfrec_llm.text.bert_loader import load_bert
from tfrec_llm.text.encoder import TextEncoder
from tfrec_llm.text.tokenizer import load_tokenizer
from tfrec_llm.training.trainer import train_two_tower

MAX_LENGTH = 32
MODEL = ModelConfig(embedding_dim=8, history_length=4, text_projection_dim=8)


def _text_config(folder, layers=1):
    return TextConfig(model_path=folder, max_length=MAX_LENGTH, fine_tune_layers=layers)


def _prepared(dataset, folder):
    split = make_split(dataset, "loo")
    catalog = build_catalog(dataset, split)
    texts = item_texts(dataset, split.item_ids, TextConfig().template)
    return split, catalog, texts, tokenize_item_texts(_text_config(folder), texts)


def _frozen_text(folder, texts):
    """Pretrained embeddings of ``texts`` by a new frozen encoder (in-graph tokenizer)."""
    return TextEncoder(folder, max_length=MAX_LENGTH)(tf.constant(texts)).numpy()


def _bert_weights(bert):
    """name without the model scope -> value, for the embeddings and each transformer layer."""
    return {w.name.split("/", 1)[1]: w.numpy() for w in bert.weights}


def _unscoped_names(model):
    """Weight names without the per-instance suffixes Keras adds (item_tower_1 -> item_tower)."""
    return [re.sub(r"_\d+(?=[/:])", "", w.name) for w in model.weights]


def _group(weights, part):
    return {name: value for name, value in weights.items() if name.startswith(f"bert/{part}")}


def test_config_field_defaults_to_frozen_round_trips_and_is_validated(tmp_path):
    assert TextConfig().fine_tune_layers == 0
    cfg = replace(ExperimentConfig(), text__fine_tune_layers=2)
    dump_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert load_config(None, ["text.fine_tune_layers=-1"]).text.fine_tune_layers == -1
    with pytest.raises(ConfigError, match=r"text.fine_tune_layers=-2; expected -1 \(all\), 0 \(frozen\)"):
        load_config(None, ["text.fine_tune_layers=-2"])


def test_tokens_are_right_padded_in_graph_ids(dataset_factory, tiny_bert_dir):
    _, _, texts, (ids, mask) = _prepared(dataset_factory(num_users=4, num_items=4, per_user=3), tiny_bert_dir)
    in_graph = load_tokenizer(tiny_bert_dir, max_length=MAX_LENGTH)(tf.constant(texts))
    assert ids.shape == mask.shape == (4, MAX_LENGTH) and ids.dtype == mask.dtype == np.int32
    for row, (want, want_mask) in enumerate(
        zip(in_graph["input_ids"].numpy(), in_graph["attention_mask"].numpy())
    ):
        n = int(want_mask.sum())
        np.testing.assert_array_equal(ids[row, :n], want[:n])
        np.testing.assert_array_equal(mask[row], [1] * n + [0] * (MAX_LENGTH - n))
        np.testing.assert_array_equal(ids[row, n:], 0)  # [PAD] is id 0 in the tiny vocabulary


def test_frozen_default_builds_no_encoder_and_the_same_model(tiny_dataset):
    split = make_split(tiny_dataset, "loo")
    catalog = build_catalog(tiny_dataset, split)
    text = np.random.default_rng(0).normal(size=(catalog.num_items, 6)).astype(np.float32)
    before = build_two_tower(MODEL, catalog, text)
    after = build_two_tower(MODEL, catalog, text, TextConfig(fine_tune_layers=0))
    assert after.item_tower.text_encoder is None and after.item_tower.text_token_ids is None
    # Same config but for the name Keras numbers per instance (two_tower_model_1).
    assert {**after.get_config(), "name": ""} == {**before.get_config(), "name": ""}
    assert _unscoped_names(after) == _unscoped_names(before)
    assert [tuple(w.shape) for w in after.weights] == [tuple(w.shape) for w in before.weights]


def test_untrained_text_part_equals_the_frozen_encoder(dataset_factory, tiny_bert_dir):
    dataset = dataset_factory(num_users=6, num_items=6, per_user=4)
    _, catalog, texts, tokens = _prepared(dataset, tiny_bert_dir)
    model = build_two_tower(MODEL, catalog, None, _text_config(tiny_bert_dir), tokens)
    got = model.item_tower._encode_text(tf.range(catalog.num_items), training=False).numpy()
    np.testing.assert_allclose(got, _frozen_text(tiny_bert_dir, texts), atol=1e-5)
    # Reordered, repeated items: rows follow the indices, padding cut to the longest of the call.
    some = model.item_tower._encode_text(tf.constant([3, 0, 3]), training=False).numpy()
    np.testing.assert_allclose(some, got[[3, 0, 3]], atol=1e-5)


def test_train_two_tower_fine_tunes_only_the_top_layer_and_reloads(dataset_factory, tiny_bert_dir, tmp_path):
    dataset = dataset_factory()
    split, catalog, texts, tokens = _prepared(dataset, tiny_bert_dir)
    cfg = replace(
        ExperimentConfig(model=MODEL, text=_text_config(tiny_bert_dir)),
        train__epochs=1,
        train__batch_size=64,  # 1 epoch = 6 steps (400 TRAIN examples, last partial batch dropped)
        train__learning_rate=0.01,
        train__shuffle_buffer=1000,
    )
    result = train_two_tower(
        cfg,
        split,
        catalog,
        lambda: build_two_tower(cfg.model, catalog, None, cfg.text, tokens),
        str(tmp_path / "run"),
        validation_metric=lambda m: evaluate(TwoTowerScorer(m, catalog), split.valid, split.item_ids),
        verbose=0,
    )
    assert result.epochs_run == 1 and result.best_epoch == 0
    assert 0.0 <= result.valid_metrics["ndcg@10"] <= 1.0
    model = result.model

    # The top transformer layer moved; the embeddings and the lower layer did not.
    pretrained = _bert_weights(load_bert(tiny_bert_dir))
    tuned = _bert_weights(model.item_tower.text_encoder.bert)
    assert pretrained.keys() == tuned.keys()
    for part, changed in (
        ("embeddings", False),
        ("encoder/layer_._0/", False),
        ("encoder/layer_._1/", True),
    ):
        names = _group(pretrained, part)
        assert names, part
        moved = [n for n in names if not np.array_equal(pretrained[n], tuned[n])]
        assert bool(moved) == changed, (part, moved)
        if changed:  # every kernel of the top layer moved
            assert {n for n in names if n.endswith("kernel:0")} <= set(moved)
    text_part = model.item_tower._encode_text(tf.range(catalog.num_items), training=False).numpy()
    assert np.abs(text_part - _frozen_text(tiny_bert_dir, texts)).max() > 1e-3

    # Config round trip, then save/load gives the same outputs.
    config = model.get_config()
    assert config["item_tower"]["fine_tune_layers"] == 1
    assert config["item_tower"]["text_model_path"] == tiny_bert_dir
    tower_config = model.item_tower.get_config()
    assert ItemTower.from_config(tower_config).get_config() == tower_config
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    clone = TwoTowerModel.from_config(config)
    clone.item_tower.set_tables(catalog.item_id_index, None, catalog.categories, *tokens)
    clone.candidate_embedding(tf.zeros([1], tf.int32))
    clone.query_embedding(tf.zeros([1], tf.int32), -tf.ones([1, MODEL.history_length], tf.int32))
    clone.load_weights(path)
    np.testing.assert_allclose(clone.all_candidate_embeddings(), model.all_candidate_embeddings(), atol=1e-5)


def test_export_item_encoder_serves_the_fine_tuned_weights(dataset_factory, tiny_bert_dir, tmp_path):
    from tfrec_llm.export.exporter import export_item_encoder

    dataset = dataset_factory(num_users=4, num_items=4, per_user=3)
    _, catalog, texts, tokens = _prepared(dataset, tiny_bert_dir)
    cfg = ExperimentConfig(model=MODEL, text=_text_config(tiny_bert_dir))
    model = build_two_tower(cfg.model, catalog, None, cfg.text, tokens)
    encoder = model.item_tower.text_encoder
    top = encoder.bert.bert.encoder.layer[-1].weights[0]
    top.assign(top + 0.5)  # stands in for training
    folder = export_item_encoder(cfg, tiny_bert_dir, texts, str(tmp_path), version=1, encoder=encoder)
    served = (
        tf.saved_model.load(folder)
        .signatures["serving_default"](text=tf.constant(texts))["embedding"]
        .numpy()
    )
    np.testing.assert_allclose(served, encoder(tf.constant(texts)).numpy(), atol=1e-5)
    assert np.abs(served - _frozen_text(tiny_bert_dir, texts)).max() > 1e-3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fine_tune_layers": 1}, r"fine_tune_layers=1 needs text_model_path"),
        (
            {"fine_tune_layers": 3, "text_model_path": "TINY"},
            r"trainable_layers=3 is invalid: expected an int in \[-1, 2\]",
        ),
        (
            {"fine_tune_layers": 1, "text_model_path": "TINY", "text_dim": 5},
            r"text_dim=5 but the BERT .* hidden size 32",
        ),
    ],
)
def test_item_tower_rejects_bad_fine_tuning_arguments(tiny_bert_dir, kwargs, match):
    if kwargs.get("text_model_path") == "TINY":
        kwargs = {**kwargs, "text_model_path": tiny_bert_dir}
    with pytest.raises(ConfigError, match=match):
        ItemTower(num_items=2, item_vocab_size=2, use_categories=False, **kwargs)


def test_missing_or_misshaped_token_tables_are_errors(tiny_dataset, tiny_bert_dir):
    split = make_split(tiny_dataset, "loo")
    catalog = build_catalog(tiny_dataset, split)
    with pytest.raises(ConfigError, match=r"text.fine_tune_layers=1 needs text_tokens"):
        build_two_tower(MODEL, catalog, None, _text_config(tiny_bert_dir))
    tower = ItemTower(num_items=2, item_vocab_size=2, use_categories=False, fine_tune_layers=1,
                      text_model_path=tiny_bert_dir, text_max_length=MAX_LENGTH)  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"token_ids shape \(2, 8\), expected \(2, 32\); fine_tune_layers=1"
    ):
        tower.set_tables(np.array([1, 0]), token_ids=np.zeros((2, 8)), attention_mask=np.zeros((2, 8)))
    with pytest.raises(ConfigError, match=r"attention_mask shape None, expected \(2, 32\)"):
        tower.set_tables(np.array([1, 0]), token_ids=np.zeros((2, MAX_LENGTH)))
