"""Tests for tfrec_llm.tuning.search_space and the ``tune`` section of the config."""

import keras_tuner
import pytest

from tfrec_llm.config import (
    ExperimentConfig,
    HyperParameterSpec,
    TuneConfig,
    config_from_dict,
    dump_config,
    load_config,
    replace,
)
from tfrec_llm.errors import ConfigError
from tfrec_llm.tuning.search_space import (
    apply_values,
    build_hyperparameters,
    check_space,
    objective_name,
    spec_summary,
    trial_config,
)

S = HyperParameterSpec


def _cfg(*space, **tune):
    return replace(ExperimentConfig(), tune=TuneConfig(space=tuple(space), **tune))


def test_each_entry_becomes_a_hyperparameter_of_the_field_type():
    cfg = _cfg(
        S("model.embedding_dim", "choice", values=("32", "64", "128")),
        S("train.learning_rate", "float", min=0.0005, max=0.01, sampling="log"),
        S("model.history_length", "int", min=10, max=100, step=10),
        S("model.logq_correction", "bool"),
        S("model.l2", "choice", values=("0.0", "1e-5")),
        S("train.optimizer", "choice", values=("adam", "adagrad")),
    )
    hp = build_hyperparameters(cfg)
    by_name = {p.name: p for p in hp.space}
    assert list(by_name) == [s.name for s in cfg.tune.space]
    emb = by_name["model.embedding_dim"]
    assert isinstance(emb, keras_tuner.engine.hyperparameters.Choice)
    assert emb.values == [32, 64, 128] and emb.default == 64  # the base config's value
    lr = by_name["train.learning_rate"]
    assert (lr.min_value, lr.max_value, lr.sampling) == (0.0005, 0.01, "log")
    assert lr.default == 0.001  # base value, inside the range (not the min, KerasTuner's fallback)
    hist = by_name["model.history_length"]
    assert (hist.min_value, hist.max_value, hist.step, hist.default) == (10, 100, 10, 100)
    assert by_name["model.logq_correction"].default is True
    assert by_name["model.l2"].values == [0.0, 1e-5]
    assert by_name["train.optimizer"].values == ["adam", "adagrad"]


def test_default_falls_back_to_keras_tuner_when_base_value_is_outside():
    cfg = _cfg(
        S("model.embedding_dim", "choice", values=("8", "16")),
        S("model.temperature", "float", min=0.2, max=0.5),
    )
    by_name = {p.name: p for p in build_hyperparameters(cfg).space}
    assert by_name["model.embedding_dim"].default == 8  # first value; base 64 is not offered
    assert by_name["model.temperature"].default == 0.2  # min; base 0.1 is below the range


def test_apply_values_sets_dotted_fields_and_skips_tuner_keys():
    cfg = _cfg(S("model.embedding_dim", "choice", values=("32", "64")))
    out = apply_values(cfg, {"model.embedding_dim": 32, "train.optimizer": "adagrad", "tuner/epochs": 3})
    assert (out.model.embedding_dim, out.train.optimizer) == (32, "adagrad")
    assert out.train.epochs == cfg.train.epochs
    assert cfg.model.embedding_dim == 64  # the input is not changed


def test_apply_values_rejects_a_name_that_is_not_a_field():
    with pytest.raises(ConfigError, match=r"hyperparameter 'model.embeding_dim' is not a config field"):
        apply_values(ExperimentConfig(), {"model.embeding_dim": 3})


def test_apply_values_validates_the_result():
    with pytest.raises(ConfigError, match=r"model.temperature=0.0; expected > 0"):
        apply_values(ExperimentConfig(), {"model.temperature": 0.0})


def test_check_space_names_a_value_the_field_rejects():
    cfg = _cfg(
        S("model.embedding_dim", "choice", values=("32",)),
        S("train.optimizer", "choice", values=("adam", "sgd")),
    )
    with pytest.raises(
        ConfigError,
        match=r"tune.space\[1\] \(train.optimizer\): value 'sgd' gives an invalid config",
    ):
        check_space(cfg)
    range_cfg = _cfg(S("model.id_dropout", "float", min=0.5, max=1.0))
    with pytest.raises(
        ConfigError, match=r"tune.space\[0\] \(model.id_dropout\): value 1.0 .*expected in \[0, 1\)"
    ):
        build_hyperparameters(range_cfg)


def test_trial_config_follows_the_objective_and_budget():
    cfg = _cfg(S("model.embedding_dim", "choice", values=("32",)), objective="hr@20")
    cfg = replace(cfg, train__refit_on_train_valid=True)
    trial = trial_config(cfg, {"model.embedding_dim": 32}, execution=2, epochs=4)
    assert trial.model.embedding_dim == 32
    assert trial.train.monitor == "hr@20"
    assert trial.eval.ks == (10, 20, 50)  # 20 added to the default (10, 50)
    assert trial.train.seed == cfg.train.seed + 2
    assert trial.train.epochs == 4
    assert trial.train.refit_on_train_valid is False
    assert trial_config(cfg, {}).train.epochs == cfg.train.epochs
    assert objective_name(cfg) == "valid/hr@20"


def test_space_round_trips_through_yaml(tmp_path):
    cfg = _cfg(
        S("model.history_length", "int", min=10, max=50, step=10),
        S("train.learning_rate", "float", min=1e-4, max=1e-2, sampling="log"),
        S("model.use_profile", "bool"),
        S("model.l2", "choice", values=("0.0", "1e-6")),
        algorithm="bayesian",
        max_trials=7,
        bayesian_initial_points=3,
    )
    path = tmp_path / "c.yaml"
    dump_config(cfg, path)
    assert load_config(path) == cfg
    assert "name: model.history_length" in path.read_text()


def test_space_can_be_set_from_the_command_line():
    cfg = load_config(
        None,
        ["tune.space=[{name: model.l2, type: choice, values: [0.0, 1e-5]}]", "tune.max_trials=3"],
    )
    assert cfg.tune.space == (S("model.l2", "choice", values=("0.0", "1e-5")),)
    assert cfg.tune.max_trials == 3


def test_default_space_is_valid_and_covers_the_issue_fields():
    cfg = ExperimentConfig()
    check_space(cfg)
    names = {s.name for s in cfg.tune.space}
    assert names == {
        "model.embedding_dim",
        "train.learning_rate",
        "train.optimizer",
        "model.temperature",
        "model.l2",
        "model.text_projection_dim",
        "model.history_length",
        "model.id_dropout",
        # the default model's history encoder
        "model.encoder_dropout",
        "model.encoder_width",
    }
    # every range holds the default model's value, which is where each search starts
    for p in build_hyperparameters(cfg).space:
        section, field = p.name.split(".")
        assert p.default == getattr(getattr(cfg, section), field), p.name


def test_spec_summary():
    assert (
        spec_summary(S("train.learning_rate", "float", min=0.0003, max=0.01, sampling="log"))
        == "float 0.0003..0.01 (log)"
    )
    assert spec_summary(S("model.id_dropout", "float", min=0.0, max=0.5, step=0.1)) == "float 0..0.5 step 0.1"
    assert spec_summary(S("train.optimizer", "choice", values=("adam", "adagrad"))) == "one of adam, adagrad"
    assert spec_summary(S("model.use_ids", "bool")) == "true or false"


def _space(**entry):
    return {"tune": {"space": [entry]}}


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"tune": {"algorithm": "grid"}},
            r"tune.algorithm='grid'; expected one of \('random', 'hyperband', 'bayesian'\)",
        ),
        ({"tune": {"max_trials": 0}}, r"tune.max_trials=0; expected > 0"),
        (
            {"tune": {"objective": "auc"}},
            r"tune.objective='auc'; expected ndcg@k, hr@k or recall@k",
        ),
        ({"tune": {"objective": "ndcg@0"}}, r"tune.objective='ndcg@0'"),
        ({"tune": {"protocol": "random"}}, r"tune.protocol='random'"),
        ({"tune": {"executions": 0}}, r"tune.executions=0; expected > 0"),
        ({"tune": {"hyperband_factor": 1}}, r"tune.hyperband_factor=1; expected >= 2"),
        ({"tune": {"hyperband_iterations": 0}}, r"tune.hyperband_iterations=0; expected > 0"),
        (
            {"tune": {"bayesian_initial_points": -1}},
            r"tune.bayesian_initial_points=-1; expected >= 0",
        ),
        ({"tune": {"space": []}}, r"tune.space is empty"),
        (
            {"tune": {"space": [{"name": "model.l2", "type": "choice", "values": [0.0]}] * 2}},
            r"tune.space names \['model.l2'\] more than once",
        ),
        (
            _space(name="model.embeding_dim", type="int", min=1, max=2),
            r"tune.space\[0\] \(model.embeding_dim\): "
            r"name='model.embeding_dim' is not a tunable field",
        ),
        (
            _space(name="data.path", type="choice", values=["x"]),
            r"name='data.path' is not a tunable field",
        ),
        (
            _space(name="train.model_dir", type="choice", values=["x"]),
            r"name='train.model_dir' is not a tunable field",
        ),
        (
            _space(name="model.l2", type="uniform", min=0, max=1),
            r"type='uniform'; expected one of \('int', 'float', 'choice', 'bool'\)",
        ),
        (
            _space(name="model.l2", type="int", min=0, max=1),
            r"type='int' but model.l2 is float; use type 'choice'",
        ),
        (
            _space(name="model.embedding_dim", type="bool"),
            r"type='bool' but model.embedding_dim is int",
        ),
        (
            _space(name="model.l2", type="float", min=1.0, max=1.0),
            r"min=1.0, max=1.0; expected min < max",
        ),
        (
            _space(name="model.l2", type="float", min=0.0, max=1.0, step=-1),
            r"step=-1.0; expected >= 0",
        ),
        (
            _space(name="model.embedding_dim", type="int", min=8, max=64.5),
            r"type 'int' needs integer min, max and step",
        ),
        (
            _space(name="model.l2", type="float", min=0.0, max=1.0, sampling="exp"),
            r"sampling='exp'; expected one of",
        ),
        (
            _space(name="model.l2", type="float", min=0.0, max=1.0, sampling="log"),
            r"sampling='log' needs min > 0; got min=0.0",
        ),
        (_space(name="model.l2", type="choice"), r"type 'choice' needs a non-empty values list"),
        (
            _space(name="model.embedding_dim", type="choice", values=["64", "big"]),
            r"choice value 'big' does not fit \(model.embedding_dim: expected int",
        ),
        (
            {"tune": {"space": [{"name": "model.l2", "kind": "float"}]}},
            r"unknown config key\(s\) \['tune.space\[0\].kind'\]",
        ),
    ],
)
def test_invalid_tune_sections_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values)
