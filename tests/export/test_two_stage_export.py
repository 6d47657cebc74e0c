"""Tests for the ``ranking`` SavedModel: the two-stage ``recommend`` signature equals Python.

The reference is the two stages written out in Python: the retrieval model's scores of the
whole catalog (``TwoTowerScorer``), the user's history excluded, numpy's top N; then the
ranking model's ``score_candidates`` of those N and numpy's top K. The SavedModel is loaded
back (``tf.saved_model.load``) and called through its signatures, as TF Serving would.
"""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.config import ExperimentConfig, ModelConfig
from tfrec_llm.config.ranking_section import RankingConfig
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.errors import ConfigError
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.export.op_scan import check_servable
from tfrec_llm.export.ranking_export import RANKING, export_ranking
from tfrec_llm.export.two_stage_module import TwoStageModule
from tfrec_llm.export.warmup import read_warmup_requests
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.training.ranking_trainer import build_ranking_model

N, K, L = 6, 3, 4
_NONE = tf.zeros([0, 0], tf.string)


def _export_two_stage(folder, model_cfg, text_width, seed, text_cfg=None):
    """Builds the retrieval and ranking models on the clustered data and exports ``ranking``."""
    from tests.conftest import make_clustered_dataset

    dataset = make_clustered_dataset()
    split = make_split(dataset, "loo")
    catalog = build_catalog(dataset, split)
    text = np.random.default_rng(seed - 2).normal(size=(catalog.num_items, text_width)).astype(np.float32)
    cfg = ExperimentConfig(
        model=model_cfg,
        ranking=RankingConfig(objective="ctr", deep_layers=(8,), num_candidates=N),
        export=dataclasses.replace(ExperimentConfig().export, default_k=K, max_k=5),
    )
    if text_cfg is not None:
        cfg = dataclasses.replace(cfg, text=text_cfg)
    model = build_two_tower(model_cfg, catalog, text)
    tf.keras.utils.set_random_seed(seed)
    ranking = build_ranking_model(cfg, catalog, text)
    histories = split.train_valid.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
    path = export_ranking(cfg, model, ranking, catalog, histories, str(folder), version=1)
    return path, model, ranking, catalog, histories, tf.saved_model.load(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model_cfg = ModelConfig(embedding_dim=8, history_length=L, history_encoder="mean")
    return _export_two_stage(tmp_path_factory.mktemp("two_stage"), model_cfg, text_width=6, seed=3)


def _python_two_stage(model, ranking, catalog, histories, users, k, user_texts=None):
    """Retrieve N with the retrieval model (reading ``user_texts``, user -> BERT vector, when
    given), rank with the ranking model, numpy sorts. Unknown users have no history."""
    histories = {u: histories.get(u, []) for u in users}
    scores = TwoTowerScorer(model, catalog, user_texts=user_texts).score(
        np.array(users, dtype=object), [np.array(histories[u], dtype=object) for u in users]
    )
    answers = []
    for row, user in enumerate(users):
        s = scores[row].copy()
        s[catalog.item_index(list(histories[user]))] = -np.inf
        first = np.argsort(-s, kind="stable")[:N]
        hist = catalog.item_index(list(histories[user]))[-L:]
        history = np.full((1, L), -1, np.int32)
        if len(hist):
            history[0, L - len(hist) :] = hist
        feats = {
            "user": tf.constant(catalog.user_index([user]).astype(np.int32)),
            "history": tf.constant(history),
        }
        ranked = ranking.score_candidates(feats, tf.constant(first[None].astype(np.int32))).numpy()[0]
        order = np.argsort(-ranked, kind="stable")[:k]
        answers.append(([str(catalog.item_ids[first[i]]) for i in order], ranked[order], s[first[order]]))
    return answers


def test_recommend_equals_python_two_stage(exported):
    path, model, ranking, catalog, histories, loaded = exported
    fn = loaded.signatures["recommend"]
    users = [str(u) for u in list(histories)[:5]]
    out = fn(user_id=tf.constant(users), recent_item_ids=_NONE, exclude_item_ids=_NONE, k=tf.constant(K))
    reference = _python_two_stage(model, ranking, catalog, histories, users, K)
    ids = out["item_ids"].numpy().astype(str)
    for row, (ref_ids, ref_scores, ref_first) in enumerate(reference):
        assert ids[row].tolist() == ref_ids
        np.testing.assert_allclose(out["scores"].numpy()[row], ref_scores, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["retrieval_scores"].numpy()[row], ref_first, rtol=1e-4, atol=1e-5)
        assert not set(ids[row]) & set(histories[users[row]])
    assert not out["used_fallback"].numpy().any()
    # the ranking changed the retrieval order for some user (else the test proves little)
    assert any(not np.all(np.diff(r[2]) <= 0) for r in reference)

    # serving_default is the same graph; k above max_k is capped; an unknown user falls back
    # to the popularity order (not re-ranked)
    default = loaded.signatures["serving_default"]
    capped = default(
        user_id=tf.constant(["nobody"]), recent_item_ids=_NONE, exclude_item_ids=_NONE, k=tf.constant(99)
    )
    popular = [str(catalog.item_ids[i]) for i in np.argsort(-catalog.popularity, kind="stable")[:5]]
    assert capped["item_ids"].numpy().astype(str).tolist() == [popular]
    assert capped["used_fallback"].numpy().tolist() == [True]

    # score: the ranking model's score of given pairs; unknown items -inf
    user = users[0]
    pair = loaded.signatures["score"](
        user_id=tf.constant([user]),
        item_ids=tf.constant([[ref_ids_0 := reference[0][0][0], "no-such-item"]]),
        recent_item_ids=_NONE,
    )["scores"].numpy()[0]
    np.testing.assert_allclose(pair[0], reference[0][1][0], rtol=1e-4, atol=1e-5)
    assert pair[1] == -np.inf and ref_ids_0 == ids[0][0]


def test_bad_requests_are_rejected(exported):
    fn = exported[5].signatures["recommend"]
    users = tf.constant([str(next(iter(exported[4])))])
    for k in (0, -2):
        with pytest.raises(tf.errors.InvalidArgumentError, match="k must be >= 1"):
            fn(user_id=users, recent_item_ids=_NONE, exclude_item_ids=_NONE, k=tf.constant(k))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a int32 tensor"):
        fn(user_id=users, recent_item_ids=_NONE, exclude_item_ids=_NONE, k=tf.constant(2.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a string tensor"):
        fn(user_id=tf.constant([1]), recent_item_ids=_NONE, exclude_item_ids=_NONE, k=tf.constant(2))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one row per user_id"):
        fn(
            user_id=users,
            recent_item_ids=tf.constant([["1"], ["2"]]),
            exclude_item_ids=_NONE,
            k=tf.constant(2),
        )


def test_servable_with_warmup_and_checked_arguments(exported):
    path = exported[0]
    assert os.path.basename(os.path.dirname(path)) == RANKING
    assert check_servable(path).ok
    requests = read_warmup_requests(path)
    assert requests and all(r.model_spec.signature_name == "recommend" for r in requests)
    model, ranking, catalog, histories = exported[1:5]
    with pytest.raises(ConfigError, match="ranking.num_candidates=0; expected an integer >= 1"):
        TwoStageModule(model, ranking, catalog, histories, num_candidates=0)


def test_query_calls_the_recommend_signature(exported, capsys):
    """``tfrec-llm query --model-name ranking --signature recommend`` prints the signature's top K."""
    from tfrec_llm.cli.main import build_parser
    from tfrec_llm.cli.serving_commands import query_command
    from tfrec_llm.serving.local import LocalModelServer

    path, loaded = exported[0], exported[5]
    user = str(next(iter(exported[4])))
    expected = loaded.signatures["recommend"](
        user_id=tf.constant([user]), recent_item_ids=_NONE, exclude_item_ids=_NONE, k=tf.constant(2)
    )
    ids = expected["item_ids"].numpy().astype(str)[0].tolist()
    with LocalModelServer(
        model_name=RANKING, model_base_path=os.path.dirname(path), port=0, rest_port=0
    ) as server:
        outputs = []
        for port, rest in ((server.grpc_port, []), (server.rest_port, ["--rest"])):
            argv = ["query", "--host", "127.0.0.1", "--port", str(port), "--model-name", RANKING]
            argv += ["--signature", "recommend", "--user", user, "--k", "2", *rest]
            assert query_command(build_parser().parse_args(argv)) == 0
            outputs.append(capsys.readouterr().out)
    lines = outputs[0].splitlines()
    assert lines[0] == f"user {user}:" and [line.split()[1] for line in lines[1:]] == ids
    assert outputs[1] == outputs[0]


def test_two_stage_scorer_ranks_like_the_signature(exported):
    """The evaluation's TwoStageScorer puts the signature's top K first, in the same order."""
    from tfrec_llm.evaluation.two_stage_scorer import TwoStageScorer

    _, model, ranking, catalog, histories, loaded = exported
    users = [str(u) for u in list(histories)[:5]]
    scorer = TwoStageScorer(TwoTowerScorer(model, catalog), ranking, catalog, N)
    scores = scorer.score(np.array(users, dtype=object), [np.array(histories[u]) for u in users])
    out = loaded.signatures["recommend"](
        user_id=tf.constant(users), recent_item_ids=_NONE, exclude_item_ids=_NONE, k=tf.constant(K)
    )
    for row, user in enumerate(users):
        top = [str(catalog.item_ids[i]) for i in np.argsort(-scores[row], kind="stable")[:K]]
        assert top == out["item_ids"].numpy().astype(str)[row].tolist()
        seen = catalog.item_index(list(histories[user]))
        assert np.all(scores[row, seen] == -np.inf)


def test_every_top_k_waits_for_the_k_check(exported):
    """Both top_k stages run after the k >= 1 check, so k < 0 always gets our message."""
    from tests.export.graph_order import unchecked_top_k

    found = unchecked_top_k(exported[0])
    assert found and all(not nodes for nodes in found.values()), found


TEXTS = ["space rocket adventure", "", "kitchen cooking recipe number"]


@pytest.fixture(scope="module")
def exported_with_text(tiny_model_dir, tmp_path_factory):
    """The two-stage export of a model that reads user text (the tiny random BERT)."""
    from tfrec_llm.config import TextConfig
    from tfrec_llm.text.encoder import TextEncoder

    model_cfg = ModelConfig(embedding_dim=8, history_length=L, user_text=True)
    text_cfg = TextConfig(model_path=tiny_model_dir, max_length=16)
    path, model, ranking, catalog, histories, loaded = _export_two_stage(
        tmp_path_factory.mktemp("ts_text"), model_cfg, text_width=32, seed=4, text_cfg=text_cfg
    )
    encoder = TextEncoder(tiny_model_dir, max_length=16)
    return model, ranking, catalog, histories, encoder, loaded, path


def test_two_stage_reads_user_text_in_its_first_stage(exported_with_text):
    model, ranking, catalog, histories, encoder, loaded, path = exported_with_text
    users = [str(list(histories)[0]), str(list(histories)[1]), "new-user"]
    fn = loaded.signatures["recommend"]
    assert "user_text" in fn.structured_input_signature[1]
    out = fn(
        user_id=tf.constant(users),
        recent_item_ids=_NONE,
        exclude_item_ids=_NONE,
        k=tf.constant(K),
        user_text=tf.constant(TEXTS),
    )
    vectors = encoder(tf.constant(TEXTS)).numpy()
    given = {u: vectors[i] for i, (u, t) in enumerate(zip(users, TEXTS, strict=True)) if t}
    reference = _python_two_stage(model, ranking, catalog, histories, users, K, user_texts=given)
    without = _python_two_stage(model, ranking, catalog, histories, users, K)
    for row, (ref_ids, ref_scores, ref_first) in enumerate(reference):
        assert out["item_ids"].numpy()[row].astype(str).tolist() == ref_ids
        np.testing.assert_allclose(out["scores"].numpy()[row], ref_scores, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["retrieval_scores"].numpy()[row], ref_first, rtol=1e-4, atol=1e-5)
    # the text moved the first stage (so the test tells text from no text), and the new user
    # described by text is answered by both stages, not by the popularity fallback
    assert not np.allclose(reference[0][2], without[0][2])
    assert out["used_fallback"].numpy().tolist() == [False, False, False]

    # an omitted user_text (TF Serving fills in the recorded default, shape [0]) is "no text"
    # for everyone: the answer of the plain two-stage graph
    plain = fn(
        user_id=tf.constant(users[:2]),
        recent_item_ids=_NONE,
        exclude_item_ids=_NONE,
        k=tf.constant(K),
        user_text=tf.zeros([0], tf.string),
    )
    for row in range(2):
        assert plain["item_ids"].numpy()[row].astype(str).tolist() == without[row][0]
    # score reads the text too: the pair's score is the ranking score in the recommend answer
    first_id = out["item_ids"].numpy()[2][0].decode()
    pair = loaded.signatures["score"](
        user_id=tf.constant(["new-user"]),
        item_ids=tf.constant([[first_id]]),
        recent_item_ids=_NONE,
        user_text=tf.constant([TEXTS[2]]),
    )["scores"].numpy()[0]
    np.testing.assert_allclose(pair[0], out["scores"].numpy()[2][0], rtol=1e-4, atol=1e-5)
    # stock TF Serving ops only (classic TF Text tokenizer), and a text request among the warmup
    check_servable(path)
    warmup = read_warmup_requests(path)
    assert any("user_text" in request.inputs for request in warmup)


def test_query_sends_user_text_over_grpc_and_rest(exported_with_text, capsys):
    """``tfrec-llm query --user-text`` reaches the served graph's user_text input, over a real
    socket, through both APIs: a new user described by text gets the signature's answer."""
    from tfrec_llm.cli.main import build_parser
    from tfrec_llm.cli.serving_commands import query_command
    from tfrec_llm.serving.local import LocalModelServer

    loaded, path = exported_with_text[5], exported_with_text[6]
    expected = loaded.signatures["recommend"](
        user_id=tf.constant(["new-user"]),
        recent_item_ids=_NONE,
        exclude_item_ids=_NONE,
        k=tf.constant(3),
        user_text=tf.constant([TEXTS[0]]),
    )
    ids = expected["item_ids"].numpy().astype(str)[0].tolist()
    with LocalModelServer(
        model_name=RANKING, model_base_path=os.path.dirname(path), port=0, rest_port=0
    ) as server:
        outputs = []
        for port, rest in ((server.grpc_port, []), (server.rest_port, ["--rest"])):
            argv = ["query", "--host", "127.0.0.1", "--port", str(port), "--model-name", RANKING]
            argv += ["--signature", "recommend", "--user", "new-user", "--k", "3", *rest]
            assert query_command(build_parser().parse_args(argv + ["--user-text", TEXTS[0]])) == 0
            outputs.append(capsys.readouterr().out)
            assert query_command(build_parser().parse_args(argv)) == 0  # no text: popularity
            outputs.append(capsys.readouterr().out)
    lines = outputs[0].splitlines()
    assert lines[0] == "user new-user:" and [line.split()[1] for line in lines[1:]] == ids
    assert outputs[2] == outputs[0]  # REST = gRPC
    popular = [
        str(i)
        for i in np.asarray(exported_with_text[2].item_ids)[
            np.argsort(-exported_with_text[2].popularity, kind="stable")[:3]
        ]
    ]
    assert [line.split()[1] for line in outputs[1].splitlines()[1:]] == popular
    assert popular != ids  # the text changed the answer
