"""A derived history kept as windows into one event table, expanded per batch.

Materialising every row's history as a [rows, max_length] string array costs
rows x max_length strings: at 10^7 rows and 50 events that is more memory than
the rest of the run together. A `HistoryColumn` keeps, per row, where its
user's events start and end in one time-sorted event table (plus the row's own
item, for leave-one-out, and its time, for time gaps), and `batch_builder`
expands a batch of rows into padded lists inside `tf.data`, so memory grows
with rows + events. To numpy code it stands in for the array it represents:
`np.asarray(column)` materialises it, `column[rows]` (a slice, mask or index
array) is a column of those rows, `column[i]` is row i's list.

Example:
    >>> events = EventTable(items=np.array([0, 1], np.int32),
    ...                     item_table=np.array(["x", "y"], object))
    >>> rows = HistoryRows(starts=np.array([0, 0]), ends=np.array([1, 2]))
    >>> np.asarray(HistoryColumn(events, rows, max_length=5)).tolist()
    [['x', ''], ['x', 'y']]
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from mtl_tf.schema.feature import HISTORY_ITEM_IDS, TIME_GAPS

# Rows of one block of the vectorised window gather (bounds its memory).
_BLOCK_ROWS = 1 << 16


@dataclasses.dataclass(frozen=True)
class EventTable:
    """The events histories draw from, sorted by user, then time.

    Attributes:
        items: int32 [events], each event's item as an index into `item_table`.
        item_table: the distinct item ids (strings).
        times: int64 [events], the event times (needed for time gaps only).
        columns: other log columns listed beside the items, each as
            (int32 [events] codes, table of distinct string values).
    """

    items: np.ndarray
    item_table: np.ndarray
    times: np.ndarray | None = None
    columns: Mapping[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(
        default_factory=dict)

    def codes_and_table(self, value: str) -> tuple[np.ndarray, np.ndarray]:
        """The per-event codes and value table of a listed column."""
        if value == HISTORY_ITEM_IDS:
            return self.items, self.item_table
        return self.columns[value]


@dataclasses.dataclass(frozen=True)
class HistoryRows:
    """Each row's window `[starts, ends)` into an `EventTable`.

    `own` (int32 item codes, -1 for none) leaves each row's own item out of
    its window; `times` (int64) are the row times time gaps count from.
    """

    starts: np.ndarray
    ends: np.ndarray
    own: np.ndarray | None = None
    times: np.ndarray | None = None

    def __getitem__(self, rows) -> "HistoryRows":
        return HistoryRows(self.starts[rows], self.ends[rows],
                           None if self.own is None else self.own[rows],
                           None if self.times is None else self.times[rows])

    def __len__(self) -> int:
        return len(self.starts)


class HistoryColumn:
    """Rows' histories as windows into an `EventTable` (see the module doc).

    Each row lists the last `max_length` events of its window (without its own
    item when `rows.own` is set), oldest first, padded at the end to `width`
    with "" (string lists) or 0 (time gaps).

    Args:
        events: the event table.
        rows: each row's window.
        max_length: most recent events kept.
        value: what is listed: "item_ids", "time_gaps" (seconds from the event
            to the row) or a column of `events.columns`.
        width: the lists' width; by default the longest history (at least 1).
    """

    ndim = 2

    def __init__(self, events: EventTable, rows: HistoryRows, *, max_length: int,
                 value: str = HISTORY_ITEM_IDS, width: int | None = None):
        if value == TIME_GAPS and (events.times is None or rows.times is None):
            raise ValueError("HistoryColumn: value='time_gaps' needs event and "
                             "row times.")
        if value not in (HISTORY_ITEM_IDS, TIME_GAPS) and value not in events.columns:
            raise ValueError(f"HistoryColumn: value={value!r} is not a column of "
                             f"the event table; columns: {sorted(events.columns)}.")
        self.events, self.rows, self.value = events, rows, value
        self.max_length = max_length
        self.width = self._longest() if width is None else width

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32 if self.value == TIME_GAPS else object)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows), self.width)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return np.asarray(self[np.array([key])])[0]
        return HistoryColumn(self.events, self.rows[key], max_length=self.max_length,
                             value=self.value, width=self.width)

    def with_value(self, value: str) -> "HistoryColumn":
        """The same rows' parallel list of another value."""
        return HistoryColumn(self.events, self.rows, max_length=self.max_length,
                             value=value, width=self.width)

    def copy(self) -> "HistoryColumn":
        return self  # Immutable.

    def astype(self, dtype) -> np.ndarray:
        return np.asarray(self).astype(dtype)

    def tolist(self) -> list:
        return np.asarray(self).tolist()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if self.value == TIME_GAPS:
            # Position -1 (padding) reads the appended 0.
            times = np.append(self.events.times, 0)

            def values(rows, positions):
                gaps = rows.times[:, None] - times[positions]
                return np.where(positions < 0, 0.0, gaps).astype(np.float32)
        else:
            codes, table = self.events.codes_and_table(self.value)
            # Position -1 (padding) reads the appended -1 code, then "".
            codes = np.append(codes, -1)
            table = np.append(np.asarray(table, object), "")

            def values(rows, positions):
                return table[codes[positions]]
        blocks = [values(block, self._positions(block)) for block in (
            self.rows[i:i + _BLOCK_ROWS] for i in range(0, len(self), _BLOCK_ROWS))]
        out = np.concatenate(blocks) if blocks else np.zeros(self.shape, self.dtype)
        return out if dtype is None else out.astype(dtype)

    def _positions(self, rows: HistoryRows) -> np.ndarray:
        """Left-aligned positions of each row's kept events, -1 padded."""
        positions, valid = self._window(rows)
        window = positions.shape[1]
        # Kept events first, in time order; then the most recent max_length.
        order = np.argsort(~valid, axis=1, kind="stable")
        positions = np.take_along_axis(positions, order, 1)
        count = valid.sum(1)
        skip = np.maximum(count - self.max_length, 0)
        index = np.minimum(skip[:, None] + np.arange(self.width), window - 1)
        kept = np.arange(self.width) < np.minimum(count, self.max_length)[:, None]
        return np.where(kept, np.take_along_axis(positions, index, 1), -1)

    def _window(self, rows: HistoryRows) -> tuple[np.ndarray, np.ndarray]:
        """Each row's last window positions (one more with an own item to
        leave out) and which of them are its events."""
        window = self.max_length + (rows.own is not None)
        positions = rows.ends[:, None] - window + np.arange(window)
        valid = positions >= rows.starts[:, None]
        if rows.own is not None:
            valid &= self._item_at(positions) != rows.own[:, None]
        return positions, valid

    def _item_at(self, positions: np.ndarray) -> np.ndarray:
        items = self.events.items
        return items[np.maximum(positions, 0)] if len(items) else \
            np.full(positions.shape, -1, np.int32)

    def _longest(self) -> int:
        """The longest kept history (at least 1)."""
        rows = self.rows
        if rows.own is None:
            longest = int((rows.ends - rows.starts).max(initial=0))
            return max(min(longest, self.max_length), 1)
        longest = 0
        for first in range(0, len(rows), _BLOCK_ROWS):
            _, valid = self._window(rows[first:first + _BLOCK_ROWS])
            longest = max(longest, int(valid.sum(1).max(initial=0)))
        return max(min(longest, self.max_length), 1)

    def batch_builder(self) -> Callable[[tf.Tensor], tf.Tensor]:
        """A function from int64 row indices to the rows' padded lists, built
        with TensorFlow ops (for `tf.data` maps); the `__array__` values."""
        rows, events, width = self.rows, self.events, self.width
        window = self.max_length + (rows.own is not None)
        starts = tf.constant(rows.starts, tf.int64)
        ends = tf.constant(rows.ends, tf.int64)
        own = None if rows.own is None else tf.constant(rows.own, tf.int32)
        # Each event table gets a padding slot at the end (also for no events).
        items = tf.constant(np.append(events.items, -1).astype(np.int32))
        pad_slot = tf.constant(len(events.items), tf.int64)
        if self.value == TIME_GAPS:
            row_times = tf.constant(rows.times, tf.int64)
            times = tf.constant(np.append(events.times, 0), tf.int64)
        else:
            codes, table = events.codes_and_table(self.value)
            codes = tf.constant(np.append(codes, len(table)).astype(np.int32))
            table = tf.constant(np.append(np.asarray(table, object), "").astype(str))

        def build(index: tf.Tensor) -> tf.Tensor:
            positions = (tf.gather(ends, index)[:, None] - window
                         + tf.range(window, dtype=tf.int64))
            valid = positions >= tf.gather(starts, index)[:, None]
            safe = tf.where(valid, positions, pad_slot)
            if own is not None:
                valid &= tf.gather(items, safe) != tf.gather(own, index)[:, None]
            counts = tf.cast(valid, tf.int32)
            rank = tf.cumsum(counts, axis=1) - 1
            skip = tf.maximum(tf.reduce_sum(counts, 1) - self.max_length, 0)
            keep = valid & (rank >= skip[:, None])
            kept = tf.ragged.boolean_mask(safe, keep).to_tensor(
                default_value=pad_slot, shape=[None, width])
            if self.value == TIME_GAPS:
                gaps = tf.gather(row_times, index)[:, None] - tf.gather(times, kept)
                return tf.cast(tf.where(kept == pad_slot, tf.zeros_like(gaps), gaps),
                               tf.float32)
            return tf.gather(table, tf.gather(codes, kept))

        return build


__all__ = ["EventTable", "HistoryColumn", "HistoryRows"]
