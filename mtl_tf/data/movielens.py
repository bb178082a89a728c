"""Loads an extracted MovieLens folder (ml-100k or ml-1m) into a `RecDataset`.

Values are mapped exactly as `tensorflow_datasets` builds `movielens/100k-ratings`
and `movielens/1m-ratings` (`tensorflow_datasets/structured/movielens_parsing.py`),
so a model sees the same features whether it reads local files or TFDS:

* `movie_genres`: ids of the TFDS `ClassLabel`, i.e. positions in `features.GENRES`
  (alphabetical, "Unknown" = 17), with "Children's" read as "Children".
* `bucketized_user_age`: ml-100k ages go to the largest of 1/18/25/35/45/50/56 not
  above them (under 18 -> 1); ml-1m ages already are these codes.
* `user_occupation_label`: ids in `TFDS_OCCUPATIONS`; raw ml-100k / ml-1m
  occupations are merged into these labels the way TFDS does.
* `user_gender`: True for "M" (male), False for "F".

Parsing is vectorised (pandas C reader on the whole file) and still reports the first
bad line of a file by number; `lenient=True` skips and counts bad lines instead.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mtl_tf.data import movielens_schema as F
from mtl_tf.data.cleaning import LENIENT_HINT, LINE_COLUMN
from mtl_tf.data.dataset import CleaningReport, RecDataset
from mtl_tf.data.movielens_cleaning import (
    clean_interactions,
    drop_unknown_references,
)

# Class names of TFDS movielens `user_occupation_label`, in id order (the genre
# names are `features.GENRES`).
TFDS_OCCUPATIONS = (
    "academic/educator", "artist", "clerical/admin", "customer service",
    "doctor/health care", "entertainment", "executive/managerial", "farmer",
    "homemaker", "lawyer", "librarian", "other/not specified", "programmer", "retired",
    "sales/marketing", "scientist", "self-employed", "student", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)
AGE_BUCKETS = (1, 18, 25, 35, 45, 50, 56)

# ml-100k u.item genre flag columns, in u.genre order (TFDS spelling).
_ML100K_GENRES = (
    "Unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
_ML100K_OCCUPATIONS = {
    "administrator": "clerical/admin", "artist": "artist",
    "doctor": "doctor/health care", "educator": "academic/educator",
    "engineer": "technician/engineer", "entertainment": "entertainment",
    "executive": "executive/managerial", "healthcare": "doctor/health care",
    "homemaker": "homemaker", "lawyer": "lawyer", "librarian": "librarian",
    "marketing": "sales/marketing", "none": "other/not specified",
    "other": "other/not specified", "programmer": "programmer", "retired": "retired",
    "salesman": "sales/marketing", "scientist": "scientist", "student": "student",
    "technician": "technician/engineer", "writer": "writer",
}
# ml-1m users.dat occupation codes 0..20; TFDS merges both student codes.
_ML1M_OCCUPATIONS = (
    "other/not specified", "academic/educator", "artist", "clerical/admin",
    "student", "customer service", "doctor/health care", "executive/managerial",
    "farmer", "homemaker", "student", "lawyer", "programmer", "retired",
    "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)

# File names per layout: ratings, items, users.
LAYOUTS = {
    "ml-100k": ("u.data", "u.item", "u.user"),
    "ml-1m": ("ratings.dat", "movies.dat", "users.dat"),
}
_SEPARATORS = {"ml-100k": ("\t", "|", "|"), "ml-1m": ("::", "::", "::")}
_RATING_FIELDS = (F.USER_ID, F.ITEM_ID, F.RATING, F.TIMESTAMP)
_DIGITS = r"\d{1,18}"
_SEP = "\x1f"  # ASCII unit separator: what every file separator is rewritten to.


def detect_layout(path: str | os.PathLike) -> str:
    """Returns "ml-100k" or "ml-1m" for an extracted MovieLens folder.

    Args:
        path: the folder holding the MovieLens files.

    Raises:
        ValueError: the folder does not exist or holds neither layout; the message
            lists the files found and the files expected.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(
            f"data directory not found: {root}; pass --data-dir pointing to an "
            "extracted ml-100k or ml-1m folder.")
    found = sorted(p.name for p in root.iterdir())
    for layout, names in LAYOUTS.items():
        if names[0] in found:
            missing = [n for n in names if n not in found]
            if not missing:
                return layout
            raise ValueError(
                f"{root} looks like {layout} ({names[0]} found) but is missing "
                f"{missing}; found files {found}. Re-extract the {layout} archive.")
    expected = "; ".join(f"{k}: {', '.join(v)}" for k, v in LAYOUTS.items())
    nested = [n for n in found if n in LAYOUTS and (root / n).is_dir()]
    hint = f" Did you mean {root / nested[0]}?" if nested else ""
    raise ValueError(
        f"unrecognised MovieLens layout in {root}: found files {found[:30]}; "
        f"expected the files of ml-100k or ml-1m ({expected}). Pass --data-dir "
        f"pointing to an extracted ml-100k or ml-1m folder.{hint}")


def load_movielens_dir(path: str | os.PathLike, *, lenient: bool = False,
                       like_threshold: float = 4.0) -> RecDataset:
    """Reads an extracted ml-100k or ml-1m folder in the TFDS movielens schema.

    Example:
        >>> data = load_movielens_dir("data/ml-100k")
        >>> data.name, len(data.interactions), data.num_items, data.num_users
        ('ml-100k', 100000, 1682, 943)

    Args:
        path: the folder holding `u.data`/`u.item`/`u.user` (ml-100k) or
            `ratings.dat`/`movies.dat`/`users.dat` (ml-1m); the layout is detected.
        lenient: skip and count malformed lines, bad ratings and unknown ids in the
            dataset's `report` instead of raising.
        like_threshold: the `like` label is rating >= this.

    Returns:
        A `RecDataset` named after the layout; `report.rows_read` counts the
        non-blank lines of the ratings file.

    Raises:
        ValueError: missing folder, unknown layout, or (strict mode) a malformed line,
            bad rating or unknown id; the message names file, line, field and value.
    """
    root = Path(path).expanduser()
    layout = detect_layout(root)
    ratings_file, items_file, users_file = (root / n for n in LAYOUTS[layout])
    ratings_sep, items_sep, users_sep = _SEPARATORS[layout]
    report = CleaningReport()
    parse_items, parse_users = ((_items_100k, _users_100k) if layout == "ml-100k"
                                else (_items_1m, _users_1m))
    items = parse_items(_Reader(items_file, items_sep, report, lenient))
    users = parse_users(_Reader(users_file, users_sep, report, lenient))

    reader = _Reader(ratings_file, ratings_sep, report, lenient)
    frame = reader.read(_RATING_FIELDS, ints=(F.TIMESTAMP,), floats=(F.RATING,))
    report.rows_read = reader.rows_read
    frame = reader.reject(frame, [
        _id_check(frame, F.USER_ID), _id_check(frame, F.ITEM_ID),
        reader.float_check(frame, F.RATING), reader.int_check(frame, F.TIMESTAMP)])
    interactions = drop_unknown_references(
        frame, items, users, report, lenient, source=str(ratings_file))
    interactions = clean_interactions(
        interactions, report, lenient=lenient, source=str(ratings_file))
    interactions = F.add_like_label(interactions, like_threshold)
    return RecDataset(F.MOVIELENS_SCHEMA, interactions, items, users, name=layout,
                      report=report)


@dataclasses.dataclass
class _Check:
    """Rows where `field` is invalid, what they held and what was expected."""

    field: str
    bad: np.ndarray
    received: pd.Series
    expected: str


def _id_check(frame: pd.DataFrame, field: str) -> _Check:
    bad = ~frame[field].str.fullmatch(_DIGITS).to_numpy(bool)
    return _Check(field, bad, frame[field], "a non-negative integer id")


def _in_check(frame: pd.DataFrame, field: str, allowed, expected: str) -> _Check:
    bad = ~frame[field].isin(allowed).to_numpy(bool)
    return _Check(field, bad, frame[field], expected)


def _duplicate_check(frame: pd.DataFrame, field: str) -> _Check:
    bad = frame[field].duplicated(keep="first").to_numpy(bool)
    return _Check(field, bad, frame[field], "an id not already defined above")


@dataclasses.dataclass
class _Reader:
    """Reads one delimited latin-1 file as columns of text, tracking line numbers."""

    path: Path
    sep: str
    report: CleaningReport
    lenient: bool
    rows_read: int = 0
    _body: bytes = b""
    _fields: tuple = ()

    def read(self, fields: tuple, ints: tuple = (), floats: tuple = ()) -> pd.DataFrame:
        """Splits the file into `fields` plus `_line`; numbers parsed where clean.

        Lines with the wrong number of fields raise (strict) or are counted as
        malformed (lenient); blank lines are ignored. Fields named in `ints` /
        `floats` come back as numbers when the whole column parses, else as text
        for `int_check` / `float_check` to pinpoint the bad line.
        """
        raw = self.path.read_bytes().replace(b"\r\n", b"\n")
        raw = raw.replace(self.sep.encode("latin-1"), _SEP.encode("latin-1"))
        # Line i is raw[starts[i]:ends[i]] (latin-1: one byte per character).
        codes = np.frombuffer(raw, np.uint8)
        ends = np.append(np.flatnonzero(codes == ord("\n")), len(raw))
        starts = np.concatenate([[0], ends[:-1] + 1])
        seps = np.flatnonzero(codes == ord(_SEP))
        counts = np.searchsorted(seps, ends) - np.searchsorted(seps, starts)
        wrong = np.flatnonzero(counts != len(fields) - 1).tolist()

        def line(i: int) -> str:
            return raw[starts[i]:ends[i]].decode("latin-1").replace(_SEP, self.sep)

        blank = {i for i in wrong if not line(i).strip(" \r\n\v\f")}
        malformed = [i for i in wrong if i not in blank]
        self.rows_read = len(ends) - len(blank)
        if malformed and not self.lenient:
            i = malformed[0]
            raise ValueError(
                f"{self.path}, line {i + 1}: expected {len(fields)} fields "
                f"({self.sep.join(fields)}) separated by {self.sep!r}, found "
                f"{counts[i] + 1}: received {line(i)[:200]!r}. "
                f"Fix or delete the line, or {LENIENT_HINT}.")
        self.report.malformed_rows += len(malformed)
        # Cut the skipped lines out: keep the runs of good lines between them.
        runs, previous = [], 0
        for i in wrong + [len(ends)]:
            if i > previous:
                runs.append(raw[starts[previous]:ends[i - 1]])
            previous = i + 1
        self._body = b"\n".join(runs)
        line_numbers = np.delete(np.arange(1, len(ends) + 1), wrong)
        self._fields = fields
        text_fields = [f for f in fields if f not in ints + floats]
        if not len(line_numbers):  # Nothing left to parse: an empty table.
            empty = pd.DataFrame({f: pd.Series([], dtype=str) for f in fields})
            empty[LINE_COLUMN] = line_numbers
            return empty
        frame = self._parse(text_fields, numeric=True)
        for field in ints + floats:
            wanted = "i" if field in ints else "if"
            if len(frame) and frame[field].dtype.kind not in wanted:
                frame[field] = self._parse([field], numeric=False)[field]
        frame[LINE_COLUMN] = line_numbers
        return frame

    def _parse(self, text_fields: list, numeric: bool) -> pd.DataFrame:
        usecols = None if numeric else text_fields
        return pd.read_csv(
            io.BytesIO(self._body), encoding="latin-1", sep=_SEP, header=None,
            names=list(self._fields), usecols=usecols,
            dtype={f: str for f in text_fields}, quoting=csv.QUOTE_NONE,
            keep_default_na=False, na_filter=False, lineterminator="\n", engine="c")

    def int_check(self, frame: pd.DataFrame, field: str) -> _Check:
        """Converts `field` to int64 in place; flags text that is not an integer."""
        column = frame[field]
        if column.dtype.kind == "i":
            bad = np.zeros(len(frame), bool)
        else:
            bad = ~column.str.fullmatch(_DIGITS).to_numpy(bool)
            frame[field] = pd.to_numeric(column.where(~bad, "0")).astype(np.int64)
        return _Check(field, bad, column, "a non-negative integer")

    def float_check(self, frame: pd.DataFrame, field: str) -> _Check:
        """Converts `field` to float64 in place; an empty field or "nan" is NaN."""
        column = frame[field]
        if column.dtype.kind in "if":
            bad = np.zeros(len(frame), bool)
            values = column.astype(np.float64)
        else:
            values = pd.to_numeric(column, errors="coerce").astype(np.float64)
            missing = column.str.strip().str.lower().isin(["", "nan"])
            bad = (values.isna() & ~missing).to_numpy(bool)
        frame[field] = values
        return _Check(field, bad, column, "a number")

    def reject(self, frame: pd.DataFrame, checks: list[_Check]) -> pd.DataFrame:
        """Raises on the first line failing a check (strict) or drops them all."""
        bad = np.zeros(len(frame), bool)
        pos, check = len(frame), None
        for candidate in checks:
            if candidate.bad.any():
                bad |= candidate.bad
                first = int(np.argmax(candidate.bad))
                if first < pos:
                    pos, check = first, candidate
        if check is None:
            return frame
        if not self.lenient:
            line = int(frame[LINE_COLUMN].iloc[pos])
            received = check.received.iloc[pos]
            received = received.item() if hasattr(received, "item") else received
            raise ValueError(
                f"{self.path}, line {line}: cannot parse field '{check.field}': "
                f"received {received!r}; expected {check.expected}. "
                f"Fix or delete the line, or {LENIENT_HINT}.")
        self.report.malformed_rows += int(bad.sum())
        return frame.loc[~bad].reset_index(drop=True)


def _items_table(frame: pd.DataFrame, genres: list) -> pd.DataFrame:
    return pd.DataFrame({
        F.ITEM_ID: frame[F.ITEM_ID].astype(str).to_numpy(),
        F.ITEM_TITLE: frame[F.ITEM_TITLE].astype(str).to_numpy(),
        F.ITEM_GENRES: pd.Series(genres, dtype=object).to_numpy(),
    })


def _users_table(frame: pd.DataFrame, age, male, occupation) -> pd.DataFrame:
    return pd.DataFrame({
        F.USER_ID: frame[F.USER_ID].astype(str).to_numpy(),
        F.USER_AGE: np.asarray(age, np.float32),
        F.USER_GENDER: np.asarray(male, bool),
        F.USER_OCCUPATION: np.asarray(occupation, np.int64),
        F.USER_ZIP: frame[F.USER_ZIP].astype(str).to_numpy(),
    })


def _items_100k(reader: _Reader) -> pd.DataFrame:
    flags = tuple(f"genre_{g}" for g in _ML100K_GENRES)
    fields = (F.ITEM_ID, F.ITEM_TITLE, "release_date", "video_release_date", "imdb_url")
    frame = reader.read(fields + flags)
    checks = [_id_check(frame, F.ITEM_ID), _duplicate_check(frame, F.ITEM_ID)]
    checks += [_in_check(frame, flag, ("0", "1"),
                         f"a genre flag 0 or 1 ({F.ITEM_GENRES}: {genre})")
               for flag, genre in zip(flags, _ML100K_GENRES)]
    frame = reader.reject(frame, checks)
    ids = np.array([F.GENRES.index(g) for g in _ML100K_GENRES])
    on = frame[list(flags)].to_numpy() == "1"
    return _items_table(frame, [tuple(int(i) for i in ids[row]) for row in on])


def _items_1m(reader: _Reader) -> pd.DataFrame:
    frame = reader.read((F.ITEM_ID, F.ITEM_TITLE, F.ITEM_GENRES))
    ids = {name: i for i, name in enumerate(F.GENRES)}
    ids["Children's"] = ids["Children"]  # TFDS reads ml-1m's spelling as "Children".
    genres = [tuple(ids.get(g, -1) for g in text.split("|"))
              for text in frame[F.ITEM_GENRES]]
    unknown = np.array([-1 in g for g in genres], bool)
    checks = [_id_check(frame, F.ITEM_ID), _duplicate_check(frame, F.ITEM_ID),
              _Check(F.ITEM_GENRES, unknown, frame[F.ITEM_GENRES],
                     f"'|'-separated genre names from {list(F.GENRES)}")]
    frame = reader.reject(frame, checks)
    return _items_table(frame, [g for g, u in zip(genres, unknown) if not u])


def _users_100k(reader: _Reader) -> pd.DataFrame:
    frame = reader.read((F.USER_ID, "age", F.USER_GENDER, "occupation", F.USER_ZIP),
                        ints=("age",))
    frame = reader.reject(frame, [
        _id_check(frame, F.USER_ID), _duplicate_check(frame, F.USER_ID),
        reader.int_check(frame, "age"),
        _in_check(frame, F.USER_GENDER, ("M", "F"), "M or F"),
        _in_check(frame, "occupation", tuple(_ML100K_OCCUPATIONS),
                  f"one of {sorted(_ML100K_OCCUPATIONS)}")])
    # The largest bucket not above the age; under 18 -> 1 (as TFDS does).
    index = np.searchsorted(AGE_BUCKETS[1:], frame["age"].to_numpy(), side="right")
    occupation = [TFDS_OCCUPATIONS.index(_ML100K_OCCUPATIONS[o])
                  for o in frame["occupation"]]
    return _users_table(frame, np.asarray(AGE_BUCKETS)[index],
                        frame[F.USER_GENDER] == "M", occupation)


def _users_1m(reader: _Reader) -> pd.DataFrame:
    frame = reader.read((F.USER_ID, F.USER_GENDER, "age", "occupation", F.USER_ZIP),
                        ints=("age", "occupation"))
    checks = [_id_check(frame, F.USER_ID), _duplicate_check(frame, F.USER_ID),
              _in_check(frame, F.USER_GENDER, ("M", "F"), "M or F"),
              reader.int_check(frame, "age"), reader.int_check(frame, "occupation")]
    checks += [
        _Check("age", ~frame["age"].isin(AGE_BUCKETS).to_numpy(bool), frame["age"],
               f"an ml-1m age code in {list(AGE_BUCKETS)}"),
        _Check("occupation", ~frame["occupation"].between(0, 20).to_numpy(bool),
               frame["occupation"], "an ml-1m occupation code in 0..20")]
    frame = reader.reject(frame, checks)
    occupation = [TFDS_OCCUPATIONS.index(_ML1M_OCCUPATIONS[o])
                  for o in frame["occupation"]]
    return _users_table(frame, frame["age"], frame[F.USER_GENDER] == "M", occupation)
