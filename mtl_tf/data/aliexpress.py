"""The AliExpress Searching System data set: built-in schema, tasks and loader.

Search logs of AliExpress (Li et al., CIKM 2020, who released them on
Tianchi), the multi-task benchmark of MTReclib (Zhu et al., KDD 2021; AITM,
Xi et al., KDD 2021) and torch-rechub in its four countries `COUNTRIES`
(Tianchi's fifth, Russia, is in none of them): one row per product shown on a
search result page, no users or items to key on (the itemless ranking mode),
two binary tasks: `click` and `purchase`. A purchase needs a click, so
`purchase` depends on `click` (ESMM's chain, Ma et al., SIGIR 2018): its
output is p(click) * p(purchase | click), MTReclib's "CTCVR".

Files as users download them: Tianchi (https://tianchi.aliyun.com/dataset/74690)
publishes per country a zip of four zipped, headerless CSV files
(`nl_user_train.csv`, `nl_item_train.csv`, ...: user and query features, item
features, the item file's last field the label 0 browse / 1 click / 2
purchase). MTReclib's `data/preprocess.py` joins them into the form every
benchmark reads, and links that processed form for download: one folder
`AliExpress_<CC>` per country holding `train.csv` and `test.csv` (train and
test are split in time). That form is what this module reads, plain or
gzipped: a header line, comma-separated, 82 fields a line: `search_id` (the
search page), `categorical_1` .. `categorical_16` (integer codes),
`numerical_1` .. `numerical_63`, and the labels `click` and `conversion`
(0/0, 1/0 or 1/1: a conversion is a click too). MTReclib's
`datasets/aliexpress.py` reads the same columns by position (`[:, 1:]`, then
`[:, :16]` as int, `[:, 16:-2]` as float32, `[:, -2:]`); here they are read
by the header's names, so the header is checked instead. The numerical values
come scaled (torch-rechub's sample rows lie in [0, 1]), so they are only
standardized. Sources: MTReclib (github.com/easezyc/
Multitask-Recommendation-Library: `data/preprocess.py`,
`datasets/aliexpress.py`, `main.py`, README), torch-rechub
(`examples/ranking/data/aliexpress/aliexpress_test_sample.csv`, the same
header, and `run_aliexpress.py`), the Tianchi page.

The protocol: train on `train.csv` less a seeded random 10% (validation),
test on the whole `test.csv`. MTReclib early-stops on the test file's AUC,
which flatters its table beside numbers selected on validation, as ours are.
`aliexpress_splits` builds the protocol; `data.split = "published"` (the
`aliexpress` preset) applies it to `data.source = "aliexpress"`.

Example:
    >>> data = load_aliexpress("data", country="NL")  # data/AliExpress_NL/
    >>> splits = aliexpress_splits(data, seed=42)
    >>> pool = len(splits.train) + len(splits.validation)  # the train file
    >>> len(splits.validation) == int(0.1 * pool)
    True
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from mtl_tf.data.cleaning import FILE_COLUMN, LENIENT_HINT, LINE_COLUMN
from mtl_tf.data.dataset import RecDataset
from mtl_tf.data.public import locate_files, missing_files_error
from mtl_tf.data.splits import Splits, published_file_split
from mtl_tf.schema import Feature, Schema
from mtl_tf.task_config import TaskConfig

SEARCH_ID = "search_id"
CATEGORICAL = tuple(f"categorical_{i}" for i in range(1, 17))
NUMERICAL = tuple(f"numerical_{i}" for i in range(1, 64))
CLICK, CONVERSION, PURCHASE = "click", "conversion", "purchase"
# The header of MTReclib's train.csv / test.csv, in file order.
COLUMNS = (SEARCH_ID, *CATEGORICAL, *NUMERICAL, CLICK, CONVERSION)
LAYOUT = ("search_id, categorical_1..categorical_16, numerical_1..numerical_63, "
          "click, conversion")
COUNTRIES = ("NL", "ES", "FR", "US")
FILES = {"train": "train.csv", "test": "test.csv"}
# Lines parsed per pandas call: ~100 MB of text, bounded whatever the file size.
CHUNK_ROWS = 200_000
DOWNLOAD = ("Download aliexpress_{cc}_datasets.zip from Tianchi "
            "(https://tianchi.aliyun.com/dataset/74690; see the page for its "
            "terms) and build AliExpress_{cc}/train.csv and test.csv "
            "with MTReclib's data/preprocess.py --dataset_name {cc}, or take the "
            "processed folders its README links (github.com/easezyc/"
            "Multitask-Recommendation-Library).")

# The codes are integers already: int64 columns, looked up by value.
ALIEXPRESS_SCHEMA = Schema(
    tuple(Feature(name, "user", "categorical", dtype="int64") for name in CATEGORICAL)
    + tuple(Feature(name, "user", "numeric") for name in NUMERICAL))
ALIEXPRESS_TASKS = (
    TaskConfig("click", "binary", label=CLICK),
    TaskConfig("purchase", "binary", label=PURCHASE, depends_on="click"),
)
LABELS = {CLICK: "number", PURCHASE: "number"}

# What a chunk is parsed as: a value that does not fit (an empty label, a
# code "3.0", a word) sends the chunk to the slower per-column parse.
_TYPES = {SEARCH_ID: np.int64, **dict.fromkeys(CATEGORICAL, np.int64),
          **dict.fromkeys(NUMERICAL, np.float32), CLICK: np.int64,
          CONVERSION: np.int64}
# Missing numerical values (labels and codes cannot be missing).
_NA_VALUES = ["", "nan", "NaN", "NA", "na", "NULL", "null", "None", "none"]


def aliexpress_files(data_dir: str | os.PathLike, country: str = "NL"
                     ) -> dict[str, Path]:
    """The paths of `train.csv` and `test.csv` (or `.gz`) of one country.

    Args:
        data_dir: the `AliExpress_<CC>` folder itself, or its parent.
        country: one of `COUNTRIES`.

    Raises:
        ValueError: an unknown country, or the directory or a file is missing;
            the message lists what the directory holds.
    """
    root = Path(data_dir).expanduser()
    listing = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    folders = [n for n in listing if n.startswith("AliExpress_")]
    if country not in COUNTRIES:
        held = f" {root} holds {folders}." if folders else ""
        raise ValueError(f"aliexpress: country must be one of {list(COUNTRIES)}. "
                         f"Received: {country!r}.{held}")
    if not root.is_dir():
        raise ValueError(f"aliexpress: data directory not found: {root}; pass the "
                         f"AliExpress_{country} folder (holding train.csv and "
                         f"test.csv) or its parent. " + DOWNLOAD.format(cc=country))
    folder = root / f"AliExpress_{country}"
    if not folder.is_dir():
        folder = root
        if root.name.startswith("AliExpress_") and root.name != f"AliExpress_{country}":
            raise ValueError(f"aliexpress: {root} is the folder of country "
                             f"{root.name.split('_', 1)[1]!r}, but country="
                             f"{country!r}; pass its parent or the matching country.")
    paths, missing = locate_files(FILES, [folder])
    if missing:
        hint = ""
        if any(p.name.endswith(("_user_train.csv", "_datasets.zip"))
               for p in folder.iterdir()):
            hint = ("These look like Tianchi's raw files: MTReclib's "
                    "data/preprocess.py turns them into train.csv / test.csv. ")
        raise missing_files_error("aliexpress", folder, missing,
                                  hint + DOWNLOAD.format(cc=country))
    return paths


def read_aliexpress_file(path: str | os.PathLike, *, lenient: bool = False,
                         max_rows: int = 0, chunk_rows: int = CHUNK_ROWS
                         ) -> tuple[pd.DataFrame, dict[str, int]]:
    """Reads one `train.csv` / `test.csv` into `COLUMNS` plus `_file` / `_line`.

    The text is read `chunk_rows` lines at a time and each chunk parsed by
    pandas with explicit dtypes (int64 `search_id`, codes and labels, float32
    numerics); a chunk holding a value that does not fit is parsed again,
    column by column, to find it. Lines are counted here, not by pandas: its
    C parser pads short lines with NaN and its skipped bad lines lose their
    numbers. Line 1 is the header; blank lines are skipped; an empty
    numerical cell is a missing value, a code "3.0" is 3; labels come out
    float32.

    Args:
        path: the file, gzipped if its name ends in ".gz".
        lenient: skip and count malformed lines and bad labels instead of
            raising.
        max_rows: read only the first this many data lines (0: all).
        chunk_rows: lines parsed per pandas call.

    Returns:
        The frame and the counts `lines` (non-blank data lines read),
        `malformed` (a wrong field count or a value that does not parse) and
        `bad_labels` (click / conversion not 0 or 1, or a conversion without
        a click), the last two skipped when lenient.

    Raises:
        ValueError: a header without the published columns, or (strict) a
            malformed line or bad label, naming the file, line and column.
    """
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    chunks, counts = [], {"lines": 0, "malformed": 0, "bad_labels": 0}
    with opener(path, "rt", encoding="utf-8") as handle:
        header = _header(path, handle.readline())
        number = 1
        while not max_rows or counts["lines"] < max_rows:
            block = list(itertools.islice(handle, chunk_rows))
            if not block:
                break
            kept = [(n, line.rstrip("\r\n")) for n, line in
                    enumerate(block, number + 1) if line.strip()]
            number += len(block)
            if max_rows:
                kept = kept[:max_rows - counts["lines"]]
            if kept:
                chunks.append(_parse(path, header, kept, lenient, counts))
    frame = pd.concat(chunks, ignore_index=True) if chunks else _empty()
    frame[FILE_COLUMN] = path
    return frame, counts


def _header(path: str, line: str) -> list[str]:
    if not line.strip():
        raise ValueError(f"{path}, line 1: no header (the file is empty or starts "
                         f"with a blank line); expected {LAYOUT}.")
    names = [n.strip() for n in line.lstrip("\ufeff").rstrip("\r\n").split(",")]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        shown = line.strip()
        shown = shown if len(shown) <= 2000 else shown[:2000] + "..."
        listed = f"{missing[:8]}" + (f" ({len(missing)} in all)"
                                     if len(missing) > 8 else "")
        other = [n for n in names if n not in COLUMNS]
        unknown = f" Names it has instead: {other[:8]}." if other else ""
        looks = (" The first line looks like data: the file needs MTReclib's header."
                 if names and names[0].isdigit() else "")
        raise ValueError(f"{path}, line 1: the header lacks columns {listed}; "
                         f"expected {LAYOUT} (MTReclib's AliExpress_<CC>/train.csv)."
                         f"{unknown} The header reads: {shown!r}.{looks}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{path}, line 1: the header names columns {twice} more "
                         "than once; keep one of each.")
    return names


def _parse(path: str, header: list[str], kept: list[tuple[int, str]],
           lenient: bool, counts: dict[str, int]) -> pd.DataFrame:
    """One chunk of (line number, text) pairs as a typed frame."""
    numbers = np.fromiter((n for n, _ in kept), np.int64, len(kept))
    fields = np.fromiter((text.count(",") + 1 for _, text in kept), np.int64,
                         len(kept))
    wrong = fields != len(header)
    if wrong.any() and not lenient:
        at = int(np.argmax(wrong))
        raise ValueError(f"{path}, line {numbers[at]}: expected {len(header)} "
                         f"comma-separated fields (as the header), found "
                         f"{fields[at]}. Fix or remove the line, or {LENIENT_HINT}.")
    counts["lines"] += len(kept)
    counts["malformed"] += int(wrong.sum())
    numbers = numbers[~wrong]
    lines = [t for (_, t), bad in zip(kept, wrong) if not bad]
    text = "\n".join(lines)
    if not len(numbers):
        return _empty()
    options = dict(header=None, names=header, usecols=list(COLUMNS),
                   quoting=csv.QUOTE_NONE, keep_default_na=False,
                   na_values=_NA_VALUES)
    try:  # The fast path: every value parses as its dtype.
        frame = pd.read_csv(io.StringIO(text), dtype=_TYPES, **options)
        bad = np.zeros(len(frame), bool)
    except (ValueError, OverflowError):
        inferred = pd.read_csv(io.StringIO(text), low_memory=False, **options)
        frame, bad = _typed(path, header, inferred, lines, numbers, lenient)
    frame[LINE_COLUMN] = numbers
    frame[[CLICK, CONVERSION]] = frame[[CLICK, CONVERSION]].astype(np.float32)
    counts["malformed"] += int(bad.sum())
    frame = frame.loc[~bad].reset_index(drop=True)
    bad_label = _bad_labels(path, frame, lenient)
    counts["bad_labels"] += int(bad_label.sum())
    return frame.loc[~bad_label].reset_index(drop=True)[[*COLUMNS, LINE_COLUMN]]


def _typed(path: str, header: list[str], frame: pd.DataFrame, lines: list[str],
           numbers: np.ndarray, lenient: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """A chunk pandas parsed with inferred dtypes, checked column by column:
    only a column holding a bad value is left as text. The typed frame and
    its bad rows."""
    out, failures = {}, []
    for column in COLUMNS:
        series = frame[column]
        if series.dtype.kind in "biuf":
            values, text = series.to_numpy(np.float64), np.zeros(len(series), bool)
        else:  # `text`: cells neither missing nor a number.
            values = pd.to_numeric(series.astype(str).str.strip(),
                                   errors="coerce").to_numpy(np.float64)
            text = np.isnan(values) & series.notna().to_numpy()
        whole = np.nan_to_num(values)
        if column in NUMERICAL:  # A missing value (an empty cell) is allowed.
            failed = text
        elif column in (CLICK, CONVERSION):  # 0.5 is a bad label, not malformed.
            failed = np.isnan(values)
        else:
            failed = (np.isnan(values) | (whole % 1 != 0)
                      | (np.abs(whole) >= 2.0**63))
        failures.append(failed)
        if column in NUMERICAL or column in (CLICK, CONVERSION):
            out[column] = values.astype(np.float32)
        else:
            out[column] = whole.astype(np.int64)
    failed = np.stack(failures, axis=1)
    bad = failed.any(axis=1)
    if bad.any() and not lenient:
        row = int(np.argmax(bad))
        column = COLUMNS[int(np.argmax(failed[row]))]
        index = header.index(column)
        expected = ("a number (or an empty cell)" if column in NUMERICAL else
                    "0 or 1" if column in (CLICK, CONVERSION) else "an integer code")
        raise ValueError(
            f"{path}, line {numbers[row]}: field {column!r} (field {index + 1} of "
            f"{len(header)}): cannot parse {lines[row].split(',')[index]!r}; "
            f"expected {expected}. Fix the line, or {LENIENT_HINT}.")
    return pd.DataFrame(out), bad


def _empty() -> pd.DataFrame:
    types = {**_TYPES, CLICK: np.float32, CONVERSION: np.float32,
             LINE_COLUMN: np.int64}
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in types.items()})


def _bad_labels(path: str, frame: pd.DataFrame, lenient: bool) -> np.ndarray:
    click, conversion = frame[CLICK].to_numpy(), frame[CONVERSION].to_numpy()
    off = {CLICK: ~np.isin(click, (0.0, 1.0)),
           CONVERSION: ~np.isin(conversion, (0.0, 1.0))}
    unclicked = (conversion == 1.0) & (click == 0.0)
    bad = off[CLICK] | off[CONVERSION] | unclicked
    if bad.any() and not lenient:
        at = int(np.argmax(bad))
        where = f"{path}, line {int(frame[LINE_COLUMN].iloc[at])}"
        column = CLICK if off[CLICK][at] else CONVERSION
        if off[column][at]:
            message = (f"field {column!r}: expected 0 or 1, found "
                       f"{frame[column].iloc[at]:g} (Tianchi's raw label 2, a "
                       "purchase, is click=1, conversion=1 here)")
        else:
            message = ("field 'conversion' is 1 but 'click' is 0: a purchase needs "
                       "a click (the labels are 0/0, 1/0 or 1/1)")
        raise ValueError(f"{where}: {message}. Fix the line, or {LENIENT_HINT}.")
    return bad


def aliexpress_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A raw frame with the labels as the tasks read them: `click` and
    `purchase` (the raw `conversion`), float32 0/1."""
    out = frame.rename(columns={CONVERSION: PURCHASE})
    out[CLICK] = out[CLICK].astype(np.float32)
    out[PURCHASE] = out[PURCHASE].astype(np.float32)
    return out


def load_aliexpress(data_dir: str | os.PathLike, country: str = "NL", *,
                    schema: Schema = ALIEXPRESS_SCHEMA,
                    labels: Mapping[str, str] | None = None,
                    lenient: bool = False, max_rows: int = 0) -> RecDataset:
    """Reads one country's `train.csv` and `test.csv` as one itemless `RecDataset`.

    The train file's rows come first; `_file` names each row's file and
    `_line` its line (`aliexpress_splits` splits on them). `search_id` is
    kept as a column, not a feature.

    Args:
        data_dir: the `AliExpress_<CC>` folder, or its parent.
        country: one of `COUNTRIES`.
        schema: the features to read, a subset of `ALIEXPRESS_SCHEMA`'s
            columns (its kinds and transforms may differ).
        labels: label columns the tasks read (default: `click`, `purchase`).
        lenient: skip and count malformed lines and bad labels in the
            `report` instead of raising.
        max_rows: read only the first this many lines of each file (0: all),
            for smoke runs.

    Raises:
        ValueError: as `aliexpress_files`, a header without the published
            columns, or (strict) a malformed line or bad label, naming the
            file, line and column.
    """
    paths = aliexpress_files(data_dir, country)
    frames, counts = [], {"lines": 0, "malformed": 0, "bad_labels": 0}
    for path in paths.values():
        frame, found = read_aliexpress_file(path, lenient=lenient, max_rows=max_rows)
        frames.append(frame)
        counts = {k: counts[k] + found[k] for k in counts}
    labels = dict(labels or LABELS)
    unused = [c for c in (*CATEGORICAL, *NUMERICAL) if c not in schema
              and c not in labels]
    rows = aliexpress_frame(pd.concat(frames, ignore_index=True).drop(columns=unused))
    data = RecDataset.from_frames(
        schema, rows, labels=labels, name=f"aliexpress-{country}", lenient=lenient,
        sources={"interactions": paths["train"].parent.name})
    data.report.rows_read = counts["lines"]
    data.report.malformed_rows += counts["malformed"]
    data.report.out_of_range_labels += counts["bad_labels"]
    return data


def load_aliexpress_source(data_dir: str | os.PathLike | None, schema: Schema,
                           labels: Mapping[str, str], *, country: str | None = None,
                           lenient: bool = False) -> RecDataset:
    """Both files in one `RecDataset`, for `data.source = "aliexpress"`
    (`aliexpress_protocol` splits it as published).

    `country` None takes it from the folder's name (`--data-dir
    data/AliExpress_US` reads the US files), else "NL".

    Raises:
        ValueError: no `data_dir`, or as `load_aliexpress`.
    """
    if not data_dir:
        raise ValueError("data.source='aliexpress' needs a directory: pass "
                         "--data-dir (data.data_dir) pointing to an AliExpress_<CC> "
                         "folder (train.csv and test.csv) or its parent (NL).")
    if country is None:
        name = Path(data_dir).expanduser().name
        country = name.split("_", 1)[1] if name.startswith("AliExpress_") else "NL"
    return load_aliexpress(data_dir, country, schema=schema,
                           labels=labels or LABELS, lenient=lenient)


def aliexpress_splits(data: RecDataset, *, seed: int = 42,
                      validation_fraction: float = 0.1) -> Splits:
    """The protocol: train on the train file less a seeded random
    `validation_fraction` (validation), test on the whole test file.

    `published_file_split(..., validation_from="train")`: the train file's
    rows are permuted with `np.random.default_rng(seed)` and the first
    `validation_fraction` of them (rounded down) are validation.

    Raises:
        ValueError: `data` lacks the `_file` column `load_aliexpress` writes,
            or holds rows of only one of the two files.
    """
    return published_file_split(data.interactions, FILES["test"],
                                validation_from="train",
                                validation_fraction=validation_fraction, seed=seed)

def aliexpress_protocol(data: RecDataset, seed: int = 42) -> Splits:
    """`aliexpress_splits` with its default validation share, for
    `data.split="published"`."""
    return aliexpress_splits(data, seed=seed)


__all__ = ["ALIEXPRESS_SCHEMA", "ALIEXPRESS_TASKS", "COLUMNS", "COUNTRIES",
           "aliexpress_files", "aliexpress_protocol", "aliexpress_splits",
           "load_aliexpress",
           "load_aliexpress_source", "read_aliexpress_file"]
