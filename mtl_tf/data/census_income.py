"""The UCI Census-Income (KDD) data set: built-in schema, tasks and loader.

The MMoE paper's first real-data setting (Ma et al., KDD 2018, section 5.2):
one row per person, no users or items to key on (the itemless ranking mode),
two binary tasks: `income` (total person income above $50K) and `marital`
(never married). Marital status is the second task's label, so it is taken out
of the inputs; the instance weight is a survey weight, kept as a column but
never a feature.

Files as published (`census-income.data`, `census-income.test`, optionally
gzipped): no header, 42 fields per line separated by ", ", the last one the
income class "- 50000." or "50000+.". Column names are the snake_case names
every public MMoE implementation uses (after the 1010data tutorial), in the
order of `census-income.names`.

The published protocol (torch-rechub `examples/ranking`, after the paper):
train on `census-income.data`; split `census-income.test` 1:1 into validation
and test. `census_income_protocol` builds exactly that (`data.split =
"published"`, as in the `census_income` preset).

Example:
    >>> parts = load_census_income("data/census-income")
    >>> data, splits = census_income_splits(parts, seed=42)
    >>> len(splits.train), len(splits.validation), len(splits.test)
    (199523, 49881, 49881)
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
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

# The 42 fields of census-income.names, in file order (descriptions in the
# names file: "age", "class of worker", "detailed industry recode", ...).
COLUMNS = (
    "age", "class_worker", "det_ind_code", "det_occ_code", "education",
    "wage_per_hour", "hs_college", "marital_stat", "major_ind_code",
    "major_occ_code", "race", "hisp_origin", "sex", "union_member",
    "unemp_reason", "full_or_part_emp", "capital_gains", "capital_losses",
    "stock_dividends", "tax_filer_stat", "region_prev_res", "state_prev_res",
    "det_hh_fam_stat", "det_hh_summ", "instance_weight", "mig_chg_msa",
    "mig_chg_reg", "mig_move_reg", "mig_same", "mig_prev_sunbelt", "num_emp",
    "fam_under_18", "country_father", "country_mother", "country_self",
    "citizenship", "own_or_self", "vet_question", "vet_benefits", "weeks_worked",
    "year", "income_50k",
)
INSTANCE_WEIGHT = "instance_weight"
MARITAL_STAT = "marital_stat"
INCOME_CLASS = "income_50k"
# The continuous fields of the names file (the instance weight aside); money
# amounts are heavy-tailed, so they are log1p'd before standardizing.
MONEY = ("wage_per_hour", "capital_gains", "capital_losses", "stock_dividends")
CONTINUOUS = ("age", *MONEY, "num_emp", "weeks_worked")

# Labels (0/1 floats) the loader derives, and their raw values.
INCOME = "income"
NEVER_MARRIED = "never_married"
INCOME_VALUES = {"- 50000.": 0.0, "50000+.": 1.0}
NEVER_MARRIED_VALUE = "Never married"

FILES = {"train": "census-income.data", "test": "census-income.test"}

# Every other field is categorical. The recodes (industry, occupation, ...)
# and year are integer codes without an order: kept as strings.
CENSUS_INCOME_SCHEMA = Schema(tuple(
    Feature(name, "user", "numeric",
            transform="log1p" if name in MONEY else "standardize")
    if name in CONTINUOUS else Feature(name, "user", "categorical")
    for name in COLUMNS if name not in (INSTANCE_WEIGHT, MARITAL_STAT, INCOME_CLASS)
))
CENSUS_INCOME_TASKS = (
    TaskConfig("income", "binary", label=INCOME),
    TaskConfig("marital", "binary", label=NEVER_MARRIED),
)
LABELS = {INCOME: "number", NEVER_MARRIED: "number"}


def census_income_files(data_dir: str | os.PathLike) -> dict[str, Path]:
    """The paths of `census-income.data` and `.test` (or `.gz`) in `data_dir`.

    Raises:
        ValueError: the directory or a file is missing; the message lists what
            the directory holds.
    """
    root = Path(data_dir).expanduser()
    paths, missing = locate_files(FILES, [root])
    if missing or not root.is_dir():
        raise missing_files_error(
            "census-income", root, missing or list(FILES.values()),
            "Pass the folder holding census-income.data and census-income.test "
            "(or their .gz), downloaded from the UCI Machine Learning Repository "
            "(Census-Income (KDD)).")
    return paths


def read_census_file(path: str | os.PathLike, *, lenient: bool = False,
                     max_rows: int = 0) -> tuple[pd.DataFrame, dict[str, int]]:
    """Reads one raw file into string columns `COLUMNS` plus `_file` / `_line`.

    Args:
        path: a census-income file, gzipped if its name ends in ".gz".
        lenient: skip and count lines with the wrong number of fields or an
            unknown income class instead of raising.
        max_rows: read only the first this many non-blank lines (0: all).

    Returns:
        The frame (values stripped) and the counts `lines` (non-blank lines
        read), `malformed` and `bad_labels` (lines skipped when lenient).

    Raises:
        ValueError: (strict) a line without 42 fields or with an income class
            other than "- 50000." / "50000+.", naming the file and line.
    """
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="latin-1", newline="") as handle:
        lines = handle.read().splitlines()
    numbers = [i for i, line in enumerate(lines, 1) if line.strip()]
    if max_rows:
        numbers = numbers[:max_rows]
    counts = np.fromiter((lines[i - 1].count(",") for i in numbers), int,
                         len(numbers))
    wrong = counts != len(COLUMNS) - 1
    if wrong.any() and not lenient:
        at = int(np.argmax(wrong))
        raise ValueError(f"{path}, line {numbers[at]}: expected {len(COLUMNS)} "
                         f"comma-separated fields, found {counts[at] + 1}. Fix or "
                         f"remove the line, or {LENIENT_HINT}.")
    kept = [n for n, bad in zip(numbers, wrong) if not bad]
    text = "\n".join(lines[i - 1] for i in kept)
    frame = pd.read_csv(io.StringIO(text), header=None, names=list(COLUMNS),
                        dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE,
                        skipinitialspace=True) if kept else \
        pd.DataFrame({c: pd.Series([], dtype=object) for c in COLUMNS})
    for column in COLUMNS:
        frame[column] = frame[column].str.strip()
    frame[LINE_COLUMN] = np.asarray(kept, np.int64)
    frame[FILE_COLUMN] = path
    bad_label = ~frame[INCOME_CLASS].isin(list(INCOME_VALUES)).to_numpy()
    if bad_label.any() and not lenient:
        at = int(np.argmax(bad_label))
        raise ValueError(
            f"{path}, line {int(frame[LINE_COLUMN].iloc[at])}: field {INCOME_CLASS!r} "
            f"(the income class, field 42): cannot parse "
            f"{frame[INCOME_CLASS].iloc[at]!r}; expected one of "
            f"{list(INCOME_VALUES)}. Fix the line, or {LENIENT_HINT}.")
    frame = frame.loc[~bad_label].reset_index(drop=True)
    return frame, {"lines": len(numbers), "malformed": int(wrong.sum()),
                   "bad_labels": int(bad_label.sum())}


def census_income_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A raw frame with the two labels added and the raw label fields dropped
    (the instance weight becomes a float column)."""
    out = frame.drop(columns=[INCOME_CLASS, MARITAL_STAT])
    out[INCOME] = frame[INCOME_CLASS].map(INCOME_VALUES).astype(np.float32)
    out[NEVER_MARRIED] = (frame[MARITAL_STAT] == NEVER_MARRIED_VALUE).astype(
        np.float32)
    out[INSTANCE_WEIGHT] = pd.to_numeric(frame[INSTANCE_WEIGHT], errors="coerce")
    return out


def load_census_income(data_dir: str | os.PathLike, *,
                       schema: Schema = CENSUS_INCOME_SCHEMA,
                       labels: Mapping[str, str] | None = None,
                       lenient: bool = False, max_rows: int = 0
                       ) -> dict[str, RecDataset]:
    """Reads `census-income.data` and `.test` as two itemless `RecDataset`s.

    Example:
        >>> parts = load_census_income("data/census-income")
        >>> {k: len(v.interactions) for k, v in parts.items()}
        {'train': 199523, 'test': 99762}

    Args:
        data_dir: the folder holding the two files (plain or `.gz`).
        schema: the features to read, a subset of `CENSUS_INCOME_SCHEMA`'s
            columns (its kinds and transforms may differ).
        labels: label columns the tasks read (default: `income` and
            `never_married`).
        lenient: skip and count malformed lines and bad income classes in each
            data set's `report` instead of raising.
        max_rows: read only the first this many lines of each file (0: all),
            for smoke runs.

    Returns:
        {"train": ..., "test": ...}, the whole test file (see
        `census_income_splits` for the validation / test halves).

    Raises:
        ValueError: a missing directory or file, or (strict) a malformed line
            or bad label, naming the file and line.
    """
    paths = census_income_files(data_dir)
    out = {}
    for part, path in paths.items():
        frame, counts = read_census_file(path, lenient=lenient, max_rows=max_rows)
        data = RecDataset.from_frames(
            schema, census_income_frame(frame), labels=dict(labels or LABELS),
            name=f"census-income ({part})", lenient=lenient,
            sources={"interactions": path.name})
        data.report.rows_read = counts["lines"]
        data.report.malformed_rows += counts["malformed"]
        data.report.out_of_range_labels += counts["bad_labels"]
        out[part] = data
    return out


def load_census_income_source(data_dir: str | os.PathLike | None, schema: Schema,
                              labels: Mapping[str, str], *, lenient: bool = False
                              ) -> RecDataset:
    """Both files in one `RecDataset`, for `data.source = "census_income"`
    (`census_income_protocol` splits it as published).

    Raises:
        ValueError: no `data_dir`, or as `load_census_income`.
    """
    if not data_dir:
        raise ValueError("data.source='census_income' needs a directory: pass "
                         "--data-dir (data.data_dir) pointing to the folder "
                         "holding census-income.data and census-income.test.")
    parts = load_census_income(data_dir, schema=schema, labels=labels or LABELS,
                               lenient=lenient)
    return _concatenated(parts["train"], parts["test"])


def census_income_protocol(data: RecDataset, seed: int = 42) -> Splits:
    """The published protocol on both files' rows: train on the train file, the
    test file split 1:1.

    The test file's rows (in file order) are permuted with
    `np.random.default_rng(seed)`; the first half (rounded down) is validation,
    the rest test.
    """
    return published_file_split(data.interactions, FILES["test"],
                                validation_from="test", validation_fraction=0.5,
                                seed=seed)


def census_income_splits(parts: Mapping[str, RecDataset], seed: int = 42
                         ) -> tuple[RecDataset, Splits]:
    """`load_census_income`'s two parts as one `RecDataset` (for the fitted
    preprocessing and the arrays) and its `census_income_protocol` splits."""
    data = _concatenated(parts["train"], parts["test"])
    return data, census_income_protocol(data, seed)


def _concatenated(train: RecDataset, test: RecDataset) -> RecDataset:
    rows = pd.concat([train.interactions, test.interactions], ignore_index=True)
    report = dataclasses.replace(train.report)
    for key, value in test.report.as_dict().items():
        setattr(report, key, getattr(report, key) + value)
    return RecDataset(train.schema, rows, None, None, "census-income", report)


__all__ = ["CENSUS_INCOME_SCHEMA", "CENSUS_INCOME_TASKS", "COLUMNS",
           "census_income_files", "census_income_protocol", "census_income_splits",
           "load_census_income",
           "load_census_income_source", "read_census_file"]
