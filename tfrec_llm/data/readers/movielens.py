"""Readers for MovieLens: ML-100K (RecBole atomic files or GroupLens originals) and ML-1M.

All three produce the same canonical columns (CONTRACTS.md): items ``item_id, title, year,
genres`` (genres ``"|"``-joined), users ``user_id, age, gender, occupation, zip_code``.
"""

from __future__ import annotations

import importlib.util
import os
import re

import numpy as np
import pandas as pd

from tfrec_llm.data.readers.canonical import build_dataset
from tfrec_llm.data.readers.delimited import table_from_text
from tfrec_llm.data.readers.issues import IssueLog
from tfrec_llm.data.readers.table import LOC, RawTable, decode, drop_rows, rename_columns
from tfrec_llm.data.schema import ITEM_ID, MULTI_VALUE_SEP, RATING, TIMESTAMP, USER_ID, RecDataset
from tfrec_llm.errors import DataError

#: Genre order of the 19 flags in GroupLens ``u.item``.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
#: ML-1M ``users.dat`` occupation codes (from the ML-1M README).
ML1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
ITEM_TEXT_FIELDS = ("title", "year", "genres")
ITEM_CATEGORICAL_FIELDS = ("genres",)
USER_PROFILE_FIELDS = ("age", "gender", "occupation")
RECBOLE_INSTALL = "pip install --no-deps recbole==1.2.1"

_INTERACTIONS = (USER_ID, ITEM_ID, RATING, TIMESTAMP)
_USERS_100K = (USER_ID, "age", "gender", "occupation", "zip_code")
_TITLE_YEAR = re.compile(r"\s*\((\d{4})\)")
_DATE_YEAR = re.compile(r"(\d{4})\s*$")
# MovieLens text is documented as latin-1, but the RecBole copy is UTF-8: try UTF-8 first
# (latin-1 bytes of accented letters are almost never valid UTF-8), then latin-1.
_ENCODING, _FALLBACK = "utf-8", "latin-1"


def _file(folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        present = sorted(os.listdir(folder)) if os.path.isdir(folder) else "folder missing"
        raise DataError(f"MovieLens file {name!r} not found in {folder} (found: {present}).")
    return path


def _load(path: str, sep: str, log: IssueLog, names: tuple[str, ...] | None = None) -> RawTable:
    return table_from_text(path, decode(path, _ENCODING, _FALLBACK), sep, log, names)


def split_title_year(raw: pd.Series, dates: pd.Series | None = None) -> tuple[list[str], list[str]]:
    """Splits ``"Toy Story (1995)"`` into ``("Toy Story", "1995")``.

    The last ``(dddd)`` in the title is the year; without one the year comes from the last four
    digits of ``dates`` (``"01-Jan-1995"``) when given, else it is ``""``.

    Args:
        raw: ``[n]`` titles with the year.
        dates: Optional ``[n]`` release dates.

    Returns:
        ``(titles, years)`` lists of ``str``.
    """
    titles: list[str] = []
    years: list[str] = []
    date_values = [""] * len(raw) if dates is None else list(dates)
    for text, date in zip(raw.tolist(), date_values, strict=True):
        matches = list(_TITLE_YEAR.finditer(text))
        if matches:
            last = matches[-1]
            titles.append((text[: last.start()] + text[last.end() :]).strip())
            years.append(last.group(1))
        else:
            found = _DATE_YEAR.search(date)
            titles.append(text.strip())
            years.append(found.group(1) if found else "")
    return titles, years


def _set_movie_columns(items: RawTable, titles: list[str], years: list[str], genres: pd.Series) -> None:
    """Replaces a GroupLens items table by the canonical ``item_id, title, year, genres``."""
    items.frame = pd.DataFrame(
        {
            ITEM_ID: items.frame[ITEM_ID],
            "title": pd.Series(titles, dtype="str"),
            "year": pd.Series(years, dtype="str"),
            "genres": genres,
            LOC: items.frame[LOC],
        }
    )


def _finish(name: str, inter: RawTable, items: RawTable, users: RawTable, log: IssueLog) -> RecDataset:
    return build_dataset(
        name,
        inter,
        items,
        users,
        log=log,
        item_text_fields=ITEM_TEXT_FIELDS,
        item_categorical_fields=ITEM_CATEGORICAL_FIELDS,
        user_profile_fields=USER_PROFILE_FIELDS,
    )


def recbole_ml100k_folder() -> str:
    """The ``ml-100k`` folder inside the installed ``recbole`` wheel (never imports recbole).

    Raises:
        DataError: If the wheel is not installed, with the install command.
    """
    spec = importlib.util.find_spec("recbole")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = os.path.join(location, "dataset_example", "ml-100k")
        if os.path.isfile(os.path.join(folder, "ml-100k.inter")):
            return folder
    raise DataError(
        "MovieLens-100K was not found: it ships inside the recbole wheel. Install it with "
        f"`{RECBOLE_INSTALL}` (no PyTorch needed; tfrec_llm never imports recbole), or pass "
        "folder= pointing at a folder with ml-100k.inter/.item/.user."
    )


def read_movielens_100k(folder: str | None = None, strict: bool = True) -> RecDataset:
    """Reads MovieLens-100K from RecBole atomic files (``ml-100k.inter``, ``.item``, ``.user``).

    Headers like ``user_id:token`` lose their ``:type`` suffix; ``movie_title`` -> ``title``,
    ``release_year`` -> ``year``, ``class`` ("Animation Children's Comedy") -> ``genres``
    ("Animation|Children's|Comedy"). Text is decoded as UTF-8, falling back to latin-1: the
    RecBole 1.2.1 copy is UTF-8 ("Misérables, Les"), although MovieLens is documented as
    latin-1. Values are kept verbatim (the copy has e.g. year "unkonwn" for item 267).

    Args:
        folder: Folder holding the three files; ``None`` uses the copy inside the installed
            ``recbole`` wheel (located with ``importlib.util.find_spec``).
        strict: Raise at the first problem (``True``) or drop and count bad rows.

    Returns:
        ``RecDataset`` named ``"ml-100k"``: 100,000 interactions, 1,682 items, 943 users for
        the RecBole copy.

    Raises:
        DataError: When the files are missing (with the install command) or malformed.
    """
    folder = recbole_ml100k_folder() if folder is None else os.fspath(folder)
    log = IssueLog(strict)
    tables = []
    for suffix in ("inter", "item", "user"):
        table = _load(_file(folder, f"ml-100k.{suffix}"), "\t", log)
        renames = {c: c.split(":", 1)[0] for c in table.frame.columns if c != LOC}
        renames = {
            k: {"movie_title": "title", "release_year": "year", "class": "genres"}.get(v, v)
            for k, v in renames.items()
        }
        rename_columns(table, renames)
        tables.append(table)
    inter, items, users = tables
    if "genres" in items.frame.columns:
        items.frame["genres"] = items.frame["genres"].str.split().str.join(MULTI_VALUE_SEP)
    return _finish("ml-100k", inter, items, users, log)


def read_movielens_raw(folder: str, strict: bool = True) -> RecDataset:
    """Reads the original GroupLens ML-100K files ``u.data``, ``u.item``, ``u.user``.

    ``u.item`` (``|``-separated, latin-1) has 5 fields and 19 genre flags (``ML100K_GENRES``
    order); a flag other than ``0``/``1`` makes the row malformed.

    Args:
        folder: The unpacked ``ml-100k`` folder.
        strict: Raise at the first problem (``True``) or drop and count bad rows.

    Returns:
        ``RecDataset`` named ``"ml-100k-raw"`` with the same columns as
        :func:`read_movielens_100k`.

    Raises:
        DataError: When a file is missing or malformed.
    """
    folder = os.fspath(folder)
    log = IssueLog(strict)
    inter = _load(_file(folder, "u.data"), "\t", log, _INTERACTIONS)
    items = _load(
        _file(folder, "u.item"),
        "|",
        log,
        (ITEM_ID, "raw_title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES),
    )
    users = _load(_file(folder, "u.user"), "|", log, _USERS_100K)
    flags = items.frame[list(ML100K_GENRES)]
    valid = flags.isin(["0", "1"]).to_numpy()
    bad = ~valid.all(axis=1)
    if bad.any():
        first_bad = [ML100K_GENRES[int(np.argmin(row))] for row in valid[bad]]
        log.add(
            "malformed_row",
            items,
            None,
            items.frame.loc[bad],
            first_bad,
            "malformed row: genre flag {value!r} must be 0 or 1",
        )
        drop_rows(items, bad)
        flags = flags.loc[~bad].reset_index(drop=True)
    on = flags.to_numpy() == "1"
    genres = [MULTI_VALUE_SEP.join(g for g, f in zip(ML100K_GENRES, row, strict=True) if f) for row in on]
    titles, years = split_title_year(items.frame["raw_title"], items.frame["release_date"])
    _set_movie_columns(items, titles, years, pd.Series(genres, dtype="str"))
    return _finish("ml-100k-raw", inter, items, users, log)


def read_movielens_1m(folder: str, strict: bool = True) -> RecDataset:
    """Reads MovieLens-1M ``ratings.dat``, ``movies.dat``, ``users.dat`` (``::``, latin-1).

    Occupation codes become names (``ML1M_OCCUPATIONS``); ``age`` keeps the ML-1M age-group
    code (``"1"``, ``"18"``, ..., ``"56"``).

    Args:
        folder: The unpacked ``ml-1m`` folder.
        strict: Raise at the first problem (``True``) or drop and count bad rows.

    Returns:
        ``RecDataset`` named ``"ml-1m"``.

    Raises:
        DataError: When a file is missing or malformed.
    """
    folder = os.fspath(folder)
    log = IssueLog(strict)
    inter = _load(_file(folder, "ratings.dat"), "::", log, _INTERACTIONS)
    items = _load(_file(folder, "movies.dat"), "::", log, (ITEM_ID, "raw_title", "genres"))
    users = _load(_file(folder, "users.dat"), "::", log, (USER_ID, "gender", "age", "occupation", "zip_code"))
    titles, years = split_title_year(items.frame["raw_title"])
    _set_movie_columns(items, titles, years, items.frame["genres"])
    codes = {str(i): name for i, name in enumerate(ML1M_OCCUPATIONS)}
    occupation = users.frame["occupation"]
    users.frame["occupation"] = occupation.map(lambda c: codes.get(c.strip(), c)).astype("str")
    users.frame = users.frame[[USER_ID, "age", "gender", "occupation", "zip_code", LOC]]
    return _finish("ml-1m", inter, items, users, log)
