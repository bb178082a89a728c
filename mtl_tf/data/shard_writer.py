"""`ShardWriter`: a table written a frame at a time to open shard files.

For tables made a block at a time and never held whole (e.g. the synthetic
log of `python -m mtl_tf.data.synthetic`). Rows are dealt across the shards
in turn (row r of the stream goes to shard r mod `shards`), so the shards stay
within a row of each other in size and each holds a share of every frame.
Formats are those the `files` source reads: `tfrecord` (`.tfrecord.gz`, one
`tf.train.Example` per row, `mtl_tf.data.tfrecords`), `parquet` (a row group
per write) and `csv` (`.csv.gz`, lists joined by `separator`). Each shard is
written under a temporary name and renamed by `close`, so no half-written
shard is ever visible; `close` also deletes the folder's earlier shards of the
format (`part-*-of-*` with another count), so `pattern` names exactly the new
ones. Memory: one frame and each shard's write buffer.

Example:
    >>> with ShardWriter("out/train", shards=4, file_format="parquet") as writer:
    ...     for frame in frames:
    ...         writer.write(frame)
    >>> writer.pattern
    'out/train/part-*.parquet'
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

SHARD_FORMATS = {"tfrecord": ".tfrecord.gz", "parquet": ".parquet",
                 "csv": ".csv.gz"}
# The name of every shard file the project writes (`write_tfrecords` too).
SHARD_NAME = "part-{index:05d}-of-{count:05d}{extension}"


class ShardWriter:
    """Appends frames to `shards` files of one format in `out_dir`.

    Args:
        out_dir: the folder of the shards (created).
        shards: how many files.
        file_format: "tfrecord", "parquet" or "csv".
        separator: CSV only: the separator of list cells (the schema
            feature's `separator`).

    Raises:
        ValueError: an unknown format or `shards` < 1 (in `__init__`); fewer
            rows written than shards (in `close`).
    """

    def __init__(self, out_dir: str | os.PathLike, shards: int = 1,
                 file_format: str = "parquet", separator: str = "|"):
        if file_format not in SHARD_FORMATS:
            raise ValueError(f"file_format must be one of {list(SHARD_FORMATS)}. "
                             f"Received: file_format={file_format!r}.")
        if shards < 1:
            raise ValueError(f"shards must be >= 1. Received: shards={shards}.")
        self.out_dir, self.shards = Path(out_dir), shards
        self.file_format, self.separator = file_format, separator
        self.extension = SHARD_FORMATS[file_format]
        self.rows = 0
        self.paths = [self.out_dir / SHARD_NAME.format(index=i, count=shards,
                                                  extension=self.extension)
                      for i in range(shards)]
        self._temporary: list[Path] = []
        self._files: list = [None] * shards
        self._schema = None  # Parquet: the first frame's, kept for every write.

    @property
    def pattern(self) -> str:
        """The glob naming every shard (for `data.path`)."""
        return str(self.out_dir / f"part-*{self.extension}")

    def write(self, frame: pd.DataFrame) -> None:
        """Appends `frame`'s rows, dealt across the shards."""
        if not len(frame):
            return
        shard = (self.rows + np.arange(len(frame))) % self.shards
        for index in range(self.shards):
            part = frame[shard == index]
            if len(part):
                self._append(index, part)
        self.rows += len(frame)

    def close(self) -> list[Path]:
        """Closes the shards and gives them their names; returns their paths."""
        try:
            self._close_files()
            if self.rows < self.shards:
                raise ValueError(f"{self.out_dir}: {self.rows} rows cannot fill "
                                 f"shards={self.shards}; write fewer shards.")
            for temporary, path in zip(self._temporary, self.paths):
                os.replace(temporary, path)
            for stale in self.out_dir.glob(f"part-*-of-*{self.extension}"):
                if stale not in self.paths:
                    stale.unlink()
        except BaseException:
            self.abort()
            raise
        self._temporary = []
        return self.paths

    def abort(self) -> None:
        """Closes and deletes the unfinished shards."""
        try:
            self._close_files()
        finally:
            for temporary in self._temporary:
                temporary.unlink(missing_ok=True)
            self._temporary = []

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _append(self, index: int, part: pd.DataFrame) -> None:
        if not self._temporary:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for path in self.paths:
                handle, name = tempfile.mkstemp(prefix=f".{path.name}.",
                                                dir=self.out_dir)
                os.close(handle)
                self._temporary.append(Path(name))
        first = self._files[index] is None
        if self.file_format == "tfrecord":
            self._append_tfrecord(index, part, first)
        elif self.file_format == "parquet":
            self._append_parquet(index, part, first)
        else:
            if first:
                self._files[index] = gzip.open(self._temporary[index], "wt",
                                               encoding="utf-8", newline="")
            lists = {name: column.map(self._joined)
                     for name, column in part.items() if column.dtype == object}
            part.assign(**lists).to_csv(self._files[index], index=False,
                                        header=first)

    def _append_tfrecord(self, index: int, part: pd.DataFrame, first: bool):
        import tensorflow as tf

        from mtl_tf.data.tfrecords import serialized_examples

        if first:
            self._files[index] = tf.io.TFRecordWriter(
                str(self._temporary[index]), tf.io.TFRecordOptions("GZIP"))
        for record in serialized_examples(part):
            self._files[index].write(record)

    def _append_parquet(self, index: int, part: pd.DataFrame, first: bool):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(part, schema=self._schema, preserve_index=False)
        if self._schema is None:
            self._schema = table.schema
        if first:
            self._files[index] = pq.ParquetWriter(self._temporary[index],
                                                  self._schema)
        self._files[index].write_table(table)

    def _joined(self, value):
        if isinstance(value, (list, tuple, np.ndarray)):
            return self.separator.join(str(v) for v in value)
        return value

    def _close_files(self) -> None:
        files, self._files = self._files, [None] * self.shards
        for handle in files:
            if handle is not None:
                handle.close()


__all__ = ["SHARD_FORMATS", "SHARD_NAME", "ShardWriter"]
