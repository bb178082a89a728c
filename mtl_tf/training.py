"""Fits a model: progress bars (one line per epoch into a log file),
TensorBoard, early stopping, resumable checkpoints."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import tensorflow as tf

from mtl_tf.config import Config, TrainConfig
from mtl_tf.distribution import is_chief, is_parameter_server, worker_scratch_dir
from mtl_tf.model.weighting import LossWeightingCallback
from mtl_tf.optimizers import LazyAdam

# "linear": the rate at the end of the run, as a share of train.learning_rate.
FINAL_RATE_SHARE = 0.05


def make_optimizer(train: TrainConfig, steps_per_epoch: int = 0
                   ) -> tf.keras.optimizers.Optimizer:
    """`LazyAdam`, Adam (AdamW when `weight_decay` > 0) or Adagrad, at the
    rate of `train.learning_rate_schedule` (a "linear" decay spans
    `train.epochs` epochs of `steps_per_epoch` steps)."""
    rate = train.learning_rate
    if train.learning_rate_schedule == "linear":
        if steps_per_epoch <= 0:
            raise ValueError("make_optimizer: train.learning_rate_schedule="
                             "'linear' needs the steps per epoch. Received: "
                             f"steps_per_epoch={steps_per_epoch}.")
        rate = tf.keras.optimizers.schedules.PolynomialDecay(
            rate, train.epochs * steps_per_epoch, rate * FINAL_RATE_SHARE)
    if train.optimizer == "adagrad":
        return tf.keras.optimizers.Adagrad(rate)
    if train.weight_decay > 0:
        return tf.keras.optimizers.AdamW(rate, weight_decay=train.weight_decay)
    if train.optimizer == "lazy_adam":
        return LazyAdam(rate)
    return tf.keras.optimizers.Adam(rate)


class ResumableCheckpoint(tf.keras.callbacks.Callback):
    """Saves model, optimizer and epoch after every epoch; a re-run resumes from it.

    `tf.train.CheckpointManager` writes each checkpoint's files before it updates
    the `checkpoint` index file, so a crash mid-save leaves the previous checkpoint
    as the latest one. Once training finishes, the final (best) weights are saved
    with `done=True`, and a re-run skips training.

    Under a multi-worker strategy every worker restores from and saves with the
    chief (saving reads variables collectively), but only the chief's copy in
    `directory` is kept: the others write to a scratch directory they delete.
    """

    def __init__(self, directory: str | Path, model: tf.keras.Model,
                 optimizer: tf.keras.optimizers.Optimizer,
                 strategy: tf.distribute.Strategy | None = None):
        super().__init__()
        strategy = strategy or tf.distribute.get_strategy()
        self.directory = str(directory)
        self._write_directory = worker_scratch_dir(self.directory, strategy)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.done = tf.Variable(False, trainable=False)
        self._checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                               epoch=self.epoch, done=self.done)
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, self._write_directory, max_to_keep=2)

    def restore(self) -> int:
        """Restores the chief's latest checkpoint if any; returns the epoch to
        start from."""
        latest = tf.train.latest_checkpoint(self.directory)
        if latest:
            # A finished run never rebuilds optimizer slots: partial is expected.
            self._checkpoint.restore(latest).expect_partial()
        return int(self.epoch.numpy())

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.epoch.assign(epoch + 1)
        self._manager.save()

    def mark_done(self) -> None:
        self.done.assign(True)
        self._manager.save()
        if self._write_directory != self.directory:
            tf.io.gfile.rmtree(self._write_directory)


def warm_start(model: tf.keras.Model, run_dir: str | Path) -> str:
    """Loads `model`'s weights from the latest checkpoint of the run in `run_dir`.

    Only the weights are restored, not the optimizers' state or the epoch
    count. Weights match by their place in the model, so the earlier run must
    have used the same data and id vocabularies; layers it lacks (e.g. a text
    encoder's backbone, when it was trained frozen) keep their current values.
    Returns the checkpoint path used.
    """
    run_dir = Path(run_dir)
    path = (tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
            or tf.train.latest_checkpoint(str(run_dir)))
    if path is None:
        raise FileNotFoundError(
            f"train.init_from={str(run_dir)!r}: no checkpoint in "
            f"{run_dir / 'checkpoints'} or in the directory itself. Point it at "
            "the --output-dir of an earlier run.")
    # The model tracks its optimizers as children: restoring it whole would also
    # restore the earlier run's learning rate, step count and moments (even into
    # an optimizer compiled later). A stand-in with only the weight-holding
    # children matches the same checkpoint nodes by name.
    children = {name: child for name, child in
                model._trackable_children(save_type="checkpoint").items()
                if not isinstance(child, tf.keras.optimizers.Optimizer)}
    try:
        weights = tf.train.Checkpoint(**children)
        status = tf.train.Checkpoint(model=weights).restore(path)
        status.assert_nontrivial_match()
    except ValueError as error:  # a weight of another shape
        raise ValueError(
            f"train.init_from={str(run_dir)!r}: {error} The earlier run must use "
            "the same data, id vocabularies and layer sizes.") from None
    except AssertionError:
        raise ValueError(f"train.init_from={str(run_dir)!r}: {path} holds no weight "
                         "of this model.") from None
    status.expect_partial()
    return path


class ThroughputLogger(tf.keras.callbacks.Callback):
    """Measures training examples per second (excluding validation).

    The first epoch includes tracing: it is left out of the mean when later
    epochs exist, and with a `FirstStepTimer` beside this callback a lone
    first epoch counts only from the end of its first step.
    """

    def __init__(self, examples_per_epoch: int):
        super().__init__()
        self.examples_per_epoch = examples_per_epoch
        self.epoch_seconds: list[float] = []
        self.first_step_end: float | None = None  # Set by a FirstStepTimer.
        self._first_epoch_rate = float("nan")

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        if hasattr(self, "_start"):
            ended = time.perf_counter()
            if not self.epoch_seconds:
                steps = (getattr(self, "params", None) or {}).get("steps") or 0
                if self.first_step_end is not None and steps > 1:
                    self._first_epoch_rate = (
                        self.examples_per_epoch * (steps - 1) / steps
                        / max(ended - self.first_step_end, 1e-9))
                else:
                    self._first_epoch_rate = (self.examples_per_epoch
                                              / max(ended - self._start, 1e-9))
            self.epoch_seconds.append(ended - self._start)
            del self._start

    def on_epoch_end(self, epoch, logs=None):
        self.on_test_begin()
        if logs is not None and self.epoch_seconds:
            logs["examples_per_second"] = self.examples_per_second

    @property
    def examples_per_second(self) -> float:
        """Mean throughput over epochs after the first; with one epoch, that
        epoch's (after its first step, when timed)."""
        if len(self.epoch_seconds) > 1:
            seconds = self.epoch_seconds[1:]
            return self.examples_per_epoch / (sum(seconds) / len(seconds))
        return self._first_epoch_rate


class FirstStepTimer(tf.keras.callbacks.Callback):
    """Notes when the first training step (which traces the graph) ends, for
    a `ThroughputLogger`. A batch-level callback, which
    ParameterServerStrategy does not take."""

    def __init__(self, throughput: ThroughputLogger):
        super().__init__()
        self.throughput = throughput
        self._supports_tf_logs = True  # Reads no logs: no sync to numpy per step.

    def on_train_batch_end(self, batch, logs=None):
        if self.throughput.first_step_end is None:
            self.throughput.first_step_end = time.perf_counter()


class GateHistogramLogger(tf.keras.callbacks.Callback):
    """Logs each task's MMoE / PLE gate weights to TensorBoard after every epoch.

    On a fixed probe batch (the first batch of `dataset`), writes one histogram
    per task and expert (`gates/<task>/expert_<j>`: that expert's weight over the
    batch's examples) and the mean weight as a scalar, under `<log_dir>/gates`.
    Does nothing (and reads no batch) for architectures without gates.
    """

    def __init__(self, log_dir: str | Path, dataset: tf.data.Dataset):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.dataset = dataset
        self._probe = None
        self._writer = None

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if not self.model.has_gates:
            return
        if self._probe is None:
            self._probe = next(iter(self.dataset))
            self._writer = tf.summary.create_file_writer(str(self.log_dir / "gates"))
        gates = self.model.gate_weights(self._probe)
        with self._writer.as_default(step=epoch):
            for task, weights in gates.items():
                for expert in range(weights.shape[-1]):
                    tf.summary.histogram(f"gates/{task}/expert_{expert}",
                                         weights[:, expert])
                    tf.summary.scalar(f"gates/{task}/expert_{expert}_mean",
                                      tf.reduce_mean(weights[:, expert]))
        self._writer.flush()


def log_hparams(log_dir: str | Path, config: Config) -> None:
    """Writes the run's flattened config to TensorBoard's HParams dashboard."""
    from tensorboard.plugins.hparams import api as hp

    flat: dict[str, object] = {}
    for section, values in config.to_dict().items():
        if section == "tasks":
            for task in values:
                flat[f"tasks.{task['name']}.weight"] = task["weight"]
            continue
        for key, value in values.items():
            if isinstance(value, (list, tuple)):
                value = str(list(value))
            flat[f"{section}.{key}"] = "" if value is None else value
    with tf.summary.create_file_writer(str(Path(log_dir) / "hparams")).as_default():
        hp.hparams(flat)


def fit(model: tf.keras.Model, config: Config, train_ds: tf.data.Dataset,
        validation_ds: tf.data.Dataset | None, run_dir: str | Path,
        num_train_examples: int, verbose: int = 1) -> dict:
    """Trains `model` and returns a summary (epochs run, history, throughput).

    Writes TensorBoard logs to `run_dir/tensorboard` and checkpoints to
    `run_dir/checkpoints`; a re-run with the same `run_dir` resumes after the last
    finished epoch (early-stopping patience restarts on resume). Call it in the
    scope of the strategy the model was built in: only the chief then logs and
    keeps checkpoints, and under a parameter-server strategy the coordinator
    dispatches each epoch's steps to the workers.
    """
    run_dir = Path(run_dir)
    train = config.train
    strategy = tf.distribute.get_strategy()
    chief = is_chief(strategy)
    verbose = verbose if chief else 0
    steps_per_epoch = int(train_ds.cardinality())
    if steps_per_epoch <= 0:  # Unknown or infinite: count the batches.
        steps_per_epoch = math.ceil(num_train_examples / train.batch_size)
    optimizer = make_optimizer(train, steps_per_epoch)
    model.compile(optimizer=optimizer)
    checkpoint = ResumableCheckpoint(run_dir / "checkpoints", model, optimizer,
                                     strategy)
    initial_epoch = checkpoint.restore()
    if bool(checkpoint.done.numpy()):
        if verbose:
            print(f"Training already finished in {run_dir} (epoch {initial_epoch}); "
                  "reusing its checkpoint. To train again (e.g. with more epochs), "
                  "pass a new --output-dir.")
        return {"epochs": initial_epoch, "resumed": True, "history": {},
                "examples_per_second": float("nan")}
    if initial_epoch and verbose:
        print(f"Resuming from the checkpoint after epoch {initial_epoch}.")
    elif not initial_epoch and train.init_from:
        path = warm_start(model, train.init_from)
        if verbose:
            print(f"Starting from the weights of {path}.")
    log_dir = run_dir / "tensorboard"
    throughput = ThroughputLogger(num_train_examples)
    callbacks: list[tf.keras.callbacks.Callback] = [
        throughput, LossWeightingCallback(model.weighting)]
    if not is_parameter_server(strategy):
        callbacks.append(FirstStepTimer(throughput))
    stopping = None
    if validation_ds is not None and train.early_stopping_patience > 0:
        stopping = tf.keras.callbacks.EarlyStopping(
            monitor="val_total_loss", patience=train.early_stopping_patience,
            restore_best_weights=True)
        callbacks.append(stopping)
    # The TensorBoard callback itself sends other workers' logs to scratch.
    callbacks.append(tf.keras.callbacks.TensorBoard(str(log_dir), update_freq="epoch"))
    if chief:
        log_hparams(log_dir, config)
        callbacks.append(GateHistogramLogger(log_dir, validation_ds or train_ds))
    callbacks.append(checkpoint)
    steps = {}
    if is_parameter_server(strategy):
        # The coordinator hands out a fixed number of steps per epoch from
        # each worker's endless copy of the data.
        steps["steps_per_epoch"] = int(train_ds.cardinality())
        train_ds = train_ds.repeat()
        if validation_ds is not None:
            steps["validation_steps"] = int(validation_ds.cardinality())
            validation_ds = validation_ds.repeat()
    # A progress bar for a terminal or a notebook; one line per epoch for a log
    # file or a pipe (a bar would write, and sync, every step).
    interactive = sys.stdout.isatty() or "ipykernel" in sys.modules
    keras_verbose = (1 if interactive else 2) if verbose else 0
    history = model.fit(train_ds, validation_data=validation_ds, epochs=train.epochs,
                        initial_epoch=initial_epoch, callbacks=callbacks,
                        verbose=keras_verbose, **steps)
    checkpoint.mark_done()
    epochs = int(checkpoint.epoch.numpy())
    # The epoch whose weights were kept (EarlyStopping numbers epochs from 0).
    best = (stopping.best_epoch + 1 if stopping is not None and stopping.best_weights
            is not None else epochs)
    return {"epochs": epochs, "best_epoch": best, "resumed": bool(initial_epoch),
            "history": history.history,
            "examples_per_second": throughput.examples_per_second}
