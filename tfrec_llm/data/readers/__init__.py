"""Readers: one module per source, each returning a canonical ``RecDataset``."""

from tfrec_llm.data.readers.movielens import (
    read_movielens_1m,
    read_movielens_100k,
    read_movielens_raw,
)
from tfrec_llm.data.readers.tabular import read_tabular

__all__ = ["read_movielens_1m", "read_movielens_100k", "read_movielens_raw", "read_tabular"]
