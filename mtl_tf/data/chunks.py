"""A table's shards read a chunk at a time, for logs larger than memory.

`read_chunks` yields frames of at most `chunk_rows` rows from a file or a glob
of shards, in the formats of `mtl_tf.data.files` (CSV / TSV, JSON Lines,
Parquet, TFRecord of `tf.train.Example`; all but Parquet optionally gzipped),
each with the `_file` / `_line` helper columns `read_table` adds, so a bad value
is reported with its shard and line. Memory holds one chunk of one shard.

Example:
    >>> for chunk in read_chunks("logs/part-*.parquet", chunk_rows=65536):
    ...     print(len(chunk), chunk["_file"].iloc[0])
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import pandas as pd

from mtl_tf.data.cleaning import HELPER_COLUMNS
from mtl_tf.data.file_formats import iter_delimited, iter_json_lines
from mtl_tf.data.files import (
    _DELIMITERS,
    _JSON_LINES,
    _PARQUET,
    _TFRECORD,
    _format,
    _shards,
    check_not_empty,
    explained_read_errors,
    with_helper_columns,
)

# A chunk's attrs[MALFORMED_ATTR]: lines skipped (lenient) since the last chunk.
MALFORMED_ATTR = "malformed_rows"


def shard_paths(path: str | os.PathLike, what: str = "interactions") -> list[str]:
    """The files a path names: itself, or a glob's matches in sorted order.

    Raises:
        ValueError: no file matches (listing what the directory holds), or the
            path is a directory.
    """
    return _shards(path, what)


def read_chunks(path: str | os.PathLike, *, chunk_rows: int = 65536,
                separator: str = "", what: str = "interactions",
                lenient: bool = False) -> Iterator[pd.DataFrame]:
    """Every shard's rows in order, as frames of at most `chunk_rows` rows.

    Args:
        path: a file or a glob of shards (see `mtl_tf.data.files`).
        chunk_rows: the most rows a chunk holds.
        separator: the delimiter of CSV / TSV files ("": by the extension).
        what: which table this is, for messages.
        lenient: skip and count malformed lines (in each chunk's
            `attrs["malformed_rows"]`) instead of raising.

    Raises:
        ValueError: as `mtl_tf.data.files.read_table`, naming the shard and
            line; also for shards whose columns differ.
    """
    if chunk_rows < 1:
        raise ValueError(f"read_chunks: chunk_rows must be >= 1. Received: "
                         f"{chunk_rows}.")
    columns = first = None
    for shard in shard_paths(path, what):
        for chunk in read_shard_chunks(shard, chunk_rows=chunk_rows,
                                       separator=separator, what=what,
                                       lenient=lenient):
            found = [c for c in chunk.columns if c not in HELPER_COLUMNS]
            if columns is None:
                columns, first = found, shard
            elif set(found) != set(columns) and len(chunk):
                raise ValueError(
                    f"{what} shards differ: {shard} has columns {found}, but "
                    f"{first} has {columns}. Give every shard the same header "
                    f"(missing: {sorted(set(columns) - set(found))}, extra: "
                    f"{sorted(set(found) - set(columns))}).")
            yield chunk


def read_shard_chunks(shard: str, *, chunk_rows: int = 65536,
                      separator: str = "", what: str = "interactions",
                      lenient: bool = False) -> Iterator[pd.DataFrame]:
    """One file's rows as frames of at most `chunk_rows` rows, with `_file` /
    `_line` (see `read_chunks`)."""
    extension, gzipped = _format(shard, what)
    check_not_empty(shard, what)
    with explained_read_errors(shard, what):
        for frame, lines, skipped in _chunks(shard, extension, gzipped, separator,
                                             what, lenient, chunk_rows):
            frame = with_helper_columns(frame, lines, shard, what)
            frame.attrs[MALFORMED_ATTR] = skipped
            yield frame


def _chunks(shard: str, extension: str, gzipped: bool, separator: str, what: str,
            lenient: bool, chunk_rows: int
            ) -> Iterator[tuple[pd.DataFrame, np.ndarray, int]]:
    """(frame, lines, skipped) of each chunk, by format."""
    if extension in _PARQUET:
        yield from _parquet_chunks(shard, what, chunk_rows)
    elif extension in _TFRECORD:
        from mtl_tf.data.tfrecords import iter_tfrecords
        for frame, lines in iter_tfrecords(shard, gzipped, what, chunk_rows):
            yield frame, lines, 0
    elif extension in _JSON_LINES:
        yield from iter_json_lines(shard, gzipped, what, lenient, chunk_rows)
    else:
        delimiter = separator or _DELIMITERS[extension]
        yield from iter_delimited(shard, gzipped, delimiter, what, lenient,
                                  chunk_rows)


def _parquet_chunks(shard: str, what: str, chunk_rows: int
                    ) -> Iterator[tuple[pd.DataFrame, np.ndarray, int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(shard)
        start = 1
        for batch in file.iter_batches(batch_size=chunk_rows):
            frame = batch.to_pandas()
            named = any(name is not None for name in frame.index.names)
            frame = frame.reset_index(drop=not named)
            yield frame, np.arange(start, start + len(frame)), 0
            start += len(frame)
    except pa.ArrowException as error:
        raise ValueError(f"{what} file {shard} is not a readable Parquet file "
                         f"({error}).") from None


__all__ = ["MALFORMED_ATTR", "read_chunks", "read_shard_chunks", "shard_paths"]
