"""Column profiling for schema drafts: per-column statistics and kind guesses.

`Profile.of` reads one column once (missing values, distinct values, lists,
numbers, 0/1 and true/false values, integers, dates, strings) and `guess_kind`
turns a profile into a feature kind with the reason for it. Which column is a
key, a label, the timestamp or a feature, and on which side, is decided in
`mtl_tf.schema.infer`, which drafts the schema from these profiles.

What a profile detects:

- Missing values: NaN / None, and the strings "", "nan", "na", "null" and
  "none" (any case, spaces stripped).
- 0/1 values: a column whose values are all 0/1 (numbers, "0"/"1",
  true/false) is `binary` (a label, to `infer`); booleans and "true"/"false"
  strings are also `boolean`.
- Dates: a datetime column, or strings that all hold a digit and one of
  ``-``, ``/``, ``:``, are 8 characters or longer and parse as dates (the
  first 1000 values are checked).

Kinds (`guess_kind`, for a column that is no key, label or timestamp). Lists
(Parquet, JSON) are multi_categorical, and so are strings with ``|``, ``;`` or
``,`` in most values (or in many, with recurring parts) between short parts
(with that `separator`). Strings averaging > 20 characters or >= 3 words, with
mostly distinct values, are text. Other strings, booleans, and integers with at
most 32 distinct values or a code-like name (``*_id``, ``code``, ``zip``,
``hour``, ``category``...) are categorical, with ``hash_buckets=2**17`` past
100000 distinct values (ids too); few integers count as codes only when they
fill most of their range (hour, weekday, slot; not a duration in steps of 10).
Other numbers are numeric, with ``transform="log1p"`` when non-negative and
skewed (max > 100 * median + 1). Strings unique per row of the interactions
(an event id) are left out.

Example:
    >>> profile = Profile.of(pd.Series(["4", "8", "15", "16", "23", "4000"]))
    >>> guess_kind(profile, "views", units=6, unique_rows=False)[:2]
    ('numeric', {'transform': 'log1p'})
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pandas as pd

_MISSING_TEXT = {"", "nan", "na", "null", "none"}
_TRUE, _FALSE = {"1", "true"}, {"0", "false"}
HASH_BUCKETS = 2**17
HASH_ABOVE = 100_000  # Distinct values past which a feature is hashed.
_FEW_VALUES = 32  # Integers with at most this many distinct values: a code.
_CODE_NAME = re.compile(r"(^|_)(id|code|zip|zipcode|postcode|category|cat|type|"
                        r"hour|weekday|dow|month|slot|position|pos|genre|region|"
                        r"city|country|occupation|lang|language)($|_)")


@dataclasses.dataclass(frozen=True)
class Profile:
    """What the heuristics need to know about one column."""

    count: int  # Non-missing values.
    distinct: int
    lists: bool
    binary: bool
    boolean: bool  # true/false (not 0/1).
    binary_values: np.ndarray | None  # 0/1 floats, NaN where missing.
    numbers: np.ndarray | None  # float values (NaN where missing) if numeric.
    integer: bool
    dates: bool
    texts: pd.Series | None  # The non-missing strings of a string column.
    missing: bool
    hashable: pd.Series  # Values as hashable keys (lists as tuples), for groupby.

    @classmethod
    def of(cls, series: pd.Series) -> "Profile":
        """The profile of one column: strings (as CSV files are read) or native
        types (numbers, booleans, datetimes, lists)."""
        values = series.to_numpy(object)
        lists = any(isinstance(v, (list, tuple, np.ndarray)) for v in values)
        if lists:
            keys = pd.Series([tuple(map(str, v)) if isinstance(
                v, (list, tuple, np.ndarray)) else v for v in values],
                index=series.index, dtype=object)
            present = ~keys.isna()
            return cls(int(present.sum()), keys[present].nunique(), True, False,
                       False, None, None, False, False, None, not present.all(),
                       keys)
        if series.dtype.kind == "M":
            present = series.notna()
            return cls(int(present.sum()), series[present].nunique(), False,
                       False, False, None, None, False, True, None,
                       not present.all(), series)
        if series.dtype.kind in "biuf":
            numbers = series.to_numpy(np.float64, na_value=np.nan)
            texts = None
            boolean = series.dtype.kind == "b"
        else:
            text = series.astype(str).str.strip()
            missing_text = series.isna().to_numpy() | text.str.lower().isin(
                _MISSING_TEXT).to_numpy()
            texts = text[~missing_text]
            lowered = texts.str.lower()
            boolean = bool(len(texts)) and lowered.isin(_TRUE | _FALSE).all() and \
                lowered.isin({"true", "false"}).any()
            parsed = pd.to_numeric(texts, errors="coerce")
            numbers = None
            if boolean:
                numbers = np.full(len(series), np.nan)
                numbers[~missing_text] = lowered.isin(_TRUE).to_numpy(np.float64)
            elif len(texts) and parsed.notna().all():
                numbers = np.full(len(series), np.nan)
                numbers[~missing_text] = parsed.to_numpy(np.float64)
            if numbers is not None:
                texts = None
        if numbers is not None:
            present = ~np.isnan(numbers)
            kept = numbers[present]
            binary = bool(len(kept)) and bool(np.isin(kept, (0.0, 1.0)).all())
            keys = pd.Series(numbers, index=series.index)
            return cls(int(present.sum()), int(len(np.unique(kept))), False, binary,
                       boolean, numbers if binary else None, numbers,
                       bool(np.all(kept % 1 == 0)), False, None,
                       not present.all(), keys)
        keys = text.where(~missing_text, None)
        return cls(len(texts), texts.nunique(), False, False, False, None, None,
                   False, _looks_like_dates(texts), texts, bool(missing_text.any()),
                   keys)


def snake_case(name: str) -> str:
    """"userId" -> "user_id", "Movie ID" -> "movie_id"."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name).strip())
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _looks_like_dates(texts: pd.Series) -> bool:
    sample = texts.head(1000)
    if not len(sample) or not sample.str.contains(r"\d", regex=True).all():
        return False
    if not sample.str.contains(r"[-/:]", regex=True).all() or (
            sample.str.len() < 8).any():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed", utc=True)
    return bool(parsed.notna().all())


def guess_kind(profile: Profile, column: str, units: int, unique_rows: bool
          ) -> tuple[str | None, dict[str, Any], str]:
    """(kind, extra Feature fields, reason) of a feature column."""
    many = profile.distinct > HASH_ABOVE
    hashed = {"hash_buckets": HASH_BUCKETS} if many else {}
    hash_note = f"; > {HASH_ABOVE} distinct values: hashed" if many else ""
    if profile.lists:
        return "multi_categorical", {}, "holds lists"
    if profile.numbers is not None:
        if profile.boolean:
            dtype = {} if profile.missing else {"dtype": "bool"}
            return "categorical", dtype, "true/false values"
        kept = profile.numbers[~np.isnan(profile.numbers)]
        code_like = bool(_CODE_NAME.search(snake_case(column)))
        # Codes (hour, weekday, slot) fill most of their range; sparse integers
        # (durations in 10 s steps) are quantities.
        dense = profile.distinct >= 0.5 * (kept.max() - kept.min() + 1)
        if profile.integer and (code_like or profile.distinct <= _FEW_VALUES
                                and dense):
            dtype = {} if profile.missing else {"dtype": "int64"}
            reason = ("integers named like a code" if code_like else
                      f"integers, {profile.distinct} distinct values filling "
                      "most of their range")
            return "categorical", {**dtype, **hashed}, reason + hash_note
        median = float(np.median(kept))
        if kept.min() >= 0 and kept.max() > 100 * median + 1:
            return "numeric", {"transform": "log1p"}, (
                f"numbers, non-negative and skewed (max {kept.max():g} > 100 x "
                f"median {median:g} + 1): log1p")
        return "numeric", {}, (f"numbers in [{kept.min():g}, {kept.max():g}]: "
                               "standardized")
    texts = profile.texts
    separator = _list_separator(texts)
    if separator:
        return "multi_categorical", {"separator": separator}, (
            f"{separator!r}-separated short parts")
    chars = float(texts.str.len().mean())
    words = float(texts.str.split().str.len().mean())
    mostly_distinct = units < 20 or profile.distinct >= 0.2 * units
    if (chars > 20 or words >= 3) and mostly_distinct:
        return "text", {}, f"mean {chars:.0f} characters, {words:.1f} words"
    if unique_rows and profile.count > 20 and profile.distinct == profile.count:
        return None, {}, "unique per row (an event id?)"
    return "categorical", hashed, f"strings, {profile.distinct} distinct" + hash_note


def _list_separator(texts: pd.Series) -> str:
    """The separator of a list-valued string column, or ""."""
    for separator in ("|", ";", ","):
        has = texts.str.contains(separator, regex=False)
        share = float(has.mean()) if len(has) else 0.0
        if share < 0.2:
            continue
        parts = texts.str.split(separator, regex=False).explode().str.strip()
        parts = parts[parts != ""]
        if not len(parts):
            continue
        short = (parts.str.len().mean() <= 20
                 and parts.str.split().str.len().mean() <= 2.5)
        recurring = len(parts) < 20 or parts.nunique() <= 0.5 * len(parts)
        if short and recurring and (share >= 0.5 or len(parts) >= 20):
            return separator
    return ""
