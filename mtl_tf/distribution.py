"""`train.distribution`: the `tf.distribute` strategy, and this process's role in it.

Every mode runs the same `python -m mtl_tf.train` command in every process;
TensorFlow's own runtime does the rest:

- "none": the default strategy, one device.
- "mirrored": `MirroredStrategy` over this machine's devices.
- "multi_worker": `MultiWorkerMirroredStrategy`; the cluster and this task come
  from the `TF_CONFIG` environment variable. Every worker trains on its shard
  of each batch and saves checkpoints (non-chief workers into a scratch
  directory, as the strategy needs); the chief alone writes the checkpoints a
  restart resumes from, the TensorBoard logs, the metrics and the export.
- "parameter_server": `ParameterServerStrategy`. The `chief` task is the
  coordinator that runs training; `worker` and `ps` tasks start a
  `tf.distribute.Server` and serve until they are stopped. Variables larger than
  `train.shard_min_bytes` (the embedding tables) are split across the ps tasks.
"""

from __future__ import annotations

import json
import os
import re

import tensorflow as tf

from mtl_tf.config import TrainConfig


def make_strategy(train: TrainConfig) -> tf.distribute.Strategy:
    """The strategy of `train.distribution`; build and fit the model in its scope.

    "multi_worker" must be made before TensorFlow runs its first op (collective
    ops are configured at start-up), so make it first thing in the process.

    Raises:
        ValueError: a multi-process mode without a usable `TF_CONFIG`.
    """
    if train.distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if train.distribution == "multi_worker":
        cluster = _cluster(train.distribution, ())
        jobs = set(cluster.cluster_spec().jobs)
        if cluster.task_type not in ("chief", "worker") or not jobs or (
                jobs - {"chief", "worker"}):
            raise ValueError(
                "train.distribution=multi_worker: the cluster holds 'chief' and "
                f"'worker' tasks only; TF_CONFIG has the jobs {sorted(jobs)} and "
                f"this task is {cluster.task_type!r}.")
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=cluster)
    if train.distribution == "parameter_server":
        cluster = _cluster(train.distribution, ("chief", "worker", "ps"))
        shards = len(cluster.cluster_spec().as_dict()["ps"])
        return tf.distribute.experimental.ParameterServerStrategy(
            cluster, variable_partitioner=(
                tf.distribute.experimental.partitioners.MinSizePartitioner(
                    min_shard_bytes=train.shard_min_bytes, max_shards=shards)))
    return tf.distribute.get_strategy()


def serve_if_cluster_task(train: TrainConfig) -> bool:
    """Under "parameter_server", a `worker` or `ps` task serves its part of the
    cluster until the process is stopped (this call does not return); other
    processes get False back and go on to train."""
    if train.distribution != "parameter_server":
        return False
    cluster = _cluster(train.distribution, ("chief", "worker", "ps"))
    if cluster.task_type == "chief":
        return False
    if cluster.task_type not in ("worker", "ps"):
        raise ValueError(
            "train.distribution=parameter_server: TF_CONFIG's task type is "
            f"{cluster.task_type!r}; expected 'chief' (the coordinator), "
            "'worker' or 'ps'.")
    server = tf.distribute.Server(
        cluster.cluster_spec(), job_name=cluster.task_type,
        task_index=cluster.task_id, protocol=cluster.rpc_layer or "grpc", start=True)
    server.join()
    return True  # pragma: no cover (join returns only on shutdown)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True in the process that writes checkpoints, logs, metrics and the export."""
    return bool(strategy.extended.should_checkpoint)


def is_parameter_server(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy)


def worker_scratch_dir(directory: str, strategy: tf.distribute.Strategy) -> str:
    """`directory` on the chief; a per-worker scratch directory inside it on
    the other workers (which must save too, but only the chief's copy counts)."""
    if is_chief(strategy):
        return directory
    resolver = strategy.cluster_resolver
    return os.path.join(directory, f".worker_{resolver.task_type}_{resolver.task_id}")


def _cluster(mode: str, jobs: tuple[str, ...]
             ) -> tf.distribute.cluster_resolver.TFConfigClusterResolver:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            f"train.distribution={mode} reads the cluster from the TF_CONFIG "
            "environment variable, which is not set. Set it in every process, e.g. "
            '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
            '"task": {"type": "worker", "index": 0}} (see docs/distributed.md).')
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not JSON ({error}): {raw[:200]!r}") from None
    missing = [job for job in jobs if not spec.get("cluster", {}).get(job)]
    if missing or "task" not in spec:
        raise ValueError(
            f"train.distribution={mode}: TF_CONFIG needs the jobs {list(jobs)} in "
            f"'cluster' and this process's 'task'; it lacks "
            f"{missing or ['task']}. Received: {raw[:200]!r}.")
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def variable_shards(model: tf.keras.Model) -> dict[str, int]:
    """The model's variables that are split across parameter servers, with
    their shard counts (empty when nothing is sharded)."""
    shards: dict[str, int] = {}
    for variable in model.variables:  # A sharded variable lists its parts.
        part = re.fullmatch(r"(.*)/part_\d+(:\d+)?", variable.name)
        if part is not None:
            shards[part.group(1)] = shards.get(part.group(1), 0) + 1
    return {name: count for name, count in shards.items() if count > 1}
