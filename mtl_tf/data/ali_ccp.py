"""Ali-CCP (Alibaba Click and Conversion Prediction): schema, tasks, loader.

ESMM's public data set (Ma et al., SIGIR 2018): impressions of Taobao's
recommender labelled click and conversion (a conversion only follows a click);
0.4M users, 4.3M items, 84M impressions, 3.4M clicks, 18K conversions in a
train and a test half of ~42M rows each (the train skeleton is ~40 GB).

Files as published on Tianchi (data set 408: `sample_train.tar.gz` and
`sample_test.tar.gz`), read plain or gzipped, in the folder or in its
`sample_train/` / `sample_test/`; no header:
- `sample_skeleton_{train,test}.csv`, one impression a line:
  `sample_id,click,conversion,common_feature_index,feature_num,feature_list`;
- `common_features_{train,test}.csv`, what the impressions of one index share
  (the user's features): `common_feature_index,feature_num,feature_list`.
A feature list holds `feature_num` features joined by "\\x01", each
`field_id "\\x02" feature_id "\\x03" value` (a float: 1.0 for a plain id, a
weight for behaviour and combination fields; only the ids are kept). Ids are
unique across fields. The user fields (101, 121-129, the behaviour lists
*_14) are in the common features, the others in the skeleton; every field is
looked up in both files anyway (the skeleton's value wins).

Sources: the ESMM authors' converter (alibaba/x-deeplearning,
`xdl-algorithm-solution/ESMM/data`: the comma fields and separators), the
preprocessing of torch-rechub (`examples/ranking/data/ali-ccp/
preprocess_ali_ccp.py`: separator order, the 23 field ids) and of AITM (Xi et
al., KDD 2021: user fields from the common features, a random 10% of the
train file as validation). Both scripts drop rows with click 0 and conversion
1; here they are bad labels (an error, or skipped and counted if `lenient`).

Feature names: `user_id` (field 101), `item_id` (205), `f<field>` otherwise
(`f206`, `f109_14`). A multi-valued field keeps its first
`max_values_per_field` ids joined by the feature's `separator`, a single one
its first id. Reading streams both files (the skeleton, then only the common
lines its rows need) into int32 codes: ~4 bytes per row and field plus the
vocabularies. `RecDataset.from_frames` then holds strings and tuples per row,
far more: use `sample_fraction` (e.g. 0.1) when 2 x 42M rows do not fit.
The streaming reader is `mtl_tf.data.ali_ccp_stream`.

Example:
    >>> data = load_ali_ccp("data/ali-ccp", sample_fraction=0.1)
    >>> splits = ali_ccp_splits(data, seed=42)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from mtl_tf.data.ali_ccp_stream import SkeletonPart
from mtl_tf.data.cleaning import FILE_COLUMN, LINE_COLUMN
from mtl_tf.data.dataset import RecDataset
from mtl_tf.data.public import locate_files, missing_files_error
from mtl_tf.data.splits import Splits, published_file_split
from mtl_tf.schema import Feature, Schema
from mtl_tf.task_config import TaskConfig

# (field id, side, kind, meaning), after the release's field table as public
# write-ups reproduce it.
FIELDS = (
    ("101", "user", "id", "user id"),
    ("121", "user", "categorical", "profile: categorical id"),
    ("122", "user", "categorical", "profile: group id"),
    ("124", "user", "categorical", "gender"),
    ("125", "user", "categorical", "age"),
    ("126", "user", "categorical", "consumption level I"),
    ("127", "user", "categorical", "consumption level II"),
    ("128", "user", "categorical", "occupation (works or not)"),
    ("129", "user", "categorical", "geography"),
    # Behaviour lists describe the page view's user state: context, not user.
    ("109_14", "context", "multi_categorical", "categories acted on"),
    ("110_14", "context", "multi_categorical", "shops acted on"),
    ("127_14", "context", "multi_categorical", "brands acted on"),
    ("150_14", "context", "multi_categorical", "intention nodes acted on"),
    ("205", "item", "id", "item id"),
    ("206", "item", "categorical", "category"),
    ("207", "item", "categorical", "shop"),
    ("210", "item", "multi_categorical", "intention nodes"),
    ("216", "item", "categorical", "brand"),
    ("301", "context", "categorical", "scenario / position"),
    ("508", "context", "categorical", "109_14 x 206"),
    ("509", "context", "categorical", "110_14 x 207"),
    ("702", "context", "categorical", "127_14 x 216"),
    ("853", "context", "categorical", "150_14 x 210"),
)
NAMES = {"101": "user_id", "205": "item_id"}
# Bounded vocabularies for the huge id spaces (4.3M items; AITM's filter of
# ids seen <= 10 times keeps 467K items and 264K shops; torch-rechub's < 10).
ID_VOCABULARY = 500_000
FIELD_VOCABULARY = 300_000
MIN_COUNT = 10
SMALL_FIELDS = ("121", "122", "124", "125", "126", "127", "128", "129", "301")


def feature_name(field: str) -> str:
    """The schema name of a raw field id ("101" -> "user_id", "206" -> "f206")."""
    return NAMES.get(field, f"f{field}")


def _feature(field: str, side: str, kind: str) -> Feature:
    if kind == "id":
        return Feature(feature_name(field), side, kind, max_vocabulary=ID_VOCABULARY)
    if field in SMALL_FIELDS:
        return Feature(feature_name(field), side, kind)
    return Feature(feature_name(field), side, kind, min_count=MIN_COUNT,
                   max_vocabulary=FIELD_VOCABULARY)


ALI_CCP_SCHEMA = Schema(tuple(_feature(f, s, k) for f, s, k, _ in FIELDS))
CLICK, PURCHASE = "click", "purchase"
ALI_CCP_TASKS = (
    TaskConfig("click", "binary", label=CLICK),
    TaskConfig("purchase", "binary", label=PURCHASE, depends_on="click"),
)
LABELS = {CLICK: "number", PURCHASE: "number"}
FIELD_OF = {feature_name(f): f for f, *_ in FIELDS}
FILES = {"skeleton_train": "sample_skeleton_train.csv",
         "common_train": "common_features_train.csv",
         "skeleton_test": "sample_skeleton_test.csv",
         "common_test": "common_features_test.csv"}
DOWNLOAD = ("Download sample_train.tar.gz and sample_test.tar.gz from Tianchi "
            "data set 408, 'Alibaba Click and Conversion Prediction' "
            "(https://tianchi.aliyun.com/dataset/408; see that page for the "
            "terms of use), and unpack them there.")


def ali_ccp_files(data_dir: str | os.PathLike) -> dict[str, Path]:
    """The four raw files (or their `.gz`) in `data_dir` or its `sample_train/`
    and `sample_test/` subfolders, keyed `skeleton_train`, `common_train`,
    `skeleton_test`, `common_test`.

    Raises:
        ValueError: the directory or a file is missing; the message lists what
            the directory holds and where to download the files.
    """
    root = Path(data_dir).expanduser()
    paths, missing = {}, []
    for key, name in FILES.items():  # the tarballs unpack into sample_<part>/
        found, lost = locate_files({key: name},
                                   [root, root / ("sample_" + key.split("_")[1])])
        paths.update(found)
        missing += lost
    if missing or not root.is_dir():
        raise missing_files_error(
            "ali-ccp", root, missing or sorted(FILES.values()),
            f"Pass the folder holding {sorted(FILES.values())} (or their .gz). "
            f"{DOWNLOAD}")
    return paths


def read_ali_ccp(paths: Mapping[str, Path], schema: Schema = ALI_CCP_SCHEMA, *,
                 lenient: bool = False, max_rows: int = 0,
                 sample_fraction: float = 1.0, max_values_per_field: int = 10,
                 seed: int = 0) -> tuple[dict[str, pd.DataFrame | None], dict]:
    """Streams the four files into the frames of `RecDataset.from_frames`.

    Returns:
        {"interactions", "items", "users"} (categorical columns; a side table
        is None when the schema has no key for it; each user's / item's last
        row wins), and the counts `lines` (skeleton lines read), `rows`
        (sampled), `malformed`, `bad_labels`, `missing_common` (rows whose
        index the common file lacks), `duplicates` (repeated common indexes).
    """
    unknown = [f.name for f in schema.features if f.name not in FIELD_OF]
    if unknown:
        raise ValueError(f"ali-ccp: schema features {unknown} are not Ali-CCP "
                         f"fields; known names: {list(FIELD_OF)}.")
    fields = {f.name: FIELD_OF[f.name] for f in schema.features}
    separators = {FIELD_OF[f.name]: f.separator if f.is_list else None
                  for f in schema.features}
    vocabularies = {field: {} for field in separators}
    counts = dict.fromkeys(("lines", "rows", "malformed", "bad_labels",
                            "missing_common", "duplicates"), 0)
    parts = [SkeletonPart(paths[f"skeleton_{p}"], paths[f"common_{p}"], separators,
                   vocabularies, counts, lenient=lenient, max_rows=max_rows,
                   fraction=sample_fraction, seed=seed + i,
                   max_values=max_values_per_field)
             for i, p in enumerate(("train", "test"))]
    offsets = np.cumsum([0] + [len(p.slots) for p in parts])
    # Code 0 is "" (absent): from_frames fills missing values with "".
    categories = {f: pd.Index(["", *v], dtype=object)
                  for f, v in vocabularies.items()}

    def column(name: str, rows: np.ndarray | None = None) -> pd.Categorical:
        field = fields[name]
        if rows is None:
            codes = np.concatenate([p.field(field) for p in parts])
        else:
            codes = np.concatenate([
                p.field(field, rows[(rows >= lo) & (rows < hi)] - lo)
                for p, lo, hi in zip(parts, offsets[:-1], offsets[1:])])
        return pd.Categorical.from_codes(codes + 1, categories[field])

    interactions = pd.DataFrame({
        CLICK: np.concatenate([p.click for p in parts]),
        PURCHASE: np.concatenate([p.purchase for p in parts]),
        LINE_COLUMN: np.concatenate([p.line for p in parts]),
        FILE_COLUMN: pd.Categorical.from_codes(
            np.repeat([0, 1], np.diff(offsets)).astype(np.int8),
            [str(p.skeleton_path) for p in parts])})
    tables: dict[str, pd.DataFrame | None] = {"items": None, "users": None}
    in_rows = [f.name for f in schema.on_side("context")]
    for side, key, table in (("item", schema.item_id, "items"),
                             ("user", schema.user_id, "users")):
        if key is None:
            in_rows += [f.name for f in schema.on_side(side)]
            continue
        in_rows.append(key.name)
        keys = column(key.name).codes
        # The last row of each key, in row order (as from_frames keeps it).
        last = len(keys) - 1 - np.unique(keys[::-1], return_index=True)[1]
        last = np.sort(last)
        tables[table] = pd.DataFrame({f.name: column(f.name, last)
                                      for f in schema.on_side(side)})
    for name in in_rows:
        interactions[name] = column(name)
    return {"interactions": interactions, **tables}, counts


def load_ali_ccp(data_dir: str | os.PathLike, *, schema: Schema = ALI_CCP_SCHEMA,
                 labels: Mapping[str, str] | None = None, lenient: bool = False,
                 max_rows: int = 0, sample_fraction: float = 1.0,
                 max_values_per_field: int = 10, seed: int = 0) -> RecDataset:
    """Reads the train and test files into one `RecDataset`.

    Example:
        >>> data = load_ali_ccp("data/ali-ccp", max_rows=100_000)
        >>> data.interactions["_file"].str.contains("train").sum()
        100000

    Args:
        data_dir: the folder holding the four files (see `ali_ccp_files`).
        schema: the features to read, a subset of `ALI_CCP_SCHEMA`'s names
            (kinds, sides and vocabulary bounds may differ).
        labels: label columns the tasks read (default `click`, `purchase`).
        lenient: skip and count malformed lines, bad labels, impressions
            whose common-feature index is missing and repeated indexes in the
            `report` (malformed_rows, out_of_range_labels, unknown_user_rows,
            duplicate_rows) instead of raising.
        max_rows: read only the first this many lines of each skeleton (0: all).
        sample_fraction: keep each skeleton line with this probability
            (seeded by `seed`; the test file by `seed + 1`), for machines
            without the memory for 2 x 42M rows.
        max_values_per_field: ids kept of a multi-valued field (the first ones).
        seed: the sampling seed.

    Returns:
        Every row of both files; `_file` names each row's skeleton file and
        `_line` its line; `click` and `purchase` are float32 0/1 columns.

    Raises:
        ValueError: bad arguments, a missing directory or file, or (strict) a
            malformed line naming the file, line and field.
    """
    if not 0.0 < sample_fraction <= 1.0:
        raise ValueError("load_ali_ccp: sample_fraction must lie in (0, 1]. "
                         f"Received: sample_fraction={sample_fraction!r}.")
    for key, value, low in (("max_rows", max_rows, 0),
                            ("max_values_per_field", max_values_per_field, 1)):
        if value < low:
            raise ValueError(f"load_ali_ccp: {key} must be >= {low}. Received: "
                             f"{key}={value!r}.")
    paths = ali_ccp_files(data_dir)
    frames, counts = read_ali_ccp(paths, schema, lenient=lenient, max_rows=max_rows,
                                  sample_fraction=sample_fraction,
                                  max_values_per_field=max_values_per_field,
                                  seed=seed)
    data = RecDataset.from_frames(
        schema, frames["interactions"], frames["items"], frames["users"],
        labels=dict(labels or LABELS), name="ali-ccp", lenient=lenient,
        sources={"interactions": paths["skeleton_train"].name,
                 "items": "items of the skeleton files",
                 "users": "users of the common-features files"})
    for label in (CLICK, PURCHASE):
        if label in data.interactions:
            data.interactions[label] = data.interactions[label].astype(np.float32)
    report = data.report
    report.rows_read = counts["rows"]
    report.malformed_rows += counts["malformed"]
    report.out_of_range_labels += counts["bad_labels"]
    report.unknown_user_rows += counts["missing_common"]
    report.duplicate_rows += counts["duplicates"]
    return data


def load_ali_ccp_source(data_dir: str | os.PathLike | None, schema: Schema,
                        labels: Mapping[str, str], *, lenient: bool = False
                        ) -> RecDataset:
    """Both files in one `RecDataset`, for `data.source = "ali_ccp"`.

    `data.split = "published"` (the `ali_ccp` preset) splits it with
    `ali_ccp_protocol`.

    Raises:
        ValueError: no `data_dir`, or as `load_ali_ccp`.
    """
    if not data_dir:
        raise ValueError("data.source='ali_ccp' needs a directory: pass "
                         "--data-dir (data.data_dir) pointing to the folder "
                         "holding sample_skeleton_train.csv, "
                         "common_features_train.csv, sample_skeleton_test.csv "
                         "and common_features_test.csv (or their .gz).")
    return load_ali_ccp(data_dir, schema=schema, labels=labels or LABELS,
                        lenient=lenient)


def ali_ccp_splits(data: RecDataset, *, seed: int = 42,
                   validation_fraction: float = 0.1) -> Splits:
    """The protocol: train on the train file minus a seeded random
    `validation_fraction` of its rows (validation, as AITM does); test on the
    whole test file (`published_file_split(validation_from="train")`).

    Raises:
        ValueError: `data` has no `_file` column (it was not read by
            `load_ali_ccp`), or a bad fraction.
    """
    return published_file_split(data.interactions, "sample_skeleton_test",
                                validation_from="train",
                                validation_fraction=validation_fraction, seed=seed)


def ali_ccp_protocol(data: RecDataset, seed: int = 42) -> Splits:
    """`ali_ccp_splits` with its default validation share, for
    `data.split="published"`."""
    return ali_ccp_splits(data, seed=seed)


__all__ = ["ALI_CCP_SCHEMA", "ALI_CCP_TASKS", "FIELDS", "ali_ccp_files",
           "ali_ccp_protocol", "ali_ccp_splits", "feature_name", "load_ali_ccp",
           "load_ali_ccp_source", "read_ali_ccp"]
