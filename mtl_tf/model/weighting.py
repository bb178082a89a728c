"""Task-loss weighting strategies and gradient surgery for multi-task training.

`total, weights = weighting.combine({"rating": l1, "like": l2})`. Strategies are
Keras layers: the owning model checkpoints their variables and trains trainable ones
(uncertainty weighting). DWA needs `on_epoch_end` (`LossWeightingCallback`), GradNorm
`GradNorm.step` in a custom `train_step`, where `pcgrad` and `clip_gradients` act too.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import tensorflow as tf

WEIGHTINGS = ("fixed", "uncertainty", "dwa", "gradnorm")
CLASSIFICATION_TYPES = ("binary", "multilabel", "retrieval", "classification")


class LossWeighting(tf.keras.layers.Layer):
    """Base class: combines a dict of named scalar task losses into one total.

    Subclasses implement `_combine(losses)` on the losses stacked in `task_names`
    order, returning the total and the [K] vector of weights on the losses.
    """

    def __init__(self, task_names: Sequence[str], **kwargs):
        super().__init__(**kwargs)
        self.task_names = tuple(task_names)
        if not self.task_names or len(set(self.task_names)) != len(self.task_names):
            raise ValueError("`task_names` must be non-empty and unique. "
                             f"Received: `task_names={list(self.task_names)}`.")

    def _stack(self, losses: Mapping[str, Any]) -> tf.Tensor:
        if set(losses) != set(self.task_names):
            raise ValueError(f"Expected losses for {list(self.task_names)}. "
                             f"Received: {sorted(losses)}.")
        return tf.stack([tf.cast(losses[n], tf.float32) for n in self.task_names])

    def combine(self, losses: Mapping[str, tf.Tensor]
                ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Returns the total loss and, per task, the weight on its loss."""
        total, weights = self._combine(self._stack(losses))
        return total, dict(zip(self.task_names, tf.unstack(weights)))

    def on_epoch_end(self, epoch_losses: Mapping[str, float]) -> None:
        """Receives each task's mean training loss of the epoch that just ended."""

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "task_names": list(self.task_names)}


class FixedWeighting(LossWeighting):
    """total = sum_k w_k L_k with constant weights.

    Args:
        weights: task name -> weight (>= 0); the keys are the task names.

    Example:
        >>> total, _ = FixedWeighting.convex(0.25, "a", "b").combine(
        ...     {"a": 4.0, "b": 8.0})
        >>> float(total)  # 0.25 * 4 + 0.75 * 8
        7.0
    """

    def __init__(self, weights: Mapping[str, float], **kwargs):
        kwargs.pop("task_names", None)
        super().__init__(list(weights), **kwargs)
        negative = {n: w for n, w in weights.items() if w < 0}
        if negative:
            raise ValueError(f"Weights must be >= 0. Received: `weights={negative}`.")
        # Not `self.weights`: that is the Keras layer's list of variables.
        self.task_weights = {n: float(w) for n, w in weights.items()}

    @classmethod
    def convex(cls, alpha: float, first: str, second: str) -> FixedWeighting:
        """alpha * L_first + (1 - alpha) * L_second, for alpha in [0, 1]."""
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1]. Received: `alpha={alpha}`.")
        return cls({first: alpha, second: 1.0 - alpha})

    def _combine(self, losses):
        weights = tf.constant([self.task_weights[n] for n in self.task_names])
        return tf.reduce_sum(weights * losses), weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weights": dict(self.task_weights)}


class UncertaintyWeighting(LossWeighting):
    """Weights tasks by learned homoscedastic uncertainty.

    With a trainable log-variance s_k = log sigma_k^2 per task (initially 0):
    regression tasks contribute 0.5 * exp(-s_k) * L_k + 0.5 * s_k (Gaussian
    likelihood, L_k the mean squared error), classification tasks ("binary",
    "retrieval", "classification") exp(-s_k) * L_k + 0.5 * s_k (scaled softmax,
    using the paper's approximation). The reported weights are the factors on L_k;
    the total also holds the 0.5 * s_k regularisers. At the optimum s_k = log L_k
    (regression) or log 2 L_k (classification). Kendall, Gal & Cipolla, "Multi-Task
    Learning Using Uncertainty to Weigh Losses for Scene Geometry and Semantics",
    CVPR 2018, equations 7 and 10.

    Args:
        task_names: the tasks.
        task_types: per task (aligned with `task_names`, or a name -> type mapping),
            "regression" or a classification type.

    Example:
        >>> weighting = UncertaintyWeighting(["rating", "like"],
        ...                                  ["regression", "binary"])
        >>> _, weights = weighting.combine({"rating": 1.0, "like": 1.0})
        >>> [float(w) for w in weights.values()]  # At s = 0.
        [0.5, 1.0]
    """

    def __init__(self, task_names: Sequence[str],
                 task_types: Sequence[str] | Mapping[str, str], **kwargs):
        super().__init__(task_names, **kwargs)
        if isinstance(task_types, Mapping):
            task_types = [task_types.get(n) for n in self.task_names]
        self.task_types = tuple(task_types)
        allowed = ("regression",) + CLASSIFICATION_TYPES
        if (len(self.task_types) != len(self.task_names)
                or any(t not in allowed for t in self.task_types)):
            raise ValueError(f"`task_types` must give one of {list(allowed)} per task "
                             f"of {list(self.task_names)}. "
                             f"Received: `task_types={list(self.task_types)}`.")
        self._scale = tf.constant([0.5 if t == "regression" else 1.0
                                   for t in self.task_types])
        self.log_variances = self.add_weight(
            name="log_variances", shape=[len(self.task_names)], trainable=True,
            initializer="zeros")

    def _combine(self, losses):
        weights = self._scale * tf.exp(-self.log_variances)
        total = tf.reduce_sum(weights * losses + 0.5 * self.log_variances)
        return total, weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "task_types": list(self.task_types)}


class DynamicWeightAverage(LossWeighting):
    """Dynamic Weight Average: weights from each task's rate of loss descent.

    For epoch t >= 3, w_k(t) = K exp(r_k / T) / sum_i exp(r_i / T) with
    r_k = L_k(t-1) / L_k(t-2), L_k the task's mean training loss of an epoch; the
    first two epochs use w_k = 1. A task whose loss falls slower gets more weight.
    Feed epoch losses through `on_epoch_end` (e.g. with `LossWeightingCallback`).
    Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019.

    Args:
        task_names: the tasks.
        temperature: T; larger is closer to equal weights.
    """

    def __init__(self, task_names: Sequence[str], temperature: float = 2.0,
                 **kwargs):
        super().__init__(task_names, **kwargs)
        if temperature <= 0:
            raise ValueError("`temperature` must be > 0. "
                             f"Received: `temperature={temperature}`.")
        self.temperature = float(temperature)
        k = len(self.task_names)
        self.task_weights = self.add_weight(name="task_weights", shape=[k],
                                            initializer="ones", trainable=False)
        # Rows: the mean losses of the last epoch and of the one before.
        self.loss_history = self.add_weight(name="loss_history", shape=[2, k],
                                            initializer="zeros", trainable=False)
        self.epochs_seen = self.add_weight(name="epochs_seen", shape=[],
                                           dtype=tf.int64, initializer="zeros",
                                           trainable=False)

    def _combine(self, losses):
        weights = tf.identity(self.task_weights)
        return tf.reduce_sum(weights * losses), weights

    def on_epoch_end(self, epoch_losses: Mapping[str, float]) -> None:
        current = self._stack(epoch_losses)
        self.loss_history.assign(tf.stack([current, self.loss_history[0]]))
        self.epochs_seen.assign_add(1)
        if int(self.epochs_seen) >= 2:
            rates = tf.math.divide_no_nan(current, self.loss_history[1])
            self.task_weights.assign(len(self.task_names)
                                     * tf.nn.softmax(rates / self.temperature))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature}


def gradnorm_loss(weights: tf.Tensor, grad_norms: tf.Tensor,
                  relative_rates: tf.Tensor, alpha: float
                  ) -> tuple[tf.Tensor, tf.Tensor]:
    """GradNorm's L_grad = sum_k |G_k - target_k| and the (constant) target.

    G_k = weights_k * grad_norms_k is the norm of the gradient of w_k L_k on the
    shared weights; target_k = mean(G) * relative_rates_k ** alpha, held constant.
    """
    norms = weights * grad_norms
    target = tf.stop_gradient(tf.reduce_mean(norms) * relative_rates ** alpha)
    return tf.reduce_sum(tf.abs(norms - target)), target


class GradNorm(LossWeighting):
    """GradNorm: learns weights that balance per-task gradient norms.

    total = sum_k w_k L_k. Each `step` (in a custom `train_step`) measures
    n_k = ||d L_k / d W|| on shared weights W (the last shared layer's kernel, or
    the experts' last kernels; every task must use W, or its n_k is 0), forms
    G_k = w_k n_k, relative inverse training rates
    r_k = (L_k / L_k(0)) / mean_i(L_i / L_i(0)) with L(0) the losses of the first
    step, target_k = mean(G) r_k^alpha (constant), and takes one gradient-descent
    step of `learning_rate` on L_grad = sum_k |G_k - target_k| w.r.t. w. Weights
    are then floored at 1e-6 and renormalised to sum to K. The weights are not
    trainable Keras variables, so the main optimizer leaves them alone.
    Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing in
    Deep Multitask Networks", ICML 2018.

    Args:
        task_names: the tasks.
        alpha: strength of the pull towards equal training rates (paper: 0.5-3).
        learning_rate: step size of the weight update.
    """

    def __init__(self, task_names: Sequence[str], alpha: float = 1.5,
                 learning_rate: float = 0.025, **kwargs):
        super().__init__(task_names, **kwargs)
        if alpha < 0 or learning_rate <= 0:
            raise ValueError("Need `alpha` >= 0 and `learning_rate` > 0. Received: "
                             f"`alpha={alpha}`, `learning_rate={learning_rate}`.")
        self.alpha = float(alpha)
        self.learning_rate = float(learning_rate)
        k = len(self.task_names)
        self.task_weights = self.add_weight(name="task_weights", shape=[k],
                                            initializer="ones", trainable=False)
        self.initial_losses = self.add_weight(name="initial_losses", shape=[k],
                                              initializer="zeros", trainable=False)
        self.steps = self.add_weight(name="steps", shape=[], dtype=tf.int64,
                                     initializer="zeros", trainable=False)

    def _combine(self, losses):
        weights = tf.identity(self.task_weights)
        return tf.reduce_sum(weights * losses), weights

    def update(self, losses: Mapping[str, tf.Tensor],
               grad_norms: tf.Tensor) -> tf.Tensor:
        """Updates the weights given unweighted losses and n_k; returns L_grad."""
        values = tf.stop_gradient(self._stack(losses))
        initial = tf.where(self.steps > 0, self.initial_losses, values)
        self.initial_losses.assign(initial)
        self.steps.assign_add(1)
        ratios = tf.math.divide_no_nan(values, initial)
        rates = tf.math.divide_no_nan(ratios, tf.reduce_mean(ratios))
        with tf.GradientTape() as tape:
            tape.watch(self.task_weights)
            loss, _ = gradnorm_loss(self.task_weights, tf.stop_gradient(grad_norms),
                                    rates, self.alpha)
        weights = tf.maximum(self.task_weights - self.learning_rate
                             * tape.gradient(loss, self.task_weights), 1e-6)
        self.task_weights.assign(len(self.task_names) * weights
                                 / tf.reduce_sum(weights))
        return loss

    def step(self, losses: Mapping[str, tf.Tensor], shared_variables,
             tape: tf.GradientTape) -> tf.Tensor:
        """`update` with n_k measured on `shared_variables` (one or a list) by a
        persistent `tape` that recorded the (unweighted) `losses`."""
        norms = task_gradient_norms([losses[n] for n in self.task_names],
                                    shared_variables, tape)
        return self.update(losses, norms)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha,
                "learning_rate": self.learning_rate}


def _dense(gradient, variable) -> tf.Tensor:
    if gradient is None:
        return tf.zeros_like(variable)
    return tf.convert_to_tensor(gradient)  # IndexedSlices (embeddings) to dense.


def task_gradient_norms(losses: Sequence[tf.Tensor], shared_variables,
                        tape: tf.GradientTape) -> tf.Tensor:
    """[K] L2 norms of d loss_k / d W, W a variable or a list of them (all flattened
    and concatenated; 0 if unused); a persistent `tape` when there are K > 1."""
    variables = tf.nest.flatten(shared_variables)
    return tf.stack([tf.linalg.global_norm(tape.gradient(loss, variables))
                     for loss in losses])


def per_task_gradients(losses: Sequence[tf.Tensor], variables: Sequence[tf.Variable],
                       tape: tf.GradientTape) -> list[list[tf.Tensor | None]]:
    """Per loss, its gradients w.r.t. `variables` (persistent `tape`)."""
    return [tape.gradient(loss, variables) for loss in losses]


def pcgrad(gradients_per_task: Sequence[Sequence[tf.Tensor | None]]
           ) -> list[tf.Tensor | None]:
    """Projecting Conflicting Gradients: per-variable sum of de-conflicted gradients.

    Each task gradient g_i (all variables flattened and concatenated; None counts as
    zeros) is projected, for j = 0, 1, ..., K-1 (j != i) in this fixed order, onto
    the normal plane of g_j when they conflict:
    if g_i . g_j < 0: g_i <- g_i - (g_i . g_j) / ||g_j||^2 g_j, with the original
    g_j and the running g_i. The paper samples the order at random each step; a
    fixed order is deterministic and differs only for K > 2. Returns sum_i g_i per
    variable, None where every task's gradient was None. Yu et al., "Gradient
    Surgery for Multi-Task Learning", NeurIPS 2020.

    Example:
        >>> out = pcgrad([[tf.constant([1.0, 0.0])], [tf.constant([-1.0, 1.0])]])
        >>> out[0].numpy().tolist()  # (0.5, 0.5) + (0, 1)
        [0.5, 1.5]
    """
    if not gradients_per_task:
        raise ValueError("`gradients_per_task` must hold at least one task.")
    num_vars = len(gradients_per_task[0])
    if any(len(g) != num_vars for g in gradients_per_task):
        raise ValueError("Every task needs one gradient per variable. Received: "
                         f"{[len(g) for g in gradients_per_task]}.")
    # Per variable, any task's gradient: gives the shape (None: no task has one).
    templates = [next((tf.convert_to_tensor(g[v]) for g in gradients_per_task
                       if g[v] is not None), None) for v in range(num_vars)]
    kept = [v for v in range(num_vars) if templates[v] is not None]
    if not kept:
        return [None] * num_vars
    flat = [tf.concat([tf.reshape(_dense(g[v], templates[v]), [-1]) for v in kept], 0)
            for g in gradients_per_task]
    projected = []
    for i, g_i in enumerate(flat):
        for j, g_j in enumerate(flat):
            if i != j:
                dot = tf.reduce_sum(g_i * g_j)
                # min(dot, 0): only conflicts are projected; 0/0 (g_j = 0) gives 0.
                g_i -= tf.math.divide_no_nan(tf.minimum(dot, 0.0),
                                             tf.reduce_sum(g_j * g_j)) * g_j
        projected.append(g_i)
    total = tf.add_n(projected)
    pieces = tf.split(total, tf.stack([tf.size(templates[v]) for v in kept]))
    result: list[tf.Tensor | None] = [None] * num_vars
    for v, piece in zip(kept, pieces):
        result[v] = tf.reshape(piece, tf.shape(templates[v]))
    return result


def clip_gradients(grads: Sequence[tf.Tensor | None],
                   max_norm: float | None) -> list[tf.Tensor | None]:
    """`tf.clip_by_global_norm(grads, max_norm)`; unchanged if max_norm is None/0."""
    if not max_norm:
        return list(grads)
    return tf.clip_by_global_norm(list(grads), max_norm)[0]


class LossWeightingCallback(tf.keras.callbacks.Callback):
    """Feeds logs[`loss_key`.format(task)] to `weighting.on_epoch_end` (for DWA)."""

    def __init__(self, weighting: LossWeighting, loss_key: str = "{}_loss"):
        super().__init__()
        self.weighting = weighting
        self.loss_key = loss_key

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        keys = {n: self.loss_key.format(n) for n in self.weighting.task_names}
        missing = [k for k in keys.values() if k not in logs]
        if missing:
            raise ValueError(f"Logs lack task losses {missing}. Received logs: "
                             f"{sorted(logs)}.")
        self.weighting.on_epoch_end({n: float(logs[k]) for n, k in keys.items()})


def build_weighting(name: str, task_names: Sequence[str],
                    task_types: Sequence[str] | Mapping[str, str] | None = None,
                    fixed_weights: Mapping[str, float] | None = None,
                    **kwargs) -> LossWeighting:
    """Builds "fixed", "uncertainty", "dwa" or "gradnorm" weighting.

    "fixed" uses `fixed_weights` (missing tasks weigh 1); "uncertainty" needs
    `task_types`; `kwargs` go to the constructor (e.g. temperature, alpha).
    PCGrad is not a weighting: apply `pcgrad` to per-task gradients, any strategy.
    """
    if name == "fixed":
        fixed_weights = dict(fixed_weights or {})
        unknown = sorted(set(fixed_weights) - set(task_names))
        if unknown:
            raise ValueError(f"`fixed_weights` names unknown tasks {unknown}. "
                             f"Expected a subset of {list(task_names)}.")
        return FixedWeighting({n: fixed_weights.get(n, 1.0) for n in task_names},
                              **kwargs)
    if name == "uncertainty":
        if task_types is None:
            raise ValueError("Uncertainty weighting needs `task_types`.")
        return UncertaintyWeighting(task_names, task_types, **kwargs)
    if name == "dwa":
        return DynamicWeightAverage(task_names, **kwargs)
    if name == "gradnorm":
        return GradNorm(task_names, **kwargs)
    raise ValueError(f"Unknown loss weighting. Expected one of {list(WEIGHTINGS)}. "
                     f"Received: `name={name!r}`.")
