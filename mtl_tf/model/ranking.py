"""The ranking network: a Keras functional model with one named output per task."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import tensorflow as tf

from mtl_tf.config import ModelConfig, TaskConfig
from mtl_tf.model.architectures import build_architecture

USER_INPUT = "user"
ITEM_INPUT = "item"


def build_ranking_network(dim: int, tasks: Sequence[TaskConfig],
                          architecture: str = "shared_bottom",
                          architecture_args: Mapping[str, Any] | None = None,
                          head_units: Sequence[int] = (32,),
                          initial_biases: Mapping[str, float] | None = None,
                          seed: int = 0) -> tf.keras.Model:
    """Builds the ranking network over user and item representations.

    Inputs are the two tower outputs, named "user" and "item". The multi-task
    `architecture` (see `mtl_tf.model.architectures`) sees their concatenation and
    element-wise product (the product makes dot-product structure, which MLPs learn
    poorly, directly available) and returns one tensor per ranking task. Each task
    gets a head and an output of the task's name: regression tasks a linear output
    (bias started at `initial_biases[name]`, e.g. the label mean), binary tasks a
    probability.

    Example:
        >>> net = build_ranking_network(8, [TaskConfig("like", "binary", label="like")])
        >>> sorted(net.output_names)
        ['like']
    """
    ranking_tasks = [t for t in tasks if t.type != "retrieval"]
    user = tf.keras.Input((dim,), name=USER_INPUT)
    item = tf.keras.Input((dim,), name=ITEM_INPUT)
    outputs = {}
    if ranking_tasks:
        x = tf.keras.layers.Concatenate(name="interaction")(
            [user, item, tf.keras.layers.Multiply(name="user_x_item")([user, item])])
        body = build_architecture(
            architecture, len(ranking_tasks),
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed),
            **dict(architecture_args or {}))
        for task, h in zip(ranking_tasks, body(x)):
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


def architecture_args(model: ModelConfig) -> dict[str, Any]:
    """Constructor arguments of `model.mtl`'s layer from the model config."""
    if model.mtl in ("shared_bottom", "single_task"):
        return {"units": model.bottom_units, "dropout": model.dropout}
    if model.mtl == "mmoe":
        return {"num_experts": model.num_experts, "expert_units": model.expert_units,
                "dropout": model.dropout}
    return {"num_levels": model.num_levels,
            "num_shared_experts": model.num_shared_experts,
            "num_task_experts": model.num_task_experts,
            "expert_units": model.expert_units, "dropout": model.dropout}
