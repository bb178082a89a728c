"""From split interactions to `tf.data` pipelines of model features and labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from mtl_tf import features as F
from mtl_tf.data.dataset import RecDataset

# What the model reads from each example; item text and genres come from the
# item catalog baked into the model, so examples only carry the item id.
MODEL_FEATURES = (F.USER_ID, F.ITEM_ID) + F.USER_FEATURES
LABELS = (F.RATING, F.LIKE, F.WATCH)


def example_arrays(data: RecDataset, interactions: pd.DataFrame,
                   like_threshold: float = 4.0) -> dict[str, np.ndarray]:
    """Model features and labels of `interactions` as named numpy arrays.

    Raises:
        ValueError: if a rating label is NaN (names the field and the fix).
    """
    examples = data.to_examples(interactions)
    ratings = examples[F.RATING]
    if np.isnan(ratings).any():
        row = int(np.flatnonzero(np.isnan(ratings))[0])
        raise ValueError(f"Field {F.RATING!r} is NaN in example {row} of {data.name}; "
                         "clean the data or load it with data.lenient=true.")
    out = {name: examples[name] for name in MODEL_FEATURES}
    out[F.RATING] = ratings
    out[F.LIKE] = (ratings >= like_threshold).astype(np.float32)
    out[F.WATCH] = np.ones_like(ratings, np.float32)
    return out


def add_impression_negatives(arrays: dict[str, np.ndarray], item_ids: np.ndarray,
                             known: pd.DataFrame, per_example: int, seed: int = 0
                             ) -> dict[str, np.ndarray]:
    """Appends `per_example` sampled non-interactions per example (the impressions).

    Each example's user gets items drawn uniformly from `item_ids` that are not
    among the user's `known` interactions (all splits, so a held-out positive is
    never labelled negative). A sampled row copies its user's features and gets
    `watch` = `like` = 0 and `user_rating` = 0; interaction-space tasks give these
    rows zero weight, so the rating value is never learned from.

    Returns:
        new arrays: each original example followed by its `per_example` sampled
        rows.
    """
    if per_example < 1:
        return arrays
    rng = np.random.default_rng(seed)
    users = np.repeat(arrays[F.USER_ID], per_example)
    # Known (user, item) pairs as "user\x1fitem" strings (numpy strips trailing
    # NULs, so no "\x00"), for fast membership tests.
    known_pairs = set(known[F.USER_ID].astype(str) + "\x1f"
                      + known[F.ITEM_ID].astype(str))
    items = item_ids[rng.integers(0, len(item_ids), len(users))]
    pending = np.arange(len(users))  # Rows whose pair is not yet checked.
    for _ in range(20):  # Resample collisions; users rarely know most items.
        keys = np.char.add(np.char.add(users[pending].astype(str), "\x1f"),
                           items[pending].astype(str))
        pending = pending[np.fromiter((k in known_pairs for k in keys), bool,
                                      len(keys))]
        if not len(pending):
            break
        items[pending] = item_ids[rng.integers(0, len(item_ids), len(pending))]
    source = np.repeat(np.arange(len(arrays[F.USER_ID])), per_example)
    sampled = {name: values[source] for name, values in arrays.items()}
    sampled[F.ITEM_ID] = items.astype(arrays[F.ITEM_ID].dtype)
    for label in LABELS:
        if label in sampled:
            sampled[label] = np.zeros_like(sampled[label])
    # Each example is followed by its sampled rows, so every unshuffled batch
    # (validation, test) holds interactions for the retrieval task too.
    count = len(arrays[F.USER_ID])
    order = np.concatenate([np.arange(count)[:, None],
                            count + np.arange(count * per_example).reshape(
                                count, per_example)], axis=1).ravel()
    return {name: np.concatenate([arrays[name], sampled[name]])[order]
            for name in arrays}


def make_dataset(arrays: dict[str, np.ndarray], batch_size: int, *,
                 shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """A batched, optionally shuffled and prefetched `tf.data.Dataset` of `arrays`.

    The arrays stay in memory as tensors (the cache); each batch is one vectorised
    gather of shuffled row indices, which is several times faster than shuffling and
    batching one string-keyed example at a time.
    """
    tensors = {name: tf.constant(values) for name, values in arrays.items()}
    size = len(next(iter(arrays.values())))
    rows = tf.data.Dataset.range(size)
    if shuffle:
        rows = rows.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    return rows.batch(batch_size).map(
        lambda index: {name: tf.gather(t, index) for name, t in tensors.items()},
        num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
