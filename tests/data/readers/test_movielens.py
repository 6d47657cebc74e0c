"""Tests for tfrec_llm.data.readers.movielens (RecBole ML-100K, GroupLens ML-100K, ML-1M)."""

import os

import numpy as np
import pytest

from tfrec_llm.data.readers import (
    movielens,
    read_movielens_1m,
    read_movielens_100k,
    read_movielens_raw,
)
from tfrec_llm.errors import DataError

# ----------------------------------------------------------------------------- real RecBole copy


@pytest.fixture(scope="module")
def ml100k():
    return read_movielens_100k()


def test_recbole_ml100k_counts(ml100k):
    assert len(ml100k.interactions) == 100000
    assert len(ml100k.items) == 1682
    assert len(ml100k.users) == 943
    assert ml100k.interactions["user_id"].nunique() == 943
    assert ml100k.interactions["item_id"].nunique() == 1682
    assert not ml100k.report
    assert ml100k.name == "ml-100k"


def test_recbole_ml100k_columns_and_values(ml100k):
    inter = ml100k.interactions
    assert inter.columns.tolist() == ["user_id", "item_id", "timestamp", "rating"]
    assert inter.iloc[0].tolist() == ["196", "242", 881250949, 3.0]
    assert inter["timestamp"].dtype == np.int64 and inter["rating"].dtype == np.float64
    assert sorted(inter["rating"].unique().tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    items = ml100k.items.set_index("item_id")
    assert ml100k.items.columns.tolist() == ["item_id", "title", "year", "genres"]
    assert items.loc["1"].tolist() == ["Toy Story", "1995", "Animation|Children's|Comedy"]
    # The RecBole file is UTF-8 although MovieLens is documented as latin-1.
    assert items.loc["543", "title"] == "Misérables, Les"
    assert ml100k.items["item_id"].tolist()[:3] == ["1", "2", "3"]  # natural order
    users = ml100k.users.set_index("user_id")
    assert users.loc["1"].tolist() == ["24", "M", "technician", "85711"]
    assert ml100k.item_text_fields == ("title", "year", "genres")
    assert ml100k.item_categorical_fields == ("genres",)
    assert ml100k.user_profile_fields == ("age", "gender", "occupation")


def test_missing_recbole_tells_how_to_install(monkeypatch):
    monkeypatch.setattr(movielens.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install --no-deps recbole==1\.2\.1"):
        read_movielens_100k()


# ----------------------------------------------------------------------------- RecBole files


def _recbole_folder(tmp_path, item_lines=("1\tToy Story\t1995\tAnimation Children's Comedy",)):
    (tmp_path / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t1\t5\t874965758\n2\t1\t4\t888550871\n",
        encoding="utf-8",
    )
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        + "\n".join(item_lines)
        + "\n",
        encoding="utf-8",
    )
    (tmp_path / "ml-100k.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        "1\t24\tM\ttechnician\t85711\n2\t53\tF\tother\t94043\n",
        encoding="utf-8",
    )
    return str(tmp_path)


def test_recbole_files_from_folder(tmp_path):
    ds = read_movielens_100k(_recbole_folder(tmp_path))
    assert ds.items.to_dict("list") == {
        "item_id": ["1"],
        "title": ["Toy Story"],
        "year": ["1995"],
        "genres": ["Animation|Children's|Comedy"],
    }
    assert ds.interactions["timestamp"].tolist() == [874965758, 888550871]


def test_recbole_malformed_line(tmp_path):
    folder = _recbole_folder(tmp_path, ("1\tToy Story\t1995\tAnimation", "2\tGoldenEye\t1995"))
    with pytest.raises(
        DataError,
        match=r"ml-100k\.item, line 3: malformed row: expected 4 "
        r"fields separated by '\\t', found 3",
    ):
        read_movielens_100k(folder)
    ds = read_movielens_100k(folder, strict=False)
    assert ds.report.counts["malformed_row"] == 1
    assert ds.items["item_id"].tolist() == ["1"]


def test_missing_file_is_named(tmp_path):
    folder = _recbole_folder(tmp_path)
    os.remove(os.path.join(folder, "ml-100k.user"))
    with pytest.raises(DataError, match=r"MovieLens file 'ml-100k\.user' not found in"):
        read_movielens_100k(folder)


# ----------------------------------------------------------------------------- GroupLens ML-100K


def _flags(*genres):
    return "|".join("1" if g in genres else "0" for g in movielens.ML100K_GENRES)


def _raw_folder(tmp_path, extra_item=None):
    toy_story = _flags("Animation", "Children's", "Comedy")
    items = [
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{toy_story}",
        f"2|Misérables, Les (1995)|01-Jan-1995||http://x|{_flags('Drama', 'Musical')}",
        f"3|unknown|||http://x|{_flags('unknown')}",
        f"4|Land Before Time III: The Time of the Great Giving (1995) (V)|01-Jan-1997||http://x|"
        f"{_flags('Animation')}",
        f"5|Nameless|05-Feb-1996||http://x|{_flags('Drama')}",
    ]
    if extra_item is not None:
        items.append(extra_item)
    (tmp_path / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (tmp_path / "u.data").write_text("1\t1\t5\t874965758\n1\t2\t3\t874965759\n2\t4\t1\t5\n")
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    return str(tmp_path)


def test_raw_ml100k_titles_years_and_genres(tmp_path):
    ds = read_movielens_raw(_raw_folder(tmp_path))
    items = ds.items.set_index("item_id")
    assert items.loc["1"].tolist() == ["Toy Story", "1995", "Animation|Children's|Comedy"]
    assert items.loc["2"].tolist() == ["Misérables, Les", "1995", "Drama|Musical"]  # latin-1
    assert items.loc["3"].tolist() == ["unknown", "", "unknown"]
    assert items.loc["4"].tolist() == [
        "Land Before Time III: The Time of the Great Giving (V)",
        "1995",
        "Animation",
    ]
    assert items.loc["5"].tolist() == ["Nameless", "1996", "Drama"]  # year from release date
    assert ds.users.set_index("user_id").loc["2"].tolist() == ["53", "F", "other", "94043"]
    assert ds.interactions.columns.tolist() == ["user_id", "item_id", "timestamp", "rating"]
    assert ds.name == "ml-100k-raw"


def test_raw_ml100k_malformed_rows(tmp_path):
    folder = _raw_folder(tmp_path, extra_item="6|Short (1990)|||http://x|0|1")
    with pytest.raises(
        DataError,
        match=r"u\.item, line 6: malformed row: expected 24 fields "
        r"separated by '\|', found 7",
    ):
        read_movielens_raw(folder)
    flags = _flags("Drama").replace("1", "x")
    folder = _raw_folder(tmp_path, extra_item=f"6|Odd (1990)|||http://x|{flags}")
    with pytest.raises(
        DataError,
        match=r"u\.item, line 6: malformed row: genre flag 'Drama' "
        r"must be 0 or 1",
    ):
        read_movielens_raw(folder)
    ds = read_movielens_raw(folder, strict=False)
    assert ds.report.counts["malformed_row"] == 1
    assert "6" not in set(ds.items["item_id"])


# ----------------------------------------------------------------------------- ML-1M


def _ml1m_folder(tmp_path, rating_lines=("1::1193::5::978300760", "2::1193::4::978298413")):
    (tmp_path / "ratings.dat").write_text("\n".join(rating_lines) + "\n")
    (tmp_path / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "2::Misérables, Les (1995)::Drama|Musical\n".encode("latin-1")
    )
    (tmp_path / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    return str(tmp_path)


def test_ml1m_reader(tmp_path):
    ds = read_movielens_1m(_ml1m_folder(tmp_path))
    assert ds.name == "ml-1m"
    items = ds.items.set_index("item_id")
    assert ds.items["item_id"].tolist() == ["2", "1193"]
    assert items.loc["1193"].tolist() == ["One Flew Over the Cuckoo's Nest", "1975", "Drama"]
    assert items.loc["2"].tolist() == ["Misérables, Les", "1995", "Drama|Musical"]
    assert ds.users.to_dict("list") == {
        "user_id": ["1", "2"],
        "age": ["1", "56"],
        "gender": ["F", "M"],
        "occupation": ["K-12 student", "self-employed"],
        "zip_code": ["48067", "70072"],
    }
    assert ds.interactions["timestamp"].tolist() == [978300760, 978298413]
    assert ds.interactions["rating"].tolist() == [5.0, 4.0]


def test_ml1m_malformed_and_bad_values(tmp_path):
    folder = _ml1m_folder(tmp_path, ("1::1193::5::978300760", "2::1193::4", "2::1193::x::1"))
    with pytest.raises(
        DataError,
        match=r"ratings\.dat, line 2: malformed row: expected 4 "
        r"fields separated by '::', found 3",
    ):
        read_movielens_1m(folder)
    ds = read_movielens_1m(folder, strict=False)
    assert dict(ds.report.counts) == {"malformed_row": 1, "bad_rating": 1}
    assert len(ds.interactions) == 1


def test_split_title_year():
    import pandas as pd

    titles, years = movielens.split_title_year(
        pd.Series(["Toy Story (1995)", "1-900 (1994)", "Brazil", "Se7en (1995) "]),
        pd.Series(["", "", "01-Jan-1985", ""]),
    )
    assert titles == ["Toy Story", "1-900", "Brazil", "Se7en"]
    assert years == ["1995", "1994", "1985", "1995"]
