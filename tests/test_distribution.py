"""`train.distribution=mirrored`: two replicas on two logical CPU devices, in a
subprocess (logical devices must be set before TensorFlow starts), bounded in
time. The retrieval loss all-gathers in-batch candidates, so two replicas with
half a batch each compute the single-device loss of the whole batch."""

import json
import subprocess
import sys
import textwrap

import pytest
from test_end_to_end import _clean_env

from mtl_tf.config import apply_overrides, get_preset

SCRIPT = textwrap.dedent('''
    import json
    import sys

    import mtl_tf  # noqa: F401
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from mtl_tf import distribution, experiment
    from mtl_tf.config import apply_overrides, get_preset
    from mtl_tf.data.pipeline import make_dataset
    from mtl_tf.model.builder import build_model

    out = {}
    config = apply_overrides(get_preset("tiny"), ["model.extra_negatives=0"])
    prepared = experiment.prepare_data(config)
    args = (config, prepared.data, prepared.splits.train, prepared.preprocessing)
    batch = next(iter(make_dataset(prepared.arrays["train"], 64)))
    single = build_model(*args)
    out["single"] = float(single.task_losses(batch, training=True)["retrieval"])
    # Each half alone: in-batch negatives from 32 rows only.
    halves = [{k: v[s] for k, v in batch.items()} for s in (slice(0, 32),
                                                             slice(32, 64))]
    out["halves"] = [float(single.task_losses(h, training=True)["retrieval"])
                     for h in halves]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    shards = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch).unbatch().batch(64))
    with strategy.scope():
        mirrored = build_model(*args)

    def replica_losses():
        losses = strategy.run(
            lambda f: mirrored.task_losses(f, training=True)["retrieval"],
            args=(next(iter(shards)),))
        return [float(v) for v in strategy.experimental_local_results(losses)]

    replica_losses()  # builds every layer; then the single model's weights
    mirrored.set_weights(single.get_weights())
    out["same_weights"] = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in (
        (single.user_embeddings(batch), mirrored.user_embeddings(batch)),
        (single.item_embeddings(batch["movie_id"]),
         mirrored.item_embeddings(batch["movie_id"]))))
    out["replicas"] = replica_losses()
    # The whole run (train, evaluate, export) under the 2-replica strategy.
    distribution.make_strategy = lambda train: strategy
    distributed = apply_overrides(config, ["train.distribution=mirrored",
                                           f"export.export_dir={sys.argv[1]}/sm"])
    result = experiment.run(distributed, sys.argv[1] + "/run", verbose=0,
                            prepared=prepared)
    out["metrics"] = result["metrics"]
    out["export"] = str(result["export"])
    print("RESULT " + json.dumps(out))
''')


def test_two_replicas_train_on_the_whole_batch_of_candidates(tmp_path):
    (tmp_path / "mirrored.py").write_text(SCRIPT)
    process = subprocess.run(
        [sys.executable, str(tmp_path / "mirrored.py"), str(tmp_path)],
        env=_clean_env(), capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stderr[-4000:]
    line = next(row for row in process.stdout.splitlines()
                if row.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["same_weights"] < 1e-6
    # Two replicas of 32 rows: each query meets all 64 candidates, so the
    # mean of the replicas' losses is the single-device loss of the batch...
    mean = sum(out["replicas"]) / 2
    assert mean == pytest.approx(out["single"], abs=1e-4)
    # ...which differs from 32-row in-batch softmaxes (fewer negatives).
    assert abs(sum(out["halves"]) / 2 - out["single"]) > 1e-2
    # Training under the strategy learns like a single-device run.
    single = experiment_metrics(tmp_path)
    for name, tolerance in (("hit_rate_at_10", 0.05), ("rating_rmse", 0.05),
                            ("like_auc", 0.05)):
        assert out["metrics"][name] == pytest.approx(single[name], abs=tolerance)
    assert (tmp_path / "sm").exists() and out["export"]


def experiment_metrics(tmp_path) -> dict:
    from mtl_tf import experiment
    config = apply_overrides(get_preset("tiny"), ["model.extra_negatives=0"])
    return experiment.run(config, tmp_path / "single", export=False,
                          verbose=0)["metrics"]


def test_unknown_distribution_is_named():
    with pytest.raises(ValueError, match="train.distribution must be one of"):
        apply_overrides(get_preset("tiny"), ["train.distribution=tpu"])
