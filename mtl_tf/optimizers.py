"""Adam whose embedding updates touch only the rows a batch looked up.

Keras' Adam applies a sparse gradient (`tf.IndexedSlices`, what an embedding
lookup yields) by first decaying the moment estimates of *every* row, then
updating every row of the table: each step costs O(table size), so training
slows down as the user and item tables grow with the log (at 10^7
interactions, 166k users x 64 floats: about 8 full passes over 42 MB arrays
per step). `LazyAdam` updates the moments and weights of the looked-up rows
only, as TensorFlow Addons' `LazyAdam` does ("lazy" Adam: rows absent from a
batch keep their moments). Dense gradients follow Adam exactly.

Example:
    >>> optimizer = LazyAdam(learning_rate=1e-3)
    >>> model.compile(optimizer=optimizer)
"""

from __future__ import annotations

import tensorflow as tf


class LazyAdam(tf.keras.optimizers.Adam):
    """Adam (Kingma & Ba, ICLR 2015) with row-wise updates for sparse
    gradients; see the module docstring. Takes Adam's arguments except
    `amsgrad`."""

    def __init__(self, *args, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("LazyAdam: amsgrad=True is not supported; use "
                             "tf.keras.optimizers.Adam.")
        super().__init__(*args, **kwargs)

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        # `apply_gradients` has already summed the slices of repeated rows.
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = (tf.cast(self.learning_rate, dtype)
                 * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step)))
        epsilon = self.epsilon * (tf.sqrt(1 - tf.pow(beta_2, step))
                                  if self.adaptive_epsilon else 1.0)
        key = self._var_key(variable)
        m = self._momentums[self._index_dict[key]]
        v = self._velocities[self._index_dict[key]]
        rows, values = gradient.indices, gradient.values
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(
            alpha * m_rows / (tf.sqrt(v_rows) + epsilon), rows))


__all__ = ["LazyAdam"]
