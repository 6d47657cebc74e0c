"""``Experiment``: the Python API of a training script (prepare -> train -> evaluate -> export).

Example:
    >>> import tfrec_llm
    >>> exp = tfrec_llm.Experiment(tfrec_llm.load_config(overrides=["train.epochs=3"]))
    >>> model, info = exp.train("bert")                    # protocol A (eval.protocol)
    >>> print(exp.evaluate(["loo"], ["bert"]).table)        # beside Random and MostPop
    >>> exp.export("bert", "exports")                      # SavedModels for TF Serving
    >>> exp.recommend(["1", "2"], k=5)                     # [[(item_id, score), ...], ...]
    >>> exp.explain("1", "50").summary()                   # the history items behind it
    >>> print(exp.compare("mean", "bert").to_markdown())   # paired A/B on the same users
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfrec_llm.config import ExperimentConfig
from tfrec_llm.config.choices import REPORT_VARIANTS, VARIANT_NAMES, variant_uses_text
from tfrec_llm.content.evidence import Explanation
from tfrec_llm.data.scenario_catalog import scenario_item_ids
from tfrec_llm.data.schema import RecDataset
from tfrec_llm.errors import ConfigError
from tfrec_llm.evaluation.compare import ComparisonResult, compare_scorers
from tfrec_llm.experiments.explain import Explainer
from tfrec_llm.experiments.prepare import Prepared, known_histories, load_dataset, prepare
from tfrec_llm.experiments.publish import export_variant
from tfrec_llm.experiments.ranking_run import export_two_stage, load_or_train_ranking, ranking_trained
from tfrec_llm.experiments.reports import evaluate_protocols, test_table
from tfrec_llm.experiments.runs import load_or_train, require_trained
from tfrec_llm.export.exporter import ExportResult
from tfrec_llm.export.ranking_export import two_stage_module
from tfrec_llm.export.serving_module import RetrievalModule, user_text_encoder
from tfrec_llm.models.retrieval import TwoTowerModel
from tfrec_llm.models.scorer import TwoTowerScorer

logger = logging.getLogger(__name__)

Recommendations = list[list[tuple[str, float]]]
"""Per user, the top-K ``(item_id, score)`` pairs, best first."""


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Records of one evaluation, and the TEST table.

    Attributes:
        records: One dict per number (``model``, ``protocol``, ``split``, ``metric``, ``k``,
            ``value``, ``users``, ``eval_seconds`` and, for trained models, ``fit_seconds``).
        table: Markdown table of the TEST records, one row per model.
    """

    records: list[dict[str, Any]]
    table: str


MAX_USER_TEXT_CHARS = 2000
"""Longest user text ``recommend`` takes (BERT reads only its first ``text.max_length`` tokens)."""


def check_user_text(text: str) -> None:
    """Raises ConfigError unless ``text`` is a non-blank string of at most MAX_USER_TEXT_CHARS."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(
            f"--user-text {text!r} is empty; describe the user in words, e.g. "
            "--user-text 'animated films and space operas'."
        )
    if len(text) > MAX_USER_TEXT_CHARS:
        raise ConfigError(
            f"--user-text has {len(text)} characters, more than {MAX_USER_TEXT_CHARS}; the "
            "encoder reads only the first text.max_length tokens, so give a short description."
        )


class Experiment:
    """One config, its data and its models, with the steps a training script calls.

    Every step reuses what an earlier step (or an earlier process with the same config and
    data) produced: the split and text embeddings per protocol, and the finished runs under
    ``train.model_dir`` (see ``experiments.runs``). The steps that use a model train it when it
    is missing, unless called with ``train_missing=False`` (as ``tfrec-llm evaluate``,
    ``export`` and ``recommend`` do): then a missing or unfinished run is a `MissingRunError`,
    raised before any data is read.

    Args:
        config: The experiment config (``tfrec_llm.load_config``).
        verbose: Keras progress bars (1), one line per epoch (2) or silent (0).
    """

    def __init__(self, config: ExperimentConfig, verbose: int = 1) -> None:
        self.config = config
        self.verbose = verbose
        self._dataset: RecDataset | None = None
        self._prepared: dict[tuple[str, bool], Prepared] = {}

    @property
    def dataset(self) -> RecDataset:
        """The canonical data set of ``config.data`` (read once)."""
        if self._dataset is None:
            self._dataset = load_dataset(self.config.data)
        return self._dataset

    def prepare(self, protocol: str | None = None, with_text: bool = True) -> Prepared:
        """The split, catalog and text embeddings under ``protocol`` (default ``eval.protocol``)."""
        protocol = protocol or self.config.eval.protocol
        for key in ((protocol, True), (protocol, with_text)):
            if key in self._prepared:
                return self._prepared[key]
        prepared = prepare(self.config, protocol, with_text, dataset=self.dataset)
        self._prepared[(protocol, with_text)] = prepared
        return prepared

    def train(
        self, variant: str = "bert", protocol: str | None = None, retrain: bool = False
    ) -> tuple[TwoTowerModel, dict[str, Any]]:
        """The finished model of ``variant`` (trained now unless an up-to-date run exists).

        Returns:
            (model, info) with best_epoch, valid_metrics, epochs_run, train_seconds.
        """
        prepared = self.prepare(protocol, with_text=variant_uses_text(variant))
        return load_or_train(self.config, prepared, variant, retrain=retrain, verbose=self.verbose)

    def train_ranking(
        self, protocol: str | None = None, train_missing: bool = True
    ) -> tuple[Any, dict[str, Any]]:
        """The finished ranking model (second stage) of ``protocol``, trained now if missing.

        Raises:
            MissingRunError: With ``train_missing=False`` and no finished ``ranking`` run.
        """
        prepared = self.prepare(protocol, with_text=self.config.model.use_text)
        if_missing = "train" if train_missing else "error"
        return load_or_train_ranking(self.config, prepared, if_missing=if_missing, verbose=self.verbose)

    def ranking_trained(self) -> bool:
        """Whether the ``loo`` ranking run is finished (export and recommend then use it)."""
        return ranking_trained(self.config, "loo")

    def export_ranking(
        self,
        variant: str = "bert",
        export_dir: str | None = None,
        version: int | None = None,
        train_missing: bool = True,
    ) -> str:
        """Exports the ``ranking`` SavedModel (two-stage ``recommend`` signature); returns its folder.

        Raises:
            MissingRunError: With ``train_missing=False``, if either model is not trained yet.
        """
        if not train_missing:
            require_trained(self.config, [("loo", variant), ("loo", "ranking")], "export")
        prepared = self.prepare("loo", with_text=variant_uses_text(variant) or self.config.model.use_text)
        if_missing = "train" if train_missing else "error"
        return export_two_stage(self.config, prepared, variant, export_dir, version, self.verbose, if_missing)

    def _model(self, variant: str, protocol: str, train_missing: bool) -> TwoTowerModel:
        """The finished model of ``variant`` under ``protocol``; trained first if ``train_missing``."""
        prepared = self.prepare(protocol, with_text=variant_uses_text(variant))
        if_missing = "train" if train_missing else "error"
        model, _ = load_or_train(self.config, prepared, variant, if_missing=if_missing, verbose=self.verbose)
        return model

    def evaluate(
        self,
        protocols: Sequence[str] | None = None,
        variants: Sequence[str] = REPORT_VARIANTS,
        train_missing: bool = True,
    ) -> Evaluation:
        """Baselines and ``variants`` under ``protocols`` (default ``eval.protocol``), on VALID and TEST.

        Raises:
            MissingRunError: With ``train_missing=False``, naming every model not trained yet.
        """
        protocols = list(protocols or [self.config.eval.protocol])
        if_missing = "train" if train_missing else "error"
        records, prepared = evaluate_protocols(self.config, protocols, variants, self.verbose, if_missing)
        for protocol, value in prepared.items():
            self._prepared.setdefault((protocol, any(map(variant_uses_text, variants))), value)
        return Evaluation(records, test_table(records))

    def export(
        self,
        variant: str = "bert",
        export_dir: str | None = None,
        version: int | None = None,
        train_missing: bool = True,
    ) -> ExportResult:
        """Exports the ``loo`` model of ``variant`` for TF Serving (see ``experiments.publish``).

        Raises:
            MissingRunError: With ``train_missing=False``, if that model is not trained yet.
        """
        if not train_missing:
            require_trained(self.config, [("loo", variant)], "export")
        prepared = self.prepare("loo", with_text=variant_uses_text(variant))
        if_missing = "train" if train_missing else "error"
        return export_variant(self.config, prepared, variant, export_dir, version, self.verbose, if_missing)

    def recommend(
        self,
        users: Sequence[str],
        k: int = 10,
        variant: str = "bert",
        train_missing: bool = True,
        user_text: str | None = None,
        two_stage: bool | None = None,
        scenario: str | None = None,
    ) -> Recommendations:
        """Top-``k`` items for ``users``, in process, with the graph that is exported.

        An unknown user id gets the most popular unseen items (with a warning), as the served
        model does, unless ``user_text`` describes them. A ``k`` above ``min(export.max_k,
        catalog size)`` is capped, with a warning that says so.

        ``user_text`` (a model trained with ``model.user_text``) is the users' own words, e.g.
        "I like animated films and space operas", given to every user of ``users``.

        ``two_stage`` (default: when the ``loo`` ranking run is finished) retrieves ``ranking.num_candidates`` items, ranks them with the ranking model and
        returns its top ``k`` (the exported ``recommend`` signature's graph).

        ``scenario`` (a value of the data's ``scenario`` column) keeps the answers in that
        scenario's catalog: every other item is passed as ``exclude_item_ids``, so both stages
        choose among the scenario's items only.

        Raises:
            ConfigError: If ``k < 1`` or ``user_text`` is empty or too long (before any data is
                read), the model does not read user text, or ``scenario`` is given but the
                data has no ``scenario`` column or not that value in it.
            MissingRunError: With ``train_missing=False``, if the model is not trained yet
                (before any data is read).
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k={k!r}; expected an integer >= 1 (how many items to recommend per user).")
        if user_text is not None:
            check_user_text(user_text)
        if not train_missing:
            needed = [("loo", variant)] + ([("loo", "ranking")] if two_stage else [])
            require_trained(self.config, needed, "recommend")
        prepared = self.prepare("loo", with_text=variant_uses_text(variant))
        outside: list[str] | None = None
        inside: set[str] = set()
        if scenario is not None:
            inside = set(scenario_item_ids(prepared.dataset, scenario).tolist())
            outside = [item for item in prepared.split.item_ids.tolist() if item not in inside]
        model = self._model(variant, "loo", train_missing)
        if user_text is not None and not model.user_text_dim:
            raise ConfigError(
                f"--user-text: the {variant!r} model does not read user text; train it with "
                "model.user_text: true (--set model.user_text=true)."
            )
        histories = known_histories(prepared)
        export = self.config.export
        encoder = user_text_encoder(self.config.text) if model.user_text_dim else None
        if two_stage is None:
            two_stage = self.ranking_trained()
        if two_stage:  # retrieve ranking.num_candidates, rank them, keep the top k
            ranking, _ = self.train_ranking("loo", train_missing)
            module: Any = two_stage_module(self.config, model, ranking, prepared.catalog, histories)
        else:
            module = RetrievalModule(
                model, prepared.catalog, histories, export.default_k, export.max_k, 0, encoder
            )
        if k > module.max_k:
            logger.warning(
                "k=%d is more than can be returned: returning %d items per user (the catalog holds "
                "%d items; export.max_k=%d)",
                k,
                module.max_k,
                prepared.catalog.num_items,
                export.max_k,
            )
        users = [str(u) for u in users]
        for user in users:
            if user not in histories and user_text is None:
                logger.warning(
                    "user %r is unknown to the model: recommending the most popular unseen items", user
                )
        none = tf.zeros([0, 0], tf.string)
        exclude = none if not outside else tf.constant([outside] * len(users), tf.string)
        args = [tf.constant(users), none, exclude, tf.constant(k, tf.int32)]
        if model.user_text_dim:
            args.append(tf.constant([user_text or ""] * len(users)))
        out = module.recommend(*args) if two_stage else module.serve(*args)
        ids: np.ndarray = out["item_ids"].numpy()
        scores: np.ndarray = out["scores"].numpy()
        return [
            [
                (item.decode(), float(score))
                for item, score in zip(row_ids, row_scores)
                # fewer scenario items left than k: the excluded ones come back at -inf
                if outside is None or (item.decode() in inside and np.isfinite(score))
            ]
            for row_ids, row_scores in zip(ids, scores)
        ]

    def explainer(self, variant: str = "bert", top: int = 3, train_missing: bool = True) -> Explainer:
        """An `Explainer` of the ``loo`` model of ``variant`` over the histories it serves with."""
        if not train_missing:
            require_trained(self.config, [("loo", variant)], "recommend --explain")
        prepared = self.prepare("loo", with_text=variant_uses_text(variant))
        model = self._model(variant, "loo", train_missing)
        return Explainer(model, prepared, known_histories(prepared), top)

    def explain(self, user: str, item: str, variant: str = "bert", top: int = 3) -> Explanation:
        """The history items (and shared categories and title terms) behind recommending ``item`` to ``user``."""
        return self.explainer(variant, top).explain(user, item)

    def compare(
        self,
        variant_a: str = "mean",
        variant_b: str = "bert",
        protocol: str | None = None,
        split: str = "test",
        metric: str = "ndcg",
        k: int = 10,
        n_resamples: int = 10000,
        seed: int = 0,
    ) -> ComparisonResult:
        """Offline A/B of two variants on the same users (trained first where needed).

        See ``tfrec_llm.evaluation.compare.compare_scorers``: per-metric paired difference with
        a bootstrap CI and a paired test, and team-draft interleaving with the held-out items
        as clicks.
        """
        protocol = protocol or self.config.eval.protocol
        prepared = self.prepare(protocol, with_text=any(map(variant_uses_text, (variant_a, variant_b))))
        scorers = []
        for variant, tag in ((variant_a, "A"), (variant_b, "B")):
            model, _ = self.train(variant, protocol)
            name = VARIANT_NAMES[variant] + (f" [{tag}]" if variant_a == variant_b else "")
            scorers.append(TwoTowerScorer(model, prepared.catalog, name=name))
        return compare_scorers(
            scorers[0],
            scorers[1],
            getattr(prepared.split, split),
            prepared.split.item_ids,
            metric=metric,
            k=k,
            n_resamples=n_resamples,
            seed=seed,
            label=f"protocol {protocol}, {split.upper()}",
        )
