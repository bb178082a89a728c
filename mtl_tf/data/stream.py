"""The streamed training split: `data.stream=true` on the `files` source.

The training rows (`data.path`, a file or a glob of shards) are never loaded
whole. One pass over them, a chunk of `data.chunk_rows` rows at a time
(`mtl_tf.data.chunks`), cleans and checks every chunk exactly as the in-memory
path does (`RecDataset.from_frames`, `pipeline.check_labels`) and gathers:

- the fitted `Preprocessing` (`schema.fitted.PreprocessingSummary`: the same
  vocabularies and, up to rounding, the same statistics as
  `pipeline.fit_on_training` on all rows at once);
- the row count, the training item and user ids (the catalog and user table
  when no side table is given), and the cleaning report;
- the training retrieval positives of the users whose test rows are scored,
  so that evaluation excludes their seen items;
- `item_counts`: each item's training retrieval positives, exactly (the
  log-Q item popularity `build_model` takes);
- `sample`: the training rows `build_model` reads for the rest (its text
  vocabularies and the regression heads' initial biases): every row while
  there are at most `SAMPLE_ROWS`, so the model is built exactly as in
  memory; else a seeded uniform sample of that many plus one row of each
  training item the sample missed (every training item gets its id row), and
  those two are estimated from the sample.

The pass is saved as `stream_summary.json` in the run directory and reused
when the same run directory is resumed with the same data section, schema,
tasks and shards (else it runs again). Training then reads the shards through
`tf.data` (`train_dataset`): interleaved across shards, each chunk turned into
the in-memory path's example arrays (`raw_arrays` + `finish_arrays`), shuffled
in a bounded buffer, batched and prefetched. The validation and test rows
(`data.validation_path`, `data.test_path`) and the side tables are read into
memory as usual (`mtl_tf.data.held_out`).

Memory: one chunk per open shard, the shuffle buffer, the vocabularies, the
distinct training ids, the sample, and the seen pairs of the scored users.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import json
import math
import os
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import tensorflow as tf

from mtl_tf.data.chunks import MALFORMED_ATTR, read_shard_chunks, shard_paths
from mtl_tf.data.cleaning import HELPER_COLUMNS
from mtl_tf.data.columns import coerce_feature
from mtl_tf.data.dataset import CleaningReport, RecDataset
from mtl_tf.data.pipeline import (
    check_labels,
    finish_arrays,
    list_label,
    raw_arrays,
    retrieval_positives,
    tensor_ready,
)
from mtl_tf.schema.fitted import Preprocessing, PreprocessingSummary
from mtl_tf.task_config import label_columns

SUMMARY_FILE = "stream_summary.json"
# Training rows kept for build_model (see the module docstring).
SAMPLE_ROWS = 100_000
# Values sampled per bucketized numeric feature for its quantiles.
QUANTILE_SAMPLE = 1_000_000
_ORDER = "__row__"


@dataclasses.dataclass
class StreamedTraining:
    """What one pass over the training shards learned (see the module
    docstring).

    Attributes:
        preprocessing: the state fitted on the training rows.
        num_rows: training rows kept (after cleaning and label checks).
        item_ids, user_ids: the distinct training item and user ids, in order
            of first appearance.
        report: what cleaning dropped from the training rows.
        item_counts: training retrieval positives per item id.
        sample: the training rows `build_model` reads.
        seen: the training retrieval positives (user and item id columns) of
            the users whose test rows are scored.
        fingerprint: the data section, schema, tasks and shards it was
            computed from.
        reused: loaded from the run directory rather than computed.
    """

    preprocessing: Preprocessing
    num_rows: int
    item_ids: list[str]
    user_ids: list[str]
    report: CleaningReport
    item_counts: dict[str, int]
    sample: pd.DataFrame
    seen: pd.DataFrame
    fingerprint: str
    reused: bool = False

    def to_dict(self) -> dict:
        lists = [c for c in self.sample.columns
                 if self.sample[c].map(lambda v: isinstance(v, tuple)).any()]
        sample = {c: [list(v) if isinstance(v, tuple) else v for v in values]
                  for c, values in self.sample.to_dict("list").items()}
        return {"fingerprint": self.fingerprint, "num_rows": self.num_rows,
                "preprocessing": self.preprocessing.to_dict(),
                "report": self.report.as_dict(), "item_ids": self.item_ids,
                "user_ids": self.user_ids, "item_counts": self.item_counts,
                "sample": sample, "sample_lists": lists,
                "seen": self.seen.to_dict("list")}

    @classmethod
    def from_dict(cls, values: dict) -> "StreamedTraining":
        sample = pd.DataFrame(values["sample"])
        for column in values["sample_lists"]:
            sample[column] = pd.Series([tuple(v) for v in sample[column]],
                                       dtype=object)
        return cls(Preprocessing.from_dict(values["preprocessing"]),
                   int(values["num_rows"]), list(values["item_ids"]),
                   list(values["user_ids"]), CleaningReport(**values["report"]),
                   {k: int(v) for k, v in values["item_counts"].items()}, sample,
                   pd.DataFrame(values["seen"]), values["fingerprint"])


def clean_chunk(config, data: RecDataset, chunk: pd.DataFrame,
                report: CleaningReport) -> pd.DataFrame:
    """A raw chunk of training rows cleaned and label-checked as the in-memory
    path does (side-table references checked against `data`'s tables); counts
    what it drops into `report`."""
    schema, lenient = config.schema, config.data.lenient
    sides = {}
    for table, key in (("items", schema.item_id), ("users", schema.user_id)):
        side = getattr(data, table)
        if key is not None and getattr(config.data, f"{table}_path"):
            # Only the side rows this chunk references (keys as the schema reads
            # them): the check costs a chunk, not a catalog.
            keys = coerce_feature(chunk, key, "", lenient=True)[0]
            side = side[side[key.name].isin(keys.unique())]
            sides[table] = side
    cleaned = RecDataset.from_frames(
        schema, chunk, sides.get("items"), sides.get("users"),
        labels=label_columns(config.tasks), name=data.name, lenient=lenient,
        sources={"interactions": os.fspath(config.data.path),
                 "items": config.data.items_path or "",
                 "users": config.data.users_path or ""})
    skipped = chunk.attrs.get(MALFORMED_ATTR, 0)
    for field in dataclasses.fields(CleaningReport):
        setattr(report, field.name, getattr(report, field.name)
                + getattr(cleaned.report, field.name))
    report.rows_read += skipped
    report.malformed_rows += skipped
    rows = cleaned.interactions
    keep = check_labels(data.joined(rows), config.tasks,
                        f"{data.name} (train split)", lenient=lenient,
                        report=report)
    report.rows_kept -= int((~keep).sum())
    return rows[keep].reset_index(drop=True)


def training_chunks(config, data: RecDataset, shards: list[str] | None = None,
                    report: CleaningReport | None = None
                    ) -> Iterator[pd.DataFrame]:
    """The cleaned training rows of `shards` (default: every shard of
    `data.path`), a chunk at a time."""
    report = report if report is not None else CleaningReport()
    for shard in shards or shard_paths(config.data.path):
        for chunk in read_shard_chunks(shard, chunk_rows=config.data.chunk_rows,
                                       separator=config.data.separator,
                                       lenient=config.data.lenient):
            yield clean_chunk(config, data, chunk, report)


def fingerprint(config) -> str:
    """A digest of what the pass depends on: the data section, schema, tasks
    and every file's path, size and modification time."""
    data = config.data
    files = shard_paths(data.path) + [
        p for path in (data.validation_path, data.test_path, data.items_path,
                       data.users_path) if path for p in shard_paths(path, "data")]
    stats = [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in files]
    document = {"data": dataclasses.asdict(data), "schema": config.schema.to_dict(),
                "tasks": [dataclasses.asdict(t) for t in config.tasks],
                "files": stats, "version": 2}
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_pass(config, data: RecDataset, seen_users: set[str],
             sample_rows: int = SAMPLE_ROWS) -> StreamedTraining:
    """One pass over the training shards (see the module docstring).

    Args:
        config: the run's config (`data.stream=true`).
        data: the side tables (`load_held_out`).
        seen_users: users whose training positives `seen` keeps.
        sample_rows: the most sampled rows `sample` keeps.

    Raises:
        ValueError: as the in-memory path for bad rows and labels (naming the
            shard and line), or a task's `where` that matches no training row.
    """
    schema, tasks = config.schema, config.tasks
    summary = PreprocessingSummary(schema, QUANTILE_SAMPLE, config.data.seed)
    item_side = {f.name for f in schema.stored_features
                 if f.side == "item" and f.kind != "id" and schema.item_id}
    rng = np.random.default_rng(config.data.seed)
    report = CleaningReport()
    counts = {t.name: 0 for t in tasks}
    items: dict[str, None] = {}
    item_counts: collections.Counter = collections.Counter()
    users: dict[str, None] = {}
    sample = last_rows = None
    seen, rows = [], 0
    for chunk in training_chunks(config, data, report=report):
        joined = data.joined(chunk)
        summary.add(
            {f.name: np.empty(0, object) if f.name in item_side
             else joined[f.name].to_numpy() for f in schema.stored_features},
            {t.label: list_label(joined[t.label]) for t in tasks
             if t.type == "multilabel"})
        numbers = {c: joined[c].to_numpy() for c, kind in label_columns(tasks).items()
                   if kind == "number"}
        for task in tasks:
            counts[task.name] += int(task.condition.evaluate(numbers,
                                                             len(joined)).sum())
        frame = chunk.drop(columns=[c for c in HELPER_COLUMNS if c in chunk])
        frame[_ORDER] = np.arange(rows, rows + len(frame))
        rows += len(frame)
        for key, known in ((schema.item_id, items), (schema.user_id, users)):
            if key is not None:
                known.update(dict.fromkeys(frame[key.name].astype(str).unique()))
        sample = _keep_smallest(sample, frame.assign(
            __key__=rng.random(len(frame))), sample_rows)
        if schema.item_id is not None:
            last_rows = pd.concat([last_rows, frame]).drop_duplicates(
                schema.item_id.name, keep="last")
        positives = retrieval_positives(chunk, tasks)
        if schema.item_id is not None:
            item_counts.update(positives[schema.item_id.name].astype(str).tolist())
        if schema.user_id is not None and schema.item_id is not None and seen_users:
            ids = [schema.user_id.name, schema.item_id.name]
            seen.append(positives.loc[positives[ids[0]].astype(str).isin(
                seen_users), ids].astype(str))
    if not rows:
        raise ValueError(f"data.path {config.data.path!r}: no training rows are "
                         "left after cleaning; point data.path at the training "
                         "shards.")
    for task in tasks:
        if task.condition.terms and not counts[task.name]:
            raise ValueError(
                f"tasks.{task.name}.where={task.where!r} matches no row of the "
                f"training shards {config.data.path!r}; check the column and the "
                "value (e.g. labels stored as 0/1, not true/false).")
    if item_side:
        trained = data.items[schema.item_id.name].astype(str).isin(items.keys())
        summary.add({f.name: data.items[f.name].to_numpy()[trained.to_numpy()]
                     if f.name in item_side else np.empty(0, object)
                     for f in schema.stored_features})
    sample = sample.drop(columns="__key__")
    if last_rows is not None and rows > sample_rows:
        missing = ~last_rows[schema.item_id.name].isin(sample[schema.item_id.name])
        sample = pd.concat([sample, last_rows[missing]])
    sample = sample.sort_values(_ORDER).drop(columns=_ORDER).reset_index(drop=True)
    ids = [k.name for k in (schema.user_id, schema.item_id) if k is not None]
    seen = (pd.concat(seen, ignore_index=True) if seen
            else pd.DataFrame({k: pd.Series([], dtype=str) for k in ids}))
    report.rows_kept = rows
    return StreamedTraining(summary.fit(), rows, list(items), list(users), report,
                            dict(item_counts), sample, seen, fingerprint(config))


def _keep_smallest(sample: pd.DataFrame | None, frame: pd.DataFrame, size: int
                   ) -> pd.DataFrame:
    """The `size` rows of both with the smallest `__key__` (a uniform sample)."""
    both = frame if sample is None else pd.concat([sample, frame], ignore_index=True)
    if len(both) <= size:
        return both
    return both.iloc[np.argpartition(both["__key__"].to_numpy(), size)[:size]]


def load_or_run_pass(config, data: RecDataset, seen_users: set[str],
                     run_dir: str | os.PathLike | None,
                     sample_rows: int = SAMPLE_ROWS) -> StreamedTraining:
    """`run_pass`, or its result saved in `run_dir` when it was made from the
    same data section, schema, tasks and files; a new result is saved there
    (atomically) when `run_dir` is given."""
    from mtl_tf.experiment import write_json_atomic

    path = Path(run_dir) / SUMMARY_FILE if run_dir is not None else None
    if path is not None and path.exists():
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            saved = {}
        if saved.get("fingerprint") == fingerprint(config):
            result = StreamedTraining.from_dict(saved)
            result.reused = True
            return result
    result = run_pass(config, data, seen_users, sample_rows)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, result.to_dict())
    return result


def train_dataset(config, data: RecDataset, streamed: StreamedTraining,
                  example: dict[str, np.ndarray], *, batch_size: int,
                  seed: int = 0) -> tf.data.Dataset:
    """The training examples streamed from the shards, batched.

    Shards are interleaved (parallel, in a seeded deterministic order); each
    chunk becomes the in-memory path's example arrays, rows shuffled within
    the chunk and again in a buffer of at most `max(chunk_rows, 4 * batch_size)`
    examples, then padded to batches (list features to the longest in the
    batch) and prefetched. Every epoch reads each training row once; under a
    multi-worker strategy each worker takes its share of every batch.

    Args:
        config: the run's config.
        data: the side tables the rows are joined with.
        streamed: the pass (`num_rows`, the label vocabularies).
        example: any example arrays of these tasks (e.g. the validation
            split's), for the element types.
        batch_size, seed: the batch size and the shuffling seed.
    """
    shards = shard_paths(config.data.path)
    tasks = config.tasks
    vocabularies = streamed.preprocessing.label_vocabularies
    signature = {name: tf.TensorSpec((None,) * values.ndim,
                                     tf.string if values.dtype == object
                                     else tf.as_dtype(values.dtype))
                 for name, values in example.items()}
    calls = itertools.count()

    def generate(shard: bytes):
        shard = shard.decode()
        rng = np.random.default_rng([seed, zlib.crc32(shard.encode()), next(calls)])
        for rows in training_chunks(config, data, [shard]):
            if not len(rows):
                continue
            arrays = finish_arrays(raw_arrays(data, rows, tasks, {}), tasks,
                                   vocabularies)
            order = rng.permutation(len(rows))
            yield {name: tensor_ready(arrays[name][order]) for name in signature}

    files = tf.data.Dataset.from_tensor_slices(shards)
    rows = files.interleave(
        lambda shard: tf.data.Dataset.from_generator(
            generate, output_signature=signature, args=(shard,)),
        cycle_length=max(2, min(len(shards), 8)), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    buffer = min(streamed.num_rows, max(config.data.chunk_rows, 4 * batch_size))
    batches = (rows.unbatch()
               .shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
               .padded_batch(batch_size)
               .apply(tf.data.experimental.assert_cardinality(
                   math.ceil(streamed.num_rows / batch_size)))
               .prefetch(tf.data.AUTOTUNE))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return batches.with_options(options)


__all__ = ["SAMPLE_ROWS", "SUMMARY_FILE", "StreamedTraining", "clean_chunk",
           "fingerprint", "load_or_run_pass", "run_pass", "train_dataset",
           "training_chunks"]
