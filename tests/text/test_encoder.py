"""Tests for tfrec_llm.text.encoder: TextEncoder and encode_texts, on a tiny BERT and on MiniLM."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tensorflow.core.protobuf import saved_model_pb2

import tfrec_llm  # noqa: F401
from tfrec_llm.errors import ConfigError, DataError
from tfrec_llm.text.encoder import TextEncoder, encode_texts

TEXTS = ["Toy Story", "the spy film about toys", "", "Animated toys come to life!", "a"]
SERVING_FORBIDDEN_OPS = {
    "PyFunc",
    "EagerPyFunc",
    "FastBertNormalize",
    "FastWordpieceTokenizeWithOffsets",
}


def _numpy_pool(hidden: np.ndarray, mask: np.ndarray, pooling: str, normalize: bool) -> np.ndarray:
    """Independent reference: masked mean (or [CLS]) then L2, in float64."""
    hidden = hidden.astype(np.float64)
    if pooling == "mean":
        weights = mask.astype(np.float64)[:, :, None]
        pooled = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
    else:
        pooled = hidden[:, 0, :]
    if normalize:
        pooled = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled


def _reference(bert, tokenizer, texts, pooling="mean", normalize=True) -> np.ndarray:
    batch = tokenizer(tf.constant(texts))
    ids = batch["input_ids"].numpy().astype(np.int32)
    mask = batch["attention_mask"].numpy().astype(np.int32)
    hidden = bert(input_ids=ids, attention_mask=mask, training=False).last_hidden_state
    return _numpy_pool(hidden.numpy(), mask, pooling, normalize)


def _op_types(saved_model_dir: str) -> set[str]:
    """Every op type in the SavedModel's graph and in its function library."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    graph = proto.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


class _EncoderModule(tf.Module):
    """The shape of the item_encoder export: raw strings in, embeddings out."""

    def __init__(self, encoder: TextEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"embedding": self.encoder(text)}


# ---------------------------------------------------------------- tiny BERT


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model_dir):
    return TextEncoder(tiny_model_dir, max_length=16)


@pytest.mark.parametrize("pooling,normalize", [("mean", True), ("mean", False), ("cls", True)])
def test_call_equals_numpy_pooling_over_bert_hidden_states(
    tiny_model_dir, tiny_reference, pooling, normalize
):
    encoder = TextEncoder(tiny_model_dir, max_length=16, pooling=pooling, normalize=normalize)
    got = encoder(tf.constant(TEXTS)).numpy()
    expected = _reference(tiny_reference, encoder.tokenizer, TEXTS, pooling, normalize)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_mean_pooling_ignores_padding(tiny_encoder):
    alone = tiny_encoder(tf.constant(["Toy Story"])).numpy()
    padded = tiny_encoder(tf.constant(["Toy Story", "the spy film about toys that come to life"]))
    np.testing.assert_allclose(padded.numpy()[0], alone[0], atol=1e-5)


def test_call_accepts_a_string_column(tiny_encoder):
    column = tiny_encoder(tf.constant([["Toy Story"], ["spy"]])).numpy()
    flat = tiny_encoder(tf.constant(["Toy Story", "spy"])).numpy()
    np.testing.assert_allclose(column, flat, atol=1e-6)


def test_hidden_size_and_output_shape(tiny_encoder):
    assert tiny_encoder.hidden_size == 32
    assert tiny_encoder.compute_output_shape((None,)).as_list() == [None, 32]


def test_get_config_holds_exactly_the_constructor_arguments(tiny_model_dir):
    encoder = TextEncoder(
        tiny_model_dir,
        max_length=12,
        pooling="cls",
        normalize=False,
        trainable_layers=1,
        name="item_text",
    )
    config = encoder.get_config()
    assert {
        k: config[k] for k in ("model_path", "max_length", "pooling", "normalize", "trainable_layers", "name")
    } == {
        "model_path": tiny_model_dir,
        "max_length": 12,
        "pooling": "cls",
        "normalize": False,
        "trainable_layers": 1,
        "name": "item_text",
    }
    assert set(config) == {
        "model_path",
        "max_length",
        "pooling",
        "normalize",
        "trainable_layers",
        "name",
        "trainable",
        "dtype",
    }


def test_keras_deserialize_rebuilds_the_registered_layer(tiny_encoder):
    assert tf_keras.utils.get_registered_name(TextEncoder) == "tfrec_llm>TextEncoder"
    serialized = tf_keras.layers.serialize(tiny_encoder)
    rebuilt = tf_keras.layers.deserialize(serialized)
    assert isinstance(rebuilt, TextEncoder)
    np.testing.assert_allclose(
        rebuilt(tf.constant(TEXTS)).numpy(), tiny_encoder(tf.constant(TEXTS)).numpy(), atol=1e-6
    )


def _trainable_names(encoder: TextEncoder) -> set[str]:
    return {w.name.split("/", 1)[1] for w in encoder.trainable_weights}


def test_trainable_layers_zero_freezes_all_of_bert(tiny_encoder):
    assert tiny_encoder.trainable_weights == []
    assert len(tiny_encoder.non_trainable_weights) == 39  # 5 embeddings + 2 x 16 + 2 pooler


def test_trainable_layers_minus_one_trains_everything(tiny_model_dir):
    encoder = TextEncoder(tiny_model_dir, trainable_layers=-1)
    assert len(encoder.trainable_weights) == 39 and encoder.non_trainable_weights == []


def test_trainable_layers_one_trains_only_the_top_layer_and_pooler(tiny_model_dir):
    encoder = TextEncoder(tiny_model_dir, trainable_layers=1)
    names = _trainable_names(encoder)
    assert len(names) == 16 + 2
    assert all(n.startswith(("bert/encoder/layer_._1/", "bert/pooler/")) for n in names)
    assert len(encoder.non_trainable_weights) == 5 + 16


class _Tower(tf_keras.Model):
    """A model that holds the encoder and a head, as a text tower would."""

    def __init__(self, encoder: TextEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = tf_keras.layers.Dense(2)
        self.head.build((None, encoder.hidden_size))


def test_trainable_layers_survive_trainable_toggles_on_an_enclosing_model(tiny_model_dir):
    encoder = TextEncoder(tiny_model_dir, trainable_layers=1)
    tower = _Tower(encoder)
    tower.trainable = False
    assert tower.trainable_weights == [] and encoder.trainable_weights == []
    tower.trainable = True  # Keras sets every sublayer of BERT trainable again
    names = _trainable_names(encoder)
    assert len(names) == 18 and all("layer_._0" not in n and "embeddings" not in n for n in names)
    assert len(tower.trainable_weights) == 18 + 2  # + Dense kernel and bias
    assert len(tower.weights) == 39 + 2


def test_gradients_reach_the_trainable_layer_but_not_the_unused_pooler(tiny_model_dir):
    encoder = TextEncoder(tiny_model_dir, trainable_layers=1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(tf.constant(TEXTS), training=True)[:, 0])
    grads = dict(
        zip(
            [w.name for w in encoder.trainable_weights],
            tape.gradient(loss, encoder.trainable_weights),
            strict=True,
        )
    )
    assert all((g is None) == ("/pooler/" in n) for n, g in grads.items())


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"pooling": "max"}, r"pooling='max' is invalid: expected one of \('mean', 'cls'\)"),
        ({"normalize": 1}, r"normalize=1 is invalid: expected True or False"),
        ({"trainable_layers": 3}, r"trainable_layers=3 is invalid: expected an int in \[-1, 2\]"),
        ({"trainable_layers": -2}, r"trainable_layers=-2 is invalid"),
        ({"trainable_layers": True}, r"trainable_layers=True is invalid"),
        ({"max_length": 1}, r"max_length=1 is invalid"),
        ({"max_length": 200}, r"max_length=200 exceeds the 128 positions of the model"),
    ],
)
def test_text_encoder_rejects_invalid_arguments(tiny_model_dir, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TextEncoder(tiny_model_dir, **kwargs)


@pytest.mark.parametrize("folder_fixture", ["tiny_model_dir", "tiny_fast_dir"])
def test_encode_texts_equals_layer_call_in_input_order(request, folder_fixture):
    encoder = TextEncoder(request.getfixturevalue(folder_fixture), max_length=10)
    texts = TEXTS + ["toy"] * 2 + ["the spy film about toys that come to life " * 3, "Spy!"]
    got = encode_texts(encoder, texts, batch_size=3)
    expected = encoder(tf.constant(texts)).numpy()
    assert got.dtype == np.float32 and got.shape == (len(texts), 32)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_encode_texts_of_nothing_is_an_empty_matrix(tiny_encoder):
    assert encode_texts(tiny_encoder, []).shape == (0, 32)


def test_encode_texts_shows_progress(tiny_encoder, capsys):
    encode_texts(tiny_encoder, TEXTS, batch_size=2, show_progress=True)
    assert "encode_texts" in capsys.readouterr().err


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_encode_texts_rejects_invalid_batch_size(tiny_encoder, batch_size):
    with pytest.raises(ConfigError, match=r"batch_size=.* is invalid: expected a positive int"):
        encode_texts(tiny_encoder, TEXTS, batch_size=batch_size)


def test_encode_texts_rejects_non_string_texts(tiny_encoder):
    with pytest.raises(DataError, match=r"texts\[1\] is float nan, expected str"):
        encode_texts(tiny_encoder, ["toy", float("nan")])


def test_saved_model_of_the_encoder_uses_only_classic_servable_ops(tmp_path, tiny_encoder):
    module = _EncoderModule(tiny_encoder)
    path = str(tmp_path / "item_encoder" / "1")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})

    ops = _op_types(path)
    assert not ops & SERVING_FORBIDDEN_OPS
    assert "WordpieceTokenizeWithOffsets" in ops
    assert not any(op.startswith("FastBert") or op.startswith("FastWordpiece") for op in ops)

    serve = tf.saved_model.load(path).signatures["serving_default"]
    served = serve(text=tf.constant(TEXTS))["embedding"].numpy()
    np.testing.assert_allclose(served, tiny_encoder(tf.constant(TEXTS)).numpy(), atol=1e-5)


# ---------------------------------------------------------------- the bundled MiniLM


def test_minilm_embeds_toy_story_nearer_animation_than_spy_film(minilm_encoder):
    toy, animated, spy = minilm_encoder(
        tf.constant(
            [
                "Toy Story: an animated film about toys that come to life",
                "A computer-animated family movie where cartoon characters go on an adventure",
                "A spy thriller about a secret agent on a mission to stop a terrorist plot",
            ]
        )
    ).numpy()
    np.testing.assert_allclose(np.linalg.norm([toy, animated, spy], axis=1), 1.0, atol=1e-5)
    assert float(toy @ animated) > float(toy @ spy) + 0.1


def test_minilm_equals_numpy_mean_pool_of_bert_last_hidden_state(minilm_encoder):
    texts = ["Toy Story (1995). Genres: Animation, Children's, Comedy", "GoldenEye (1995)"]
    expected = _reference(minilm_encoder.bert, minilm_encoder.tokenizer, texts)
    got = minilm_encoder(tf.constant(texts)).numpy()
    assert got.shape == (2, 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_minilm_encode_texts_equals_layer_call_including_empty_and_huge_texts(minilm_encoder, ml100k_titles):
    words = ["toys", "spy", "life", "film", "story", "agent", "music", "war"]
    huge = " ".join(words[i % len(words)] for i in range(5000))
    texts = ml100k_titles[:40] + [
        "",
        huge,
        "\ufb01ne stra\u00dfe x\u00b2 \uff21",
        "tab\tand\x07bell",
    ]
    got = encode_texts(minilm_encoder, texts, batch_size=16)
    expected = minilm_encoder(tf.constant(texts)).numpy()
    assert got.shape == (len(texts), 384)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_minilm_trainable_layers_two_trains_exactly_the_top_two_layers(minilm_path):
    encoder = TextEncoder(minilm_path, trainable_layers=2)
    names = _trainable_names(encoder)
    # 16 weights per transformer layer (q, k, v, attention output, its LayerNorm, intermediate,
    # output, its LayerNorm: kernel + bias or gamma + beta each) for layers 4 and 5, + pooler 2.
    assert len(names) == 2 * 16 + 2
    for layer in (4, 5):
        assert sum(n.startswith(f"bert/encoder/layer_._{layer}/") for n in names) == 16
    assert sum(n.startswith("bert/pooler/") for n in names) == 2
    assert len(encoder.non_trainable_weights) == 5 + 4 * 16
    trainable_params = sum(int(np.prod(w.shape)) for w in encoder.trainable_weights)
    assert trainable_params == 2 * 1_774_464 + 384 * 384 + 384


def test_minilm_config_round_trip_rebuilds_an_equivalent_layer(minilm_encoder):
    rebuilt = TextEncoder.from_config(minilm_encoder.get_config())
    texts = tf.constant(["Toy Story (1995)", "Heat (1995). Genres: Action, Crime, Thriller"])
    np.testing.assert_allclose(rebuilt(texts).numpy(), minilm_encoder(texts).numpy(), atol=1e-6)
    assert rebuilt.get_config() == minilm_encoder.get_config()
