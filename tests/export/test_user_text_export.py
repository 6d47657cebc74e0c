"""The retrieval SavedModel of a model that reads user text: the optional ``user_text`` input.

Exported with the tiny random BERT as the text encoder; the loaded SavedModel's answer with
user texts must equal the in-memory model's ranking (``TwoTowerScorer`` with the same BERT's
vectors), "" must mean no text, an omitted input must keep the old signature's behaviour, and
the graph must pass the TF Serving op scan (classic TF Text ops only).
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_clustered_dataset, make_small_two_tower
from tfrec_llm.config import ModelConfig
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.errors import ConfigError
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.export.op_scan import check_servable
from tfrec_llm.export.saved_model import write_saved_model
from tfrec_llm.export.serving_module import RetrievalModule
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.text.encoder import TextEncoder

K = 5
TEXTS = ["space rocket adventure", "", "kitchen cooking recipe number", "the animated spy film"]
USERS = ["1", "25", "new-user", "another-new-user"]


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    dataset = make_clustered_dataset()
    split = make_split(dataset, "loo")
    catalog = build_catalog(dataset, split)
    encoder = TextEncoder(tiny_model_dir, max_length=16)
    text = np.random.default_rng(2).normal(size=(catalog.num_items, 32)).astype(np.float32)
    model = build_two_tower(ModelConfig(embedding_dim=8, history_length=4, user_text=True), catalog, text)
    histories = split.train_valid.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
    module = RetrievalModule(model, catalog, histories, default_k=K, max_k=10, text_encoder=encoder)
    folder = str(tmp_path_factory.mktemp("user_text"))
    path = write_saved_model(module, {"serving_default": module.serve}, folder, "retrieval", version=1)
    check_servable(path)  # raises if an op is missing from stock TF Serving (e.g. FastBert*)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    return serve, model, catalog, histories, encoder


def test_exported_user_text_matches_the_python_model(exported):
    serve, model, catalog, histories, encoder = exported
    assert set(serve.structured_input_signature[1]) == {
        "user_id",
        "recent_item_ids",
        "exclude_item_ids",
        "k",
        "user_text",
    }
    none = tf.zeros([0, 0], tf.string)
    out = serve(
        user_id=tf.constant(USERS),
        recent_item_ids=none,
        exclude_item_ids=none,
        k=tf.constant(K),
        user_text=tf.constant(TEXTS),
    )
    vectors = encoder(tf.constant(TEXTS)).numpy()
    given = {user: vectors[i] for i, (user, text) in enumerate(zip(USERS, TEXTS, strict=True)) if text}
    scorer = TwoTowerScorer(model, catalog, user_texts=given)
    user_histories = [np.asarray(histories.get(user, []), dtype=object) for user in USERS]
    scores = scorer.score(np.asarray(USERS, dtype=object), user_histories)
    for row, user in enumerate(USERS):
        ranked = scores[row].copy()
        seen = catalog.item_index(np.asarray(histories.get(user, []), dtype=object))
        ranked[seen] = -np.inf
        order = np.argsort(-ranked, kind="stable")[:K]
        assert out["item_ids"].numpy()[row].astype(str).tolist() == [str(catalog.item_ids[i]) for i in order]
        np.testing.assert_allclose(out["scores"].numpy()[row], ranked[order], rtol=1e-4, atol=1e-5)
    # only the unknown user without text falls back to popularity
    assert out["used_fallback"].numpy().tolist() == [False, False, False, False]


def test_empty_or_omitted_user_text_changes_nothing(exported):
    serve = exported[0]
    none = tf.zeros([0, 0], tf.string)
    users = tf.constant(["1", "new-user"])
    args = {"user_id": users, "recent_item_ids": none, "exclude_item_ids": none, "k": tf.constant(K)}
    empty = serve(**args, user_text=tf.constant(["", "   "]))
    omitted = serve(**args, user_text=tf.zeros([0], tf.string))
    np.testing.assert_array_equal(empty["item_ids"].numpy(), omitted["item_ids"].numpy())
    np.testing.assert_array_equal(empty["scores"].numpy(), omitted["scores"].numpy())
    assert omitted["used_fallback"].numpy().tolist() == [False, True]
    with pytest.raises(tf.errors.InvalidArgumentError, match="one entry per user_id"):
        serve(**args, user_text=tf.constant(["a", "b", "c"]))


def test_the_encoder_is_required_exactly_for_a_text_model(exported, tiny_model_dir):
    _, model, catalog, histories, encoder = exported
    with pytest.raises(ConfigError, match="pass the item texts' TextEncoder"):
        RetrievalModule(model, catalog, histories)
    plain = make_small_two_tower(make_clustered_dataset()).model
    with pytest.raises(ConfigError, match="user_text_dim is 0"):
        RetrievalModule(plain, catalog, histories, text_encoder=encoder)
