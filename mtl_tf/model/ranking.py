"""The ranking network: a Keras functional model with one named output per task."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import tensorflow as tf

from mtl_tf.config import ModelConfig
from mtl_tf.model.architectures import build_architecture
from mtl_tf.task_config import TaskConfig, conditional_output_name, task_order

USER_INPUT = "user"
ITEM_INPUT = "item"
# The candidate's target attention over the history (`model.target_attention`).
HISTORY_INPUT = "target_attention"
# Layer names other code looks up (gate inspection): the architecture's input and
# the architecture itself.
INTERACTION_LAYER = "interaction"
BODY_LAYER = "mtl_body"
# Tasks on a (user, item) pair, served by the architecture in config order.
PAIR_TASK_TYPES = ("regression", "binary")


def build_ranking_network(dim: int, tasks: Sequence[TaskConfig],
                          architecture: str = "shared_bottom",
                          architecture_args: Mapping[str, Any] | None = None,
                          head_units: Sequence[int] = (32,),
                          initial_biases: Mapping[str, float] | None = None,
                          label_sizes: Mapping[str, int] | None = None,
                          with_item: bool = True, with_history: bool = False,
                          seed: int = 0) -> tf.keras.Model:
    """Builds the ranking network over user and item representations.

    Inputs are the two tower outputs, named "user" and "item" (only "user", the
    query side, for data without items, `with_item=False`). The multi-task
    `architecture` (see `mtl_tf.model.architectures`) sees their concatenation and
    element-wise product (the product makes dot-product structure, which MLPs learn
    poorly, directly available), plus the "target_attention" input with
    `with_history` when there are pair tasks (the candidate item's DIN
    attention over the history, `mtl_tf.model.history.TargetAttention`), and
    returns one tensor per regression or binary task. Each task gets a head and
    an output of the task's name: regression tasks a linear output (bias
    started at `initial_biases[name]`, e.g. the label mean), binary tasks a
    probability. A binary task with `depends_on` outputs its head's probability
    times its parent's output (ESMM) and also exposes the conditional
    probability as `<name>_given_<parent>`. Multilabel tasks are auxiliary tasks
    on the item representation alone (the query one without items): a head to
    one probability per label value, `label_sizes[name]` of them (e.g. an
    item's genres).

    Example:
        >>> net = build_ranking_network(8, [TaskConfig("like", "binary", label="like")])
        >>> sorted(net.output_names)
        ['like']
    """
    user = tf.keras.Input((dim,), name=USER_INPUT)
    inputs = {USER_INPUT: user}
    if with_item:
        inputs[ITEM_INPUT] = item = tf.keras.Input((dim,), name=ITEM_INPUT)
    pair_tasks = [t for t in tasks if t.type in PAIR_TASK_TYPES]
    heads: dict[str, tf.Tensor] = {}
    if pair_tasks:
        if with_item:
            parts = [user, item,
                     tf.keras.layers.Multiply(name="user_x_item")([user, item])]
            if with_history:
                inputs[HISTORY_INPUT] = tf.keras.Input((dim,), name=HISTORY_INPUT)
                parts.append(inputs[HISTORY_INPUT])
            x = tf.keras.layers.Concatenate(name=INTERACTION_LAYER)(parts)
        else:
            x = tf.keras.layers.Activation("linear", name=INTERACTION_LAYER)(user)
        architecture = "single_task" if architecture == "esmm" else architecture
        body = build_architecture(
            architecture, len(pair_tasks),
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed),
            name=BODY_LAYER, **dict(architecture_args or {}))
        for task, h in zip(pair_tasks, body(x)):
            h = _hidden(h, task.name, head_units)
            if task.type == "regression":
                out = tf.keras.layers.Dense(
                    1, name=f"{task.name}_out",
                    bias_initializer=tf.keras.initializers.Constant(
                        (initial_biases or {}).get(task.name, 0.0)))(h)
            else:
                out = tf.keras.layers.Dense(1, activation="sigmoid",
                                            name=f"{task.name}_out")(h)
            heads[task.name] = out
    outputs = {}
    for task in task_order(tasks):
        if task.type == "multilabel":
            h = _hidden(item if with_item else user, task.name, head_units)
            outputs[task.name] = tf.keras.layers.Dense(
                (label_sizes or {}).get(task.name, 1), activation="sigmoid",
                name=task.name)(h)
        elif task.depends_on:
            conditional = conditional_output_name(task)
            outputs[conditional] = tf.keras.layers.Reshape((), name=conditional)(
                heads[task.name])
            outputs[task.name] = tf.keras.layers.Multiply(name=task.name)(
                [outputs[conditional], outputs[task.depends_on]])
        elif task.name in heads:
            outputs[task.name] = tf.keras.layers.Reshape((), name=task.name)(
                heads[task.name])
    return tf.keras.Model(inputs, outputs, name="ranking_network")


def _hidden(h: tf.Tensor, name: str, units: Sequence[int]) -> tf.Tensor:
    for i, width in enumerate(units):
        h = tf.keras.layers.Dense(width, activation="relu",
                                  name=f"{name}_hidden_{i}")(h)
    return h


def architecture_args(model: ModelConfig) -> dict[str, Any]:
    """Constructor arguments of `model.mtl`'s layer from the model config."""
    if model.mtl in ("shared_bottom", "single_task", "esmm"):
        return {"units": model.bottom_units, "dropout": model.dropout}
    if model.mtl == "mmoe":
        return {"num_experts": model.num_experts, "expert_units": model.expert_units,
                "dropout": model.dropout}
    return {"num_levels": model.num_levels,
            "num_shared_experts": model.num_shared_experts,
            "num_task_experts": model.num_task_experts,
            "expert_units": model.expert_units, "dropout": model.dropout}
