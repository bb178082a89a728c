"""Turns raw table columns into the canonical form of their schema kind.

Canonical forms (what `RecDataset` tables hold):
- string features (ids, categorical, text): `str`, a missing value is "";
- int64 / bool categorical features: int64 / bool;
- numeric features and numeric labels: float64, a missing value is NaN;
- multi_categorical features and list labels: tuples of strings; a text cell
  is split on the feature's separator, a missing one is the empty tuple.

A value that does not parse raises a `ValueError` naming the file, the line, the
column and the fix (`cleaning.row_location`), or with `lenient` is reported back
so its row can be dropped and counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtl_tf.data.cleaning import LENIENT_HINT, row_location
from mtl_tf.schema import Feature

_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


def _missing(series: pd.Series) -> np.ndarray:
    """None / NaN cells and blank strings (vectorised: columns can be long)."""
    null = series.isna().to_numpy()
    blank = series.where(~null, "").astype(str).str.strip().eq("").to_numpy()
    return null | blank


def _fail(frame: pd.DataFrame, bad: np.ndarray, column: str, expected: str,
          source: str, lenient: bool) -> np.ndarray:
    """Raises on the first bad row (strict) or returns the bad-row mask."""
    if bad.any() and not lenient:
        pos = int(np.argmax(bad))
        raise ValueError(
            f"{row_location(frame, pos, source)}: column {column!r}: cannot parse "
            f"{frame[column].iloc[pos]!r}; expected {expected}. Fix the row, "
            f"declare another kind or dtype for it in the schema, or {LENIENT_HINT}.")
    return bad


def to_float(frame: pd.DataFrame, column: str, source: str, lenient: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (missing -> NaN) and the mask of unparseable rows."""
    series = frame[column]
    if series.dtype.kind in "biuf":
        return series.to_numpy(np.float64), np.zeros(len(series), bool)
    values = pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
    bad = np.isnan(values) & ~_missing(series)
    text = series.astype(str).str.strip().str.lower().to_numpy()
    bad &= ~np.isin(text, ["nan", "na", "null", "none"])
    return values, _fail(frame, bad, column, "a number (or an empty cell)", source,
                         lenient)


def to_timestamps(frame: pd.DataFrame, column: str, source: str, lenient: bool
                  ) -> tuple[pd.Series, np.ndarray]:
    """Event times as int64: numbers as they are, dates as Unix seconds; and
    the mask of unparseable rows."""
    series = frame[column]
    if series.dtype.kind == "M":  # datetime64 (Parquet, pandas)
        seconds = series.astype("datetime64[s]").astype(np.int64)
        return seconds, np.zeros(len(series), bool)
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        return numeric.astype(np.int64), np.zeros(len(series), bool)
    dates = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
    bad = _fail(frame, dates.isna().to_numpy(), column, "a number or a date",
                source, lenient)
    epoch = pd.Timestamp(0, tz="UTC")
    seconds = (dates.fillna(epoch) - epoch) // pd.Timedelta(seconds=1)
    return seconds.astype(np.int64), bad


def coerce_feature(frame: pd.DataFrame, feature: Feature, source: str,
                   lenient: bool = False) -> tuple[pd.Series, np.ndarray]:
    """The canonical column of `feature` and the mask of rows that failed to parse.

    Raises:
        ValueError: (strict) on the first value that does not parse for the kind.
    """
    series = frame[feature.name]
    ok = np.zeros(len(series), bool)
    if feature.kind == "numeric":
        values, bad = to_float(frame, feature.name, source, lenient)
        return pd.Series(values, index=series.index), bad
    if feature.is_list:
        return pd.Series([_as_tuple(v, feature.separator) for v in series],
                         index=series.index, dtype=object), ok
    if feature.dtype == "string":
        missing = _missing(series)
        text = series.astype(str).where(~missing, "")
        if series.dtype.kind == "f":  # 3.0 read as float: the id is "3"
            whole = series.notna() & (series % 1 == 0)
            text = text.where(~whole.to_numpy(), series.astype("Int64").astype(str))
        return text.str.strip(), ok
    if feature.dtype == "bool":
        if series.dtype.kind == "b":
            return series.astype(bool), ok
        text = series.astype(str).str.strip().str.lower()
        bad = _fail(frame, ~text.isin(_TRUE | _FALSE).to_numpy(), feature.name,
                    "true/false or 1/0", source, lenient)
        return text.isin(_TRUE), bad
    values, bad = to_float(frame, feature.name, source, lenient)
    if feature.dtype == "int64":
        bad |= np.isnan(values) | (np.nan_to_num(values) % 1 != 0)
        bad = _fail(frame, bad, feature.name, "an integer", source, lenient)
        integers = np.nan_to_num(values).astype(np.int64)
        return pd.Series(integers, index=series.index), bad
    bad |= np.isnan(values)
    bad = _fail(frame, bad, feature.name, "a number", source, lenient)
    return pd.Series(np.nan_to_num(values).astype(np.float32), index=series.index), bad


def _as_tuple(value, separator: str) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(separator) if p.strip())
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(str(v) for v in value if str(v) != "")
    return (str(value),)


def as_list_column(series: pd.Series, separator: str = "|") -> pd.Series:
    """A list-valued label column as tuples of strings."""
    return pd.Series([_as_tuple(v, separator) for v in series], index=series.index,
                     dtype=object)
