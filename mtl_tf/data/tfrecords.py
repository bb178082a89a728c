"""Tables as TFRecord files of `tf.train.Example`, one example per row.

The layout `write_tfrecords` writes and `read_tfrecords` (the `files` source's
reader of `.tfrecord` / `.tfrecord.gz` shards) reads: each column a feature of
the row's example, its value a `bytes_list` of UTF-8 strings, as a CSV cell is
text (the schema decides each column's type when the data is loaded, exactly
as for CSV): one value for a scalar, every element for a list (a one-element
list reads back as a scalar, which list features split into one element), no
value for a missing cell. `int64_list` and `float_list` features of TFRecords
written elsewhere read back as numbers.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import tensorflow as tf

from mtl_tf.data.cleaning import HELPER_COLUMNS
from mtl_tf.data.shard_writer import SHARD_NAME


def read_tfrecords(path: str, gzipped: bool, what: str, limit: int
                   ) -> tuple[pd.DataFrame, np.ndarray]:
    """One TFRecord file's examples as a frame, and each row's record number
    (from 1).

    Raises:
        ValueError: a record that is not a `tf.train.Example`, naming it.
    """
    rows = list(_rows(path, gzipped, what, limit))
    return _frame(rows), np.arange(1, len(rows) + 1)


def iter_tfrecords(path: str, gzipped: bool, what: str, chunk_rows: int
                   ) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """`read_tfrecords` a chunk of at most `chunk_rows` examples at a time,
    with each row's record number (from 1)."""
    rows, start = [], 1
    for row in _rows(path, gzipped, what, 0):
        rows.append(row)
        if len(rows) >= chunk_rows:
            yield _frame(rows), np.arange(start, start + len(rows))
            start += len(rows)
            rows = []
    if rows:
        yield _frame(rows), np.arange(start, start + len(rows))


def _rows(path: str, gzipped: bool, what: str, limit: int) -> Iterator[dict]:
    """Each record's example as {column: value}."""
    records = tf.data.TFRecordDataset(path, "GZIP" if gzipped else "")
    if limit:
        records = records.take(limit)
    number = 0
    try:
        for number, record in enumerate(records.as_numpy_iterator(), 1):
            try:
                example = tf.train.Example.FromString(record)
            except Exception as error:  # protobuf's DecodeError is not exported
                raise ValueError(f"{what} file {path}, record {number}: not a "
                                 f"tf.train.Example ({error}). Write the file "
                                 "with `python -m mtl_tf.data.convert`.") from None
            yield {name: _value(feature)
                   for name, feature in example.features.feature.items()}
    except tf.errors.OpError as error:
        raise ValueError(f"{what} file {path}: cannot read its records after "
                         f"record {number} ({error.message}); check "
                         "that it is complete and GZIP-compressed only if its "
                         "name ends in .gz.") from None


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows)
    # An Example's features are a map: no column order survives, so sort them.
    return frame[sorted(frame.columns)]


def _value(feature):
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    if kind == "bytes_list":
        values = [v.decode("utf-8") for v in values]
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def write_tfrecords(frame: pd.DataFrame, out_dir: str | os.PathLike, *,
                    shards: int = 8, gzip: bool = True) -> list[Path]:
    """Writes `frame`'s rows in order to `shards` TFRecord files in `out_dir`
    (`part-00000-of-00008.tfrecord.gz`, ...; contiguous runs of rows, so the
    sorted shards read back in the original order). Each shard is written to a
    temporary name and renamed, so no half-written shard is ever visible.

    Raises:
        ValueError: `shards` < 1 or more shards than rows.
    """
    if shards < 1 or shards > max(len(frame), 1):
        raise ValueError(f"shards must be in [1, rows={len(frame)}]. Received: "
                         f"{shards}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = tf.io.TFRecordOptions("GZIP" if gzip else "")
    bounds = np.linspace(0, len(frame), shards + 1).astype(int)
    paths = []
    for index in range(shards):
        path = out / SHARD_NAME.format(index=index, count=shards,
                                       extension=".tfrecord.gz" if gzip
                                       else ".tfrecord")
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=out)
        os.close(handle)
        try:
            with tf.io.TFRecordWriter(temporary, options) as writer:
                for record in serialized_examples(
                        frame.iloc[bounds[index]:bounds[index + 1]]):
                    writer.write(record)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        paths.append(path)
    return paths


def serialized_examples(frame: pd.DataFrame) -> Iterator[bytes]:
    """Each row of `frame` in order as a serialized `tf.train.Example` of the
    layout above (the helper columns `_file` / `_line` left out), for writers
    that append rows to open shards."""
    columns = [c for c in frame.columns if c not in HELPER_COLUMNS]
    for row in frame[columns].itertuples(index=False, name=None):
        yield _example(columns, row).SerializeToString()


def _example(columns: list[str], row: Iterable) -> tf.train.Example:
    features = {}
    for name, value in zip(columns, row):
        features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[s.encode("utf-8") for s in _strings(value)]))
    return tf.train.Example(features=tf.train.Features(feature=features))


def _strings(value) -> list[str]:
    """A cell as the strings of its bytes_list: [] for missing."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if value is pd.NA or value is pd.NaT:
        return []
    return [str(value)]


__all__ = ["iter_tfrecords", "read_tfrecords", "serialized_examples",
           "write_tfrecords"]
