"""From split interactions to `tf.data` pipelines of model inputs, labels and
per-task weights.

Examples carry what a serving request carries (the schema's user and context
features, plus the item id); item features come from the item catalog baked into
the model. Each task reads its label column and its weight column
`task_weight_key(task)`: 1 where the task's `where` holds (times its
`sample_weight`), 0 elsewhere.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from mtl_tf.data.cleaning import LENIENT_HINT, row_location
from mtl_tf.data.dataset import CleaningReport, RecDataset
from mtl_tf.data.history_column import HistoryColumn
from mtl_tf.data.sequences import history_columns
from mtl_tf.schema import Schema
from mtl_tf.schema.feature import HISTORY_ITEM_IDS, TIME_GAPS
from mtl_tf.schema.fitted import Preprocessing, fit_preprocessing
from mtl_tf.task_config import TaskConfig, label_columns

SPLIT_NAMES = ("train", "validation", "test")


def task_weight_key(task: TaskConfig) -> str:
    """The example key of a task's per-row weight."""
    return f"{task.name}/weight"


def model_input_names(schema: Schema) -> list[str]:
    """What a request (and every example) carries: the user and context
    features, plus the item id when there is one."""
    names = [f.name for f in schema.query_features]
    if schema.item_id is not None:
        names.append(schema.item_id.name)
    return names


def check_labels(frame: pd.DataFrame, tasks: Sequence[TaskConfig], source: str, *,
                 lenient: bool = False, report: CleaningReport | None = None,
                 require_rows: bool = False) -> np.ndarray:
    """Checks every task's label on the rows it trains on; returns the rows to
    keep.

    `frame` is a split joined with its side tables (`RecDataset.joined`). A
    label must be present (not NaN) where the task's `where` holds, and a
    binary label must be 0 or 1; in lenient mode such rows are dropped and
    counted in `report`. With `require_rows` (the training split) a `where`
    that matches no row is an error too.

    Raises:
        ValueError: a column missing from the data, a NaN or out-of-range
            label, or an empty `where`, naming the row, the column and the fix.
    """
    columns = label_columns(tasks)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        present = [c for c in frame.columns if not c.startswith("_")]
        raise ValueError(
            f"{source}: columns {missing} read by the tasks (labels, `where` or "
            f"`sample_weight`) are not in the data; columns present: {present}. "
            "Fix the task's column name, or add the column (for sampled "
            "impressions on a log without them, set data.impression_negatives).")
    values = {c: frame[c].to_numpy() for c, kind in columns.items() if kind == "number"}
    drop = np.zeros(len(frame), bool)
    for task in tasks:
        condition = task.condition
        rows = condition.evaluate(values, len(frame))
        if require_rows and condition.terms and not rows.any():
            raise ValueError(
                f"tasks.{task.name}.where={task.where!r} matches no row of "
                f"{source}; check the column and the value (e.g. labels stored "
                "as 0/1, not true/false).")
        if task.type in ("retrieval", "multilabel"):
            continue
        label = frame[task.label].to_numpy(np.float64)
        problems = [(np.isnan(label) & rows, "is missing (NaN)", "nan_labels",
                     "a number")]
        if task.type == "binary":
            with np.errstate(invalid="ignore"):
                outside = rows & ~np.isnan(label) & (label != 0) & (label != 1)
            problems.append((outside, "is not 0 or 1", "out_of_range_labels",
                             "0 or 1 for a binary task"))
        if task.sample_weight:
            weight = frame[task.sample_weight].to_numpy(np.float64)
            problems.append((rows & ~(weight >= 0), "weight is negative or NaN",
                             "nan_labels", f"a weight >= 0 in {task.sample_weight!r}"))
        for bad, problem, counter, expected in problems:
            if not bad.any():
                continue
            if not lenient:
                pos = int(np.argmax(bad))
                column = task.sample_weight if "weight" in problem else task.label
                received = frame[column].iloc[pos]
                received = received.item() if hasattr(received, "item") else received
                raise ValueError(
                    f"{row_location(frame, pos, source)}: column {column!r} "
                    f"(tasks.{task.name}) {problem}: received "
                    f"{received!r}; expected {expected}. Fix the "
                    f"row, restrict the task with `where`, or {LENIENT_HINT}.")
            if report is not None:
                setattr(report, counter, getattr(report, counter) + int(bad.sum()))
            drop |= bad
    return ~drop


def fit_on_training(data: RecDataset, train: pd.DataFrame,
                    tasks: Sequence[TaskConfig]) -> Preprocessing:
    """Fits the schema's preprocessing on the training split: user and context
    features on its rows, item features on its items only."""
    joined = data.joined(train)
    values = {}
    if data.schema.item_id is not None:
        # A hash lookup: np.isin on object (string) arrays is quadratic-slow.
        train_items = pd.Index(data.item_ids).isin(
            train[data.schema.item_id.name].astype(str).unique())
    for feature in data.schema.stored_features:
        if feature.side == "item" and feature.kind != "id":
            values[feature.name] = data.items[feature.name].to_numpy()[train_items]
        else:
            values[feature.name] = joined[feature.name].to_numpy()
    for feature in data.schema.parallel_sequences:
        if feature.is_derived and feature.values != TIME_GAPS:
            values[feature.name] = joined[feature.values].to_numpy()
    lists = {task.label: list_label(joined[task.label])
             for task in tasks if task.type == "multilabel"}
    return fit_preprocessing(data.schema, values, lists)


def retrieval_positives(frame: pd.DataFrame, tasks: Sequence[TaskConfig]
                        ) -> pd.DataFrame:
    """The rows of `frame` the retrieval task's `where` selects (every row
    without one, or without a retrieval task): they make the users' histories,
    the item popularity of the log-Q correction and the hit-rate targets."""
    task = next((t for t in tasks if t.type == "retrieval"), None)
    if task is None or not task.where:
        return frame
    return frame[task.condition.rows(frame)].reset_index(drop=True)


def split_histories(schema: Schema, splits, tasks: Sequence[TaskConfig], *,
                    before: bool) -> dict[str, dict[str, np.ndarray]]:
    """The schema's sequence feature for every split (`mtl_tf.data.sequences`).

    Training rows draw on the training split's retrieval positives (leave-one-
    out unless `before`), validation rows on the training positives, test rows
    on the training and validation positives: a held-out interaction never
    enters a training row's history. With `before` (temporal splits) each row
    sees only earlier events. Returns {split: {feature name: [n, width]}};
    empty dicts when the schema has no derived sequence feature.
    """
    feature = schema.sequence
    if feature is None or not feature.is_derived:
        return {name: {} for name in SPLIT_NAMES}
    train = retrieval_positives(splits.train, tasks)
    validation = retrieval_positives(splits.validation, tasks)
    sources = {"train": train, "validation": train,
               "test": pd.concat([train, validation], ignore_index=True)}
    return {name: _history(schema, getattr(splits, name), sources[name],
                           before=before,
                           leave_out_own=name == "train" and not before)
            for name in SPLIT_NAMES}


def own_histories(data: RecDataset, frame: pd.DataFrame,
                  tasks: Sequence[TaskConfig]) -> dict[str, np.ndarray]:
    """The sequence features of `frame` drawn from its own retrieval
    positives, leave-one-out (for rows outside a split, e.g. a sample of a
    log)."""
    feature = data.schema.sequence
    if feature is None or not feature.is_derived:
        return {}
    return _history(data.schema, frame, retrieval_positives(frame, tasks),
                    before=False, leave_out_own=True)


def _history(schema: Schema, frame: pd.DataFrame, known: pd.DataFrame, *,
             before: bool, leave_out_own: bool) -> dict[str, HistoryColumn]:
    """`history_columns` of the schema's derived sequence features (the
    history and its parallel lists) over its id and timestamp columns."""
    derived = [f for f in [schema.sequence] + schema.parallel_sequences
               if f.is_derived]
    values = {f.values for f in derived}
    lists = history_columns(
        frame, known, user_column=schema.user_id.name,
        item_column=schema.item_id.name, time_column=schema.timestamp,
        max_length=schema.sequence.max_length, before=before,
        leave_out_own=leave_out_own,
        columns=sorted(values - {HISTORY_ITEM_IDS, TIME_GAPS}),
        time_gaps=TIME_GAPS in values)
    return {f.name: lists[f.values] for f in derived}


def pad_lists(values: Sequence, width: int | None = None) -> np.ndarray:
    """Rows of string lists as a [n, width] string array padded with ""."""
    width = max([len(v) for v in values] + [1]) if width is None else width
    out = np.full((len(values), width), "", dtype=object)
    for row, items in enumerate(values):
        items = [str(v) for v in items][:width]
        out[row, :len(items)] = items
    return out


def raw_arrays(data: RecDataset, frame: pd.DataFrame, tasks: Sequence[TaskConfig],
               sequences: Mapping[str, np.ndarray] | None = None
               ) -> dict[str, np.ndarray]:
    """Model inputs and label columns of `frame` as named numpy arrays.

    Inputs in their schema dtype (strings as objects, numerics float32 with NaN
    for missing, lists padded with ""); number labels float32, list labels
    object arrays of tuples. The sequence feature comes from `sequences`
    (`split_histories`), by default from `frame`'s own positives
    (`own_histories`).
    """
    joined = data.joined(frame)
    if sequences is None:
        sequences = own_histories(data, frame, tasks)
    out: dict[str, np.ndarray] = {}
    for name in model_input_names(data.schema):
        feature = data.schema[name]
        if feature.is_derived:
            out[name] = sequences[name]
            continue
        column = joined[name]
        if feature.kind == "sequence":  # Given in the data: the newest events.
            width = data.schema.sequence.max_length
            lists = pad_lists([v[-width:] for v in column], width)
            out[name] = (np.where(lists == "", "0", lists).astype(np.float32)
                         if feature.dtype == "float32" else lists)
        elif feature.kind == "multi_categorical":
            out[name] = pad_lists(list(column))
        elif feature.kind == "numeric":
            out[name] = column.to_numpy(np.float32)
        elif feature.dtype == "string":
            out[name] = column.astype(str).to_numpy(object)
        else:
            out[name] = column.to_numpy({"int64": np.int64, "bool": bool,
                                         "float32": np.float32}[feature.dtype])
    for column, kind in label_columns(tasks).items():
        if kind == "list":
            out[column] = list_label(joined[column])
        else:
            out[column] = joined[column].to_numpy(np.float32)
    return out


def list_label(column: pd.Series) -> np.ndarray:
    """A list label column as an object array of string tuples (() if missing)."""
    values = np.empty(len(column), dtype=object)
    values[:] = [tuple(str(v) for v in row) if isinstance(
        row, (tuple, list, np.ndarray)) else () for row in column]
    return values


def finish_arrays(arrays: Mapping[str, np.ndarray], tasks: Sequence[TaskConfig],
                  label_vocabularies: Mapping[str, Sequence[str]]
                  ) -> dict[str, np.ndarray]:
    """Adds every task's weight column and turns list labels into multi-hot
    [n, vocabulary] floats; NaN labels outside a task's rows become 0."""
    out = dict(arrays)
    size = len(next(iter(arrays.values())))
    numbers = {k: v for k, v in arrays.items() if v.dtype != object and v.ndim == 1}
    for task in tasks:
        weight = task.condition.evaluate(numbers, size).astype(np.float32)
        if task.sample_weight:
            weight *= np.nan_to_num(arrays[task.sample_weight]).astype(np.float32)
        out[task_weight_key(task)] = weight
        if task.type == "multilabel":
            vocabulary = {v: i for i, v in enumerate(label_vocabularies[task.label])}
            hot = np.zeros((size, len(vocabulary)), np.float32)
            for row, values in enumerate(arrays[task.label]):
                hot[row, [vocabulary[v] for v in values if v in vocabulary]] = 1.0
            out[task.label] = hot
        elif task.type != "retrieval":
            out[task.label] = np.nan_to_num(arrays[task.label]).astype(np.float32)
    return out


def add_impression_negatives(arrays: dict[str, np.ndarray], item_ids: np.ndarray,
                             known: pd.DataFrame, per_example: int, *,
                             user_column: str, item_column: str,
                             label_names: Sequence[str], seed: int = 0
                             ) -> dict[str, np.ndarray]:
    """Appends `per_example` sampled non-interactions per example (the impressions).

    Each example's user gets items drawn uniformly from `item_ids` that are not
    among the user's `known` interactions (all splits, so a held-out positive is
    never labelled negative). A sampled row copies its example's user and
    context features, and every label in `label_names` is 0 (an empty list for
    list labels); the impression label among them marks real rows 1, sampled 0.

    Returns:
        new arrays: each original example followed by its `per_example` sampled
        rows.
    """
    if per_example < 1:
        return arrays
    rng = np.random.default_rng(seed)
    users = np.repeat(arrays[user_column], per_example).astype(str)
    # Known (user, item) pairs as "user\x1fitem" strings (numpy strips trailing
    # NULs, so no "\x00"), for fast membership tests.
    known_pairs = set(known[user_column].astype(str) + "\x1f"
                      + known[item_column].astype(str))
    items = item_ids[rng.integers(0, len(item_ids), len(users))]
    pending = np.arange(len(users))  # Rows whose pair is not yet checked.
    for _ in range(20):  # Resample collisions; users rarely know most items.
        keys = np.char.add(np.char.add(users[pending], "\x1f"),
                           items[pending].astype(str))
        pending = pending[np.fromiter((k in known_pairs for k in keys), bool,
                                      len(keys))]
        if not len(pending):
            break
        items[pending] = item_ids[rng.integers(0, len(item_ids), len(pending))]
    count = len(arrays[user_column])
    # Each example is followed by its sampled rows, so every unshuffled batch
    # (validation, test) holds interactions for the retrieval task too.
    sampled = np.tile(np.arange(per_example + 1) > 0, count)
    examples = np.repeat(np.arange(count), per_example + 1)
    # Every column is a gather of the examples' rows (a history column stays
    # windows), then the item and the labels of the sampled rows change.
    out = {name: values[examples] for name, values in arrays.items()}
    out[item_column][sampled] = items.astype(arrays[item_column].dtype)
    for label in label_names:
        if out[label].dtype == object:
            empty = np.empty(int(sampled.sum()), dtype=object)
            empty[:] = [()] * len(empty)
            out[label][sampled] = empty
        else:
            out[label][sampled] = 0
    return out


def make_dataset(arrays: dict[str, np.ndarray], batch_size: int, *,
                 shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """A batched, optionally shuffled and prefetched `tf.data.Dataset` of `arrays`.

    The arrays stay in memory as tensors (the cache); each batch is one vectorised
    gather of shuffled row indices, which is several times faster than shuffling and
    batching one string-keyed example at a time; a `HistoryColumn` builds its
    batch's lists from its windows. Under a multi-worker strategy, each worker
    takes its share of every batch (there are no files to shard).
    """
    gathers = {name: (values.batch_builder() if isinstance(values, HistoryColumn)
                      else _gather_rows(tf.constant(tensor_ready(values))))
               for name, values in arrays.items()}
    size = len(next(iter(arrays.values())))
    rows = tf.data.Dataset.range(size)
    if shuffle:
        rows = rows.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return rows.batch(batch_size).map(
        lambda index: {name: gather(index) for name, gather in gathers.items()},
        num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE).with_options(
            options)


def _gather_rows(tensor: tf.Tensor):
    return lambda index: tf.gather(tensor, index)


def tensor_ready(values: np.ndarray) -> np.ndarray:
    """`values` as `tf.constant` takes them (object arrays as str arrays)."""
    if values.dtype == object:
        return values.astype(str)
    return values


def example_arrays(data: RecDataset, frame: pd.DataFrame,
                   tasks: Sequence[TaskConfig],
                   label_vocabularies: Mapping[str, Sequence[str]] | None = None,
                   sequences: Mapping[str, np.ndarray] | None = None
                   ) -> dict[str, np.ndarray]:
    """Model inputs, labels and task weights of `frame` (no sampled impressions):
    `raw_arrays` then `finish_arrays`."""
    return finish_arrays(raw_arrays(data, frame, tasks, sequences), tasks,
                         label_vocabularies or {})
