"""Validation of the ``tune`` section: algorithm, objective and the form of each space entry.

Whether each value a trial can draw gives a valid config is checked by
`tfrec_llm.tuning.search_space.check_space` before a search starts.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from tfrec_llm.config.choices import (
    HP_SAMPLINGS,
    HP_TYPES,
    METRICS,
    PROTOCOLS,
    TUNABLE_SECTIONS,
    TUNER_ALGORITHMS,
    UNTUNABLE_FIELDS,
)
from tfrec_llm.config.coercion import coerce, field_types
from tfrec_llm.errors import ConfigError

if TYPE_CHECKING:
    from tfrec_llm.config.sections import ExperimentConfig, HyperParameterSpec

Check = tuple[bool, str]
"""``(passed, message shown when it did not)``."""


def tune_checks(cfg: ExperimentConfig) -> list[Check]:
    """Checks of the ``tune`` section of ``cfg``."""
    tune = cfg.tune
    metric, _, k = tune.objective.partition("@")
    checks: list[Check] = [
        (
            tune.algorithm in TUNER_ALGORITHMS,
            f"tune.algorithm={tune.algorithm!r}; expected one of {TUNER_ALGORITHMS}",
        ),
        (tune.max_trials > 0, f"tune.max_trials={tune.max_trials}; expected > 0"),
        (
            metric in METRICS and k.isdigit() and int(k) > 0,
            f"tune.objective={tune.objective!r}; expected ndcg@k, hr@k or recall@k with k > 0, "
            "e.g. 'ndcg@10'",
        ),
        (
            tune.protocol in PROTOCOLS,
            f"tune.protocol={tune.protocol!r}; expected one of {PROTOCOLS}",
        ),
        (tune.executions > 0, f"tune.executions={tune.executions}; expected > 0"),
        (
            tune.hyperband_factor >= 2,
            f"tune.hyperband_factor={tune.hyperband_factor}; expected >= 2",
        ),
        (
            tune.hyperband_iterations > 0,
            f"tune.hyperband_iterations={tune.hyperband_iterations}; expected > 0",
        ),
        (
            tune.bayesian_initial_points >= 0,
            f"tune.bayesian_initial_points={tune.bayesian_initial_points}; expected >= 0",
        ),
        (bool(tune.space), "tune.space is empty; list at least one hyperparameter to search"),
    ]
    names = [spec.name for spec in tune.space]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    repeated = f"tune.space names {duplicates} more than once; each field may appear once"
    checks.append((not duplicates, repeated))
    for i, spec in enumerate(tune.space):
        checks += _spec_checks(cfg, spec, f"tune.space[{i}] ({spec.name or 'no name'})")
    return checks


def _spec_checks(cfg: ExperimentConfig, spec: HyperParameterSpec, where: str) -> list[Check]:
    """Checks of one ``tune.space`` entry against the config field it names."""
    section, _, field = spec.name.partition(".")
    section_type = type(getattr(cfg, section)) if section in TUNABLE_SECTIONS else None
    fields = [f.name for f in dataclasses.fields(section_type)] if section_type else []
    if section_type is None or field not in fields or spec.name in UNTUNABLE_FIELDS:
        message = (
            f"{where}: name={spec.name!r} is not a tunable field; expected <section>.<field> with "
            f"section in {TUNABLE_SECTIONS} (not {UNTUNABLE_FIELDS}), e.g. 'model.embedding_dim'"
        )
        return [(False, message)]
    annotation = field_types(section_type)[field]
    if spec.type not in HP_TYPES:
        return [(False, f"{where}: type={spec.type!r}; expected one of {HP_TYPES}")]
    if spec.type == "choice":
        checks = [(bool(spec.values), f"{where}: type 'choice' needs a non-empty values list")]
        for value in spec.values:
            try:
                coerce(value, annotation, spec.name)
            except ConfigError as e:
                checks.append((False, f"{where}: choice value {value!r} does not fit ({e})"))
        return checks
    expected = {"int": int, "float": float, "bool": bool}[spec.type]
    if annotation is not expected:
        kind = getattr(annotation, "__name__", annotation)
        message = (
            f"{where}: type={spec.type!r} but {spec.name} is {kind}; use type 'choice' or the field's type"
        )
        return [(False, message)]
    if spec.type == "bool":
        return []
    bounds = (spec.min, spec.max, spec.step)
    integral = spec.type != "int" or all(float(v).is_integer() for v in bounds)
    return [
        (spec.min < spec.max, f"{where}: min={spec.min}, max={spec.max}; expected min < max"),
        (spec.step >= 0, f"{where}: step={spec.step}; expected >= 0 (0 = no grid)"),
        (integral, f"{where}: type 'int' needs integer min, max and step; got {bounds}"),
        (
            spec.sampling in HP_SAMPLINGS,
            f"{where}: sampling={spec.sampling!r}; expected one of {HP_SAMPLINGS}",
        ),
        (
            spec.sampling == "linear" or spec.min > 0,
            f"{where}: sampling={spec.sampling!r} needs min > 0; got min={spec.min}",
        ),
    ]
