"""The held-out side of a streamed run (`data.stream=true`, see
`mtl_tf.data.stream`): what streaming supports, the side tables and the
validation and test rows read into memory, and the catalog completed with the
training ids the pass found.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from mtl_tf.data.chunks import MALFORMED_ATTR
from mtl_tf.data.dataset import CleaningReport, RecDataset
from mtl_tf.data.files import _table_name, read_table
from mtl_tf.data.stream import StreamedTraining
from mtl_tf.task_config import label_columns

_SPLIT_COLUMN = "__split__"


def check_streamable(config) -> None:
    """Raises ValueError for what `data.stream=true` does not support, naming
    the setting and the alternative."""
    data, schema = config.data, config.schema
    if not data.path:
        raise ValueError("data.stream=true streams the training shards of "
                         "data.path; set it (a file or a glob of shards).")
    derived = [f.name for f in schema.features
               if f.kind == "sequence" and f.is_derived]
    if derived:
        raise ValueError(
            f"data.stream=true: the sequence features {derived} are derived from "
            "each user's earlier rows of the log, which streaming never holds. "
            "Give the history in the data as a list column (derive=false on the "
            "feature, e.g. --set schema.<name>.derive=false), drop the feature, "
            "or set data.stream=false.")
    for side, key, path in (("item", schema.item_id, "items_path"),
                            ("user", schema.user_id, "users_path")):
        features = [f.name for f in schema.on_side(side, derived=False)
                    if f.kind not in ("id", "sequence")]
        if key is not None and features and not getattr(data, path):
            raise ValueError(
                f"data.stream=true: the {side} features {features} come from a "
                f"{side} side table (one row per {side}), not the streamed log; "
                f"set data.{path}, or set data.stream=false.")


def load_held_out(config) -> tuple[RecDataset, pd.DataFrame, pd.DataFrame]:
    """The side tables and the validation and test rows, in memory and
    cleaned: (the data set holding them, validation rows, test rows)."""
    data, schema = config.data, config.schema
    parts = []
    for name, path in (("validation", data.validation_path),
                       ("test", data.test_path)):
        frame = read_table(path, separator=data.separator, what=f"{name} rows",
                           lenient=data.lenient)
        parts.append((name, frame))
    malformed = sum(frame.attrs.get(MALFORMED_ATTR, 0) for _, frame in parts)
    rows = pd.concat([frame.assign(**{_SPLIT_COLUMN: name})
                      for name, frame in parts], ignore_index=True)
    sides = {}
    for table, path in (("items", data.items_path), ("users", data.users_path)):
        if path:
            sides[table] = read_table(path, separator=data.separator, what=table,
                                      lenient=data.lenient)
            malformed += sides[table].attrs.get(MALFORMED_ATTR, 0)
    sources = {"interactions": f"{data.validation_path} / {data.test_path}",
               "items": data.items_path or "", "users": data.users_path or ""}
    held_out = RecDataset.from_frames(
        schema, rows, sides.get("items"), sides.get("users"),
        labels=label_columns(config.tasks), name=_table_name(data.path),
        lenient=data.lenient, sources=sources)
    held_out.report.rows_read += malformed
    held_out.report.malformed_rows += malformed
    frames = held_out.interactions
    split = [frames[frames[_SPLIT_COLUMN] == name].drop(columns=_SPLIT_COLUMN)
             .reset_index(drop=True) for name in ("validation", "test")]
    return held_out.with_interactions(frames.drop(columns=_SPLIT_COLUMN)), *split


def with_training_ids(config, data: RecDataset, streamed: StreamedTraining
                      ) -> RecDataset:
    """`data` (the held-out rows and side tables) with the training rows'
    cleaning counts added, and, where no side table is given, every training
    item (user) in the catalog (user table): training ids first, then the
    held-out ones."""
    tables = {}
    for table, key in (("items", config.schema.item_id),
                       ("users", config.schema.user_id)):
        side = getattr(data, table)
        if key is None or getattr(config.data, f"{table}_path") or side is None:
            continue
        trained = streamed.item_ids if table == "items" else streamed.user_ids
        known = set(trained)
        held_out = [v for v in side[key.name].astype(str) if v not in known]
        ids = pd.Series(trained + held_out, dtype=str)
        tables[table] = pd.DataFrame({key.name: ids.astype(side[key.name].dtype)})
    report = CleaningReport(**{
        field.name: getattr(data.report, field.name)
        + getattr(streamed.report, field.name)
        for field in dataclasses.fields(CleaningReport)})
    return dataclasses.replace(data, report=report, **tables)


__all__ = ["check_streamable", "load_held_out", "with_training_ids"]
