"""LoRA adapters for the BERT text tower (``text.lora_rank``), on the tiny random BERT.

References: numpy for ``LoRADense``; a fresh frozen ``TextEncoder`` for "equal at init"; the
pretrained weights reloaded from the folder for "only the adapters trained"; the SavedModel
loaded in a new Python process that imports no project code for the export.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfrec_llm.config import ExperimentConfig, ModelConfig, TextConfig, dump_config, load_config, replace
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.errors import ConfigError
from tfrec_llm.evaluation.protocols import evaluate
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.experiments.prepare import item_texts, tokenize_item_texts
from tfrec_llm.export.exporter import export_item_encoder
from tfrec_llm.export.op_scan import check_servable
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.models.towers import ItemTower
from tfrec_llm.text.bert_loader import load_bert
from tfrec_llm.text.encoder import TextEncoder
from tfrec_llm.text.lora import LoRADense, install_lora, lora_layers_of, merge_lora, merged_copy
from tfrec_llm.training.trainer import train_two_tower

MAX_LENGTH = 32
TEXTS = ["toy story", "the spy film about toys", "space rocket adventure", "", "kitchen cooking recipe"]


def _unscoped(weights):
    """name without the model scope -> value."""
    return {w.name.split("/", 1)[1]: w.numpy() for w in weights}


def test_lora_dense_matches_numpy_and_starts_as_the_dense():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5)).astype(np.float32)
    dense = tf_keras.layers.Dense(4)
    dense.build([None, None, 5])
    dense.bias.assign(rng.normal(size=4).astype(np.float32))
    layer = LoRADense(dense, rank=2, alpha=3.0)
    np.testing.assert_allclose(layer(x).numpy(), dense(x).numpy(), atol=0)  # B = 0
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    a, b = rng.normal(size=(5, 2)).astype(np.float32), rng.normal(size=(2, 4)).astype(np.float32)
    layer.lora_a.assign(a)
    layer.lora_b.assign(b)
    want = x @ kernel + bias + 1.5 * (x @ a @ b)
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-5, atol=1e-5)
    assert [w.name.split("/")[-1] for w in layer.trainable_weights] == ["lora_a:0", "lora_b:0"]
    assert len(layer.non_trainable_weights) == 2  # the wrapped kernel and bias are frozen
    np.testing.assert_allclose(layer.delta().numpy(), 1.5 * a @ b, rtol=1e-5)
    with pytest.raises(ConfigError, match=r"LoRA rank=0 is invalid"):
        LoRADense(tf_keras.layers.Dense(2), rank=0)
    with pytest.raises(ConfigError, match=r"LoRA alpha=0 is invalid"):
        LoRADense(tf_keras.layers.Dense(2), alpha=0)


def test_encoder_adapters_train_alone_and_merge_to_the_same_outputs(tiny_bert_dir):
    frozen = TextEncoder(tiny_bert_dir, max_length=MAX_LENGTH)
    encoder = TextEncoder(tiny_bert_dir, max_length=MAX_LENGTH, lora_rank=2, lora_alpha=4.0)
    texts = tf.constant(TEXTS)
    np.testing.assert_allclose(encoder(texts).numpy(), frozen(texts).numpy(), atol=1e-6)
    wrappers = lora_layers_of(encoder.bert)
    assert len(wrappers) == 4  # 2 layers x (query, value)
    assert {w.ref() for w in encoder.trainable_weights} == {
        w.ref() for layer in wrappers for w in (layer.lora_a, layer.lora_b)
    }
    assert {"lora_rank": 2, "lora_alpha": 4.0, "lora_layers": 0}.items() <= encoder.get_config().items()
    # Random adapters stand in for training; the merged copy must give the same outputs.
    rng = np.random.default_rng(1)
    for weight in encoder.trainable_weights:
        weight.assign(rng.normal(0.0, 0.3, tuple(weight.shape)).astype(np.float32))
    adapted = encoder(texts).numpy()
    assert np.abs(adapted - frozen(texts).numpy()).max() > 1e-2
    merged = merged_copy(encoder)
    assert lora_layers_of(merged.bert) == [] and len(lora_layers_of(encoder.bert)) == 4
    assert "lora_rank" not in merged.get_config()
    np.testing.assert_allclose(merged(texts).numpy(), adapted, atol=1e-5)
    # The merged kernel is kernel + (alpha / rank) * A @ B, by numpy.
    top = encoder.bert.bert.encoder.layer[-1].attention.self_attention.query
    want = top.dense.kernel.numpy() + 2.0 * top.lora_a.numpy() @ top.lora_b.numpy()
    got = merged.bert.bert.encoder.layer[-1].attention.self_attention.query.kernel.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_top_layers_only_and_bad_arguments(tiny_bert_dir):
    bert = load_bert(tiny_bert_dir)
    wrappers = install_lora(bert, rank=1, alpha=1.0, layers=1)
    top = bert.bert.encoder.layer[-1].attention.self_attention
    assert wrappers == [top.query, top.value]
    assert not isinstance(bert.bert.encoder.layer[0].attention.self_attention.query, LoRADense)
    with pytest.raises(ConfigError, match=r"already has LoRA adapters"):
        install_lora(bert, rank=1, alpha=1.0, layers=1)
    assert merge_lora(bert) == 2 and lora_layers_of(bert) == []
    with pytest.raises(ConfigError, match=r"LoRA layers=3 is invalid: expected an int in \[0, 2\]"):
        install_lora(bert, rank=1, alpha=1.0, layers=3)


def test_config_fields_default_off_round_trip_and_are_validated(tmp_path):
    text = TextConfig()
    assert (text.lora_rank, text.lora_alpha, text.lora_layers, text.runs_bert) == (0, 8.0, 0, False)
    cfg = replace(ExperimentConfig(), text__lora_rank=4, text__lora_layers=1)
    assert cfg.text.runs_bert
    dump_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    for override, match in (
        ("text.lora_rank=-1", r"text.lora_rank=-1; expected an integer >= 0"),
        ("text.lora_alpha=0", r"text.lora_alpha=0(\.0)?; expected > 0"),
        ("text.lora_layers=-2", r"text.lora_layers=-2; expected an integer >= 0"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config(None, [override])
    with pytest.raises(ConfigError, match=r"text.lora_rank=4; expected 0 while text.fine_tune_layers=1"):
        load_config(None, ["text.lora_rank=4", "text.fine_tune_layers=1"])


_RELOAD = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)

folder, texts = sys.argv[1], json.loads(sys.argv[2])
loaded = tf.saved_model.load(folder)
out = loaded.signatures["serving_default"](text=tf.constant(texts))["embedding"].numpy()
print(json.dumps(out.tolist()))
"""


def test_trained_tower_changes_only_adapters_and_exports_merged(dataset_factory, tiny_bert_dir, tmp_path):
    dataset = dataset_factory(num_users=10, num_items=8, per_user=6)
    split = make_split(dataset, "loo")
    catalog = build_catalog(dataset, split)
    texts = item_texts(dataset, split.item_ids, TextConfig().template)
    text = TextConfig(model_path=tiny_bert_dir, max_length=MAX_LENGTH, lora_rank=2, lora_alpha=4.0)
    tokens = tokenize_item_texts(text, texts)
    cfg = replace(
        ExperimentConfig(
            model=ModelConfig(embedding_dim=8, history_length=4, text_projection_dim=8), text=text
        ),
        train__epochs=1,
        train__batch_size=64,
        train__learning_rate=0.05,
        train__shuffle_buffer=1000,
    )
    model = build_two_tower(cfg.model, catalog, None, cfg.text, tokens)
    assert model.get_config()["item_tower"]["text_lora_rank"] == 2
    towers_before = {w.ref(): w.numpy() for w in model.trainable_weights}
    result = train_two_tower(
        cfg,
        split,
        catalog,
        lambda: model,
        str(tmp_path / "run"),
        validation_metric=lambda m: evaluate(TwoTowerScorer(m, catalog), split.valid, split.item_ids),
        verbose=0,
    )
    encoder = result.model.item_tower.text_encoder
    # BERT's own weights did not move; every adapter B left zero; the towers moved.
    pretrained = _unscoped(load_bert(tiny_bert_dir).weights)
    adapters = {w.ref() for w in encoder.trainable_weights}
    own = _unscoped([w for w in encoder.bert.weights if w.ref() not in adapters])
    assert own.keys() == pretrained.keys()
    assert all(np.array_equal(own[name], pretrained[name]) for name in own)
    assert all(np.abs(layer.lora_b.numpy()).max() > 0 for layer in lora_layers_of(encoder.bert))
    tower_weights = [w for w in result.model.trainable_weights if w.ref() not in adapters]
    assert tower_weights and any(not np.array_equal(w.numpy(), towers_before[w.ref()]) for w in tower_weights)

    tower_config = result.model.item_tower.get_config()
    assert (tower_config["text_lora_rank"], tower_config["text_lora_alpha"]) == (2, 4.0)
    assert ItemTower.from_config(tower_config).get_config() == tower_config

    adapted = encoder(tf.constant(TEXTS)).numpy()
    np.testing.assert_allclose(merged_copy(encoder)(tf.constant(TEXTS)).numpy(), adapted, atol=1e-5)
    folder = export_item_encoder(cfg, tiny_bert_dir, texts, str(tmp_path / "export"), 1, encoder)
    assert check_servable(folder).ok
    assert lora_layers_of(encoder.bert)  # the trained model keeps its adapters
    run = subprocess.run(
        [sys.executable, "-c", _RELOAD, folder, json.dumps(TEXTS)], capture_output=True, text=True, check=True
    )
    np.testing.assert_allclose(np.array(json.loads(run.stdout.strip().splitlines()[-1])), adapted, atol=1e-5)
    # The SavedModel holds BERT's own variables only: no adapter was exported.
    saved = [key for key, _ in tf.train.list_variables(os.path.join(folder, "variables", "variables"))]
    assert saved and not [key for key in saved if "lora" in key]
    assert len([key for key in saved if key.endswith("VARIABLE_VALUE")]) == len(pretrained)
