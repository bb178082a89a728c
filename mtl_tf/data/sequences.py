"""Behaviour histories: each row's earlier interactions of its user, as item ids.

A schema `sequence` feature is not a column of the data: the pipeline derives it
here from the log, split by split, so that no held-out interaction reaches a
training row (`pipeline.split_histories` picks what each split draws from).
With `before=True` (temporal splits) a row's history holds only its user's
events strictly earlier than the row; otherwise (random splits) it holds every
event drawn from, except the row's own item when `leave_out_own` is set
(leave-one-out: the model never learns to find an item in a history that
contains it). Either way the `max_length` most recent events are kept, oldest
first, padded with "" at the end: the form a serving request sends. Parallel
lists (the schema's sequences with `values`) hold, event by event, another log
column's value or the seconds from the event to the row.

Example:
    >>> log = pd.DataFrame({"u": ["a", "a", "a"], "i": ["x", "y", "z"],
    ...                     "t": [1, 2, 3]})
    >>> derive_history(log, log, user_column="u", item_column="i",
    ...                time_column="t", max_length=5, before=True,
    ...                time_gaps=True)["item_ids"].tolist()
    [[''], ['x'], ['x', 'y']]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from mtl_tf.schema.feature import HISTORY_ITEM_IDS, TIME_GAPS

# Rows of one block of the vectorised window gather (bounds its memory).
_BLOCK_ROWS = 1 << 16


def derive_history(frame: pd.DataFrame, known: pd.DataFrame, *, user_column: str,
                   item_column: str, time_column: str, max_length: int,
                   before: bool, leave_out_own: bool = False,
                   columns: Sequence[str] = (), time_gaps: bool = False
                   ) -> dict[str, np.ndarray]:
    """Each row's history from the `known` events of its user.

    Args:
        frame: the rows to build histories for.
        known: the events histories draw from (e.g. the training positives).
        user_column, item_column: the id columns of both frames.
        time_column: the event-time column ("" orders by row order, which
            `before` cannot use).
        max_length: most recent events kept.
        before: keep only events strictly earlier than the row.
        leave_out_own: leave the row's own item out of its history.
        columns: columns of `known` to list event by event beside the items.
        time_gaps: also list the seconds from each event to the row.

    Returns:
        {"item_ids": string array [len(frame), width], width = the longest
        history (at most `max_length`, at least 1), padded with ""; each of
        `columns`: the events' values as strings, aligned, padded with "";
        "time_gaps" (with `time_gaps`): float32, aligned, padded with 0}.
    """
    if (before or time_gaps) and not time_column:
        raise ValueError("derive_history: a history of events before each row "
                         "(or its time gaps) needs the schema's timestamp "
                         "column; declare schema.timestamp, or use a random "
                         "split.")
    users = pd.Index(pd.unique(known[user_column].astype(str)))
    known_users = users.get_indexer(known[user_column].astype(str))
    row_users = users.get_indexer(frame[user_column].astype(str))
    item_codes, item_table = pd.factorize(known[item_column].astype(str))
    own = pd.Index(item_table).get_indexer(frame[item_column].astype(str))
    times = (known[time_column].to_numpy(np.int64) if time_column
             else np.arange(len(known), dtype=np.int64))
    order = np.lexsort((np.arange(len(known)), times, known_users))
    sorted_users = known_users[order]
    starts = np.searchsorted(sorted_users, row_users, "left")
    if before:
        row_times = frame[time_column].to_numpy(np.int64)
        instants = np.unique(np.concatenate([times, row_times]))
        span = np.int64(len(instants) + 1)
        keys = sorted_users * span + np.searchsorted(instants, times[order])
        ends = np.searchsorted(
            keys, row_users * span + np.searchsorted(instants, row_times), "left")
    else:
        ends = np.searchsorted(sorted_users, row_users, "right")
    unknown_user = row_users < 0
    starts[unknown_user] = ends[unknown_user] = 0
    sorted_items = item_codes[order]
    events = np.full((len(frame), max_length), -1, np.int64)
    for first in range(0, len(frame), _BLOCK_ROWS):
        block = slice(first, first + _BLOCK_ROWS)
        events[block] = _window(sorted_items, starts[block], ends[block],
                                own[block] if leave_out_own else None, max_length)
    width = max(int((events >= 0).sum(1).max(initial=0)), 1)
    events = events[:, :width]
    pad = events < 0
    # Position len(known) of each sorted array is the padding value.
    event_rows = np.where(pad, len(known), order[np.maximum(events, 0)])
    table = np.append(np.asarray(item_table, dtype=str), "")
    out = {HISTORY_ITEM_IDS: table[np.append(item_codes, -1)[event_rows]]}
    for column in columns:
        values = np.append(known[column].astype(str).to_numpy(object), "")
        out[column] = values[event_rows]
    if time_gaps:
        row_times = frame[time_column].to_numpy(np.int64)
        gaps = row_times[:, None] - np.append(times, 0)[event_rows]
        out[TIME_GAPS] = np.where(pad, 0.0, gaps).astype(np.float32)
    return out


def _window(items: np.ndarray, starts: np.ndarray, ends: np.ndarray,
            own: np.ndarray | None, max_length: int) -> np.ndarray:
    """The last `max_length` events of `items[start:end]` per row (without
    `own`): left-aligned positions in `items`, padded with -1."""
    width = max_length + (own is not None)
    positions = ends[:, None] - width + np.arange(width)
    valid = positions >= starts[:, None]
    codes = items[np.maximum(positions, 0)] if len(items) else \
        np.zeros_like(positions)
    if own is not None:
        valid &= codes != own[:, None]
    # Kept events first, in time order; then the most recent max_length.
    order = np.argsort(~valid, axis=1, kind="stable")
    positions = np.take_along_axis(positions, order, 1)
    count = valid.sum(1)
    skip = np.maximum(count - max_length, 0)
    index = np.minimum(skip[:, None] + np.arange(max_length), width - 1)
    kept = np.arange(max_length) < np.minimum(count, max_length)[:, None]
    return np.where(kept, np.take_along_axis(positions, index, 1), -1)


__all__ = ["derive_history"]
