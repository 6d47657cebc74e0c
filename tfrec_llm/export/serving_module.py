"""Serving graphs: ``tf.Module``s with explicit signatures, raw strings in, named tensors out.

We export the serving graph, not the training model. The retrieval module holds everything a
request needs, as constants and variables inside the SavedModel: the string -> index tables of
users and items, the precomputed candidate embeddings of the whole catalog, each known user's
recent history (the query tower's input) and all items they have seen (excluded server-side),
and the TRAIN popularity used for users the model knows nothing about.

Signature ``serving_default`` of the retrieval module:
    inputs:  user_id           string [batch]
             recent_item_ids   string [batch, n]  optional: appended to the stored history and
                                                  excluded ("" and unknown ids are skipped;
                                                  the last history_length items are kept);
                                                  default shape [0, 0] = none
             exclude_item_ids  string [batch, m]  optional: more items to exclude; default [0, 0]
             user_text         string [batch]     optional, only when the model reads user text
                                                  (``model.user_text``): the user's own words
                                                  (a self-description, or a few titles),
                                                  tokenized and embedded in the graph by the
                                                  item texts' BERT (classic TF Text ops); ""
                                                  = none for that user; default shape [0] = none
             k                 int32 []           optional: default ``default_k``; k <= 0 fails
                                                  with INVALID_ARGUMENT ("k must be >= 1");
                                                  k > max_k (= min(export.max_k, catalog
                                                  size)) is capped: the answer has max_k
                                                  columns, read the response shape
    outputs: item_ids          string [batch, k]
             scores            float32 [batch, k]     beta = model.popularity_prior > 0: cos/T + beta*log(1+count)
             used_fallback     bool [batch]       true where the user was unknown and had no
                                                  history (and no user_text): the answer is the
                                                  popularity ranking
             evidence_item_ids string [batch, k, e]  only with ``evidence_items`` = e > 0
             evidence_scores   float32 [batch, k, e] (``export.evidence_items``): per recommended
                                                  item, the e distinct history items (of the
                                                  window the query read) most cosine-similar to
                                                  it by candidate embedding, best first (ties:
                                                  the more recent); "" and 0.0 fill the slots
                                                  when the history holds fewer than e items
Signature ``query_embedding`` (``RetrievalModule.query_embedding``; the exporter adds it when
it ships an ANN index, `tfrec_llm.export.ann_index`), the same inputs but ``k``:
    outputs: query_embedding   float32 [batch, dim]  the query tower's output, the vector the
                                                     catalog is scored against (inner product)
             used_fallback     bool [batch]          as above (the answer is then popularity)
             excluded_rows     int32 [batch, m]      catalog rows (= index rows) the answer must
                                                     leave out (seen, recent and excluded
                                                     items), padded with -1
Optional inputs are Python default arguments of the tf.function; TensorFlow records them in
``SignatureDef.defaults``, which TF Serving (and our local server) fill in when a request omits
them. Python callers of ``loaded.signatures[...]`` pass every input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrec_llm.config import TextConfig
from tfrec_llm.data.catalog import Catalog
from tfrec_llm.errors import ConfigError
from tfrec_llm.export.signatures import _NO_IDS, HISTORY_INPUTS, top_k_function
from tfrec_llm.models.retrieval import TwoTowerModel
from tfrec_llm.models.scorer import prior_bias
from tfrec_llm.text.encoder import TextEncoder

_K_MESSAGE = "k must be >= 1 (the number of items to return per user)"


def _string_table(keys: np.ndarray, default: int) -> tf.lookup.StaticHashTable:
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(np.asarray(keys, dtype=object).astype(str)),
        tf.constant(np.arange(len(keys), dtype=np.int32)),
    )
    return tf.lookup.StaticHashTable(init, default_value=default)


class RetrievalModule(tf.Module):
    """Top-K retrieval over the whole catalog for raw user ids.

    Args:
        model: Trained two-tower model.
        catalog: The catalog it was trained on.
        histories: user id -> chronological item ids, for every user the server should know
            (their recent items feed the query tower, and all of them are excluded).
        default_k: K when a request does not send ``k``.
        max_k: Cap on ``k``.
        evidence_items: e > 0 adds the ``evidence_item_ids`` / ``evidence_scores`` outputs
            (capped at ``history_length``); 0 (default) leaves the signature without them.
        text_encoder: The item texts' encoder, for a model whose query tower reads user text
            (``model.user_text_dim``): adds the optional ``user_text`` input to ``serve``.

    Raises:
        ConfigError: If ``evidence_items`` is negative, or ``text_encoder`` is missing for a
            model that reads user text (or given for one that does not).
    """

    def __init__(
        self,
        model: TwoTowerModel,
        catalog: Catalog,
        histories: Mapping[str, Sequence[str]],
        default_k: int = 10,
        max_k: int = 100,
        evidence_items: int = 0,
        text_encoder: TextEncoder | None = None,
    ) -> None:
        super().__init__(name="retrieval")
        if bool(model.user_text_dim) != (text_encoder is not None):
            raise ConfigError(
                f"RetrievalModule: the model's user_text_dim is {model.user_text_dim}; pass the item "
                "texts' TextEncoder as text_encoder exactly when it is > 0 (model.user_text)."
            )
        self.text_encoder = text_encoder
        if evidence_items < 0:
            raise ConfigError(
                f"export.evidence_items={evidence_items}; expected 0 (off) or a positive count."
            )
        self.evidence_items = min(int(evidence_items), model.history_length)
        self.query_tower = model.query_tower
        self.history_length = model.history_length
        self.num_users = catalog.num_users
        self.default_k = default_k
        self.max_k = min(max_k, catalog.num_items)
        self.item_ids = tf.constant(np.asarray(catalog.item_ids, dtype=object).astype(str))
        self.candidates = tf.Variable(model.all_candidate_embeddings(), trainable=False, name="candidates")
        self.popularity = tf.Variable(
            catalog.popularity / max(float(catalog.popularity.max()), 1.0), trainable=False, name="popularity"
        )
        bias = prior_bias(catalog, model.popularity_prior, model.temperature)  # None when 0 (off)
        self.prior = None if bias is None else tf.Variable(bias, trainable=False, name="prior")
        self.temperature = model.temperature
        self.user_table = _string_table(catalog.user_ids, default=catalog.num_users)
        self.item_table = _string_table(catalog.item_ids, default=-1)

        user_rows = [np.zeros(0, np.int32)] * (catalog.num_users + 1)
        for user, items in histories.items():
            row = catalog.user_index([user])[0]
            if row < catalog.num_users:
                idx = catalog.item_index(np.asarray(items, dtype=object))
                user_rows[row] = idx[idx >= 0].astype(np.int32)
        recent = np.full((catalog.num_users + 1, self.history_length), -1, np.int32)
        for row, idx in enumerate(user_rows):
            if len(idx):
                tail = idx[-self.history_length :]
                recent[row, -len(tail) :] = tail
        self.recent_table = tf.Variable(recent, trainable=False, name="recent_items")
        lengths = np.array([len(r) for r in user_rows], np.int64)
        self.seen_values = tf.Variable(
            np.concatenate(user_rows).astype(np.int32), trainable=False, name="seen_values"
        )
        self.seen_splits = tf.Variable(
            np.concatenate([[0], np.cumsum(lengths)]), trainable=False, name="seen_splits"
        )

        serve = top_k_function(self._recommend, default_k, user_text=text_encoder is not None)

        @tf.function(input_signature=list(HISTORY_INPUTS))
        def query_embedding(
            user_id: tf.Tensor, recent_item_ids: tf.Tensor = _NO_IDS, exclude_item_ids: tf.Tensor = _NO_IDS
        ) -> dict[str, tf.Tensor]:
            q = self._query(user_id, recent_item_ids, exclude_item_ids)
            rows = self._excluded(q["users"], q["recent"], q["exclude"]).to_tensor(default_value=-1)
            return {"query_embedding": q["query"], "used_fallback": q["fallback"], "excluded_rows": rows}

        self.serve = serve
        self.query_embedding = query_embedding

    def _optional_ids(self, ids: tf.Tensor, batch: tf.Tensor, name: str) -> tf.Tensor:
        """Catalog indices of an optional [batch, n] id input; [batch, 0] when it was omitted."""
        rows = tf.shape(ids)[0]
        checked = tf.debugging.assert_equal(
            tf.logical_or(tf.equal(rows, 0), tf.equal(rows, batch)),
            True,
            message=f"{name} must have one row per user_id (or be omitted)",
        )
        idx = self.item_table.lookup(ids)
        with tf.control_dependencies([checked]):  # the check first, before any op meets the bad shape
            return tf.cond(tf.equal(rows, 0), lambda: tf.fill([batch, 0], -1), lambda: idx)

    def _user_text(self, user_text: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
        """[batch, text_dim] BERT vectors of the users' texts; zero rows where "" (or omitted)."""
        rows = tf.shape(user_text)[0]
        checked = tf.debugging.assert_equal(
            tf.logical_or(tf.equal(rows, 0), tf.equal(rows, batch)),
            True,
            message="user_text must have one entry per user_id (or be omitted)",
        )
        with tf.control_dependencies([checked]):
            user_text = tf.identity(user_text)
        texts = tf.cond(tf.equal(rows, 0), lambda: tf.fill([batch], ""), lambda: user_text)
        given = tf.not_equal(tf.strings.strip(texts), "")
        dim = self.query_tower.user_text_dim
        vectors = tf.cond(
            tf.reduce_any(given),  # BERT runs only when some user wrote something
            lambda: tf.reshape(tf.cast(self.text_encoder(texts), tf.float32), [-1, dim]),
            lambda: tf.zeros([batch, dim]),
        )
        return vectors * tf.cast(given, tf.float32)[:, tf.newaxis]

    def _query(
        self,
        user_id: tf.Tensor,
        recent_item_ids: tf.Tensor,
        exclude_item_ids: tf.Tensor,
        user_text: tf.Tensor | None = None,
    ) -> dict:
        """The query embedding of each user, with the lookups the rest of a request needs."""
        batch = tf.shape(user_id)[0]
        users = self.user_table.lookup(user_id)
        recent = self._optional_ids(recent_item_ids, batch, "recent_item_ids")
        exclude = self._optional_ids(exclude_item_ids, batch, "exclude_item_ids")

        history = tf.concat([tf.gather(self.recent_table, users), recent], axis=1)
        # "" padding and unknown ids leave -1 holes: move the real items to the right end, in
        # order, before keeping the last history_length, so the tower sees the left-padded
        # history the Python model gets (holes would shift a causal encoder's positions).
        order = tf.argsort(tf.cast(history >= 0, tf.int32), axis=1, stable=True)
        history = tf.gather(history, order, batch_dims=1)[:, -self.history_length :]
        mask = history >= 0
        inputs = {
            "user": users,
            "history": tf.gather(self.candidates, tf.maximum(history, 0)),
            "history_mask": mask,
        }
        evidence = tf.reduce_any(mask, axis=1)
        if user_text is not None:
            inputs["user_text"] = self._user_text(user_text, batch)
            evidence = tf.logical_or(evidence, tf.reduce_any(tf.not_equal(inputs["user_text"], 0.0), axis=1))
        query = self.query_tower(inputs)
        fallback = tf.logical_and(users >= self.num_users, tf.logical_not(evidence))
        return {
            "users": users,
            "recent": recent,
            "exclude": exclude,
            "history": history,
            "query": query,
            "fallback": fallback,
        }

    def _excluded(self, users: tf.Tensor, recent: tf.Tensor, exclude: tf.Tensor) -> tf.RaggedTensor:
        """[batch, (m)] catalog rows to leave out: seen, recent and excluded items (-1 dropped)."""
        seen = tf.RaggedTensor.from_row_splits(self.seen_values, self.seen_splits)
        excluded = tf.concat(
            [tf.gather(seen, users), tf.RaggedTensor.from_tensor(tf.concat([recent, exclude], axis=1))],
            axis=1,
        )
        return tf.ragged.boolean_mask(excluded, excluded >= 0)

    def _scores(self, q: dict) -> tf.Tensor:
        """[batch, num_items] scores of `_query`'s users: cosine, or popularity for fallback users."""
        scores = tf.matmul(q["query"], self.candidates, transpose_b=True)
        if self.prior is not None:  # model.popularity_prior, as models.scorer.TwoTowerScorer
            scores = (scores + self.prior) / self.temperature
        popular = tf.broadcast_to(self.popularity[tf.newaxis, :], tf.shape(scores))
        return tf.where(q["fallback"][:, tf.newaxis], popular, scores)

    def _request_scores(
        self,
        user_id: tf.Tensor,
        recent_item_ids: tf.Tensor,
        exclude_item_ids: tf.Tensor,
        k: tf.Tensor,
        user_text: tf.Tensor | None = None,
    ) -> tuple[dict, tf.Tensor]:
        """A request's `_query` and its `_scores`, -inf at `_excluded` items (shared by both graphs).

        k <= 0 is a bad request: INVALID_ARGUMENT (HTTP 400) with ``_K_MESSAGE``.
        """
        batch = tf.shape(user_id)[0]
        num_items = tf.shape(self.candidates)[0]
        q = self._query(user_id, recent_item_ids, exclude_item_ids, user_text)
        scores = self._scores(q)
        excluded = self._excluded(q["users"], q["recent"], q["exclude"])
        row_ids = tf.cast(excluded.value_rowids(), tf.int32)
        indices = tf.stack([row_ids, excluded.flat_values], axis=1)
        hit = tf.scatter_nd(indices, tf.ones(tf.shape(indices)[:1], tf.bool), tf.stack([batch, num_items]))
        scores = tf.where(hit, tf.fill(tf.shape(scores), -np.inf), scores)
        # the check must run before any top_k reads k: a graph orders ops only by their data and
        # control dependencies, so without this edge TopKV2 may fail first ("Need k >= 0")
        checked = tf.debugging.assert_positive(k, message=_K_MESSAGE)
        with tf.control_dependencies([checked]):
            scores = tf.identity(scores)
        return q, scores

    def _recommend(
        self,
        user_id: tf.Tensor,
        recent_item_ids: tf.Tensor,
        exclude_item_ids: tf.Tensor,
        k: tf.Tensor,
        user_text: tf.Tensor | None = None,
    ) -> dict[str, tf.Tensor]:
        q, scores = self._request_scores(user_id, recent_item_ids, exclude_item_ids, k, user_text)
        fallback, history = q["fallback"], q["history"]
        # k > max_k is capped: the answer has min(k, max_k) columns, which the response
        # shape tells the client
        top = tf.math.top_k(scores, k=tf.minimum(k, self.max_k))
        out = {
            "item_ids": tf.gather(self.item_ids, top.indices),
            "scores": top.values,
            "used_fallback": fallback,
        }
        if self.evidence_items:
            out["evidence_item_ids"], out["evidence_scores"] = self._evidence(history, top.indices)
        return out

    def _evidence(self, history: tf.Tensor, recommended: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[batch, k, e] ids and cosines of the history items most similar to each recommendation.

        ``history`` [batch, L] is the window the query read (-1 = padding); an item present twice
        counts once (its most recent position), as in `tfrec_llm.models.evidence`.
        """
        recent_first = tf.reverse(history, axis=[1])  # top_k breaks ties by the lower position
        length = self.history_length
        earlier = tf.constant(np.tril(np.ones((length, length), bool), k=-1))  # [i, j]: j < i
        same = tf.equal(recent_first[:, :, tf.newaxis], recent_first[:, tf.newaxis, :])
        repeated = tf.reduce_any(tf.logical_and(same, earlier[tf.newaxis]), axis=2)
        usable = tf.logical_and(recent_first >= 0, tf.logical_not(repeated))  # [batch, L]
        past = tf.math.l2_normalize(tf.gather(self.candidates, tf.maximum(recent_first, 0)), axis=-1)
        chosen = tf.math.l2_normalize(tf.gather(self.candidates, recommended), axis=-1)
        cosine = tf.matmul(chosen, past, transpose_b=True)  # [batch, k, L]
        cosine = tf.where(usable[:, tf.newaxis, :], cosine, tf.fill(tf.shape(cosine), -np.inf))
        best = tf.math.top_k(cosine, k=self.evidence_items)
        found = tf.math.is_finite(best.values)
        items = tf.gather(recent_first, best.indices, batch_dims=1)
        ids = tf.where(found, tf.gather(self.item_ids, tf.maximum(items, 0)), tf.fill(tf.shape(items), ""))
        return ids, tf.where(found, best.values, tf.zeros_like(best.values))


def user_text_encoder(text: TextConfig) -> TextEncoder:
    """The item texts' encoder (``text`` section: BERT folder, max length, pooling), for user text."""
    from tfrec_llm.text.bert_loader import default_model_path

    return TextEncoder(
        text.model_path or default_model_path(), max_length=text.max_length, pooling=text.pooling
    )


class ItemEncoderModule(tf.Module):
    """Raw item text -> BERT embedding, tokenized in-graph with classic TF Text ops.

    Signature ``serving_default``: ``text`` string [batch] -> ``embedding`` float32 [batch, hidden].

    Args:
        encoder: The text encoder used for the item texts at training time.
    """

    def __init__(self, encoder: TextEncoder) -> None:
        super().__init__(name="item_encoder")
        self.encoder = encoder

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"embedding": self.encoder(text)}

        self.serve = serve
