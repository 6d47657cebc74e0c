"""Tests for tfrec_llm.data.catalog: integer tables for the models."""

import numpy as np

from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split


def test_cold_items_map_to_the_oov_row(tiny_dataset):
    split = make_split(tiny_dataset, "cold-items")
    catalog = build_catalog(tiny_dataset, split)
    cold = catalog.item_index(split.cold_item_ids)
    assert (catalog.item_id_index[cold] == 0).all()
    warm = np.setdiff1d(np.arange(catalog.num_items), cold)
    assert (catalog.item_id_index[warm] > 0).all()
    assert len(set(catalog.item_id_index[warm])) == len(warm)  # one row each


def test_cold_users_keep_their_profile_but_not_an_id(tiny_dataset):
    split = make_split(tiny_dataset, "cold-users")
    catalog = build_catalog(tiny_dataset, split)
    rows = catalog.user_index(split.cold_user_ids)
    assert (catalog.user_id_index[rows] == 0).all()
    assert (catalog.profile[rows] > 0).all()
    unknown = catalog.user_index(["no-such-user"])[0]
    assert unknown == catalog.num_users and (catalog.profile[unknown] == 0).all()


def test_categories_multi_hot_and_popularity(tiny_dataset):
    split = make_split(tiny_dataset, "loo")
    catalog = build_catalog(tiny_dataset, split)
    assert catalog.category_names == ("genres=Action", "genres=Comedy", "genres=Drama", "genres=Sci-Fi")
    first = catalog.item_index(["1"])[0]
    np.testing.assert_array_equal(catalog.categories[first], [1, 0, 0, 1])
    assert catalog.popularity.sum() == len(split.train)


def test_pad_histories_keeps_the_most_recent_and_drops_unknown_ids(tiny_dataset):
    split = make_split(tiny_dataset, "loo")
    catalog = build_catalog(tiny_dataset, split)
    padded = catalog.pad_histories(
        [np.array(["1", "2", "3"]), np.array(["zzz"]), np.array([], dtype=object)], 2
    )
    np.testing.assert_array_equal(padded, [catalog.item_index(["2", "3"]), [-1, -1], [-1, -1]])


def test_pad_histories_equals_a_row_by_row_reference(tiny_dataset):
    # one lookup for all rows (catalog.pad_histories) must place each row's items as a
    # lookup per row does: last `length` ids, unknown ones dropped, right-aligned
    split = make_split(tiny_dataset, "loo")
    catalog = build_catalog(tiny_dataset, split)
    rng = np.random.default_rng(0)
    ids = list(catalog.item_ids) + ["unknown-a", "unknown-b"]
    histories = [list(rng.choice(ids, size=int(rng.integers(0, 9)))) for _ in range(50)]
    histories += [[], ["unknown-a"] * 4, list(catalog.item_ids[:3])]
    length = 5
    expected = np.full((len(histories), length), -1, np.int32)
    for row, hist in enumerate(histories):
        idx = [int(catalog.item_index([item])[0]) for item in hist[-length:]]
        idx = [i for i in idx if i >= 0]
        if idx:
            expected[row, -len(idx) :] = idx
    np.testing.assert_array_equal(catalog.pad_histories(histories, length), expected)
    assert catalog.pad_histories([], length).shape == (0, length)
    assert catalog.pad_histories([[], []], length).tolist() == [[-1] * length] * 2
