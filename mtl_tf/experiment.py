"""One run end to end: load, split, build, fit, evaluate, export."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mtl_tf.config import Config, EvalConfig
from mtl_tf.data import RecDataset, load_data
from mtl_tf.data.pipeline import (
    SPLIT_NAMES,
    add_impression_negatives,
    check_labels,
    finish_arrays,
    fit_on_training,
    make_dataset,
    model_input_names,
    raw_arrays,
    retrieval_positives,
    split_histories,
    task_weight_key,
)
from mtl_tf.data.public import public_source
from mtl_tf.data.splits import TEMPORAL_SPLITS, Splits, split
from mtl_tf.schema.fitted import Preprocessing
from mtl_tf.task_config import TaskConfig, label_columns

if TYPE_CHECKING:
    from mtl_tf.data.stream import StreamedTraining


@dataclasses.dataclass
class PreparedData:
    """A loaded data set, its splits, the fitted preprocessing and each split's
    example arrays.

    With `data.stream=true`, `stream` is the pass over the training shards
    (`mtl_tf.data.stream`): `splits.train` and `arrays["train"]` then hold only
    the training rows `build_model` reads besides the pass's exact item counts
    (all of them when few; see `stream.SAMPLE_ROWS`), `num_train_examples` and
    `sizes()` count every training row, and `train_dataset` streams them from
    the shards.
    """

    data: RecDataset
    splits: Splits
    arrays: dict[str, dict[str, np.ndarray]]
    preprocessing: Preprocessing
    tasks: tuple[TaskConfig, ...] = ()
    stream: "StreamedTraining | None" = None

    def positives(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of `frame` that are retrieval positives (its `where`)."""
        return retrieval_positives(frame, self.tasks)

    @property
    def seen(self) -> pd.DataFrame:
        """Retrieval positives known at training time (train + validation);
        streamed: the training ones of the users whose test rows are scored."""
        if self.stream is not None:
            ids = list(self.stream.seen.columns)
            validation = self.positives(self.splits.validation)[ids].astype(str)
            return pd.concat([self.stream.seen, validation], ignore_index=True)
        return self.positives(pd.concat([self.splits.train, self.splits.validation],
                                        ignore_index=True))

    @property
    def num_train_examples(self) -> int:
        return self.stream.num_rows if self.stream is not None else len(
            self.splits.train)

    def sizes(self) -> dict[str, int]:
        """Rows per split (every training row, streamed or not)."""
        return {**self.splits.sizes(), "train": self.num_train_examples}

    def train_dataset(self, config: Config):
        """The shuffled, batched training `tf.data.Dataset`."""
        if self.stream is None:
            return make_dataset(self.arrays["train"], config.train.batch_size,
                                shuffle=True, seed=config.train.seed)
        from mtl_tf.data.stream import train_dataset
        return train_dataset(config, self.data, self.stream, self.arrays["train"],
                             batch_size=config.train.batch_size,
                             seed=config.train.seed)


def prepare_data(config: Config, data: RecDataset | None = None,
                 splits: Splits | None = None, *,
                 run_dir: str | Path | None = None) -> PreparedData:
    """Loads (unless `data` is given), checks and splits the data set of
    `config`, fits the preprocessing on the training split and builds every
    split's example arrays. `data.split="published"` takes a public data set's
    own protocol; `splits` given replace `data.split`.

    With `data.stream=true` the training rows are streamed instead
    (`mtl_tf.data.stream`); the pass over them is saved in `run_dir` (when
    given) and reused from there.

    Raises:
        ValueError: bad labels (NaN, a binary label outside {0, 1}), a `where`
            that matches no training row, or a column the tasks read missing.
    """
    if config.data.stream:
        if data is not None or splits is not None:
            raise ValueError("prepare_data: data.stream=true reads its files "
                             "itself; pass neither `data` nor `splits`.")
        return _prepare_streamed(config, run_dir)
    data = data if data is not None else load_data(config)
    if data.schema != config.schema:
        raise ValueError(
            f"prepare_data: data {data.name!r} has another schema than the config; "
            "build the config with the data's schema, e.g. "
            "Config(schema=data.schema, tasks=...).")
    schema, tasks = data.schema, config.tasks
    impression_label = config.data.impression_label
    if config.data.impression_negatives:
        if schema.user_id is None or schema.item_id is None:
            raise ValueError("data.impression_negatives samples items per user: "
                             "it needs a user and an item id in the schema.")
        data = data.with_interactions(
            data.interactions.assign(**{impression_label: np.float32(1.0)}))
    if splits is not None:
        parts = splits
    elif config.data.split == "published":
        parts = public_source(config.data.source).split(data, config.data.seed)
    else:
        parts = split(data.interactions, schema, config.data.split,
                      config.data.test_fraction, config.data.validation_fraction,
                      config.data.seed, config.data.cold_item_fraction)
    checked = {}
    for name in SPLIT_NAMES:
        frame = getattr(parts, name)
        keep = check_labels(data.joined(frame), tasks, f"{data.name} ({name} split)",
                            lenient=config.data.lenient, report=data.report,
                            require_rows=name == "train")
        checked[name] = frame[keep].reset_index(drop=True)
    parts = Splits(checked["train"], checked["validation"], checked["test"],
                   cold_items=parts.cold_items)
    preprocessing = fit_on_training(data, parts.train, tasks)
    # Temporal protocols: a row's history is what happened before it.
    before = config.data.split in TEMPORAL_SPLITS or (
        config.data.split == "published" and bool(schema.timestamp))
    histories = split_histories(schema, parts, tasks, before=before)
    arrays = {name: raw_arrays(data, getattr(parts, name), tasks, histories[name])
              for name in SPLIT_NAMES}
    if config.data.impression_negatives:
        # Training negatives come from training items only: held-out (cold) items
        # must not appear in training at all.
        item_key = schema.item_id.name
        pools = {"train": parts.train[item_key].astype(str).unique()}
        for offset, name in enumerate(SPLIT_NAMES):
            arrays[name] = add_impression_negatives(
                arrays[name], pools.get(name, data.item_ids), data.interactions,
                config.data.impression_negatives, user_column=schema.user_id.name,
                item_column=item_key, label_names=list(label_columns(tasks)),
                seed=config.data.seed + offset)
    arrays = {name: finish_arrays(values, tasks, preprocessing.label_vocabularies)
              for name, values in arrays.items()}
    return PreparedData(data, parts, arrays, preprocessing, tuple(tasks))


def _prepare_streamed(config: Config, run_dir: str | Path | None) -> PreparedData:
    """`prepare_data` for `data.stream=true`: held-out rows in memory, one
    (saved, reusable) pass over the training shards."""
    from mtl_tf.data import held_out, stream

    held_out.check_streamable(config)
    data, validation, test = held_out.load_held_out(config)
    tasks = config.tasks
    checked = {}
    for name, frame in (("validation", validation), ("test", test)):
        keep = check_labels(data.joined(frame), tasks, f"{data.name} ({name} split)",
                            lenient=config.data.lenient, report=data.report)
        checked[name] = frame[keep].reset_index(drop=True)
    seen_users: set[str] = set()
    if data.schema.user_id is not None:
        scored = _sample_users(retrieval_positives(checked["test"], tasks),
                               data.schema.user_id.name, config.eval)
        seen_users = set(scored[data.schema.user_id.name].astype(str))
    streamed = stream.load_or_run_pass(config, data, seen_users, run_dir)
    data = held_out.with_training_ids(config, data, streamed)
    parts = Splits(streamed.sample, checked["validation"], checked["test"])
    arrays = {name: finish_arrays(raw_arrays(data, getattr(parts, name), tasks, {}),
                                  tasks, streamed.preprocessing.label_vocabularies)
              for name in SPLIT_NAMES}
    return PreparedData(data, parts, arrays, streamed.preprocessing, tuple(tasks),
                        stream=streamed)


def evaluate(model, prepared: PreparedData,
             eval_config: EvalConfig = EvalConfig()) -> dict[str, float]:
    """Test metrics: each task's metric and retrieval hit rates (both protocols;
    over a sample of `eval_config.max_users` test users if set)."""

    metrics = _split_metrics(model, prepared, None, eval_config)
    cold = prepared.splits.cold_items
    if cold:
        for name, wanted in (("cold", True), ("warm", False)):
            metrics.update({f"{name}_{k}": v for k, v in _split_metrics(
                model, prepared, (cold, wanted), eval_config).items()})
    return metrics


def _split_metrics(model, prepared: PreparedData, subset,
                   eval_config: EvalConfig) -> dict[str, float]:
    """Test metrics of all test rows, or of rows whose item is (not) in a set."""
    from mtl_tf import scoring

    test, arrays = prepared.splits.test, prepared.arrays["test"]
    if subset is not None:
        items, wanted = subset
        item_key = prepared.data.schema.item_id.name
        keep = test[item_key].astype(str).isin(items).to_numpy() == wanted
        test = test[keep].reset_index(drop=True)
        # The arrays may hold sampled impressions beyond the test rows.
        keep = pd.Series(arrays[item_key]).astype(str).isin(items).to_numpy() == wanted
        arrays = {k: v[keep] for k, v in arrays.items()}
    metrics = scoring.task_metrics(model, arrays)
    if model.retrieval_task is not None:
        positives = _sample_users(prepared.positives(test),
                                  prepared.data.schema.user_id.name, eval_config)
        metrics.update(scoring.retrieval_metrics(model, prepared.data, prepared.seen,
                                                 positives, arrays))
        metrics["hit_rate_users"] = float(
            positives[prepared.data.schema.user_id.name].nunique())
    return metrics


def _sample_users(rows: pd.DataFrame, user_key: str,
                  eval_config: EvalConfig) -> pd.DataFrame:
    """The rows of a seeded sample of at most `max_users` users (all if 0)."""
    users = rows[user_key].astype(str).unique()
    if not eval_config.max_users or len(users) <= eval_config.max_users:
        return rows
    kept = np.random.default_rng(eval_config.seed).choice(
        users, eval_config.max_users, replace=False)
    return rows[rows[user_key].astype(str).isin(kept)].reset_index(drop=True)


def run(config: Config, run_dir: str | Path, *, export: bool = True,
        verbose: int = 1, prepared: PreparedData | None = None) -> dict:
    """Trains and evaluates `config`; writes config.json and metrics.json to run_dir.

    Returns a dict with `metrics` (test), `training` (epochs, throughput), `export`
    (the SavedModel directory or None), `item_encoder_export` (the cold-start item
    encoder's directory when `export.item_encoder` is set, else None), `model`,
    `prepared` and `chief` (whether this process scored and exported). Under
    `train.distribution` other than "none", the model trains in the strategy's
    scope; then the chief alone scores and exports a one-device copy restored
    from the final checkpoint (other workers return empty metrics, no export
    and `chief` False).
    """
    from mtl_tf.distribution import (
        is_chief,
        is_parameter_server,
        make_strategy,
        variable_shards,
    )
    from mtl_tf.export import export_item_encoder, export_saved_model
    from mtl_tf.model.builder import build_model
    from mtl_tf.training import fit, warm_start

    # First: a multi-worker strategy configures collective ops at start-up.
    strategy = make_strategy(config.train)
    chief = is_chief(strategy)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if chief:
        write_json_atomic(run_dir / "config.json", config.to_dict())
    prepared = prepared or prepare_data(config, run_dir=run_dir if chief else None)
    unprepared = [t.name for t in config.tasks
                  if task_weight_key(t) not in prepared.arrays["train"]]
    if prepared.data.schema != config.schema or unprepared:
        raise ValueError("run: `prepared` was made for another schema than "
                         f"`config`, or without the tasks {unprepared}; prepare "
                         "it with experiment.prepare_data(config).")
    if chief:
        write_json_atomic(run_dir / "preprocessing.json",
                          prepared.preprocessing.to_dict())
    if verbose and chief:
        print(f"Data {prepared.data.name}: {prepared.data.report.summary()}; "
              f"{prepared.data.num_users} users, {prepared.data.num_items} items; "
              f"split {prepared.sizes()}")
    train_ds = prepared.train_dataset(config)
    val_ds = (make_dataset(prepared.arrays["validation"], config.train.eval_batch_size)
              if len(prepared.splits.validation) else None)

    def build():
        counts = prepared.stream.item_counts if prepared.stream else None
        return build_model(config, prepared.data, prepared.splits.train,
                           prepared.preprocessing, item_counts=counts)

    with strategy.scope():
        model = build()
        started = time.perf_counter()
        training = fit(model, config, train_ds, val_ds, run_dir,
                       num_train_examples=prepared.num_train_examples,
                       verbose=verbose)
    train_dir = run_dir
    if _refits(config, prepared, verbose and chief):
        epochs = _selected_epochs(run_dir, training, chief)
        prepared = prepare_data(config, prepared.data,
                                splits=prepared.splits.with_validation_in_train())
        refit_config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, epochs=epochs))
        train_dir = run_dir / "refit"
        if chief:  # What the kept model was fitted on.
            write_json_atomic(run_dir / "preprocessing.json",
                              prepared.preprocessing.to_dict())
        if verbose and chief:
            print(f"Refitting on training + validation rows for {epochs} epochs "
                  f"(the best on validation) in {train_dir}.")
        with strategy.scope():
            model = build()
            refitted = fit(model, refit_config, prepared.train_dataset(refit_config),
                           None, train_dir,
                           num_train_examples=prepared.num_train_examples,
                           verbose=verbose)
        training = {**refitted, "selection": _without_history(training),
                    "history": training.get("history", {})}
    training["seconds"] = time.perf_counter() - started
    if is_parameter_server(strategy):
        training["variable_shards"] = variable_shards(model)
    if config.train.distribution != "none":
        if not chief:  # The chief evaluates and exports.
            return {"metrics": {}, "training": _without_history(training),
                    "export": None, "item_encoder_export": None, "model": model,
                    "prepared": prepared, "history": training.get("history", {}),
                    "chief": False}
        # Scoring and export run on one device, with the trained weights.
        model = build()
        warm_start(model, train_dir)
    if not model.built:
        # A finished run's checkpoint was restored without a training step:
        # build eagerly (restoring on creation), not inside scoring's
        # tf.functions, which may only create variables on their first call.
        model(next(iter(make_dataset(prepared.arrays["train"], 2))),
              training=False)
    metrics = evaluate(model, prepared, config.eval)
    summary = {"metrics": metrics,
               "training": _without_history(training),
               "data": {"name": prepared.data.name, **prepared.sizes(),
                        "cleaning": prepared.data.report.as_dict()}}
    write_json_atomic(run_dir / "metrics.json", summary)
    export_path = item_encoder_path = None
    if export:
        assets = {"config": config.to_dict(), "metrics": summary,
                  "preprocessing": prepared.preprocessing.to_dict()}
        export_path = export_saved_model(
            model, config.export.export_dir, config.export.model_name,
            default_k=config.export.default_k, assets=assets,
            example=_request_example(prepared),
            item_embeddings=config.export.item_embeddings)
        if config.export.item_encoder:
            item_encoder_path = export_item_encoder(
                model, config.export.export_dir,
                f"{config.export.model_name}_item_encoder", assets=assets)
    return {**summary, "export": export_path,
            "item_encoder_export": item_encoder_path, "model": model,
            "prepared": prepared, "history": training.get("history", {}),
            "chief": True}


SELECTION_FILE = "selection.json"


def _refits(config: Config, prepared: PreparedData, verbose: bool) -> bool:
    """Whether `train.refit` applies: it needs a validation split to merge
    into an in-memory training split that may hold every item."""
    if not config.train.refit:
        return False
    reason = ("data.stream=true keeps the validation rows out of the streamed "
              "training shards" if prepared.stream is not None else
              "data.split=cold_items keeps the held-out items out of training"
              if prepared.splits.cold_items else
              "there is no validation split" if not len(prepared.splits.validation)
              else "")
    if reason and verbose:
        print(f"train.refit skipped: {reason}.")
    return not reason


def _selected_epochs(run_dir: Path, training: dict, chief: bool) -> int:
    """The epoch count early stopping kept, saved in `run_dir` so that a
    resumed run (whose selection already finished) refits the same way."""
    path = run_dir / SELECTION_FILE
    if "best_epoch" not in training:  # Finished before: read what it kept.
        if not path.exists():
            raise ValueError(f"train.refit: {run_dir} holds a finished training "
                             f"run but no {SELECTION_FILE}; pass a new "
                             "--output-dir to train again.")
        return int(json.loads(path.read_text())["best_epoch"])
    if chief:
        write_json_atomic(path, {"best_epoch": training["best_epoch"]})
    return int(training["best_epoch"])


def _without_history(training: dict) -> dict:
    return {k: v for k, v in training.items() if k != "history"}


def _request_example(prepared: PreparedData) -> dict:
    """The first test row's request features, for the export's schema.json."""
    arrays = prepared.arrays["test"] if len(prepared.splits.test) else \
        prepared.arrays["train"]
    schema = prepared.data.schema
    # The history's events (and its parallel lists') without the padding.
    events = (int((arrays[schema.sequence.name][0] != "").sum())
              if schema.sequence is not None else 0)
    out = {}
    for name in model_input_names(schema):
        value = arrays[name][0]
        value = value.tolist() if hasattr(value, "tolist") else value
        if schema[name].kind == "sequence":
            value = value[:events]
        elif isinstance(value, list):  # A padded list: its values only.
            value = [v for v in value if v != ""]
        out[name] = value
    return out


def write_json_atomic(path: Path, document: dict) -> None:
    """Writes JSON to a temporary file beside `path`, then renames it into place."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as stream:
        json.dump(document, stream, indent=2, default=_json_default)
    os.replace(temporary, path)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = ["PreparedData", "evaluate", "prepare_data", "run"]
