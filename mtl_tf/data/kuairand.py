"""KuaiRand-Pure (Gao et al., CIKM 2022): built-in schema, tasks, loader, protocol.

"KuaiRand: An Unbiased Sequential Recommendation Dataset with Randomly Exposed
Videos" logs a month of the Kuaishou short-video feeds with a dozen feedback
signals per impression. KuaiRand-Pure keeps the logs of the 7,583 videos of the
candidate pool: 27,285 users, 1,436,609 standard-feed impressions (the
README's table). This module reads the two standard logs with the user and
video side tables into one `RecDataset`; the log of randomly exposed videos
(`log_random_4_22_to_5_08_pure.csv`, an unbiased test bed) is not read.

Files, as the archive `KuaiRand-Pure.tar.gz` unpacks them (plain or gzipped):
`KuaiRand-Pure/data/log_standard_4_08_to_4_21_pure.csv`,
`log_standard_4_22_to_5_08_pure.csv`, `log_random_4_22_to_5_08_pure.csv`,
`user_features_pure.csv`, `video_features_basic_pure.csv` and
`video_features_statistic_pure.csv`: comma-separated, a header line, one row
per line, a quoted field for a tag list ("12,65"). Columns (`LOG_COLUMNS`,
`USER_COLUMNS`, `VIDEO_COLUMNS`) and values as the README describes them:

- logs: ids; `date` (yyyymmdd) and `hourmin` (the hour as HH00: the README's
  example row has time_ms 1650485801301, 04:16 Beijing time, and hourmin 400);
  `time_ms` (epoch milliseconds); the 0/1 feedback flags `is_click` (a click,
  or in the single-column feed a valid play), `is_like`, ..., `long_view`
  (played at least min(18 s, the video)); view and stay times in ms; `tab` (the
  scenario, 0..14).
- users: `user_active_degree` (high/full/middle_active, UNKNOWN), three 0/1
  flags, follow / fans / friend counts and register days, each with a bucket
  column (`*_range`), and 18 encrypted categorical `onehot_feat0..17`.
- videos: `author_id`, `video_type` (NORMAL / AD), `upload_dt`, `upload_type`,
  `visible_status`, `video_duration` (ms, a float such as 17200.0),
  `server_width` / `server_height`, `music_id`, `music_type` and `tag` (the
  video's category ids, comma-separated; empty for some videos).

Sources: the dataset README (github.com/chongminggao/KuaiRand, README.md:
file tree, field tables with an example value each, statistics, licence
badge; its "HHSS" for hourmin is a slip, the example says HH00) and
https://kuairand.com (download: the Zenodo record
https://zenodo.org/records/10439422). The archive also holds a LICENSE file
and `load_data_pure.py`, which reads each file with a plain `pd.read_csv`.
Licence: CC BY-SA 4.0 (the README's badge); cite the paper.

Not model inputs: the statistic table (its counts are averaged over the
whole month, test days included: they would leak the test period's
engagement); `music_id` (another id; add it like `author_id`), `upload_dt`,
`visible_status` (the status "now", after the logs) and the server sizes; in
the logs every feedback flag, view and stay time (labels and their
by-products), `duration_ms` (the video's duration again) and `is_rand`.

The protocol (`kuairand_splits`): temporal by calendar date over 2022-04-08 ..
2022-05-08; with the defaults, the last 7 days (05-02 .. 05-08) are test, the
3 before (04-29 .. 05-01) validation, the 21 before them training.

Example:
    >>> data = load_kuairand("data/KuaiRand-Pure")
    >>> splits = kuairand_splits(data)
    >>> prepared = prepare_data(Config(schema=KUAIRAND_SCHEMA,
    ...                                tasks=KUAIRAND_TASKS), data, splits)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from mtl_tf.data.cleaning import FILE_COLUMN, LENIENT_HINT, LINE_COLUMN
from mtl_tf.data.dataset import RecDataset
from mtl_tf.data.files import MALFORMED_ATTR, read_table
from mtl_tf.data.public import locate_files, missing_files_error
from mtl_tf.data.splits import Splits
from mtl_tf.schema import Feature, Schema
from mtl_tf.task_config import TaskConfig

FEEDBACK = ("is_click", "is_like", "is_follow", "is_comment", "is_forward",
            "is_hate", "long_view")
LOG_COLUMNS = ("user_id", "video_id", "date", "hourmin", "time_ms", *FEEDBACK,
               "play_time_ms", "duration_ms", "profile_stay_time",
               "comment_stay_time", "is_profile_enter", "is_rand", "tab")
COUNTS = ("follow_user_num", "fans_user_num", "friend_user_num", "register_days")
USER_COLUMNS = ("user_id", "user_active_degree", "is_lowactive_period",
                "is_live_streamer", "is_video_author",
                *(c for n in COUNTS for c in (n, n + "_range")),
                *(f"onehot_feat{i}" for i in range(18)))
VIDEO_COLUMNS = ("video_id", "author_id", "video_type", "upload_dt", "upload_type",
                 "visible_status", "video_duration", "server_width",
                 "server_height", "music_id", "music_type", "tag")
DATE, HOUR, HOURMIN, TIME = "date", "hour", "hourmin", "time_ms"

# Required files (key -> name in the data folder) in time order; the optional
# ones are returned when present but never read.
FILES = {"standard_4_08_to_4_21": "log_standard_4_08_to_4_21_pure.csv",
         "standard_4_22_to_5_08": "log_standard_4_22_to_5_08_pure.csv",
         "users": "user_features_pure.csv",
         "videos": "video_features_basic_pure.csv"}
OPTIONAL_FILES = {"random_4_22_to_5_08": "log_random_4_22_to_5_08_pure.csv",
                  "video_statistics": "video_features_statistic_pure.csv"}
LOGS = ("standard_4_08_to_4_21", "standard_4_22_to_5_08")
DOWNLOAD = ("Download KuaiRand-Pure.tar.gz from https://kuairand.com (Zenodo "
            "record 10439422; CC BY-SA 4.0) and unpack it")

# Log columns that hold 0 / 1 flags, and milliseconds that may be empty.
_FLAGS = (*FEEDBACK, "is_profile_enter", "is_rand")
_MS = ("play_time_ms", "duration_ms", "profile_stay_time", "comment_stay_time")

KUAIRAND_SCHEMA = Schema((
    Feature("user_id", "user", "id"),
    *(Feature(name, "user", "categorical") for name in (
        "user_active_degree", "is_lowactive_period", "is_live_streamer",
        "is_video_author", *(n + "_range" for n in COUNTS))),
    # Social counts are heavy-tailed; register days run into the thousands.
    *(Feature(name, "user", "numeric", transform="log1p") for name in COUNTS),
    *(Feature(f"onehot_feat{i}", "user", "categorical") for i in range(18)),
    Feature("video_id", "item", "id"),
    # Authors with a single training video share the OOV row.
    Feature("author_id", "item", "categorical", min_count=2),
    Feature("video_type", "item", "categorical"),
    Feature("upload_type", "item", "categorical"),
    Feature("music_type", "item", "categorical"),
    Feature("video_duration", "item", "numeric", transform="log1p"),
    Feature("tag", "item", "multi_categorical", separator=","),
    Feature("tab", "context", "categorical"),
    Feature(HOUR, "context", "categorical", dtype="int64"),
), timestamp=TIME)
KUAIRAND_TASKS = (
    TaskConfig("retrieval", "retrieval", where="is_click == 1"),
    TaskConfig("click", "binary", label="is_click"),
    TaskConfig("long_view", "binary", label="long_view"),
    TaskConfig("like", "binary", label="is_like"),
)
# Every 0/1 feedback column is a label a task may read.
LABELS = {name: "number" for name in (*FEEDBACK, "is_profile_enter")}


def kuairand_files(data_dir: str | os.PathLike) -> dict[str, Path]:
    """The paths of the KuaiRand-Pure files (`.csv` or `.csv.gz`).

    Args:
        data_dir: the unpacked `KuaiRand-Pure` folder or its `data/` subfolder.

    Returns:
        The `FILES` keys (the two standard logs, "users", "videos"), plus the
        `OPTIONAL_FILES` keys of the files present.

    Raises:
        ValueError: the directory or a required file is missing; the message
            lists what the directory holds and where to download the data.
    """
    root = Path(data_dir).expanduser()
    if not locate_files({"users": FILES["users"]}, [root])[0] and (
            root / "data").is_dir():
        root = root / "data"
    paths, missing = locate_files(FILES, [root])
    paths.update(locate_files(OPTIONAL_FILES, [root])[0])
    if missing or not root.is_dir():
        raise missing_files_error(
            "kuairand", root, missing or list(FILES.values()),
            f"Pass the KuaiRand-Pure folder (or its data/ subfolder). {DOWNLOAD}.")
    return paths


def read_kuairand_log(path: str | os.PathLike, *, lenient: bool = False,
                      max_rows: int = 0) -> tuple[pd.DataFrame, dict[str, int]]:
    """Reads one log into typed columns plus `hour`, `_file` and `_line`.

    Ids become canonical integer strings, `date`, `hourmin`, `hour` and
    `time_ms` int64, the flags and times float64, `tab` a string.

    Args:
        path: a `log_*.csv` file, gzipped if its name ends in ".gz".
        lenient: skip and count bad lines instead of raising.
        max_rows: read only the first this many rows (0: all).

    Returns:
        The frame and the counts `lines` (data rows read), `malformed` (wrong
        field count or a value that does not parse) and `bad_flags` (a
        feedback flag other than 0 / 1), the last two skipped when lenient.

    Raises:
        ValueError: a missing column, or (strict) a bad line, naming the file,
            the line, the column and the fix.
    """
    frame = read_table(path, what="interactions", lenient=lenient,
                       max_rows=max_rows)
    skipped = frame.attrs.get(MALFORMED_ATTR, 0)
    _require(frame, LOG_COLUMNS, path)
    out, bad, expected = frame[[FILE_COLUMN, LINE_COLUMN]].copy(), {}, {}
    for column in LOG_COLUMNS:
        out[column], bad[column], expected[column] = _parse_log_column(
            frame[column], column)
    if not lenient:
        _raise_bad(frame, bad, expected)
    out[HOUR] = out[HOURMIN] // 100
    flags = np.logical_or.reduce([bad[c] for c in _FLAGS])
    other = np.logical_or.reduce([bad[c] for c in LOG_COLUMNS if c not in _FLAGS])
    out = out.loc[~(flags | other)].reset_index(drop=True)
    return out, {"lines": len(frame) + skipped,
                 "malformed": skipped + int(other.sum()),
                 "bad_flags": int((flags & ~other).sum())}


def _parse_log_column(series: pd.Series, column: str
                      ) -> tuple[pd.Series, np.ndarray, str]:
    """A log column's values, its bad-row mask and what it should hold."""
    text = series.str.strip()
    try:  # Fast (numpy parses each cell); any bad cell: pandas finds which.
        numbers = text.to_numpy(object).astype(np.float64)
    except (TypeError, ValueError):
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
    whole = ~np.isnan(numbers) & (np.nan_to_num(numbers) % 1 == 0)
    if column in _MS:  # Not a feature: empty is allowed.
        return (pd.Series(numbers), np.isnan(numbers) & text.ne("").to_numpy(),
                "a number of milliseconds (or an empty cell)")
    if column in _FLAGS:
        return (pd.Series(numbers), ~np.isin(numbers, (0.0, 1.0)),
                "0 or 1 (a feedback flag)")
    integers = np.where(whole, np.nan_to_num(numbers), 0).astype(np.int64)
    if column == DATE:
        days = np.unique(integers)  # A month of dates: parse each once.
        valid = days[pd.to_datetime(pd.Series(days.astype(str)), format="%Y%m%d",
                                    errors="coerce").notna().to_numpy()]
        return pd.Series(integers), ~whole | ~np.isin(integers, valid), \
            "a date as yyyymmdd (e.g. 20220421)"
    if column == HOURMIN:
        ok = whole & (integers >= 0) & (integers // 100 <= 23) & (integers % 100 < 60)
        return pd.Series(integers), ~ok, "the time as HHMM (e.g. 400 or 1600)"
    if column == TIME:
        return pd.Series(integers), ~whole, "epoch milliseconds (an integer)"
    ok = whole & (integers >= 0)  # user_id, video_id, tab
    return pd.Series(integers.astype(str)), ~ok, "a non-negative integer"


def _raise_bad(frame: pd.DataFrame, bad: Mapping[str, np.ndarray],
               expected: Mapping[str, str]) -> None:
    """Raises for the first bad line, naming its first bad column."""
    rows = np.logical_or.reduce(list(bad.values()))
    if not rows.any():
        return
    first = int(np.argmax(rows))
    column = next(c for c, mask in bad.items() if mask[first])
    where = f"{frame[FILE_COLUMN].iloc[first]}, line {frame[LINE_COLUMN].iloc[first]}"
    value = frame[column].iloc[first]
    raise ValueError(f"{where}: column {column!r}: cannot parse {value!r}; expected "
                     f"{expected[column]}. Fix the line, or {LENIENT_HINT}.")


def _require(frame: pd.DataFrame, columns, path) -> None:
    present = [c for c in frame.columns if c not in (FILE_COLUMN, LINE_COLUMN)]
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(f"kuairand: {os.fspath(path)} lacks columns {missing}; "
                         f"its header names {present}. Expected the KuaiRand-Pure "
                         f"header {','.join(columns)}.")


def _read_side(path: Path, what: str, key: str, columns, lenient: bool
               ) -> tuple[pd.DataFrame, int]:
    """A side table with its key as canonical integer strings, and the count of
    lines skipped (wrong field count, bad key)."""
    frame = read_table(path, what=what, lenient=lenient)
    _require(frame, columns, path)
    values, bad, expected = _parse_log_column(frame[key], key)
    if not lenient:
        _raise_bad(frame, {key: bad}, {key: expected})
    frame[key] = values.to_numpy()
    kept = frame.loc[~bad].reset_index(drop=True)
    return kept, frame.attrs.get(MALFORMED_ATTR, 0) + int(bad.sum())


def load_kuairand(data_dir: str | os.PathLike, *,
                  schema: Schema = KUAIRAND_SCHEMA,
                  labels: Mapping[str, str] | None = None, lenient: bool = False,
                  max_rows: int = 0) -> RecDataset:
    """Reads the two standard logs and the user and video tables.

    Example:
        >>> data = load_kuairand("data/KuaiRand-Pure")
        >>> len(data.interactions), data.num_users
        (1436609, 27285)

    Args:
        data_dir: the `KuaiRand-Pure` folder or its `data/` subfolder.
        schema: the features to read, a subset of `KUAIRAND_SCHEMA`'s columns
            (its kinds and transforms may differ).
        labels: label columns the tasks read (default: every 0/1 feedback
            column); every log column is kept either way.
        lenient: skip and count bad lines and unknown users / videos in the
            `report` instead of raising.
        max_rows: read only the first this many rows of each log (0: all),
            for smoke runs.

    Returns:
        One `RecDataset`; its interactions hold every log column (`date`
        included, for `kuairand_splits`), `hour` and `_file` / `_line`,
        stably sorted by `time_ms`.

    Raises:
        ValueError: a missing directory, file or column, or (strict) a bad
            line, naming the file, line and column; or a log row whose user or
            video is not in its side table (`RecDataset.from_frames`).
    """
    paths = kuairand_files(data_dir)
    logs, counts = [], {"lines": 0, "malformed": 0, "bad_flags": 0}
    for key in LOGS:
        frame, found = read_kuairand_log(paths[key], lenient=lenient,
                                         max_rows=max_rows)
        logs.append(frame)
        counts = {k: counts[k] + found[k] for k in counts}
    rows = pd.concat(logs, ignore_index=True)
    rows = rows.iloc[np.argsort(rows[TIME].to_numpy(), kind="stable")]
    users, skipped_users = _read_side(paths["users"], "users", "user_id",
                                      USER_COLUMNS, lenient)
    videos, skipped_videos = _read_side(paths["videos"], "items", "video_id",
                                        VIDEO_COLUMNS, lenient)
    data = RecDataset.from_frames(
        schema, rows, videos if schema.item_id else None,
        users if schema.user_id else None, labels=dict(labels or LABELS),
        name="KuaiRand-Pure", lenient=lenient,
        sources={"interactions": " + ".join(paths[k].name for k in LOGS),
                 "items": paths["videos"].name, "users": paths["users"].name})
    data.report.rows_read = counts["lines"]
    data.report.malformed_rows += (counts["malformed"] + skipped_users
                                   + skipped_videos)
    data.report.out_of_range_labels += counts["bad_flags"]
    return data


def load_kuairand_source(data_dir: str | os.PathLike | None, schema: Schema,
                         labels: Mapping[str, str], *, lenient: bool = False
                         ) -> RecDataset:
    """`load_kuairand` for `data.source = "kuairand"`.

    `data.split = "published"` (the `kuairand` preset) splits it by date with
    `kuairand_protocol`.

    Raises:
        ValueError: no `data_dir`, or as `load_kuairand`.
    """
    if not data_dir:
        raise ValueError("data.source='kuairand' needs a directory: pass "
                         "--data-dir (data.data_dir) pointing to the KuaiRand-Pure "
                         "folder (or its data/ subfolder).")
    return load_kuairand(data_dir, schema=schema, labels={**LABELS, **(labels or {})},
                         lenient=lenient)


def kuairand_splits(data: RecDataset, *, validation_days: int = 3,
                    test_days: int = 7) -> Splits:
    """The temporal protocol: splits the interactions by calendar `date`.

    Counting back from the last date in the data, the last `test_days` days
    are test and the `validation_days` before them validation; every earlier
    day is training. On the full logs (2022-04-08 .. 05-08) the defaults give
    train 04-08 .. 04-28, validation 04-29 .. 05-01, test 05-02 .. 05-08.

    Raises:
        ValueError: a day count out of range, or a split left empty.
    """
    if test_days < 1 or validation_days < 0:
        raise ValueError("kuairand_splits: test_days must be >= 1 and "
                         "validation_days >= 0. Received: "
                         f"test_days={test_days}, validation_days={validation_days}.")
    rows = data.interactions
    days = pd.to_datetime(rows[DATE].astype(str), format="%Y%m%d")
    back = (days.max() - days).dt.days.to_numpy()
    parts = {"test": back < test_days,
             "validation": (back >= test_days) & (back < test_days + validation_days),
             "train": back >= test_days + validation_days}
    empty = [name for name, mask in parts.items()
             if not mask.any() and (name != "validation" or validation_days)]
    if empty:
        raise ValueError(
            f"kuairand_splits: the {empty} split(s) would be empty: the data spans "
            f"{int(back.max()) + 1} days ({days.min():%Y-%m-%d} .. "
            f"{days.max():%Y-%m-%d}), test_days={test_days}, "
            f"validation_days={validation_days}. Read more rows or use fewer days.")
    return Splits(**{name: rows.loc[mask].reset_index(drop=True)
                     for name, mask in parts.items()})


def kuairand_protocol(data: RecDataset, seed: int = 42) -> Splits:
    """`kuairand_splits` with its default days, for `data.split="published"`
    (the split is by date: `seed` is not used)."""
    del seed
    return kuairand_splits(data)


__all__ = ["KUAIRAND_SCHEMA", "KUAIRAND_TASKS", "LOG_COLUMNS", "USER_COLUMNS",
           "VIDEO_COLUMNS", "kuairand_files", "kuairand_protocol", "kuairand_splits",
           "load_kuairand", "load_kuairand_source", "read_kuairand_log"]
