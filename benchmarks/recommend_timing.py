"""`recommend` latency of exported SavedModels, shared by the serving benchmarks.

A request is a real test user's query features, their history replaced by up
to `HISTORY_ITEMS` of that user's training items, repeated to the batch size.
Each SavedModel is loaded with `tf.saved_model.load`, warmed up, then timed
with `time.perf_counter` in turns (one call per model, round-robin), so the
load of a shared machine falls on all of them alike.
"""

from __future__ import annotations  # noqa: I001  (mtl_tf before tensorflow)

import time

import numpy as np

import mtl_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from mtl_tf.experiment import PreparedData

HISTORY_ITEMS = 5
WARMUP_CALLS = 20


def recommend_request(prepared: PreparedData, input_names: list[str], batch: int = 1,
                      k: int = 10) -> dict[str, tf.Tensor]:
    """A `recommend` request of `batch` copies of the first test row's query
    features, with a history of that user's training items, and `k`."""
    data, arrays = prepared.data, prepared.arrays["test"]
    user_key, item_key = data.schema.user_id.name, data.schema.item_id.name
    history_key = data.schema.sequence.name if data.schema.sequence else ""
    user = str(arrays[user_key][0])
    train = prepared.splits.train
    items = train.loc[train[user_key].astype(str) == user, item_key].astype(str)
    history = (items.tolist() + [""] * HISTORY_ITEMS)[:HISTORY_ITEMS]
    features = {}
    for name in input_names:
        if name == "k":
            features[name] = tf.constant(k, tf.int32)
        elif name == history_key:
            features[name] = tf.constant([history] * batch)
        else:
            features[name] = tf.constant(np.repeat(arrays[name][:1], batch, 0))
    return features


def time_recommend(exports: list, prepared: list[PreparedData], requests: int,
                   batch: int = 1, k: int = 10) -> list[dict]:
    """p50 / p99 `recommend` latency (ms) of each export, at `batch` and `k`,
    timed in turns; `prepared[i]` is the data export i was trained on."""
    calls = []
    for export, data in zip(exports, prepared):
        signature = tf.saved_model.load(str(export)).signatures["recommend"]
        features = recommend_request(
            data, list(signature.structured_input_signature[1]), batch, k)
        for _ in range(WARMUP_CALLS):
            output = signature(**features)
        assert output["item_ids"].shape == (batch, k), output["item_ids"].shape
        calls.append((signature, features, []))
    for _ in range(requests):
        for signature, features, seconds in calls:
            started = time.perf_counter()
            signature(**features)["item_ids"].numpy()
            seconds.append(time.perf_counter() - started)
    out = []
    for _, _, seconds in calls:
        milliseconds = 1000.0 * np.asarray(seconds)
        out.append({"p50 ms": float(np.percentile(milliseconds, 50)),
                    "p99 ms": float(np.percentile(milliseconds, 99))})
    return out
