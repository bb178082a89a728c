"""The `files` data source: an event log and optional side tables on disk.

`load_files` reads an interactions file, and optionally an items and a users
file, into a `RecDataset` shaped by a `Schema`; `read_table` reads one table.

The format follows the extension; all but Parquet may also end in ``.gz``:

- CSV (``.csv``) and TSV (``.tsv``, ``.tab``): a header line, then one row per
  line (a quoted field may hold the delimiter or a newline). Every column is
  read as a string, so that the schema decides each column's type and a value
  that does not parse is reported with its file and line
  (`mtl_tf.data.columns`). `separator` overrides the delimiter; one longer than
  a character splits each line as it is (no quoting).
- JSON Lines (``.jsonl``, ``.ndjson``, ``.json``): one JSON object per line.
- Parquet (``.parquet``, ``.pq``).
- TFRecord of `tf.train.Example`, one per row (``.tfrecord``; ``.gz`` for
  GZIP-compressed records), as `python -m mtl_tf.data.convert` writes them
  (`mtl_tf.data.tfrecords`).

JSON Lines and Parquet keep their native types (numbers, booleans, lists). A
path may be a glob of shards (``logs/part-*.csv.gz``): they are read in sorted
order, must have the same columns, and are concatenated (names starting with
``_``, such as Spark's ``_SUCCESS``, are skipped). Every table gets the
helper columns `_file` (the shard's path) and `_line` (the line in it: the
header is line 1, so a CSV's first row is line 2; a JSON Lines file's first
record is line 1; Parquet rows count from 1), which error messages point at.

Example:
    >>> data = load_files(schema, "logs/part-*.csv.gz", items="items.parquet",
    ...                   labels={"click": "number"})
    >>> data.report.summary()
    'read 1000 rows, kept 1000 (nothing dropped)'
"""

from __future__ import annotations

import contextlib
import glob
import os
import zlib
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pandas as pd

from mtl_tf.data.cleaning import (
    FILE_COLUMN,
    HELPER_COLUMNS,
    LINE_COLUMN,
)
from mtl_tf.data.dataset import RecDataset
from mtl_tf.data.file_formats import read_delimited, read_json_lines, read_parquet
from mtl_tf.schema import Schema

_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_JSON_LINES = (".jsonl", ".ndjson", ".json")
_PARQUET = (".parquet", ".pq")
_TFRECORD = (".tfrecord",)
SUPPORTED_EXTENSIONS = (*_DELIMITERS, *_JSON_LINES, *_PARQUET, *_TFRECORD)
# `read_table` stores the count of skipped malformed lines (lenient) here.
MALFORMED_ATTR = "malformed_rows"
_LISTED = 20  # Directory entries a "file not found" message shows.


def read_table(path: str | os.PathLike, *, separator: str = "",
               what: str = "interactions", lenient: bool = False,
               max_rows: int = 0) -> pd.DataFrame:
    """Reads one file, or a glob of shards, into a frame with `_file` / `_line`.

    Example:
        >>> events = read_table("logs/part-*.tsv.gz")
        >>> events[["_file", "_line"]].iloc[0].tolist()
        ['logs/part-000.tsv.gz', 2]

    Args:
        path: a file or a glob; the extension picks the format (see the module
            docstring).
        separator: the delimiter of CSV / TSV files ("": by the extension).
        what: which table this is ("interactions", "items", "users"), for
            messages.
        lenient: skip and count lines with the wrong number of fields (or, in
            JSON Lines, lines that are not a JSON object) instead of raising;
            the count is `frame.attrs["malformed_rows"]`.
        max_rows: stop after this many data rows (0: read everything), e.g. to
            sample a big file.

    Returns:
        Every shard's rows in order, the text formats' columns as strings.

    Raises:
        ValueError: naming the path and the fix, for a missing file or a glob
            matching nothing (listing what the directory holds), an unknown
            extension, an empty file or one without data rows, shards with
            different columns, or (strict) a malformed line, with its number.
    """
    frame, malformed = _read(path, separator, what, lenient, max_rows)
    frame.attrs[MALFORMED_ATTR] = malformed
    return frame


def load_files(schema: Schema, interactions: str | os.PathLike,
               items: str | os.PathLike | None = None,
               users: str | os.PathLike | None = None, *,
               labels: Mapping[str, str] | None = None, separator: str = "",
               lenient: bool = False, name: str | None = None) -> RecDataset:
    """Reads an event log and optional side tables into a `RecDataset`.

    Item (user) features are read from the items (users) file when one is
    given, else from the interactions, where each item's (user's) last row
    wins; see `RecDataset.from_frames` for the checks.

    Example:
        >>> schema = Schema((Feature("user_id", "user", "id"),
        ...                  Feature("item_id", "item", "id"),
        ...                  Feature("genres", "item", "multi_categorical")))
        >>> data = load_files(schema, "events.csv", items="items.csv",
        ...                   labels={"click": "number"})

    Args:
        schema: the declared features.
        interactions: the event log: a file or a glob of shards.
        items, users: optional side tables, one row per item (user), joined on
            the schema's item (user) id.
        labels: the columns the tasks read, each "number" or "list" (as
            `task_config.label_columns` returns them).
        separator: the delimiter of CSV / TSV files ("": by the extension).
        lenient: skip and count malformed lines and rows instead of raising.
        name: the data set's name in logs (default: the interactions file's
            name without extensions, or a glob's directory name).

    Returns:
        The data set; `report.rows_read` counts every data row of the
        interactions, the skipped malformed lines included, and
        `report.malformed_rows` those lines plus the rows dropped for values
        that do not parse.

    Raises:
        ValueError: as `read_table` and `RecDataset.from_frames` do, or for a
            side table given without the id feature to join it on.
    """
    paths = {"interactions": interactions, "items": items, "users": users}
    for table, key in (("items", schema.item_id), ("users", schema.user_id)):
        if paths[table] and key is None:
            side = table[:-1]
            raise ValueError(
                f"{table} file {os.fspath(paths[table])!r} was given, but the "
                f"schema has no {side} id to join it on; declare one (a feature "
                f"with side={side!r}, kind='id') or leave the {table} file out.")
    frames, malformed = {}, {}
    for table, path in paths.items():
        if path:
            frames[table], malformed[table] = _read(path, separator, table,
                                                    lenient, 0)
    data = RecDataset.from_frames(
        schema, frames["interactions"], frames.get("items"), frames.get("users"),
        labels=labels, name=name or _table_name(interactions), lenient=lenient,
        sources={table: os.fspath(path) for table, path in paths.items() if path})
    data.report.rows_read += malformed["interactions"]
    data.report.malformed_rows += sum(malformed.values())
    return data


def _read(path: str | os.PathLike, separator: str, what: str, lenient: bool,
          max_rows: int) -> tuple[pd.DataFrame, int]:
    """The concatenated shards and the number of malformed lines skipped."""
    frames, malformed, columns = [], 0, None
    rows = 0
    for shard in _shards(path, what):
        if max_rows and rows >= max_rows:
            break
        frame, skipped = _read_shard(shard, separator, what, lenient,
                                     max_rows - rows if max_rows else 0)
        found = [c for c in frame.columns if c not in HELPER_COLUMNS]
        if columns is None:
            columns, first = found, shard
        elif set(found) != set(columns):
            raise ValueError(
                f"{what} shards differ: {shard} has columns {found}, but {first} "
                f"has {columns}. Give every shard the same header (missing: "
                f"{sorted(set(columns) - set(found))}, extra: "
                f"{sorted(set(found) - set(columns))}).")
        frames.append(frame[columns + list(HELPER_COLUMNS)])
        malformed += skipped
        rows += len(frame)
    table = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if not len(table):
        detail = f" (all {malformed} lines are malformed)" if malformed else ""
        raise ValueError(f"{what} file {os.fspath(path)!r} holds no data rows"
                         f"{detail}. Point the path at the data.")
    return table, malformed


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _shards(path: str | os.PathLike, what: str) -> list[str]:
    """The files a path names: itself, or a glob's matches in sorted order."""
    text = os.fspath(path)
    expanded = os.path.expanduser(text)
    if _has_magic(expanded):
        # Names starting with "_" are markers (Spark's _SUCCESS), not shards.
        shards = sorted(p for p in glob.glob(expanded) if os.path.isfile(p)
                        and not os.path.basename(p).startswith("_"))
        if shards:
            return shards
        raise _not_found(text, expanded, what, "no file matches this glob")
    if os.path.isdir(expanded):
        raise ValueError(
            f"{what} path {text!r} is a directory; pass a file, or a glob of its "
            f"shards such as {os.path.join(text, '*.csv')!r}. It holds "
            f"{_listing(Path(expanded))}.")
    if not os.path.isfile(expanded):
        raise _not_found(text, expanded, what, "no such file")
    return [expanded]


def _not_found(text: str, expanded: str, what: str, problem: str) -> ValueError:
    parent = Path(expanded).parent
    while (_has_magic(str(parent)) or not parent.is_dir()) and parent != parent.parent:
        parent = parent.parent
    return ValueError(f"{what} file not found: {text!r} ({problem}); "
                      f"{parent.absolute()} holds "
                      f"{_listing(parent)}. Fix the path.")


def _listing(directory: Path) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "")
                       for p in directory.iterdir())
    except OSError as error:
        return f"nothing readable ({error.strerror})"
    if not names:
        return "nothing"
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return f"{names[:_LISTED]}{more}"


def _format(path: str, what: str) -> tuple[str, bool]:
    """The format's extension (".csv", ...) and whether the file is gzipped."""
    name = os.path.basename(path).lower()
    gzipped = name.endswith(".gz")
    extension = os.path.splitext(name[:-3] if gzipped else name)[1]
    if extension in _PARQUET and gzipped:
        raise ValueError(
            f"{what} file {path}: Parquet compresses its own pages; gunzip the "
            "file and pass the .parquet file.")
    if extension not in SUPPORTED_EXTENSIONS:
        raise ValueError(
            f"{what} file {path}: unknown format {extension or '(no extension)'!r}; "
            f"supported extensions: {', '.join(SUPPORTED_EXTENSIONS)} (all but "
            "Parquet optionally followed by .gz). Rename or convert the file.")
    return extension, gzipped


def _read_shard(path: str, separator: str, what: str, lenient: bool, limit: int
                ) -> tuple[pd.DataFrame, int]:
    """One file's rows with its helper columns, and its skipped-line count."""
    extension, gzipped = _format(path, what)
    check_not_empty(path, what)
    with explained_read_errors(path, what):
        if extension in _PARQUET:
            frame, skipped = read_parquet(path, what, limit), 0
            lines = np.arange(1, len(frame) + 1)
        elif extension in _TFRECORD:
            # TensorFlow loads only when a TFRecord shard is read.
            from mtl_tf.data.tfrecords import read_tfrecords
            frame, lines = read_tfrecords(path, gzipped, what, limit)
            skipped = 0
        elif extension in _JSON_LINES:
            frame, lines, skipped = read_json_lines(path, gzipped, what, lenient,
                                                     limit)
        else:
            delimiter = separator or _DELIMITERS[extension]
            frame, lines, skipped = read_delimited(path, gzipped, delimiter, what,
                                                    lenient, limit)
    return with_helper_columns(frame, lines, path, what), skipped


def check_not_empty(path: str, what: str) -> None:
    """Raises ValueError naming an empty (0-byte) file."""
    if os.path.getsize(path) == 0:
        raise ValueError(f"{what} file {path} is empty (0 bytes); expected a "
                         "header line and data rows. Fix or remove the file.")


@contextlib.contextmanager
def explained_read_errors(path: str, what: str) -> Iterator[None]:
    """Turns an undecodable or unreadable file's error into a ValueError that
    names the file and the fix."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} file {path} is not UTF-8 text ({error}); re-save "
                         "it as UTF-8.") from None
    except (EOFError, OSError, zlib.error) as error:
        raise ValueError(f"{what} file {path}: cannot read it ({error}); check "
                         "that it is complete and in the format its extension "
                         "says.") from None


def with_helper_columns(frame: pd.DataFrame, lines, path: str, what: str
                        ) -> pd.DataFrame:
    """`frame` with `_file` = `path` and `_line` = `lines` (see the module
    docstring); a file whose own columns use those names is refused."""
    reserved = [c for c in HELPER_COLUMNS if c in frame.columns]
    if reserved:
        raise ValueError(f"{what} file {path}: columns {reserved} are reserved for "
                         "the line numbers of error messages; rename them.")
    frame = frame.reset_index(drop=True)
    frame[FILE_COLUMN] = path
    frame[LINE_COLUMN] = np.asarray(lines, np.int64)
    return frame


def _table_name(path: str | os.PathLike) -> str:
    """"events" for events.csv.gz; a glob's directory name ("logs/*.csv")."""
    text = os.path.expanduser(os.fspath(path))
    name = os.path.basename(text)
    if _has_magic(name):
        return os.path.basename(os.path.dirname(os.path.abspath(text))) or "files"
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return os.path.splitext(name)[0] or name
