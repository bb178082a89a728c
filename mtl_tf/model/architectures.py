"""Interchangeable multi-task layers: shared bottom, single task, MMoE, CGC and PLE.

One interface: `layer(x, training=False)` maps a [batch, d] input to a list of one
[batch, units] tensor per task, in task order; the caller adds a tower per task.
Gated layers keep their latest gate weights in `last_gate_weights` (symbolic inside a
`tf.function`) and compute them on demand with `gate_weights(x)`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import tensorflow as tf

ARCHITECTURES = ("shared_bottom", "single_task", "mmoe", "ple")


def _check_count(name: str, value: int, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. "
                         f"Received: `{name}={value}`.")
    return int(value)


def _check_units(name: str, units: Sequence[int]) -> tuple[int, ...]:
    units = tuple(units)
    if not units or any(int(u) != u or u < 1 for u in units):
        raise ValueError(f"`{name}` must be a non-empty sequence of positive integers. "
                         f"Received: `{name}={units}`.")
    return tuple(int(u) for u in units)


class _MLP(tf.keras.layers.Layer):
    # Not a Sequential: unbuilt, it has no weights instead of raising on access.
    def __init__(self, layers: list[tf.keras.layers.Layer], **kwargs):
        super().__init__(**kwargs)
        self.layers = layers

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        for layer in self.layers:
            inputs = layer(inputs, training=training)
        return inputs


class _MultiTaskLayer(tf.keras.layers.Layer):
    """Common arguments, validation, initializer cloning and config of the layers."""

    _config_keys: tuple[str, ...] = ()  # Constructor args saved by `get_config`.

    def __init__(self, num_tasks: int, dropout: float = 0.0,
                 kernel_initializer: Any = "glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_tasks = _check_count("num_tasks", num_tasks)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). "
                             f"Received: `dropout={dropout}`.")
        self.dropout = float(dropout)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self._num_initializers = 0

    def _initializer(self, offset: int | None = None):
        # A fresh initializer per layer; a seeded one gets a distinct seed per layer,
        # otherwise all experts would start identical and never specialise.
        if offset is None:
            offset, self._num_initializers = (self._num_initializers,
                                              self._num_initializers + 1)
        config = self.kernel_initializer.get_config()
        if config.get("seed") is not None:
            config["seed"] += offset
        return self.kernel_initializer.__class__.from_config(config)

    def _mlp(self, units: Sequence[int], name: str) -> _MLP:
        layers = []
        for i, width in enumerate(units):
            layers.append(tf.keras.layers.Dense(
                width, activation="relu", kernel_initializer=self._initializer(),
                name=f"{name}_dense_{i}"))
            if self.dropout:
                layers.append(tf.keras.layers.Dropout(self.dropout,
                                                      name=f"{name}_dropout_{i}"))
        return _MLP(layers, name=name)

    def _gate(self, num_experts: int, name: str) -> tf.keras.layers.Dense:
        # Linear over the input, no bias, softmax over experts (as in both papers).
        return tf.keras.layers.Dense(num_experts, use_bias=False, activation="softmax",
                                     kernel_initializer=self._initializer(), name=name)

    @property
    def last_gate_weights(self) -> list[tf.Tensor] | None:
        """Per task, the [batch, n_experts] gate weights of the most recent call."""
        return getattr(self, "_last_gate_weights", None)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "num_tasks": self.num_tasks,
                  "dropout": self.dropout, "kernel_initializer":
                      tf.keras.initializers.serialize(self.kernel_initializer)}
        return {**config, **{key: getattr(self, key) for key in self._config_keys}}


class SharedBottom(_MultiTaskLayer):
    """One MLP shared by all tasks, which all receive its output (hard parameter
    sharing; Caruana, "Multitask Learning", Machine Learning 1997).

    Args:
        num_tasks: number of tasks (length of the output list).
        units: hidden widths of the shared MLP (ReLU after each layer).
        dropout: dropout rate after each hidden layer.
        kernel_initializer: of every kernel; a seeded one is re-seeded per layer.

    Example:
        >>> layer = SharedBottom(num_tasks=2, units=(8, 4))
        >>> [t.shape.as_list() for t in layer(tf.zeros([3, 5]))]
        [[3, 4], [3, 4]]
    """

    _config_keys = ("units",)

    def __init__(self, num_tasks: int, units: Sequence[int] = (128, 64),
                 dropout: float = 0.0, kernel_initializer: Any = "glorot_uniform",
                 **kwargs):
        super().__init__(num_tasks, dropout, kernel_initializer, **kwargs)
        self.units = _check_units("units", units)
        self.bottom = self._mlp(self.units, "bottom")

    def call(self, inputs: tf.Tensor, training: bool = False) -> list[tf.Tensor]:
        return [self.bottom(inputs, training=training)] * self.num_tasks


class SingleTask(_MultiTaskLayer):
    """An independent MLP per task: the no-sharing baseline.

    Args:
        num_tasks: number of tasks, each with its own MLP.
        units, dropout, kernel_initializer: as in `SharedBottom`, per task.

    Example:
        >>> layer = SingleTask(num_tasks=3, units=(4,))
        >>> len(layer(tf.zeros([2, 5]))), len(layer.towers)
        (3, 3)
    """

    _config_keys = ("units",)

    def __init__(self, num_tasks: int, units: Sequence[int] = (128, 64),
                 dropout: float = 0.0, kernel_initializer: Any = "glorot_uniform",
                 **kwargs):
        super().__init__(num_tasks, dropout, kernel_initializer, **kwargs)
        self.units = _check_units("units", units)
        self.towers = [self._mlp(self.units, f"task_{k}")
                       for k in range(self.num_tasks)]

    def call(self, inputs: tf.Tensor, training: bool = False) -> list[tf.Tensor]:
        return [tower(inputs, training=training) for tower in self.towers]


class MMoE(_MultiTaskLayer):
    """Multi-gate Mixture-of-Experts.

    `num_experts` expert MLPs see the input; each task k has a gate
    g_k(x) = softmax(W_k x) over experts and receives sum_i g_k(x)_i expert_i(x).
    Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
    Mixture-of-Experts", KDD 2018.

    Args:
        num_tasks: number of tasks (and gates).
        num_experts: number of shared experts.
        expert_units: hidden widths of each expert (outputs: expert_units[-1]).
        dropout, kernel_initializer: as in `SharedBottom`, for experts (and gates).

    Example:
        >>> layer = MMoE(num_tasks=2, num_experts=3, expert_units=(4,))
        >>> [t.shape.as_list() for t in layer(tf.zeros([5, 6]))]
        [[5, 4], [5, 4]]
    """

    _config_keys = ("num_experts", "expert_units")

    def __init__(self, num_tasks: int, num_experts: int = 4,
                 expert_units: Sequence[int] = (64,), dropout: float = 0.0,
                 kernel_initializer: Any = "glorot_uniform", **kwargs):
        super().__init__(num_tasks, dropout, kernel_initializer, **kwargs)
        self.num_experts = _check_count("num_experts", num_experts)
        self.expert_units = _check_units("expert_units", expert_units)
        self.experts = [self._mlp(self.expert_units, f"expert_{i}")
                        for i in range(self.num_experts)]
        self.gates = [self._gate(self.num_experts, f"gate_{k}")
                      for k in range(self.num_tasks)]

    def gate_weights(self, inputs: tf.Tensor) -> list[tf.Tensor]:
        """Per task, the [batch, num_experts] gate weights for `inputs`."""
        return [gate(inputs) for gate in self.gates]

    def call(self, inputs: tf.Tensor, training: bool = False) -> list[tf.Tensor]:
        experts = tf.stack([e(inputs, training=training) for e in self.experts], 1)
        gates = self.gate_weights(inputs)
        object.__setattr__(self, "_last_gate_weights", gates)  # Untracked.
        # sum_i gate[:, i] * experts[:, i, :], gate [B, E] and experts [B, E, U].
        return [tf.einsum("be,beu->bu", gate, experts) for gate in gates]


class CGC(_MultiTaskLayer):
    """Customized Gate Control: one extraction level of PLE.

    Each task has `num_task_experts` own experts and all tasks share
    `num_shared_experts`; task k's gate mixes only its own and the shared experts.
    With `shared_output=True` (the non-final levels of PLE) a shared gate over all
    experts also produces the next level's shared input, appended to the outputs.
    Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning
    (MTL) Model for Personalized Recommendations", RecSys 2020.

    Args:
        num_tasks: number of tasks.
        num_shared_experts: experts shared by all tasks (>= 1).
        num_task_experts: experts owned by each task (>= 1).
        expert_units, dropout, kernel_initializer: as in `MMoE`.
        shared_output: also return the shared-gate output (as the last element).

    Call arguments:
        inputs: a [batch, d] tensor seen by every task and the shared experts, or a
            list of num_tasks + 1 tensors: one per task, then the shared input.

    Example:
        >>> layer = CGC(num_tasks=2, num_shared_experts=1, num_task_experts=2,
        ...             expert_units=(4,))
        >>> _ = layer(tf.zeros([5, 6]))
        >>> layer.last_gate_weights[0].shape.as_list()  # 2 own + 1 shared
        [5, 3]
    """

    _config_keys = ("num_shared_experts", "num_task_experts", "expert_units",
                    "shared_output")

    def __init__(self, num_tasks: int, num_shared_experts: int = 2,
                 num_task_experts: int = 2, expert_units: Sequence[int] = (64,),
                 dropout: float = 0.0, shared_output: bool = False,
                 kernel_initializer: Any = "glorot_uniform", **kwargs):
        super().__init__(num_tasks, dropout, kernel_initializer, **kwargs)
        self.num_shared_experts = _check_count("num_shared_experts",
                                               num_shared_experts)
        self.num_task_experts = _check_count("num_task_experts", num_task_experts)
        self.expert_units = _check_units("expert_units", expert_units)
        self.shared_output = bool(shared_output)
        self.task_experts = [[self._mlp(self.expert_units, f"task_{k}_expert_{i}")
                              for i in range(self.num_task_experts)]
                             for k in range(self.num_tasks)]
        self.shared_experts = [self._mlp(self.expert_units, f"shared_expert_{i}")
                               for i in range(self.num_shared_experts)]
        per_task = self.num_task_experts + self.num_shared_experts
        self.task_gates = [self._gate(per_task, f"task_{k}_gate")
                           for k in range(self.num_tasks)]
        total = self.num_tasks * self.num_task_experts + self.num_shared_experts
        self.shared_gate = (self._gate(total, "shared_gate") if self.shared_output
                            else None)

    def _split(self, inputs) -> tuple[list[tf.Tensor], tf.Tensor]:
        if not isinstance(inputs, (list, tuple)):
            return [inputs] * self.num_tasks, inputs
        if len(inputs) != self.num_tasks + 1:
            raise ValueError(f"CGC expects a tensor or a list of num_tasks + 1 = "
                             f"{self.num_tasks + 1} tensors. Received {len(inputs)}.")
        return list(inputs[:-1]), inputs[-1]

    def gate_weights(self, inputs) -> list[tf.Tensor]:
        """Per task, the [batch, own + shared experts] gate weights (own first)."""
        task_inputs, _ = self._split(inputs)
        return [gate(x) for gate, x in zip(self.task_gates, task_inputs)]

    def call(self, inputs, training: bool = False) -> list[tf.Tensor]:
        task_inputs, shared_input = self._split(inputs)
        shared = [e(shared_input, training=training) for e in self.shared_experts]
        own = [[e(x, training=training) for e in experts]
               for experts, x in zip(self.task_experts, task_inputs)]
        gates = self.gate_weights(inputs)
        object.__setattr__(self, "_last_gate_weights", gates)  # Untracked.
        outputs = [tf.einsum("be,beu->bu", gate, tf.stack(own[k] + shared, 1))
                   for k, gate in enumerate(gates)]
        if self.shared_gate is not None:
            gate = self.shared_gate(shared_input)
            object.__setattr__(self, "_last_shared_gate_weights", gate)
            everything = [e for experts in own for e in experts] + shared
            outputs.append(tf.einsum("be,beu->bu", gate, tf.stack(everything, 1)))
        return outputs


class PLE(_MultiTaskLayer):
    """Progressive Layered Extraction: `num_levels` stacked CGC levels.

    Level 1 sees the input everywhere; at level j > 1 task k's experts and gate see
    task k's output of level j - 1, the shared experts its shared-gate output (only
    non-final levels have a shared gate). `num_levels=1` is CGC. `last_gate_weights`
    and `gate_weights` are the final level's; each of `self.levels` keeps its own.
    Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning
    (MTL) Model for Personalized Recommendations", RecSys 2020.

    Args:
        num_tasks: number of tasks.
        num_levels: number of extraction levels.
        num_shared_experts, num_task_experts: experts per level (see `CGC`).
        expert_units, dropout, kernel_initializer: as in `MMoE`, at every level.

    Example:
        >>> layer = PLE(num_tasks=2, num_levels=2, expert_units=(4,))
        >>> [t.shape.as_list() for t in layer(tf.zeros([5, 6]))]
        [[5, 4], [5, 4]]
    """

    _config_keys = ("num_levels", "num_shared_experts", "num_task_experts",
                    "expert_units")

    def __init__(self, num_tasks: int, num_levels: int = 1,
                 num_shared_experts: int = 2, num_task_experts: int = 2,
                 expert_units: Sequence[int] = (64,), dropout: float = 0.0,
                 kernel_initializer: Any = "glorot_uniform", **kwargs):
        super().__init__(num_tasks, dropout, kernel_initializer, **kwargs)
        self.num_levels = _check_count("num_levels", num_levels)
        self.num_shared_experts = num_shared_experts
        self.num_task_experts = num_task_experts
        self.expert_units = _check_units("expert_units", expert_units)
        self.levels = [CGC(num_tasks, num_shared_experts, num_task_experts,
                           self.expert_units, dropout,
                           shared_output=j < self.num_levels - 1,
                           kernel_initializer=self._initializer(1000 * j),
                           name=f"level_{j}") for j in range(self.num_levels)]

    def _features(self, inputs, training: bool):  # The final level's input.
        for level in self.levels[:-1]:
            inputs = level(inputs, training=training)
        return inputs

    def gate_weights(self, inputs: tf.Tensor) -> list[tf.Tensor]:
        """Per task, the final level's [batch, own + shared experts] gate weights."""
        return self.levels[-1].gate_weights(self._features(inputs, training=False))

    @property
    def last_gate_weights(self) -> list[tf.Tensor] | None:
        return self.levels[-1].last_gate_weights

    def call(self, inputs: tf.Tensor, training: bool = False) -> list[tf.Tensor]:
        return self.levels[-1](self._features(inputs, training), training=training)


_CLASSES = {"shared_bottom": SharedBottom, "single_task": SingleTask, "mmoe": MMoE,
            "ple": PLE}


def build_architecture(architecture: str, num_tasks: int, **kwargs) -> _MultiTaskLayer:
    """Builds the multi-task layer `architecture` (one of `ARCHITECTURES`) with
    `kwargs` (a `name` names the layer), e.g. `build_architecture("mmoe", 2,
    num_experts=3)`."""
    if architecture not in _CLASSES:
        raise ValueError(f"Unknown architecture. Expected one of "
                         f"{list(ARCHITECTURES)}. Received: "
                         f"`architecture={architecture!r}`.")
    return _CLASSES[architecture](num_tasks, **kwargs)


def parameter_count(layer: tf.keras.layers.Layer, input_dim: int) -> int:
    """Number of weights of `layer` on [batch, input_dim] inputs, counted on a fresh
    copy (from `layer.get_config()`), so `layer` itself is left as it was."""
    fresh = layer.__class__.from_config(layer.get_config())
    fresh(tf.zeros([1, _check_count("input_dim", input_dim)]))
    return int(fresh.count_params())


def units_for_budget(name: str, num_tasks: int, input_dim: int, budget: int,
                     num_layers: int | None = None, tolerance: float = 0.1,
                     **kwargs) -> dict[str, Any]:
    """Constructor kwargs giving architecture `name` about `budget` parameters.

    Hidden layers have one common width w (`num_layers` of them: default 2 for the
    MLP architectures, 1 per expert for MMoE / PLE), chosen so the count (towers
    excluded) is nearest to `budget`. Other `kwargs` (e.g. `num_experts`) are
    passed through. For every architecture the count is a quadratic in w, fitted
    exactly from the counts at w = 1, 2, 3. Raises ValueError if no width brings the
    count within `tolerance` of `budget`.

    Example:
        >>> units_for_budget("shared_bottom", 2, 16, budget=1000)  # w^2 + 18 w
        {'units': (24, 24)}
    """
    mlp = name in ("shared_bottom", "single_task")
    depth = _check_count("num_layers", num_layers or (2 if mlp else 1))
    key = "units" if mlp else "expert_units"
    f1, f2, f3 = (parameter_count(build_architecture(
        name, num_tasks, **{**kwargs, key: (w,) * depth}), input_dim)
        for w in (1, 2, 3))
    a = (f3 - 2 * f2 + f1) / 2  # count(w) = a w^2 + b w + c.
    b = f2 - f1 - 3 * a
    c = f1 - a - b
    root = ((-b + math.sqrt(max(b * b - 4 * a * (c - budget), 0.0))) / (2 * a)
            if a else (budget - c) / b)
    width = min({max(1, math.floor(root)), max(1, math.ceil(root))},
                key=lambda w: abs(a * w * w + b * w + c - budget))
    count = round(a * width * width + b * width + c)
    if abs(count - budget) > tolerance * budget:
        raise ValueError(f"No width brings {name!r} within {tolerance:.0%} of the "
                         f"budget (nearest: {count} at width {width}). "
                         f"Received: `budget={budget}`.")
    return {**kwargs, key: (width,) * depth}
