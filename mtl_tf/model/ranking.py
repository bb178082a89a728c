"""The ranking network: a Keras functional model with one named output per task."""

from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from mtl_tf.config import TaskConfig

USER_INPUT = "user"
ITEM_INPUT = "item"


def build_ranking_network(dim: int, tasks: Sequence[TaskConfig],
                          bottom_units: Sequence[int] = (128, 64),
                          head_units: Sequence[int] = (32,), dropout: float = 0.1,
                          initial_biases: Mapping[str, float] | None = None,
                          seed: int = 0) -> tf.keras.Model:
    """Builds the shared-bottom ranking network over user and item representations.

    Inputs are the two tower outputs, named "user" and "item". The bottom sees their
    concatenation and element-wise product (the product makes dot-product structure,
    which MLPs learn poorly, directly available). Each non-retrieval task gets a head
    and an output of the task's name: regression tasks a linear output (bias started
    at `initial_biases[name]`, e.g. the label mean), binary tasks a probability.

    Example:
        >>> net = build_ranking_network(8, [TaskConfig("like", "binary", label="like")])
        >>> sorted(net.output_names)
        ['like']
    """
    user = tf.keras.Input((dim,), name=USER_INPUT)
    item = tf.keras.Input((dim,), name=ITEM_INPUT)
    init = tf.keras.initializers.GlorotUniform
    x = tf.keras.layers.Concatenate(name="interaction")(
        [user, item, tf.keras.layers.Multiply(name="user_x_item")([user, item])])
    for i, units in enumerate(bottom_units):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"bottom_{i}",
                                  kernel_initializer=init(seed + i))(x)
        if dropout:
            x = tf.keras.layers.Dropout(dropout, seed=seed + i, name=f"bottom_drop_{i}")(x)
    outputs = {}
    for task in tasks:
        if task.type == "retrieval":
            continue
        h = x
        for i, units in enumerate(head_units):
            h = tf.keras.layers.Dense(units, activation="relu",
                                      name=f"{task.name}_hidden_{i}")(h)
        if task.type == "regression":
            out = tf.keras.layers.Dense(
                1, name=f"{task.name}_out",
                bias_initializer=tf.keras.initializers.Constant(
                    (initial_biases or {}).get(task.name, 0.0)))(h)
        else:
            out = tf.keras.layers.Dense(1, activation="sigmoid",
                                        name=f"{task.name}_out")(h)
        outputs[task.name] = tf.keras.layers.Reshape((), name=task.name)(out)
    return tf.keras.Model({USER_INPUT: user, ITEM_INPUT: item}, outputs,
                          name="ranking_network")
