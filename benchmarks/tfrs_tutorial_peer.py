"""The TFRS multi-task tutorial's model, re-implemented as a benchmark peer.

Configuration of the TensorFlow Recommenders "Multi-task recommenders" tutorial
(https://www.tensorflow.org/recommenders/examples/multitask): 32-dim id embeddings
for users and movies, a 256-128-1 rating MLP on their concatenation, a retrieval
task whose `FactorizedTopK` metrics run over the whole catalog on every step,
Adagrad(0.1), batches of 8192, 3 epochs, loss weights 1:1. Items are keyed by
`movie_id` here (the tutorial uses titles) so hit rates compare with mtl_tf's.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

import mtl_tf  # noqa: F401  (Keras 2 for TFRS)


class TutorialModel(tfrs.models.Model):
    """Id-only two-tower retrieval plus a rating MLP, summed 1:1."""

    def __init__(self, user_ids, item_ids, rating_weight=1.0, retrieval_weight=1.0):
        super().__init__()
        dim = 32
        self.user_model = tf.keras.Sequential([
            tf.keras.layers.StringLookup(vocabulary=user_ids, mask_token=None),
            tf.keras.layers.Embedding(len(user_ids) + 1, dim)])
        self.item_model = tf.keras.Sequential([
            tf.keras.layers.StringLookup(vocabulary=item_ids, mask_token=None),
            tf.keras.layers.Embedding(len(item_ids) + 1, dim)])
        self.rating_model = tf.keras.Sequential([
            tf.keras.layers.Dense(256, activation="relu"),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dense(1)])
        candidates = tf.data.Dataset.from_tensor_slices(item_ids).batch(128)
        self.rating_task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.MeanSquaredError(),
            metrics=[tf.keras.metrics.RootMeanSquaredError()])
        self.retrieval_task = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(candidates=candidates.map(
                self.item_model)))
        self.rating_weight = rating_weight
        self.retrieval_weight = retrieval_weight

    def call(self, features):
        user = self.user_model(features["user_id"])
        item = self.item_model(features["movie_id"])
        return user, item, self.rating_model(tf.concat([user, item], axis=1))

    def compute_loss(self, features, training=False):
        user, item, rating = self(features)
        rating_loss = self.rating_task(labels=features["user_rating"][:, None],
                                       predictions=rating)
        retrieval_loss = self.retrieval_task(user, item)
        return self.rating_weight * rating_loss + self.retrieval_weight * retrieval_loss


def train_tutorial(train: dict[str, np.ndarray], user_ids, item_ids, *,
                   epochs: int = 3, batch_size: int = 8192, seed: int = 42):
    """Trains the tutorial model; returns (model, examples per second).

    Throughput is measured over epochs 2.. (epoch 1 includes graph tracing).
    """
    tf.keras.utils.set_random_seed(seed)
    model = TutorialModel(list(user_ids), list(item_ids))
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    n = len(train["user_id"])
    dataset = tf.data.Dataset.from_tensor_slices(
        {k: train[k] for k in ("user_id", "movie_id", "user_rating")}
    ).shuffle(n, seed=seed).batch(batch_size).cache()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0)
        seconds.append(time.perf_counter() - start)
    timed = seconds[1:] or seconds
    return model, n / (sum(timed) / len(timed))
