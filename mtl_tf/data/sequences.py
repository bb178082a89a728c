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
    [['', ''], ['x', ''], ['x', 'y']]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from mtl_tf.data.history_column import EventTable, HistoryColumn, HistoryRows
from mtl_tf.schema.feature import HISTORY_ITEM_IDS, TIME_GAPS


def history_columns(frame: pd.DataFrame, known: pd.DataFrame, *, user_column: str,
                    item_column: str, time_column: str, max_length: int,
                    before: bool, leave_out_own: bool = False,
                    columns: Sequence[str] = (), time_gaps: bool = False
                    ) -> dict[str, HistoryColumn]:
    """Each row's history from the `known` events of its user, as windows
    into one event table (memory O(rows + events); see `HistoryColumn`).

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
        {"item_ids": the item ids, width = the longest history (at most
        `max_length`, at least 1), padded with ""; each of `columns`: the
        events' values as strings, aligned, padded with ""; "time_gaps" (with
        `time_gaps`): float32, aligned, padded with 0}.
    """
    if (before or time_gaps) and not time_column:
        raise ValueError("history_columns: a history of events before each row "
                         "(or its time gaps) needs the schema's timestamp "
                         "column; declare schema.timestamp, or use a random "
                         "split.")
    users = pd.Index(pd.unique(known[user_column].astype(str)))
    known_users = users.get_indexer(known[user_column].astype(str))
    row_users = users.get_indexer(frame[user_column].astype(str))
    item_codes, item_table = pd.factorize(known[item_column].astype(str))
    times = (known[time_column].to_numpy(np.int64) if time_column
             else np.arange(len(known), dtype=np.int64))
    order = np.lexsort((np.arange(len(known)), times, known_users))
    sorted_users = known_users[order]
    starts = np.searchsorted(sorted_users, row_users, "left")
    row_times = frame[time_column].to_numpy(np.int64) if time_column else None
    if before:
        instants = np.unique(np.concatenate([times, row_times]))
        span = np.int64(len(instants) + 1)
        keys = sorted_users * span + np.searchsorted(instants, times[order])
        ends = np.searchsorted(
            keys, row_users * span + np.searchsorted(instants, row_times), "left")
    else:
        ends = np.searchsorted(sorted_users, row_users, "right")
    unknown_user = row_users < 0
    starts[unknown_user] = ends[unknown_user] = 0
    own = (pd.Index(item_table).get_indexer(frame[item_column].astype(str))
           .astype(np.int32) if leave_out_own else None)
    listed = {}
    for column in columns:
        codes, table = pd.factorize(known[column].astype(str))
        listed[column] = (codes[order].astype(np.int32), np.asarray(table, object))
    events = EventTable(items=item_codes[order].astype(np.int32),
                        item_table=np.asarray(item_table, object),
                        times=times[order] if time_gaps else None, columns=listed)
    rows = HistoryRows(starts.astype(np.int64), ends.astype(np.int64), own,
                       row_times if time_gaps else None)
    history = HistoryColumn(events, rows, max_length=max_length)
    out = {HISTORY_ITEM_IDS: history}
    for value in [*columns, *([TIME_GAPS] if time_gaps else [])]:
        out[value] = history.with_value(value)
    return out


def derive_history(frame: pd.DataFrame, known: pd.DataFrame, **options
                   ) -> dict[str, np.ndarray]:
    """`history_columns` materialised: {list name: [len(frame), width] array}
    (strings as objects, time gaps float32)."""
    return {name: np.asarray(column) for name, column in
            history_columns(frame, known, **options).items()}


__all__ = ["derive_history", "history_columns"]
