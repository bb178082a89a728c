"""Multi-task layers: shapes, hand-computed outputs and parameter counts, gate
structure, invalid arguments and config round trips."""

import numpy as np  # noqa: I001  (mtl_tf must be imported before tensorflow)
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf

from mtl_tf.model.architectures import (ARCHITECTURES, CGC, MMoE, PLE, SharedBottom,
                                        SingleTask, build_architecture,
                                        parameter_count, units_for_budget)

SMALL = {"shared_bottom": {"units": (6, 4)}, "single_task": {"units": (6, 4)},
         "mmoe": {"num_experts": 3, "expert_units": (6, 4)},
         "ple": {"num_levels": 2, "num_shared_experts": 1, "num_task_experts": 2,
                 "expert_units": (6, 4)}}


def _x(batch=5, dim=7, seed=0):
    return tf.random.stateless_normal([batch, dim], seed=[seed, 0])


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("training", [False, True])
def test_one_output_per_task_of_the_last_width(name, training):
    layer = build_architecture(name, 3, dropout=0.5, **SMALL[name])
    outputs = layer(_x(), training=training)
    assert [t.shape.as_list() for t in outputs] == [[5, 4]] * 3


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_unbuilt_layer_has_no_weights_yet(name):
    # An owning model may list its variables before its first call.
    assert build_architecture(name, 2, **SMALL[name]).trainable_variables == []


def test_shared_bottom_gives_every_task_the_same_tensor():
    outputs = SharedBottom(num_tasks=3, units=(4,))(_x())
    assert outputs[0] is outputs[1] is outputs[2]


def test_single_task_towers_are_independent():
    layer = SingleTask(num_tasks=2, units=(4, 3))
    with tf.GradientTape(persistent=True) as tape:
        first = layer(_x())[0]
    other = tape.gradient(first, layer.towers[1].trainable_variables)
    assert len(other) == 4 and all(g is None for g in other)
    own = tape.gradient(first, layer.towers[0].trainable_variables)
    assert all(g is not None for g in own)


def test_mmoe_uniform_gates_average_the_experts():
    # All-ones kernels: every gate logit is x1 + x2 = 3, so the gates are uniform;
    # expert 0 gives relu(1 + 2) = 3, expert 1 (kernel set to 2s) relu(2 + 4) = 6.
    layer = MMoE(num_tasks=2, num_experts=2, expert_units=(1,),
                 kernel_initializer="ones")
    x = tf.constant([[1.0, 2.0]])
    layer(x)
    layer.experts[1].layers[0].kernel.assign([[2.0], [2.0]])
    outputs = layer(x)
    np.testing.assert_allclose([o.numpy() for o in outputs], [[[4.5]], [[4.5]]])
    for gates in (layer.last_gate_weights, layer.gate_weights(x)):
        np.testing.assert_allclose([g.numpy() for g in gates], [[[0.5, 0.5]]] * 2)


@pytest.mark.parametrize("layer, experts", [
    (MMoE(num_tasks=2, num_experts=3, expert_units=(4,)), 3),
    (CGC(num_tasks=2, num_shared_experts=1, num_task_experts=3, expert_units=(4,)),
     4),
    (PLE(num_tasks=2, num_levels=2, num_shared_experts=2, num_task_experts=1,
         expert_units=(4,)), 3),
])
def test_gate_weights_are_distributions_over_the_visible_experts(layer, experts):
    x = _x(batch=6)
    layer(x)
    for gates in (layer.last_gate_weights, layer.gate_weights(x)):
        assert len(gates) == 2
        for gate in gates:
            assert gate.shape.as_list() == [6, experts]
            np.testing.assert_allclose(tf.reduce_sum(gate, -1), np.ones(6), rtol=1e-6)
            assert np.all(gate.numpy() > 0)


def test_cgc_task_gate_mixes_only_its_own_and_the_shared_experts():
    layer = CGC(num_tasks=3, num_shared_experts=2, num_task_experts=3,
                expert_units=(4,), shared_output=True)
    x = _x()
    with tf.GradientTape(persistent=True) as tape:
        outputs = layer(x)
    assert len(outputs) == 4  # Three tasks, then the shared output.
    assert [g.shape[-1] for g in layer.last_gate_weights] == [3 + 2] * 3
    assert layer._last_shared_gate_weights.shape[-1] == 3 * 3 + 2
    own = [v for e in layer.task_experts[0] for v in e.trainable_variables]
    other = [v for e in layer.task_experts[1] for v in e.trainable_variables]
    shared = [v for e in layer.shared_experts for v in e.trainable_variables]
    assert all(g is None for g in tape.gradient(outputs[0], other))
    assert all(g is not None for g in tape.gradient(outputs[0], own + shared))
    # The shared output sees every expert.
    assert all(g is not None for g in tape.gradient(outputs[3], own + other + shared))


def test_ple_levels_have_shared_gates_except_the_last():
    layer = PLE(num_tasks=2, num_levels=3, expert_units=(4,))
    layer(_x())
    assert [level.shared_output for level in layer.levels] == [True, True, False]
    assert layer.levels[-1].shared_gate is None
    assert layer.last_gate_weights is layer.levels[-1].last_gate_weights


def test_cgc_rejects_a_list_of_the_wrong_length():
    with pytest.raises(ValueError, match="num_tasks \\+ 1 = 3 tensors. Received 2"):
        CGC(num_tasks=2, expert_units=(4,))([_x(), _x()])


@pytest.mark.parametrize("build, message", [
    (lambda: MMoE(2, num_experts=0), "`num_experts=0`"),
    (lambda: SharedBottom(0), "`num_tasks=0`"),
    (lambda: SingleTask(2, units=()), r"`units=\(\)`"),
    (lambda: SingleTask(2, units=(4, -1)), r"`units=\(4, -1\)`"),
    (lambda: MMoE(2, dropout=1.0), "`dropout=1.0`"),
    (lambda: CGC(2, num_shared_experts=0), "`num_shared_experts=0`"),
    (lambda: PLE(2, num_levels=0), "`num_levels=0`"),
    (lambda: PLE(2, num_task_experts=0), "`num_task_experts=0`"),
    (lambda: build_architecture("moe", 2), "'shared_bottom', 'single_task'"),
])
def test_invalid_arguments_raise(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_config_round_trip_gives_the_same_layer(name):
    layer = build_architecture(name, 2, dropout=0.1, **SMALL[name],
                               kernel_initializer=tf.keras.initializers.GlorotUniform(3))
    x = _x()
    expected = layer(x)
    config = layer.get_config()
    restored = layer.__class__.from_config(config)
    assert restored.get_config() == config
    restored(x)
    restored.set_weights(layer.get_weights())
    for a, b in zip(expected, restored(x)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_seeded_initializer_differs_per_expert_and_repeats_per_layer():
    def kernels():
        layer = MMoE(2, num_experts=2, expert_units=(3,),
                     kernel_initializer=tf.keras.initializers.GlorotUniform(seed=7))
        layer(_x())
        return [e.layers[0].kernel.numpy() for e in layer.experts]

    first, second = kernels(), kernels()
    assert not np.allclose(first[0], first[1])
    np.testing.assert_array_equal(first[0], second[0])


def test_functional_model_save_and_load(tmp_path):
    inputs = tf.keras.Input((7,))
    outputs = MMoE(2, num_experts=2, expert_units=(4,), name="mmoe")(inputs)
    model = tf.keras.Model(inputs, outputs)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = tf.keras.models.load_model(path, custom_objects={"MMoE": MMoE})
    for a, b in zip(model(_x()), loaded(_x())):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("layer, expected", [
    (SharedBottom(2, units=(4, 3)), 6 * 4 + 5 * 3),
    (SingleTask(3, units=(4,)), 3 * 6 * 4),
    # Experts 3 x (5 + 1) x 4; gates 2 x 5 x 3 (no bias).
    (MMoE(2, num_experts=3, expert_units=(4,)), 72 + 30),
    # 2 x 2 + 1 = 5 experts x 24; task gates 2 x 5 x 3.
    (PLE(2, num_levels=1, num_shared_experts=1, num_task_experts=2,
         expert_units=(4,)), 120 + 30),
    # Level 0 adds a 5 x 5 shared gate; level 1: 5 experts x (4 + 1) x 4, gates
    # 2 x 4 x 3.
    (PLE(2, num_levels=2, num_shared_experts=1, num_task_experts=2,
         expert_units=(4,)), 175 + 100 + 24),
])
def test_parameter_count(layer, expected):
    assert parameter_count(layer, 5) == expected
    assert not layer.built  # Counted on a copy.


def test_units_for_budget_known_answer():
    # Two layers of width w on 16 inputs: 17 w + (w + 1) w = w^2 + 18 w; w = 24
    # gives 1008, w = 23 gives 943.
    assert units_for_budget("shared_bottom", 2, 16, budget=1000) == {"units": (24, 24)}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_units_for_budget_is_within_ten_percent(name):
    kwargs = units_for_budget(name, 3, 32, budget=20_000,
                              **({"num_experts": 4} if name == "mmoe" else {}))
    count = parameter_count(build_architecture(name, 3, **kwargs), 32)
    assert abs(count - 20_000) <= 2_000


def test_units_for_budget_rejects_an_unreachable_budget():
    with pytest.raises(ValueError, match="`budget=10`"):
        units_for_budget("mmoe", 2, 16, budget=10)
    with pytest.raises(ValueError, match="Received: `architecture='moe'`"):
        units_for_budget("moe", 2, 16, budget=1000)
