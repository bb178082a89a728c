"""Training runs: outputs written per run, TensorBoard logs, resumable checkpoints."""

import dataclasses  # noqa: I001  (mtl_tf must be imported before tensorflow)
import gc
import json
import math

import numpy as np
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf

from mtl_tf import experiment, training
from mtl_tf.config import apply_overrides, load_config_file
from mtl_tf.data.pipeline import make_dataset
from mtl_tf.model.builder import build_model

TASK_LOSSES = ("retrieval_loss", "rating_loss", "like_loss")


@pytest.fixture(autouse=True)
def _collect_models():
    """Frees each test's models while logging still works: a model restored from a
    finished run never builds its optimizer slots, and TensorFlow warns about the
    unused checkpoint values when the model is garbage collected."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def short_config(tiny_config):
    return apply_overrides(tiny_config, ["train.epochs=2",
                                         "train.early_stopping_patience=0"])


@pytest.fixture(scope="module")
def completed_run(tmp_path_factory, short_config, tiny_prepared):
    run_dir = tmp_path_factory.mktemp("completed") / "run"
    result = experiment.run(short_config, run_dir, export=False, verbose=0,
                            prepared=tiny_prepared)
    return result, run_dir


def _datasets(config, prepared):
    train_ds = make_dataset(prepared.arrays["train"], config.train.batch_size,
                            shuffle=True, seed=config.train.seed)
    val_ds = make_dataset(prepared.arrays["validation"], config.train.eval_batch_size)
    return train_ds, val_ds


def _probe_features(prepared, n=64):
    arrays = prepared.arrays["test"]
    return {k: tf.constant(v[:n]) for k, v in arrays.items()}


def _assert_same_outputs(a, b, features):
    out_a, out_b = a(features, training=False), b(features, training=False)
    assert sorted(out_a) == sorted(out_b)
    for name in out_a:
        np.testing.assert_allclose(out_a[name].numpy(), out_b[name].numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=name)


def _variables(model) -> list[np.ndarray]:
    """The model's variable values in tracking order (names depend on the call
    context that created them, so they are not compared)."""
    return [v.numpy() for v in model.variables]


def test_run_writes_config_json(completed_run, short_config):
    _, run_dir = completed_run
    assert load_config_file(run_dir / "config.json") == short_config
    assert json.loads((run_dir / "config.json").read_text()) == json.loads(
        short_config.to_json())


def test_run_writes_metrics_json_per_task(completed_run):
    result, run_dir = completed_run
    summary = json.loads((run_dir / "metrics.json").read_text())
    metrics = summary["metrics"]
    for key in ("rating_rmse", "like_auc", "hit_rate_at_10", "hit_rate_at_100",
                "hit_rate_at_10_seen_included", "hit_rate_at_100_seen_included"):
        assert math.isfinite(metrics[key]), key
    assert 0 < metrics["rating_rmse"] < 4
    assert 0 <= metrics["like_auc"] <= 1
    assert 0 <= metrics["hit_rate_at_10"] <= metrics["hit_rate_at_100"] <= 1
    assert metrics == pytest.approx(result["metrics"])
    assert summary["training"]["epochs"] == 2
    assert summary["data"]["test"] == len(result["prepared"].splits.test)


def summary_tags(directory) -> set[str]:
    """Every summary tag (scalars, histograms) in a TensorBoard event directory."""
    tags = set()
    for path in directory.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_tensorboard_logs_per_task_losses(completed_run):
    _, run_dir = completed_run
    log_dir = run_dir / "tensorboard"
    assert list(log_dir.rglob("events.out.tfevents.*"))
    train_tags = summary_tags(log_dir / "train")
    val_tags = summary_tags(log_dir / "validation")
    for loss in TASK_LOSSES + ("total_loss",):
        assert f"epoch_{loss}" in train_tags, (loss, sorted(train_tags))
        assert f"epoch_{loss}" in val_tags, (loss, sorted(val_tags))
    assert list((log_dir / "hparams").glob("events.out.tfevents.*"))


def test_history_has_each_task_loss(completed_run):
    result, _ = completed_run
    history = result["history"]
    for loss in TASK_LOSSES:
        assert len(history[loss]) == 2 and len(history[f"val_{loss}"]) == 2


def test_retrieval_only_run_trains_without_gate_logging(tmp_path, short_config,
                                                        tiny_prepared):
    config = dataclasses.replace(short_config, tasks=tuple(
        task for task in short_config.tasks if task.type == "retrieval"))
    result = experiment.run(config, tmp_path / "run", export=False, verbose=0,
                            prepared=tiny_prepared)
    assert not result["model"].has_gates
    assert result["model"].gate_weights(_probe_features(tiny_prepared)) is None
    assert len(result["history"]["retrieval_loss"]) == 2
    assert 0 < result["metrics"]["hit_rate_at_10"] <= 1
    assert result["chief"] is True  # one process: it scores and exports
    assert not (tmp_path / "run" / "tensorboard" / "gates").exists()


def test_init_from_errors_name_the_setting_and_the_fix(tmp_path, completed_run,
                                                       short_config, tiny_prepared):
    _, run_dir = completed_run
    wider = apply_overrides(short_config, [
        f"model.embedding_dim={2 * short_config.model.embedding_dim}"])
    model = build_model(wider, tiny_prepared.data, tiny_prepared.splits.train)
    model(_probe_features(tiny_prepared))  # built: shapes are checked at restore
    with pytest.raises(ValueError, match="train.init_from=.*same data, id vocab"):
        training.warm_start(model, run_dir)
    with pytest.raises(FileNotFoundError, match="train.init_from=.*--output-dir"):
        training.warm_start(model, tmp_path / "no_such_run")


def test_completed_run_is_not_retrained(completed_run, short_config, tiny_prepared):
    result, run_dir = completed_run
    before = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    config = apply_overrides(short_config, ["train.epochs=3"])
    model = build_model(config, tiny_prepared.data, tiny_prepared.splits.train)
    summary = training.fit(model, config, *_datasets(config, tiny_prepared), run_dir,
                           num_train_examples=len(tiny_prepared.splits.train),
                           verbose=0)
    assert summary["resumed"] is True
    assert summary["epochs"] == 2
    assert summary["history"] == {}
    # No new checkpoint was written ...
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == before
    # ... and the new model carries the finished run's weights.
    _assert_same_outputs(model, result["model"], _probe_features(tiny_prepared))


class _Crash(Exception):
    pass


def test_interrupted_run_resumes_after_last_epoch(tmp_path, monkeypatch, tiny_config,
                                                  tiny_prepared):
    config = apply_overrides(tiny_config, ["train.epochs=3",
                                           "train.early_stopping_patience=0"])
    run_dir = tmp_path / "run"
    train_ds, val_ds = _datasets(config, tiny_prepared)
    n_train = len(tiny_prepared.splits.train)
    steps_per_epoch = math.ceil(n_train / config.train.batch_size)
    features = _probe_features(tiny_prepared)

    # First attempt: the process "dies" right after the epoch-2 checkpoint.
    original = training.ResumableCheckpoint.on_epoch_end

    def crash_after_second_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch + 1 == 2:
            raise _Crash()

    monkeypatch.setattr(training.ResumableCheckpoint, "on_epoch_end",
                        crash_after_second_epoch)
    crashed = build_model(config, tiny_prepared.data, tiny_prepared.splits.train)
    with pytest.raises(_Crash):
        training.fit(crashed, config, train_ds, val_ds, run_dir,
                     num_train_examples=n_train, verbose=0)
    monkeypatch.undo()
    assert int(crashed.optimizer.iterations.numpy()) == 2 * steps_per_epoch

    # A fresh model restores exactly the saved state: weights, optimizer, epoch.
    fresh = build_model(config, tiny_prepared.data, tiny_prepared.splits.train)
    optimizer = training.make_optimizer(config.train)
    fresh.compile(optimizer=optimizer)
    checkpoint = training.ResumableCheckpoint(run_dir / "checkpoints", fresh,
                                              optimizer)
    assert checkpoint.restore() == 2
    assert not bool(checkpoint.done.numpy())
    _assert_same_outputs(fresh, crashed, features)
    saved, restored = _variables(crashed), _variables(fresh)
    assert len(saved) == len(restored) > 10
    for i, (a, b) in enumerate(zip(saved, restored)):
        np.testing.assert_array_equal(b, a, err_msg=str(i))
    assert int(optimizer.iterations.numpy()) == 2 * steps_per_epoch

    # Re-running fit on the same run_dir trains only the missing third epoch.
    resumed = build_model(config, tiny_prepared.data, tiny_prepared.splits.train)
    summary = training.fit(resumed, config, train_ds, val_ds, run_dir,
                           num_train_examples=n_train, verbose=0)
    assert summary["resumed"] is True
    assert summary["epochs"] == 3
    assert len(summary["history"]["total_loss"]) == 1
    # The optimizer continued from step 2 * steps_per_epoch, not from 0.
    assert int(resumed.optimizer.iterations.numpy()) == 3 * steps_per_epoch
    # And the weights moved on from the restored ones.
    moved = _variables(resumed)
    assert len(moved) == len(saved)
    assert sum(not np.array_equal(a, b) for a, b in zip(moved, saved)) > len(saved) / 2
    # The run is now complete: a further re-run does not train.
    again = build_model(config, tiny_prepared.data, tiny_prepared.splits.train)
    summary = training.fit(again, config, train_ds, val_ds, run_dir,
                           num_train_examples=n_train, verbose=0)
    assert summary["history"] == {} and summary["epochs"] == 3
    _assert_same_outputs(again, resumed, features)


def test_throughput_leaves_out_the_tracing_step(monkeypatch):
    """One epoch: examples/s from the end of its first step (which traces the
    graph); more epochs: the mean over the epochs after the first."""
    clock = iter([0.0, 5.0, 6.0, 10.0, 12.0, 20.0, 24.0])
    monkeypatch.setattr(training.time, "perf_counter", lambda: next(clock))
    logger = training.ThroughputLogger(1000)
    timer = training.FirstStepTimer(logger)
    logger.set_params({"steps": 10})
    logs = {}
    logger.on_epoch_begin(0)  # t = 0
    timer.on_train_batch_end(0)  # t = 5: traced
    logger.on_epoch_end(0, logs)  # t = 6: 9 steps of 100 examples in 1 s
    assert logs["examples_per_second"] == pytest.approx(900.0)
    for epoch in (1, 2):  # 2 s, then 4 s for 1000 examples
        logger.on_epoch_begin(epoch)
        timer.on_train_batch_end(0)  # reads no clock after the first step
        logger.on_epoch_end(epoch, logs)
    assert logs["examples_per_second"] == pytest.approx(1000 / 3.0)
    # Without a timer (ParameterServerStrategy) a lone epoch counts whole.
    untimed = training.ThroughputLogger(1000)
    clock = iter([0.0, 4.0])
    untimed.on_epoch_begin(0)
    untimed.on_epoch_end(0, logs)
    assert untimed.examples_per_second == pytest.approx(250.0)
