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
LABELS = (F.RATING, F.LIKE)


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
    return out


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
