"""Text-neighbour transfer to new items, against loops written from the definition."""

from __future__ import annotations

import numpy as np
import pytest

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.cold_transfer import neighbour_weights, transfer_item_item


def _reference_weights(text, warm, k, power):
    """Per new item: sort the warm items by cosine (descending, then by row), keep k, weigh."""
    out = {}
    for c in range(len(text)):
        if warm[c]:
            continue
        cos = []
        for j in range(len(text)):
            if warm[j]:
                a, b = text[c], text[j]
                na, nb = np.linalg.norm(a), np.linalg.norm(b)
                cos.append((-(a @ b / (na * nb)) if na and nb else -0.0, j))
        chosen = sorted(cos)[:k]
        raw = [max(-c_, 0.0) ** power for c_, _ in chosen]
        total = sum(raw)
        out[c] = {j: (r / total if total > 0 else 1.0 / len(chosen)) for (_, j), r in zip(chosen, raw)}
    return out


@pytest.mark.parametrize(("k", "power"), [(1, 1.0), (3, 1.0), (3, 4.0), (4, 0.0), (50, 2.0)])
def test_neighbour_weights_match_the_definition(k, power):
    rng = np.random.default_rng(k)
    text = rng.normal(size=(9, 5))
    text[4] = 0.0  # an item without text: cosine 0 to all, equal weights
    warm = np.array([1, 0, 1, 1, 0, 1, 1, 0, 1], bool)
    rows, neighbours, weights = neighbour_weights(text, warm, k, power)
    expected = _reference_weights(text, warm, k, power)
    assert rows.tolist() == sorted(expected)
    for row, items, w in zip(rows, neighbours, weights, strict=True):
        got = dict(zip(items.tolist(), w.tolist()))
        assert got.keys() == expected[row].keys()
        for j, value in expected[row].items():
            assert got[j] == pytest.approx(value, abs=1e-12)
        assert w.sum() == pytest.approx(1.0)
    assert neighbours.shape[1] == min(k, warm.sum())


def test_transfer_fills_new_rows_and_columns_from_the_neighbours_and_keeps_the_rest():
    rng = np.random.default_rng(0)
    n = 7
    warm = np.array([1, 1, 0, 1, 1, 0, 1], bool)
    table = rng.normal(size=(n, n))
    table[:, ~warm] = 0.0  # what EASE fits for items without interactions
    table[~warm, :] = 0.0
    np.fill_diagonal(table, 0.0)
    text = rng.normal(size=(n, 4))
    out = transfer_item_item(table, text, warm, 2, 1.0)
    rows, neighbours, weights = neighbour_weights(text, warm, 2, 1.0)
    ref = table.copy()
    for c, items, w in zip(rows, neighbours, weights, strict=True):
        ref[:, c] = sum(wj * table[:, j] for j, wj in zip(items, w))
    cols = ref.copy()
    for c, items, w in zip(rows, neighbours, weights, strict=True):
        ref[c, :] = sum(wj * cols[j, :] for j, wj in zip(items, w))
        ref[c, c] = 0.0
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert out.dtype == np.float32
    warm_rows = np.flatnonzero(warm)
    np.testing.assert_allclose(
        out[np.ix_(warm_rows, warm_rows)], table[np.ix_(warm_rows, warm_rows)], rtol=1e-6
    )
    assert np.all(np.diag(out) == 0)
    assert np.all(out[:, ~warm].any(axis=0))  # every new item now has a column


def test_a_new_item_whose_text_matches_a_warm_item_gets_its_column():
    table = np.array([[0.0, 0.5, 0.0], [0.2, 0.0, 0.0], [0.0, 0.0, 0.0]])
    text = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])  # item 2 reads like item 1
    out = transfer_item_item(table, text, np.array([True, True, False]), 1, 1.0)
    np.testing.assert_allclose(out[:, 2], [0.5, 0.0, 0.0])  # item 0 recommends it as it does item 1
    np.testing.assert_allclose(out[2], [0.2, 0.0, 0.0])  # in a history it recommends item 0 like item 1


def test_without_new_items_the_table_is_unchanged():
    table = np.arange(9, dtype=np.float64).reshape(3, 3)
    np.testing.assert_array_equal(transfer_item_item(table, np.eye(3), np.ones(3, bool), 2, 1.0), table)


@pytest.mark.parametrize(
    ("k", "power", "warm", "match"),
    [
        (0, 1.0, [True, False], "expected k >= 1 and power >= 0"),
        (1, -1.0, [True, False], "expected k >= 1 and power >= 0"),
        (1, 1.0, [False, False], "no item has training interactions"),
        (1, 1.0, [True], "must be"),
    ],
)
def test_bad_arguments_are_refused(k, power, warm, match):
    with pytest.raises(ConfigError, match=match):
        neighbour_weights(np.eye(2), np.array(warm), k, power)
