"""LazyAdam: Adam on dense gradients; on embedding (sparse) gradients, only the
looked-up rows move, by Adam's formula worked out by hand."""

import math  # noqa: I001  (mtl_tf must be imported before tensorflow)

import numpy as np
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf

from mtl_tf.config import apply_overrides, get_preset
from mtl_tf.model.text_encoder import backbone_optimizer
from mtl_tf.optimizers import LazyAdam
from mtl_tf.training import make_optimizer

LR, B1, B2, EPS = 0.1, 0.9, 0.999, 1e-7


def _adam_row(gradients):
    """Adam's value of a weight starting at 0 after steps with `gradients`."""
    m = v = w = 0.0
    for step, g in enumerate(gradients, start=1):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        alpha = LR * math.sqrt(1 - B2 ** step) / (1 - B1 ** step)
        w -= alpha * m / (math.sqrt(v) + EPS)
    return w


def _step(optimizer, table, rows, values):
    gradient = tf.IndexedSlices(tf.constant(values, tf.float32),
                                tf.constant(rows, tf.int64), tf.shape(table))
    optimizer.apply_gradients([(gradient, table)])


def test_sparse_updates_move_only_the_looked_up_rows():
    table = tf.Variable(tf.zeros((4, 2)))
    optimizer = LazyAdam(LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    _step(optimizer, table, [0, 2], [[1.0, -2.0], [0.5, 0.5]])
    _step(optimizer, table, [2, 3], [[-1.0, 1.0], [3.0, 0.0]])
    expected = np.array([
        # Row 0 is absent from step 2: it keeps its step-1 value (Keras'
        # Adam would move it again with its momentum).
        [_adam_row([1.0]), _adam_row([-2.0])],
        [0.0, 0.0],  # never looked up
        [_adam_row([0.5, -1.0]), _adam_row([0.5, 1.0])],
        # Row 3 first appears at step 2: its moments start there, the bias
        # correction follows the global step.
        [-LR * math.sqrt(1 - B2 ** 2) / (1 - B1 ** 2) * (1 - B1) * 3.0
         / (math.sqrt((1 - B2) * 9.0) + EPS), 0.0],
    ])
    np.testing.assert_allclose(table.numpy(), expected, rtol=1e-5, atol=1e-7)
    dense = tf.Variable(tf.zeros((4, 2)))
    keras_adam = tf.keras.optimizers.Adam(LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    _step(keras_adam, dense, [0, 2], [[1.0, -2.0], [0.5, 0.5]])
    _step(keras_adam, dense, [2, 3], [[-1.0, 1.0], [3.0, 0.0]])
    assert abs(dense.numpy()[0, 0] - expected[0, 0]) > 1e-3  # the difference


def test_repeated_rows_count_once_with_their_summed_gradient():
    table = tf.Variable(tf.zeros((3, 1)))
    _step(LazyAdam(LR, beta_1=B1, beta_2=B2, epsilon=EPS), table, [1, 1],
          [[0.25], [0.75]])
    np.testing.assert_allclose(table.numpy()[:, 0], [0.0, _adam_row([1.0]), 0.0],
                               rtol=1e-5)


def test_dense_gradients_follow_adam():
    lazy, plain = tf.Variable([1.0, -2.0]), tf.Variable([1.0, -2.0])
    optimizers = (LazyAdam(LR), tf.keras.optimizers.Adam(LR))
    for gradient in ([0.3, -0.1], [-0.2, 0.4], [1.0, 1.0]):
        for optimizer, variable in zip(optimizers, (lazy, plain)):
            optimizer.apply_gradients([(tf.constant(gradient), variable)])
    np.testing.assert_allclose(lazy.numpy(), plain.numpy(), rtol=1e-6)


def test_an_embedding_model_trains_with_it():
    model = tf.keras.Sequential([tf.keras.Input((1,), dtype="int64"),
                                 tf.keras.layers.Embedding(1000, 4),
                                 tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(1)])
    model.compile(optimizer=LazyAdam(0.05), loss="mse")
    ids = np.arange(200).reshape(-1, 1) % 100
    targets = (ids[:, 0] % 2).astype(np.float32)
    first = model.evaluate(ids, targets, verbose=0)
    initial = model.layers[0].embeddings.numpy().copy()
    model.fit(ids, targets, epochs=30, batch_size=20, verbose=0)
    assert model.evaluate(ids, targets, verbose=0) < 0.1 * first
    table = model.layers[0].embeddings.numpy()
    assert (table[:100] != initial[:100]).any(axis=1).all()
    # Rows 100..999 were never looked up: exactly their initial values.
    np.testing.assert_array_equal(table[100:], initial[100:])


def test_config_picks_it_by_default_and_names_bad_choices():
    train = get_preset("tiny").train
    assert isinstance(make_optimizer(train), LazyAdam)
    adam = apply_overrides(get_preset("tiny"), ["train.optimizer=adam"]).train
    assert type(make_optimizer(adam)) is tf.keras.optimizers.Adam
    with pytest.raises(ValueError, match="train.optimizer must be one of"):
        apply_overrides(get_preset("tiny"), ["train.optimizer=sgd"])
    with pytest.raises(ValueError, match="amsgrad=True is not supported"):
        LazyAdam(amsgrad=True)


def test_linear_schedule_falls_to_a_twentieth_over_the_run():
    train = apply_overrides(get_preset("tiny"), [
        "train.learning_rate_schedule=linear", "train.epochs=4",
        "train.learning_rate=0.01"]).train
    optimizer = make_optimizer(train, steps_per_epoch=10)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(20)) == pytest.approx(0.01 - 0.5 * (0.01 - 0.0005))
    assert float(schedule(40)) == pytest.approx(0.0005)
    assert float(schedule(400)) == pytest.approx(0.0005)  # Never below.
    # A fine-tuned text encoder's optimizer scales the whole schedule.
    backbone = backbone_optimizer(optimizer, 0.1)._learning_rate
    assert float(backbone(0)) == pytest.approx(0.001)
    assert float(backbone(40)) == pytest.approx(0.00005)
    assert isinstance(make_optimizer(get_preset("tiny").train).learning_rate,
                      tf.Variable)  # "constant": a plain rate
    with pytest.raises(ValueError, match="needs the steps per epoch"):
        make_optimizer(train)
    with pytest.raises(ValueError, match="train.learning_rate_schedule must be"):
        apply_overrides(get_preset("tiny"), ["train.learning_rate_schedule=cosine"])
