"""The synthetic log: deterministic by seed, Zipf popularity, whole users per chunk."""

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.data.synthetic import item_texts, synthetic_chunks, write_synthetic_log
from tfrec_llm.errors import DataError


def _log(seed, n=20_000, items=50, chunk_users=300):
    parts = list(synthetic_chunks(n, items, seed=seed, mean_length=10, chunk_users=chunk_users))
    return parts, [np.concatenate(column) for column in zip(*parts)]


def test_same_seed_same_log_and_other_seed_another():
    _, (users, items, times) = _log(seed=5)
    _, (users2, items2, times2) = _log(seed=5)
    np.testing.assert_array_equal(users, users2)
    np.testing.assert_array_equal(items, items2)
    np.testing.assert_array_equal(times, times2)
    _, (_, items3, _) = _log(seed=6)
    assert len(items3) != len(items) or (items3 != items).any()
    assert item_texts(5, seed=1) == item_texts(5, seed=1) != item_texts(5, seed=2)


def test_chunks_hold_whole_users_in_time_order():
    parts, (users, _, times) = _log(seed=0)
    assert len(parts) == 7  # ceil(20_000 / 10 / 300) chunks of 300 users
    assert np.all(np.diff(users) >= 0)  # grouped by user, users in order
    assert len(np.unique(users)) == 2000
    for a, b in zip(parts, parts[1:]):
        assert a[0][-1] < b[0][0]  # no user spans two chunks
    same_user = users[1:] == users[:-1]
    assert np.all(np.diff(times)[same_user] > 0)
    assert abs(len(users) - 20_000) < 400  # 1 + Poisson(9) per user: 20,000 give or take 2%


def test_popularity_is_zipf():
    # P(item i) = (1 / (i + 1)) / H_50 with exponent 1: item 0 twice as frequent as item 1,
    # ten times item 9. 200k draws: these ratios hold to a few percent.
    counts = np.zeros(50)
    for _, items, _ in synthetic_chunks(200_000, 50, seed=1, mean_length=20):
        counts += np.bincount(items, minlength=50)
    assert counts[0] / counts[1] == pytest.approx(2.0, rel=0.05)
    assert counts[0] / counts[9] == pytest.approx(10.0, rel=0.08)
    harmonic = np.sum(1.0 / np.arange(1, 51))
    assert counts[0] / counts.sum() == pytest.approx(1 / harmonic, rel=0.02)
    slope = np.polyfit(np.log(np.arange(1, 51)), np.log(counts), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.05)


def test_written_log_reads_back(tmp_path):
    info = write_synthetic_log(str(tmp_path), 3000, 20, seed=2, mean_length=10, chunk_users=100)
    files = sorted(p.name for p in tmp_path.glob("interactions-*.parquet"))
    assert files == [f"interactions-{k:05d}-of-00003.parquet" for k in range(3)]
    frame = pd.concat([pd.read_parquet(tmp_path / f) for f in files], ignore_index=True)
    parts = list(synthetic_chunks(3000, 20, seed=2, mean_length=10, chunk_users=100))
    users, items, times = (np.concatenate(c) for c in zip(*parts))
    assert info["interactions"] == len(frame) == len(users)
    assert list(frame["user_id"][:2]) == [f"u{users[0]}", f"u{users[1]}"]
    np.testing.assert_array_equal(frame["item_id"].str[1:].astype(int), items)
    np.testing.assert_array_equal(frame["timestamp"], times)
    texts = pd.read_csv(tmp_path / "items.csv")
    assert list(texts["item_id"]) == [f"i{i}" for i in range(20)]
    assert list(texts["title"]) == item_texts(20, seed=2)
    assert info["bytes"] == sum(p.stat().st_size for p in tmp_path.iterdir())


def test_bad_sizes_are_a_data_error():
    with pytest.raises(DataError, match="must be >= 1"):
        next(synthetic_chunks(0, 10))
