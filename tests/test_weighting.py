"""Loss weighting, GradNorm, PCGrad and clipping; expected values worked by hand."""

import math  # noqa: I001  (mtl_tf must be imported before tensorflow)

import numpy as np
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf

from mtl_tf.model.weighting import (DynamicWeightAverage, FixedWeighting, GradNorm,
                                    LossWeightingCallback, UncertaintyWeighting,
                                    build_weighting, clip_gradients, gradnorm_loss,
                                    pcgrad, task_gradient_norms)


def _floats(weights: dict) -> dict:
    return {n: float(w) for n, w in weights.items()}


# --- FixedWeighting ---------------------------------------------------------------


def test_fixed_weighting_is_the_weighted_sum():
    total, weights = FixedWeighting({"a": 2.0, "b": 0.5}).combine({"a": 3.0, "b": 4.0})
    assert float(total) == 8.0  # 2 x 3 + 0.5 x 4
    assert _floats(weights) == {"a": 2.0, "b": 0.5}


def test_fixed_convex_combination():
    weighting = FixedWeighting.convex(0.25, "rating", "like")
    total, weights = weighting.combine({"rating": 4.0, "like": 8.0})
    assert float(total) == 7.0  # 0.25 x 4 + 0.75 x 8
    assert _floats(weights) == {"rating": 0.25, "like": 0.75}


@pytest.mark.parametrize("build, message", [
    (lambda: FixedWeighting.convex(1.5, "a", "b"), "`alpha=1.5`"),
    (lambda: FixedWeighting({"a": -1.0}), "'a': -1.0"),
    (lambda: DynamicWeightAverage(["a"], temperature=0), "`temperature=0`"),
    (lambda: GradNorm(["a", "b"], alpha=-1), "`alpha=-1`"),
    (lambda: UncertaintyWeighting(["a"], ["ranking"]), "'ranking'"),
    (lambda: UncertaintyWeighting(["a", "a"], ["binary"] * 2), r"\['a', 'a'\]"),
])
def test_invalid_arguments_raise(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_losses_must_match_the_tasks():
    with pytest.raises(ValueError, match=r"Expected losses for \['a', 'b'\]"):
        FixedWeighting({"a": 1.0, "b": 1.0}).combine({"a": 1.0})


# --- UncertaintyWeighting ---------------------------------------------------------


def test_uncertainty_total_for_known_log_variances():
    weighting = UncertaintyWeighting(["rating", "like"], ["regression", "binary"])
    weighting.log_variances.assign([math.log(2.0), -1.0])
    total, weights = weighting.combine({"rating": 3.0, "like": 0.5})
    # 0.5 e^{-log 2} 3 + 0.5 log 2  +  e^{1} 0.5 + 0.5 (-1)
    expected = 0.75 + 0.5 * math.log(2.0) + 0.5 * math.e - 0.5
    assert float(total) == pytest.approx(expected, rel=1e-6)
    assert _floats(weights) == pytest.approx({"rating": 0.25, "like": math.e})


def test_uncertainty_gradient_vanishes_at_the_optimum():
    # d/ds [0.5 e^{-s} L + 0.5 s] = 0 at s = log L; d/ds [e^{-s} L + 0.5 s] = 0 at
    # s = log 2L.
    weighting = UncertaintyWeighting(["rating", "like"],
                                     {"rating": "regression", "like": "retrieval"})
    weighting.log_variances.assign([math.log(3.0), math.log(2 * 0.5)])
    with tf.GradientTape() as tape:
        total, _ = weighting.combine({"rating": 3.0, "like": 0.5})
    np.testing.assert_allclose(tape.gradient(total, weighting.log_variances), [0, 0],
                               atol=1e-6)
    weighting.log_variances.assign([0.0, 0.0])
    with tf.GradientTape() as tape:
        total, _ = weighting.combine({"rating": 3.0, "like": 0.5})
    # -0.5 x 3 + 0.5 and -0.5 + 0.5.
    np.testing.assert_allclose(tape.gradient(total, weighting.log_variances),
                               [-1.0, 0.0], atol=1e-6)


def test_uncertainty_variables_are_trained_with_the_model():
    class Model(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.weighting = UncertaintyWeighting(["a"], ["binary"])

    model = Model()
    assert [v.name for v in model.trainable_variables] == ["log_variances:0"]


# --- DynamicWeightAverage ---------------------------------------------------------


def test_dwa_weights_from_the_loss_ratio():
    weighting = DynamicWeightAverage(["a", "b"], temperature=2.0)
    losses = {"a": 1.0, "b": 1.0}
    # r = (0.5, 1): w = 2 e^{r/2} / (e^{0.25} + e^{0.5}); w_a = 2 / (1 + e^{0.25}).
    e1, e2 = math.exp(0.25), math.exp(0.5)
    expected = {"a": 2 * e1 / (e1 + e2), "b": 2 * e2 / (e1 + e2)}
    assert expected["a"] == pytest.approx(0.875647, abs=1e-6)
    for epoch, wanted in enumerate([{"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 1.0},
                                    expected, expected]):
        assert _floats(weighting.combine(losses)[1]) == pytest.approx(wanted)
        # Task a's loss halves every epoch, task b's is constant.
        weighting.on_epoch_end({"a": 0.5 ** epoch, "b": 1.0})
    total, _ = weighting.combine({"a": 2.0, "b": 1.0})
    assert float(total) == pytest.approx(2 * expected["a"] + expected["b"])


def test_dwa_state_is_checkpointed(tmp_path):
    weighting = DynamicWeightAverage(["a", "b"])
    for losses in ({"a": 1.0, "b": 1.0}, {"a": 0.5, "b": 1.0}):
        weighting.on_epoch_end(losses)
    path = tf.train.Checkpoint(weighting=weighting).write(str(tmp_path / "ckpt"))
    restored = DynamicWeightAverage(["a", "b"])
    tf.train.Checkpoint(weighting=restored).read(path).assert_consumed()
    np.testing.assert_allclose(restored.task_weights, weighting.task_weights)
    assert int(restored.epochs_seen) == 2


def test_callback_feeds_epoch_losses():
    weighting = DynamicWeightAverage(["a", "b"])
    callback = LossWeightingCallback(weighting)
    callback.on_epoch_end(0, {"a_loss": 1.0, "b_loss": 1.0, "loss": 2.0})
    callback.on_epoch_end(1, {"a_loss": 0.5, "b_loss": 1.0, "loss": 1.5})
    assert float(weighting.task_weights[0]) == pytest.approx(0.875647, abs=1e-6)
    with pytest.raises(ValueError, match=r"lack task losses \['b_loss'\]"):
        callback.on_epoch_end(2, {"a_loss": 1.0})


# --- GradNorm ---------------------------------------------------------------------


def test_gradnorm_loss_and_target():
    loss, target = gradnorm_loss(tf.constant([1.0, 1.0]), tf.constant([1.0, 3.0]),
                                 tf.constant([1.0, 1.0]), alpha=1.5)
    # G = (1, 3), target = mean(G) x 1 = (2, 2): |1 - 2| + |3 - 2|.
    assert float(loss) == 2.0
    np.testing.assert_allclose(target, [2.0, 2.0])


def test_gradnorm_moves_weight_to_the_task_with_the_smaller_gradient():
    weighting = GradNorm(["a", "b"], alpha=1.5, learning_rate=0.1)
    # First step: L(0) = L, so both loss ratios are 1. dL_grad/dw = sign(G - 2) n
    # = (-1, 3); w = (1.1, 0.7), renormalised to sum 2: (2.2, 1.4) / 1.8.
    loss = weighting.update({"a": 2.0, "b": 5.0}, tf.constant([1.0, 3.0]))
    assert float(loss) == 2.0
    np.testing.assert_allclose(weighting.task_weights, [2.2 / 1.8, 1.4 / 1.8],
                               rtol=1e-6)
    np.testing.assert_allclose(tf.reduce_sum(weighting.task_weights), 2.0)
    np.testing.assert_allclose(weighting.initial_losses, [2.0, 5.0])


def test_gradnorm_favours_the_slower_task():
    weighting = GradNorm(["a", "b"], alpha=1.0, learning_rate=0.1)
    weighting.update({"a": 2.0, "b": 5.0}, tf.constant([1.0, 1.0]))  # G = target.
    np.testing.assert_allclose(weighting.task_weights, [1.0, 1.0])
    # Ratios (0.5, 1), mean 0.75: r = (2/3, 4/3); target = 1 x r; G - target =
    # (1/3, -1/3), so dL_grad/dw = (1, -1) and w = (0.9, 1.1).
    weighting.update({"a": 1.0, "b": 5.0}, tf.constant([1.0, 1.0]))
    np.testing.assert_allclose(weighting.task_weights, [0.9, 1.1], rtol=1e-6)


def test_gradnorm_step_measures_norms_with_the_tape():
    shared = tf.Variable([1.0, 2.0])
    weighting = GradNorm(["a", "b"], learning_rate=0.01)

    @tf.function  # As in a compiled train_step.
    def train_step():
        with tf.GradientTape(persistent=True) as tape:
            # dL_a/dW = (3, 4), norm 5; dL_b/dW = W, norm sqrt 5.
            losses = {"a": tf.tensordot(shared, [3.0, 4.0], 1),
                      "b": 0.5 * tf.reduce_sum(shared ** 2)}
            total, _ = weighting.combine(losses)
        norms = task_gradient_norms([losses["a"], losses["b"]], shared, tape)
        weighting.step(losses, shared, tape)
        return total, norms

    total, norms = train_step()
    assert float(total) == 11.0 + 2.5
    np.testing.assert_allclose(norms, [5.0, math.sqrt(5)], rtol=1e-6)
    # First step: target = mean(G); dL_grad/dw = (+5, -sqrt 5).
    w = np.array([1 - 0.01 * 5, 1 + 0.01 * math.sqrt(5)])
    np.testing.assert_allclose(weighting.task_weights, 2 * w / w.sum(), rtol=1e-6)
    assert weighting.trainable_variables == []  # Left alone by the optimizer.


def test_gradient_norms_over_several_variables():
    first, second, unused = tf.Variable([1.0]), tf.Variable([[1.0]]), tf.Variable(0.0)
    with tf.GradientTape(persistent=True) as tape:
        losses = [3.0 * first[0] + 4.0 * second[0, 0], 2.0 * first[0]]
    norms = task_gradient_norms(losses, [first, second, unused], tape)
    np.testing.assert_allclose(norms, [5.0, 2.0])  # sqrt(3^2 + 4^2); 2.
    np.testing.assert_allclose(task_gradient_norms(losses, unused, tape), [0.0, 0.0])


# --- PCGrad -----------------------------------------------------------------------


def test_pcgrad_projects_conflicting_gradients():
    # g1 . g2 = -1: g1 - (-1 / 2) g2 = (0.5, 0.5); g2 - (-1 / 1) g1 = (0, 1).
    out = pcgrad([[tf.constant([1.0, 0.0])], [tf.constant([-1.0, 1.0])]])
    np.testing.assert_allclose(out[0], [0.5, 1.5])


def test_pcgrad_flattens_over_variables():
    # The same two gradients, split over a [1] and a [1, 1] variable.
    out = pcgrad([[tf.constant([1.0]), tf.constant([[0.0]])],
                  [tf.constant([-1.0]), tf.constant([[1.0]])]])
    np.testing.assert_allclose(out[0], [0.5])
    np.testing.assert_allclose(out[1], [[1.5]])


def test_pcgrad_leaves_agreeing_gradients_alone():
    out = pcgrad([[tf.constant([1.0, 0.0])], [tf.constant([1.0, 1.0])]])
    np.testing.assert_allclose(out[0], [2.0, 1.0])


def test_pcgrad_three_tasks_in_index_order():
    g = [(1.0, 0.0), (-1.0, 1.0), (0.0, -1.0)]
    # g1: (0.5, 0.5) after g2, then dot with g3 = -0.5 -> (0.5, 0).
    # g2: (0, 1) after g1, then dot with g3 = -1 -> (0, 0).
    # g3: no conflict with g1; dot with g2 = -1 -> (0, -1) + 0.5 (-1, 1).
    out = tf.function(pcgrad)([[tf.constant(v)] for v in g])
    np.testing.assert_allclose(out[0], [0.0, -0.5], atol=1e-7)


def test_pcgrad_handles_missing_and_sparse_gradients():
    sparse = tf.IndexedSlices(tf.constant([[1.0, 0.0]]), tf.constant([1]),
                              tf.constant([2, 2]))
    out = pcgrad([[sparse, tf.constant([1.0]), None],
                  [None, tf.constant([2.0]), None]])
    np.testing.assert_allclose(out[0], [[0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(out[1], [3.0])
    assert out[2] is None


# --- Clipping and the factory -----------------------------------------------------


def test_clip_gradients():
    grads = [tf.constant([3.0]), None, tf.constant([4.0])]
    assert clip_gradients(grads, None) == grads and clip_gradients(grads, 0) == grads
    clipped = clip_gradients(grads, 1.0)
    np.testing.assert_allclose([clipped[0][0], clipped[2][0]], [0.6, 0.8])
    assert clipped[1] is None


def test_build_weighting():
    names, types = ["rating", "like"], ["regression", "binary"]
    fixed = build_weighting("fixed", names, fixed_weights={"like": 0.5})
    assert fixed.task_weights == {"rating": 1.0, "like": 0.5}
    assert isinstance(build_weighting("uncertainty", names, types),
                      UncertaintyWeighting)
    assert build_weighting("dwa", names, temperature=3.0).temperature == 3.0
    assert build_weighting("gradnorm", names, alpha=0.5).alpha == 0.5
    with pytest.raises(ValueError, match="'fixed', 'uncertainty', 'dwa'"):
        build_weighting("pcgrad", names)
    with pytest.raises(ValueError, match="needs `task_types`"):
        build_weighting("uncertainty", names)
    with pytest.raises(ValueError, match=r"unknown tasks \['click'\]"):
        build_weighting("fixed", names, fixed_weights={"click": 1.0})


@pytest.mark.parametrize("weighting", [
    FixedWeighting({"a": 1.0, "b": 2.0}), UncertaintyWeighting(["a", "b"],
                                                               ["binary"] * 2),
    DynamicWeightAverage(["a", "b"], temperature=3.0), GradNorm(["a", "b"], 0.5)])
def test_config_round_trip(weighting):
    config = weighting.get_config()
    assert weighting.__class__.from_config(config).get_config() == config
