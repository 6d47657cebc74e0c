"""EmbeddingCache: text embeddings on disk, keyed by model and by the sha256 of each text.

Encoding the ML-100K catalog with MiniLM takes seconds; training runs, tuning trials and
exports reuse the vectors. A cache file per model key holds the text hashes and their vectors;
writes go to a temporary file first and then ``os.replace`` it, so readers never see half a
file. A file that cannot be read, or whose vectors do not fit, is logged and recomputed.

Example:
    >>> cache = EmbeddingCache("/tmp/emb_cache")
    >>> key = f"{model_fingerprint(path)}-len64-mean"
    >>> vectors = cache.get_or_encode(key, texts, lambda batch: encode_texts(encoder, batch))
    >>> cache.hits, cache.misses
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from tfrec_llm.atomic_io import atomic_open
from tfrec_llm.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1


def text_hash(text: str) -> str:
    """sha256 hex digest of the UTF-8 bytes of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Persistent cache of text embeddings, one ``.npz`` file per model key.

    Args:
        directory: Folder for the cache files; created on the first write.

    Attributes:
        hits: Distinct texts of the last ``get_or_encode`` call found in the cache.
        misses: Distinct texts of the last call that were encoded.
    """

    def __init__(self, directory: str) -> None:
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise ConfigError(
                f"directory={directory!r} is invalid: expected a folder path for the cache files."
            )
        self.directory = str(directory)
        self.hits = 0
        self.misses = 0

    def path_for(self, model_key: str) -> str:
        """Path of the cache file of ``model_key`` (its name is a hash of the key)."""
        name = hashlib.sha256(model_key.encode("utf-8")).hexdigest()[:24]
        return os.path.join(self.directory, f"emb-{name}.npz")

    def get_or_encode(
        self,
        model_key: str,
        texts: Sequence[str],
        encode_fn: Callable[[list[str]], np.ndarray],
        *,
        dim: int | None = None,
    ) -> np.ndarray:
        """Returns one embedding per text, encoding only the texts not cached yet.

        Args:
            model_key: Identifies the encoder and every setting that changes its vectors, e.g.
                ``f"{model_fingerprint(path)}-len{max_length}-{pooling}"``.
            texts: Strings to embed; duplicates are encoded once.
            encode_fn: Maps a list of distinct strings to float ``[len(list), dim]``.
            dim: The encoder's output width when known (e.g. ``encoder.hidden_size``); a cache
                file of another width is then discarded even when every text is a hit.

        Returns:
            float32 ``[len(texts), dim]``, row i embedding ``texts[i]``.

        Raises:
            ConfigError: ``model_key`` is empty or not a str.
            DataError: A text is not a str, or ``encode_fn`` returned the wrong shape.
        """
        if not isinstance(model_key, str) or not model_key:
            raise ConfigError(
                f"model_key={model_key!r} is invalid: expected a non-empty str naming the "
                "encoder and its settings (e.g. fingerprint + max_length + pooling)."
            )
        texts = list(texts)
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise DataError(f"texts[{position}] is {type(text).__name__} {text!r}, expected str.")
        keys = [text_hash(text) for text in texts]
        path = self.path_for(model_key)
        cached_keys, cached_vectors = self._load(path, model_key)
        if dim is not None and cached_keys.size and cached_vectors.shape[1] != dim:
            logger.warning(
                "Cache file %s holds %d-d vectors, expected %d-d for model_key %r; recomputing it.",
                path,
                cached_vectors.shape[1],
                dim,
                model_key,
            )
            cached_keys, cached_vectors = np.zeros((0,), dtype="U64"), np.zeros((0, 0), np.float32)
        index = {key: row for row, key in enumerate(cached_keys.tolist())}

        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in index and key not in missing:
                missing[key] = text
        self.hits = len(set(keys)) - len(missing)
        self.misses = len(missing)

        if missing:
            new_vectors = self._encode(encode_fn, list(missing.values()), dim)
            if cached_keys.size and new_vectors.shape[1] != cached_vectors.shape[1]:
                logger.warning(
                    "Cache file %s holds %d-d vectors but the encoder gives %d-d for model_key "
                    "%r; discarding the cache and re-encoding every text.",
                    path,
                    cached_vectors.shape[1],
                    new_vectors.shape[1],
                    model_key,
                )
                return self._rebuild(path, model_key, texts, keys, encode_fn)
            start = len(cached_keys)
            cached_keys = np.concatenate([cached_keys, np.array(list(missing), dtype="U64")])
            cached_vectors = np.concatenate([cached_vectors, new_vectors]) if start else new_vectors
            for offset, key in enumerate(missing):
                index[key] = start + offset
            self._save(path, model_key, cached_keys, cached_vectors)

        if not texts:
            width = dim if dim is not None else int(cached_vectors.shape[1])
            return np.zeros((0, width), dtype=np.float32)
        rows = np.array([index[key] for key in keys], dtype=np.int64)
        return np.asarray(cached_vectors[rows], dtype=np.float32)

    def _rebuild(
        self,
        path: str,
        model_key: str,
        texts: list[str],
        keys: list[str],
        encode_fn: Callable[[list[str]], np.ndarray],
    ) -> np.ndarray:
        """Encodes every distinct text afresh and replaces the cache file."""
        distinct = dict(zip(keys, texts, strict=True))
        vectors = self._encode(encode_fn, list(distinct.values()), None)
        self.hits, self.misses = 0, len(distinct)
        self._save(path, model_key, np.array(list(distinct), dtype="U64"), vectors)
        index = {key: row for row, key in enumerate(distinct)}
        return vectors[[index[key] for key in keys]]

    @staticmethod
    def _encode(
        encode_fn: Callable[[list[str]], np.ndarray], batch: list[str], dim: int | None
    ) -> np.ndarray:
        vectors = np.asarray(encode_fn(batch), dtype=np.float32)
        width = "dim" if dim is None else str(dim)
        if (
            vectors.ndim != 2
            or vectors.shape[0] != len(batch)
            or vectors.shape[1] < 1
            or (dim is not None and vectors.shape[1] != dim)
        ):
            raise DataError(
                f"encode_fn returned an array of shape {vectors.shape} for {len(batch)} texts; "
                f"expected [{len(batch)}, {width}]."
            )
        return vectors

    def _load(self, path: str, model_key: str) -> tuple[np.ndarray, np.ndarray]:
        """Reads a cache file; returns empty arrays if it is absent, unreadable or inconsistent."""
        empty = (np.zeros((0,), dtype="U64"), np.zeros((0, 0), dtype=np.float32))
        if not os.path.exists(path):
            return empty
        try:
            with np.load(path, allow_pickle=False) as data:
                version = int(data["version"])
                stored_key = str(data["model_key"])
                keys = np.asarray(data["keys"])
                vectors = np.asarray(data["vectors"], dtype=np.float32)
        except Exception as err:  # any unreadable file is recomputed, never fatal
            logger.warning("Cache file %s is unreadable (%s); recomputing it.", path, err)
            return empty
        problem = None
        if version != _FORMAT_VERSION:
            problem = f"format version {version}, expected {_FORMAT_VERSION}"
        elif stored_key != model_key:
            problem = f"it belongs to model_key {stored_key!r}"
        elif keys.ndim != 1 or keys.dtype.kind != "U" or vectors.ndim != 2:
            problem = f"keys {keys.shape}/{keys.dtype}, vectors {vectors.shape}"
        elif keys.shape[0] != vectors.shape[0] or vectors.shape[1] < 1:
            problem = f"{keys.shape[0]} keys but vectors of shape {vectors.shape}"
        elif len(set(keys.tolist())) != keys.shape[0]:
            problem = "duplicate text hashes"
        elif not np.all(np.isfinite(vectors)):
            problem = "non-finite vectors"
        if problem:
            logger.warning("Cache file %s is inconsistent (%s); recomputing it.", path, problem)
            return empty
        return keys.astype("U64"), vectors

    def _save(self, path: str, model_key: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Writes the cache file atomically: a temporary file in the same folder, then rename."""
        with atomic_open(path, "wb") as stream:
            np.savez(
                stream,
                version=np.array(_FORMAT_VERSION),
                model_key=np.array(model_key),
                keys=keys,
                vectors=vectors.astype(np.float32),
            )
