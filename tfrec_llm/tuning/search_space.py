"""The search space of ``tune.space`` as ``keras_tuner.HyperParameters``, and back to configs.

Each ``tune.space`` entry names a config field (``model.embedding_dim``, ``train.learning_rate``)
and becomes one KerasTuner hyperparameter of the same name. A trial's values are written onto a
copy of the base config with :func:`apply_values`, which re-validates it, so a trial trains
exactly what ``tfrec-llm train`` would train with the same fields set.

Example:
    >>> cfg = load_config("pipelines/movielens_100k.yaml")
    >>> hp = build_hyperparameters(cfg)
    >>> sorted(hp.values)[:2]
    ['model.embedding_dim', 'model.history_length']
    >>> apply_values(cfg, {"model.embedding_dim": 32}).model.embedding_dim
    32
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

import keras_tuner

from tfrec_llm.config import (
    ExperimentConfig,
    HyperParameterSpec,
    config_from_dict,
    config_to_dict,
    replace,
)
from tfrec_llm.errors import ConfigError

# Keys KerasTuner adds to a trial's values (Hyperband's budget); they are not config fields.
TUNER_PREFIX = "tuner/"
# KerasTuner's name of a VALID metric: "valid/ndcg@10" (logged metric names, docs/style.md).
OBJECTIVE_PREFIX = "valid/"


def field_type(cfg: ExperimentConfig, name: str) -> type:
    """The Python type of the dotted config field ``name`` (``int`` for ``model.embedding_dim``)."""
    section, _, field = name.partition(".")
    return typing.get_type_hints(type(getattr(cfg, section)))[field]  # type: ignore[no-any-return]


def parse_choice(value: str, kind: type) -> Any:
    """A ``choice`` value as written in the config (``"64"``, ``"1e-5"``) in the field's type."""
    if kind is bool:
        return value.strip().lower() == "true"
    return kind(value)


def choice_values(cfg: ExperimentConfig, spec: HyperParameterSpec) -> list[Any]:
    """The ``values`` of a ``choice`` entry, parsed to the type of its field."""
    kind = field_type(cfg, spec.name)
    return [parse_choice(v, kind) for v in spec.values]


def current_value(cfg: ExperimentConfig, name: str) -> Any:
    """The value of the dotted field ``name`` in ``cfg``."""
    section, _, field = name.partition(".")
    return getattr(getattr(cfg, section), field)


def _add(hp: keras_tuner.HyperParameters, spec: HyperParameterSpec, cfg: ExperimentConfig) -> None:
    base = current_value(cfg, spec.name)
    step = spec.step or None
    if spec.type == "choice":
        values = choice_values(cfg, spec)
        hp.Choice(spec.name, values, default=base if base in values else None)
    elif spec.type == "bool":
        hp.Boolean(spec.name, default=bool(base))
    elif spec.type == "int":
        lo, hi = int(spec.min), int(spec.max)
        hp.Int(
            spec.name,
            lo,
            hi,
            step=int(step) if step else None,
            sampling=spec.sampling,
            default=int(base) if lo <= base <= hi else None,
        )
    else:
        hp.Float(
            spec.name,
            spec.min,
            spec.max,
            step=step,
            sampling=spec.sampling,
            default=float(base) if spec.min <= base <= spec.max else None,
        )


def build_hyperparameters(cfg: ExperimentConfig) -> keras_tuner.HyperParameters:
    """Declares every ``cfg.tune.space`` entry up front (KerasTuner's ``hyperparameters=``).

    Defaults are the base config's values where they lie in the space, so the first row of
    KerasTuner's progress table reads "what the base config uses".

    Raises:
        ConfigError: A value at the edge of the space gives an invalid config
            (see :func:`check_space`).
    """
    check_space(cfg)
    hp = keras_tuner.HyperParameters()
    for spec in cfg.tune.space:
        _add(hp, spec, cfg)
    return hp


def apply_values(cfg: ExperimentConfig, values: Mapping[str, Any]) -> ExperimentConfig:
    """``cfg`` with each dotted field of ``values`` set (``tuner/...`` keys are skipped).

    Raises:
        ConfigError: A name is not a config field, or the result is not a valid config.
    """
    tree = config_to_dict(cfg)
    for name, value in values.items():
        if name.startswith(TUNER_PREFIX):
            continue
        section, _, field = name.partition(".")
        if section not in tree or not isinstance(tree[section], dict) or field not in tree[section]:
            raise ConfigError(f"hyperparameter {name!r} is not a config field; expected <section>.<field>")
        tree[section][field] = value
    return config_from_dict(tree)


def check_space(cfg: ExperimentConfig) -> None:
    """Checks that every choice value and both ends of every range give a valid config.

    ``config.py`` checks each entry's shape and types; this catches values the field itself
    rejects (``train.optimizer: [adam, sgd]``, ``model.temperature`` from 0) before a search
    spends trials on them.

    Raises:
        ConfigError: naming the entry and the value.
    """
    for i, spec in enumerate(cfg.tune.space):
        if spec.type == "choice":
            candidates = choice_values(cfg, spec)
        elif spec.type == "bool":
            candidates = [False, True]
        else:
            kind = int if spec.type == "int" else float
            candidates = [kind(spec.min), kind(spec.max)]
        for value in candidates:
            try:
                apply_values(cfg, {spec.name: value})
            except ConfigError as e:
                raise ConfigError(
                    f"tune.space[{i}] ({spec.name}): value {value!r} gives an invalid config: {e}; "
                    "narrow the range or drop the value"
                ) from None


def space_names(cfg: ExperimentConfig) -> list[str]:
    """The searched field names, in ``tune.space`` order."""
    return [spec.name for spec in cfg.tune.space]


def spec_summary(spec: HyperParameterSpec) -> str:
    """One line describing an entry, e.g. ``float 0.0003..0.01 (log)``."""
    if spec.type == "choice":
        return "one of " + ", ".join(spec.values)
    if spec.type == "bool":
        return "true or false"
    text = f"{spec.type} {spec.min:g}..{spec.max:g}"
    if spec.step:
        text += f" step {spec.step:g}"
    return text + (f" ({spec.sampling})" if spec.sampling != "linear" else "")


def objective_name(cfg: ExperimentConfig) -> str:
    """KerasTuner's name of the objective, e.g. ``valid/ndcg@10``."""
    return OBJECTIVE_PREFIX + cfg.tune.objective


def trial_config(
    cfg: ExperimentConfig, values: Mapping[str, Any], execution: int = 0, epochs: int | None = None
) -> ExperimentConfig:
    """The config one trial trains: ``cfg`` with the trial's values set.

    Early stopping and best weights follow the objective (``train.monitor``), its cut-off is
    evaluated (``eval.ks``), execution ``i`` uses seed ``train.seed + i``, Hyperband's budget
    becomes ``train.epochs``, and no TRAIN+VALID refit is done (the score is VALID's).
    """
    trial = apply_values(cfg, values)
    k = int(cfg.tune.objective.split("@")[1])
    return replace(
        trial,
        train__monitor=cfg.tune.objective,
        train__seed=trial.train.seed + execution,
        train__epochs=int(epochs) if epochs else trial.train.epochs,
        train__refit_on_train_valid=False,
        eval__ks=tuple(sorted(set(trial.eval.ks) | {k})),
    )
