"""Rating and reference checks of the MovieLens-shaped sources (local files,
TFDS): ratings in range, no NaN, one event per (user, movie), known ids.

Strict by default: a bad row raises a `ValueError` that names the file, the
line, the field and the received value; with `lenient=True` it is dropped and
counted in the `CleaningReport`. Generic sources check their labels per task
instead (`mtl_tf.data.pipeline.check_labels`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtl_tf.data import movielens_schema as F
from mtl_tf.data.cleaning import (
    HELPER_COLUMNS,
    LENIENT_HINT,
    CleaningReport,
    row_location,
)


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def clean_interactions(
    df: pd.DataFrame,
    report: CleaningReport,
    *,
    lenient: bool = False,
    rating_range: tuple[float, float] = (1.0, 5.0),
    source: str = "<interactions>",
) -> pd.DataFrame:
    """Checks labels and removes duplicate events.

    NaN and out-of-range ratings raise (strict) or are dropped and counted in
    `report.nan_labels` / `report.out_of_range_labels` (lenient). Repeated
    (user_id, movie_id) events are always collapsed to the latest one by timestamp
    (ties: the last one in input order) and counted in `report.duplicate_rows`.

    Example:
        >>> report = CleaningReport()
        >>> clean = clean_interactions(raw, report, lenient=True, source="u.data")

    Args:
        df: interactions with columns user_id, movie_id, user_rating, timestamp and
            optionally the `_line` / `_file` helper columns. Other columns are kept.
        report: counters to update; `rows_kept` is set to the returned length.
        lenient: drop and count bad labels instead of raising.
        rating_range: inclusive (low, high) bounds of a valid rating.
        source: file or dataset name used in messages when `df` has no `_file`.

    Returns:
        A new frame without helper columns, index reset, with ids as str,
        user_rating float32 and timestamp int64, in input order.

    Raises:
        ValueError: a required column is missing, `rating_range` is empty, or (strict
            mode) a rating is NaN or out of range.
    """
    missing = [c for c in F.INTERACTION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{source}: interactions are missing columns {missing}; "
            f"received columns {list(df.columns)}.")
    low, high = (float(v) for v in rating_range)
    if not low <= high:
        raise ValueError(
            f"rating_range must be (low, high) with low <= high; "
            f"received: `rating_range={rating_range!r}`.")
    df = df.reset_index(drop=True)
    ratings = pd.to_numeric(df[F.RATING], errors="raise").to_numpy(np.float64)
    nan = np.isnan(ratings)
    with np.errstate(invalid="ignore"):
        out_of_range = ~nan & ((ratings < low) | (ratings > high))
    bad = nan | out_of_range
    if bad.any():
        if not lenient:
            pos = _first(bad)
            problem = "is missing (NaN)" if nan[pos] else "is out of range"
            raise ValueError(
                f"{row_location(df, pos, source)}: field '{F.RATING}' {problem}: "
                f"received {float(ratings[pos])!r}; expected a number in "
                f"[{low}, {high}]. Fix the row, or {LENIENT_HINT}.")
        report.nan_labels += int(nan.sum())
        report.out_of_range_labels += int(out_of_range.sum())
        df = df.loc[~bad].reset_index(drop=True)

    # Keep the latest event per (user, item), ties going to the later row: sort by
    # pair, then time, then position, and keep the last row of each pair.
    user_codes = pd.factorize(df[F.USER_ID])[0].astype(np.int64)
    item_codes = pd.factorize(df[F.ITEM_ID])[0].astype(np.int64)
    pairs = user_codes * (item_codes.max(initial=-1) + 1) + item_codes
    order = np.lexsort((np.arange(len(df)), df[F.TIMESTAMP].to_numpy(np.int64), pairs))
    last = np.ones(len(df), bool)
    last[order[:-1]] = pairs[order[:-1]] != pairs[order[1:]]
    report.duplicate_rows += int((~last).sum())
    out = df.loc[last] if not last.all() else df
    out = out.drop(columns=[c for c in HELPER_COLUMNS if c in df.columns])
    out = out.reset_index(drop=True)
    out[F.USER_ID] = out[F.USER_ID].astype(str)
    out[F.ITEM_ID] = out[F.ITEM_ID].astype(str)
    out[F.RATING] = out[F.RATING].astype(np.float32)
    out[F.TIMESTAMP] = out[F.TIMESTAMP].astype(np.int64)
    report.rows_kept = len(out)
    return out


def drop_unknown_references(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    users: pd.DataFrame,
    report: CleaningReport,
    lenient: bool = False,
    source: str = "<interactions>",
) -> pd.DataFrame:
    """Removes interactions whose movie_id or user_id is missing from the side tables.

    A row whose item and user are both unknown is counted once, as an unknown item,
    so the counters of a report add up to the rows dropped.

    Example:
        >>> rows = drop_unknown_references(rows, items, users, report, lenient=True)

    Args:
        interactions: frame with user_id and movie_id (helper columns are kept).
        items: item table with a movie_id column.
        users: user table with a user_id column.
        report: counters `unknown_item_rows` / `unknown_user_rows` to update;
            `rows_kept` is set to the returned length.
        lenient: drop and count such rows instead of raising.
        source: file or dataset name used in messages when there is no `_file`.

    Returns:
        The rows whose references resolve, index reset.

    Raises:
        ValueError: (strict mode) on the first row with an unknown reference.
    """
    df = interactions.reset_index(drop=True)
    unknown_item = ~df[F.ITEM_ID].astype(str).isin(items[F.ITEM_ID].astype(str))
    unknown_user = ~df[F.USER_ID].astype(str).isin(users[F.USER_ID].astype(str))
    unknown_item = unknown_item.to_numpy()
    unknown_user = unknown_user.to_numpy() & ~unknown_item
    bad = unknown_item | unknown_user
    if bad.any():
        if not lenient:
            pos = _first(bad)
            field, table = ((F.ITEM_ID, "item") if unknown_item[pos]
                            else (F.USER_ID, "user"))
            raise ValueError(
                f"{row_location(df, pos, source)}: field '{field}' is not in the "
                f"{table} table: received {df[field].iloc[pos]!r}. Fix the row or "
                f"the {table} file, or {LENIENT_HINT}.")
        report.unknown_item_rows += int(unknown_item.sum())
        report.unknown_user_rows += int(unknown_user.sum())
        df = df.loc[~bad].reset_index(drop=True)
    report.rows_kept = len(df)
    return df
