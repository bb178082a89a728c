"""One run end to end: load, split, build, fit, evaluate, export."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mtl_tf import features as F
from mtl_tf.config import Config
from mtl_tf.data import RecDataset, load_data
from mtl_tf.data.pipeline import (
    add_impression_negatives,
    example_arrays,
    make_dataset,
)
from mtl_tf.data.splits import Splits, split


@dataclasses.dataclass
class PreparedData:
    """A loaded data set, its splits and each split's example arrays."""

    data: RecDataset
    splits: Splits
    arrays: dict[str, dict[str, np.ndarray]]

    @property
    def seen(self) -> pd.DataFrame:
        """Interactions known at training time (train + validation)."""
        return pd.concat([self.splits.train, self.splits.validation],
                         ignore_index=True)


def prepare_data(config: Config, data: RecDataset | None = None) -> PreparedData:
    """Loads (unless `data` is given) and splits the data set of `config`."""
    data = data if data is not None else load_data(config.data, config.synthetic)
    parts = split(data.interactions, config.data.split, config.data.test_fraction,
                  config.data.validation_fraction, config.data.seed,
                  config.data.cold_item_fraction)
    arrays = {name: example_arrays(data, frame, config.data.like_threshold)
              for name, frame in (("train", parts.train),
                                  ("validation", parts.validation),
                                  ("test", parts.test))}
    if config.data.impression_negatives:
        # Training negatives come from training items only: held-out (cold) items
        # must not appear in training at all.
        pools = {"train": parts.train[F.ITEM_ID].astype(str).unique()}
        every_item = data.items[F.ITEM_ID].astype(str).to_numpy()
        for offset, name in enumerate(arrays):
            arrays[name] = add_impression_negatives(
                arrays[name], pools.get(name, every_item), data.interactions,
                config.data.impression_negatives, seed=config.data.seed + offset)
    return PreparedData(data, parts, arrays)


def evaluate(model, prepared: PreparedData) -> dict[str, float]:
    """Test metrics: each task's metric and retrieval hit rates (both protocols)."""

    metrics = _split_metrics(model, prepared, None)
    cold = prepared.splits.cold_items
    if cold:
        for name, wanted in (("cold", True), ("warm", False)):
            metrics.update({f"{name}_{k}": v for k, v in
                            _split_metrics(model, prepared, (cold, wanted)).items()})
    return metrics


def _split_metrics(model, prepared: PreparedData, subset) -> dict[str, float]:
    """Test metrics of all test rows, or of rows whose item is (not) in a set."""
    from mtl_tf import scoring

    test, arrays = prepared.splits.test, prepared.arrays["test"]
    if subset is not None:
        items, wanted = subset
        keep = test[F.ITEM_ID].astype(str).isin(items).to_numpy() == wanted
        test = test[keep].reset_index(drop=True)
        # The arrays may hold sampled impressions beyond the test rows.
        keep = pd.Series(arrays[F.ITEM_ID]).astype(str).isin(items).to_numpy() == wanted
        arrays = {k: v[keep] for k, v in arrays.items()}
    metrics = scoring.task_metrics(model, arrays)
    if model.retrieval_task is not None:
        metrics.update(scoring.retrieval_metrics(model, prepared.data, prepared.seen,
                                                 test))
    return metrics


def run(config: Config, run_dir: str | Path, *, export: bool = True,
        verbose: int = 1, prepared: PreparedData | None = None) -> dict:
    """Trains and evaluates `config`; writes config.json and metrics.json to run_dir.

    Returns a dict with `metrics` (test), `training` (epochs, throughput), `export`
    (the SavedModel directory or None), `item_encoder_export` (the cold-start item
    encoder's directory when `export.item_encoder` is set, else None), `model` and
    `prepared`.
    """
    from mtl_tf.export import export_item_encoder, export_saved_model
    from mtl_tf.model.builder import build_model
    from mtl_tf.training import fit

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "config.json", config.to_dict())
    prepared = prepared or prepare_data(config)
    if verbose:
        print(f"Data {prepared.data.name}: {prepared.data.report.summary()}; "
              f"{prepared.data.num_users} users, {prepared.data.num_items} items; "
              f"split {prepared.splits.sizes()}")
    model = build_model(config, prepared.data, prepared.splits.train)
    train_ds = make_dataset(prepared.arrays["train"], config.train.batch_size,
                            shuffle=True, seed=config.train.seed)
    val_ds = (make_dataset(prepared.arrays["validation"], config.train.eval_batch_size)
              if len(prepared.splits.validation) else None)
    started = time.perf_counter()
    training = fit(model, config, train_ds, val_ds, run_dir,
                   num_train_examples=len(prepared.splits.train), verbose=verbose)
    training["seconds"] = time.perf_counter() - started
    metrics = evaluate(model, prepared)
    summary = {"metrics": metrics,
               "training": {k: v for k, v in training.items() if k != "history"},
               "data": {"name": prepared.data.name, **prepared.splits.sizes(),
                        "cleaning": prepared.data.report.as_dict()}}
    write_json_atomic(run_dir / "metrics.json", summary)
    export_path = item_encoder_path = None
    if export:
        assets = {"config": config.to_dict(), "metrics": summary}
        export_path = export_saved_model(
            model, config.export.export_dir, config.export.model_name,
            default_k=config.export.default_k, assets=assets)
        if config.export.item_encoder:
            item_encoder_path = export_item_encoder(
                model, config.export.export_dir,
                f"{config.export.model_name}_item_encoder", assets=assets)
    return {**summary, "export": export_path,
            "item_encoder_export": item_encoder_path, "model": model,
            "prepared": prepared, "history": training.get("history", {})}


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
