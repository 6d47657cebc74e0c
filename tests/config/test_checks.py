"""Tests for tfrec_llm.config.checks: every field is validated when a config is built."""

import math

import pytest

from tfrec_llm.config import ExperimentConfig, config_from_dict, load_config, replace
from tfrec_llm.errors import ConfigError


def test_defaults_are_valid():
    assert ExperimentConfig().train.monitor == "ndcg@10"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"name": ""}, r"name=''; expected a non-empty name\. Name the experiment\."),
        # data
        ({"data": {"source": "xml"}}, r"data.source='xml'; expected one of \('movielens_100k'"),
        (
            {"data": {"source": "csv"}},
            r"data.path is empty; data.source='csv' needs the interactions file\. "
            r"Set data.path=<interactions file>\.",
        ),
        (
            {"data": {"source": "movielens_1m"}},
            r"data.path is empty; data.source='movielens_1m' needs the unpacked MovieLens folder",
        ),
        (
            {"data": {"items_path": "items.csv"}},
            r"data.items_path='items.csv'; expected empty with data.source='movielens_100k'\. "
            r"Only the generic sources \('csv', 'parquet', 'jsonl'\) read it",
        ),
        (
            {"data": {"user_profile_fields": ["age"]}},
            r"data.user_profile_fields=\('age',\); expected empty with data.source=",
        ),
        (
            {"data": {"source": "csv", "path": "r.csv", "columns": [["user_id", "u"], ["item_id", "u"]]}},
            r"data.columns=\{'user_id': 'u', 'item_id': 'u'\}; expected canonical name -> file "
            r"column pairs of non-empty names, each name at most once\. Write it as",
        ),
        (
            {"data": {"source": "csv", "path": "r.csv", "columns": [["user_id", ""]]}},
            r"data.columns=\{'user_id': ''\}; expected canonical name",
        ),
        (
            {"data": {"source": "csv", "path": "r.csv", "item_text_fields": ["title", "title"]}},
            r"data.item_text_fields=\('title', 'title'\); expected distinct non-empty column names\. "
            r"Remove empty or repeated column names\.",
        ),
        (
            {"data": {"source": "csv", "path": "r.csv", "item_categorical_fields": [" "]}},
            r"data.item_categorical_fields=\(' ',\); expected distinct non-empty column names",
        ),
        # text
        ({"text": {"template": "{title"}}, r"text.template='\{title'; expected a str.format .*malformed"),
        ({"text": {"template": "{} ({year})"}}, r"text.template=.*Name plain columns instead of \['\{\}'\]"),
        ({"text": {"template": "{title.upper}"}}, r"instead of \['\{title.upper\}'\]"),
        ({"text": {"template": " "}}, r"text.template=' '; expected a str.format string"),
        ({"text": {"max_length": 1}}, r"text.max_length=1; expected 2..512\. BERT positions"),
        ({"text": {"max_length": 513}}, r"text.max_length=513; expected 2..512"),
        ({"text": {"pooling": "max"}}, r"text.pooling='max'; expected one of \('mean', 'cls'\)"),
        ({"text": {"batch_size": 0}}, r"text.batch_size=0; expected an integer >= 1\. Texts"),
        ({"text": {"fine_tune_layers": -2}}, r"text.fine_tune_layers=-2; expected -1 \(all\)"),
        # model
        ({"model": {"embedding_dim": 0}}, r"model.embedding_dim=0; expected > 0\. It is"),
        ({"model": {"history_length": 0}}, r"model.history_length=0; expected > 0"),
        ({"model": {"text_projection_dim": -1}}, r"model.text_projection_dim=-1; expected > 0"),
        ({"model": {"temperature": 0.0}}, r"model.temperature=0.0; expected > 0 \(finite\)\. "),
        ({"model": {"temperature": math.inf}}, r"model.temperature=inf; expected > 0 \(finite\)"),
        ({"model": {"l2": -1e-6}}, r"model.l2=-1e-06; expected >= 0 \(finite\)\. Use 0.0"),
        ({"model": {"l2": math.nan}}, r"model.l2=nan; expected >= 0"),
        ({"model": {"id_dropout": 1.0}}, r"model.id_dropout=1.0; expected in \[0, 1\)"),
        (
            {"model": {"use_ids": False, "use_text": False, "use_categories": False}},
            r"candidate tower has no input\. Set at least one of them to true",
        ),
        # model: the sequence fields
        (
            {"model": {"history_encoder": "foo"}},
            r"model.history_encoder='foo'; expected one of \('mean', 'cnn', 'gru', 'lstm', 'attention'\)\. ",
        ),
        (
            {"model": {"objective": "foo"}},
            r"model.objective='foo'; expected one of \('interaction', 'next_item'\)\. See docs/sequence",
        ),
        (
            {"model": {"loss": "foo"}},
            r"model.loss='foo'; expected one of \('in_batch', 'full_softmax', 'gbce'\)\. ",
        ),
        ({"model": {"encoder_width": 0}}, r"model.encoder_width=0; expected an integer >= 1"),
        ({"model": {"encoder_blocks": 0}}, r"model.encoder_blocks=0; expected an integer >= 1"),
        ({"model": {"encoder_heads": 0}}, r"model.encoder_heads=0; expected an integer >= 1"),
        (
            {"model": {"encoder_width": 6, "encoder_heads": 4}},
            r"model.encoder_width=6; expected a multiple of model.encoder_heads=4\. Each head gets",
        ),
        ({"model": {"encoder_dropout": 1.0}}, r"model.encoder_dropout=1.0; expected in \[0, 1\)\. "),
        ({"model": {"encoder_dropout": -0.5}}, r"model.encoder_dropout=-0.5; expected in \[0, 1\)"),
        ({"model": {"user_dropout": -0.1}}, r"model.user_dropout=-0.1; expected in \[0, 1\)\. It is"),
        ({"model": {"user_dropout": 1.0}}, r"model.user_dropout=1.0; expected in \[0, 1\)"),
        ({"model": {"user_text_dropout": 1.0}}, r"model.user_text_dropout=1.0; expected in \[0, 1\)\. It is"),
        (
            {"model": {"user_text_history_dropout": -0.1}},
            r"model.user_text_history_dropout=-0.1; expected in \[0, 1\)\. It is",
        ),
        ({"model": {"future_weight": 1.5}}, r"model.future_weight=1.5; expected in \[0, 1\]\. The loss is"),
        ({"model": {"future_window": 0}}, r"model.future_window=0; expected an integer >= 1\. 1 = the next"),
        ({"model": {"future_context": -1}}, r"model.future_context=-1; expected an integer >= 0\. 0 = every"),
        (
            {"model": {"gbce_negatives": 0}},
            r"model.gbce_negatives=0; expected an integer >= 1\. gSASRec uses 256",
        ),
        (
            {"model": {"gbce_t": 1.2}},
            r"model.gbce_t=1.2; expected in \[0, 1\]\. 0 = plain binary cross-entropy",
        ),
        (
            {"model": {"objective": "interaction", "future_window": 5}},
            r"model.future_window=5; expected 1 unless model.objective is next_item\. Only next_item",
        ),
        (
            {"model": {"objective": "next_item", "use_history": False}},
            r"model.objective='next_item'; expected interaction when model.use_history is false\. "
            r"next_item trains the history encoder",
        ),
        # train
        ({"train": {"model_dir": ""}}, r"train.model_dir=''; expected a folder"),
        ({"train": {"epochs": 0}}, r"train.epochs=0; expected an integer >= 1"),
        ({"train": {"batch_size": 1}}, r"train.batch_size=1; expected > 1\. The in-batch softmax"),
        ({"train": {"learning_rate": 0}}, r"train.learning_rate=0.0; expected > 0 \(finite\)\. Try"),
        ({"train": {"learning_rate": -0.1}}, r"train.learning_rate=-0.1; expected > 0"),
        ({"train": {"optimizer": "sgd"}}, r"train.optimizer='sgd'; expected one of \('adam', 'adagrad'\)"),
        ({"train": {"patience": -1}}, r"train.patience=-1; expected an integer >= 0\. 0 stops"),
        (
            {"train": {"monitor": "foo"}},
            r"train.monitor='foo'; expected <metric>@<k> with metric in \('recall', 'hr', 'ndcg'\) "
            r"and k in eval.ks=\(10, 50\)\. Use e.g. train.monitor=ndcg@10, or add the cut-off",
        ),
        ({"train": {"monitor": "users"}}, r"train.monitor='users'; expected <metric>@<k>"),
        ({"train": {"monitor": "map@10"}}, r"train.monitor='map@10'; expected"),
        ({"train": {"monitor": "ndcg@20"}}, r"train.monitor='ndcg@20'; expected .*k in eval.ks"),
        ({"train": {"monitor": "ndcg@"}}, r"train.monitor='ndcg@'; expected"),
        (
            {"train": {"monitor": "ndcg@10"}, "eval": {"ks": [5]}},
            r"train.monitor='ndcg@10'; .* eval.ks=\(5,\)\. Use e.g. train.monitor=ndcg@5",
        ),
        ({"train": {"seed": -1}}, r"train.seed=-1; expected an integer >= 0"),
        ({"train": {"shuffle_buffer": 0}}, r"train.shuffle_buffer=0; expected an integer >= 1"),
        # eval
        ({"eval": {"protocol": "random"}}, r"eval.protocol='random'; expected one of \('loo'"),
        ({"eval": {"ks": []}}, r"eval.ks=\(\); expected distinct positive ints\. List each"),
        ({"eval": {"ks": [0, 10]}}, r"eval.ks=\(0, 10\); expected distinct positive ints"),
        ({"eval": {"ks": [10, 10]}}, r"eval.ks=\(10, 10\); expected distinct positive ints"),
        (
            {"eval": {"baselines": ["Popular"]}},
            r"eval.baselines=\('Popular',\); expected distinct names from \('Random', 'MostPop'\)",
        ),
        ({"eval": {"baselines": ["Random", "Random"]}}, r"eval.baselines=\('Random', 'Random'\)"),
        # export
        ({"export": {"export_dir": ""}}, r"export.export_dir=''; expected a folder"),
        ({"export": {"max_k": 0, "default_k": 0}}, r"export.max_k=0; expected an integer >= 1"),
        (
            {"export": {"default_k": 500}},
            r"export.default_k=500, max_k=100; expected 1 <= default_k <= max_k\. Lower",
        ),
        ({"export": {"default_k": 0}}, r"export.default_k=0, max_k=100"),
    ],
)
def test_invalid_values_are_named_with_the_fix(values, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values)


@pytest.mark.parametrize(
    "values",
    [
        {"train": {"patience": 0, "shuffle_buffer": 1, "epochs": 1, "batch_size": 2}},
        {"train": {"monitor": "recall@5"}, "eval": {"ks": [5]}},
        {"train": {"monitor": "hr@50"}},
        {"text": {"template": "{title}", "max_length": 2, "fine_tune_layers": -1}},
        {"model": {"use_ids": False, "use_text": False, "use_categories": True, "l2": 0.0}},
        {"model": {"history_encoder": "attention", "objective": "next_item", "loss": "full_softmax"}},
        {"model": {"history_encoder": "mean", "objective": "next_item", "user_dropout": 0.0}},
        {"model": {"encoder_width": 6, "encoder_heads": 3, "encoder_dropout": 0.0, "user_dropout": 0.99}},
        {"model": {"use_history": False, "use_user_ids": False, "objective": "interaction"}},
        {"eval": {"baselines": []}},
        {"export": {"default_k": 100, "max_k": 100}},
        {"data": {"source": "jsonl", "path": "r.jsonl", "columns": {"user_id": "u", "item_id": "i"}}},
    ],
)
def test_edge_values_are_accepted(values):
    config_from_dict(values)


def test_bad_monitor_override_fails_when_the_config_is_loaded():
    with pytest.raises(ConfigError, match=r"train.monitor='foo'"):
        load_config(None, ["train.monitor=foo"])


def test_replace_is_validated_too():
    with pytest.raises(ConfigError, match=r"train.shuffle_buffer=0"):
        replace(ExperimentConfig(), train__shuffle_buffer=0)
