"""The implicit-feedback term of the user representation (SVD++ style)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class UserHistory(tf.keras.layers.Layer):
    """Sum of a user's training items' embeddings, scaled by 1/sqrt(count).

    The implicit-feedback term of SVD++ (Koren, "Factorization meets the
    neighborhood", KDD 2008): |N(u)|^-1/2 * sum_{j in N(u)} y_j. All users' terms are
    one sparse-dense matmul per step, then gathered for the batch. The history holds
    the training split's retrieval positives. During training a positive
    example's own item is subtracted from its user's sum (leave-one-out), so the
    model cannot learn to retrieve an item from the history that contains it;
    impressions without the positive label are not in the history, so nothing is
    subtracted for them.

    Args:
        user_rows: user vocabulary rows of the training interactions.
        item_rows: item vocabulary rows, aligned with `user_rows`.
        num_user_rows: size of the user vocabulary (incl. OOV rows).
        num_item_rows: size of the item vocabulary (incl. OOV rows).
        dim: embedding width.
    """

    def __init__(self, user_rows: np.ndarray, item_rows: np.ndarray,
                 num_user_rows: int, num_item_rows: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        pairs = np.unique(np.stack([user_rows, item_rows], 1).astype(np.int64), axis=0)
        counts = np.bincount(pairs[:, 0], minlength=num_user_rows).astype(np.float32)
        scale = 1.0 / np.sqrt(np.maximum(counts, 1.0))
        self.matrix = tf.SparseTensor(pairs, scale[pairs[:, 0]],
                                      [num_user_rows, num_item_rows])
        self.scale = tf.constant(scale)
        self.num_item_rows = num_item_rows
        self.dim = dim

    def build(self, input_shape=None):
        self.item_embeddings = self.add_weight(
            name="history_item_embeddings", shape=(self.num_item_rows, self.dim),
            initializer=tf.keras.initializers.RandomNormal(stddev=0.01))
        super().build(input_shape)

    def call(self, user_rows: tf.Tensor, target_item_rows: tf.Tensor | None = None,
             target_in_history: tf.Tensor | None = None) -> tf.Tensor:
        """History terms of `user_rows`; each row's `target_item_rows` item is
        subtracted where `target_in_history` (default: every row) says the
        example is one of the history's own interactions."""
        every_user = tf.sparse.sparse_dense_matmul(self.matrix, self.item_embeddings)
        history = tf.gather(every_user, user_rows)
        if target_item_rows is not None:
            own = tf.gather(self.item_embeddings, target_item_rows)
            scale = tf.gather(self.scale, user_rows)
            if target_in_history is not None:
                scale *= tf.cast(target_in_history, scale.dtype)
            history -= own * scale[:, None]
        return history
