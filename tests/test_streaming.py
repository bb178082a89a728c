"""`data.stream=true`: the `files` source streams its training shards.

A small shop log (`mtl_tf.data.shop_log`) is split into training shards (CSV.gz,
Parquet and TFRecord), a validation and a test file; the streamed pass and
dataset must match the in-memory path on the same rows.
"""

import collections  # noqa: I001  (mtl_tf must be imported before tensorflow)
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf
from test_end_to_end import _clean_env

from mtl_tf import experiment, train
from mtl_tf.config import (
    Config,
    DataConfig,
    apply_overrides,
    get_preset,
    load_config_file,
)
from mtl_tf.data.chunks import read_chunks
from mtl_tf.data.files import load_files
from mtl_tf.data.pipeline import (
    example_arrays,
    fit_on_training,
    make_dataset,
)
from mtl_tf.data.shop_log import make_shop_log
from mtl_tf.data.stream import SUMMARY_FILE, run_pass
from mtl_tf.data.tfrecords import write_tfrecords
from mtl_tf.model.builder import build_model
from mtl_tf.schema import Feature
from mtl_tf.task_config import label_columns

FORMATS = ("csv.gz", "parquet", "tfrecord")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The shop log split 70/15/15 by a seeded permutation; the training rows
    as three shards in each format."""
    root = tmp_path_factory.mktemp("stream")
    tables = make_shop_log(num_users=60, num_items=40, impressions_per_user=20,
                           seed=1)
    log = tables["interactions"]
    order = np.random.default_rng(0).permutation(len(log))
    cut = [int(len(log) * 0.7), int(len(log) * 0.85)]
    parts = {"train": log.iloc[order[:cut[0]]].reset_index(drop=True),
             "validation": log.iloc[order[cut[0]:cut[1]]].reset_index(drop=True),
             "test": log.iloc[order[cut[1]:]].reset_index(drop=True)}
    paths = {}
    for name in ("items", "users"):
        paths[name] = root / f"{name}.csv"
        tables[name].to_csv(paths[name], index=False)
    for name in ("validation", "test"):
        paths[name] = root / f"{name}.csv"
        parts[name].to_csv(paths[name], index=False)
    paths["train.csv"] = root / "train.csv"
    parts["train"].to_csv(paths["train.csv"], index=False)
    bounds = np.linspace(0, len(parts["train"]), 4).astype(int)
    for suffix in FORMATS:
        folder = root / suffix.replace(".", "_")
        folder.mkdir()
        if suffix == "tfrecord":
            write_tfrecords(parts["train"], folder, shards=3, gzip=False)
            paths[suffix] = folder / "part-*.tfrecord"
            continue
        for index in range(3):
            shard = parts["train"].iloc[bounds[index]:bounds[index + 1]]
            target = folder / f"part-{index}.{suffix}"
            if suffix == "parquet":
                shard.to_parquet(target, index=False)
            else:
                shard.to_csv(target, index=False, compression="gzip")
        paths[suffix] = folder / f"part-*.{suffix}"
    return {"root": root, "paths": paths, "parts": parts}


def _config(repo_root, shop, suffix="csv.gz", *extra) -> Config:
    shop_config = load_config_file(repo_root / "examples" / "shop_mmoe.json")
    paths = shop["paths"]
    base = dataclasses.replace(get_preset("tiny"), schema=shop_config.schema,
                               tasks=shop_config.tasks, data=shop_config.data)
    return apply_overrides(base, [
        "data.stream=true", f"data.path={paths[suffix]}",
        f"data.validation_path={paths['validation']}",
        f"data.test_path={paths['test']}",
        f"data.items_path={paths['items']}", f"data.users_path={paths['users']}",
        "data.chunk_rows=100", "train.epochs=2", "model.extra_negatives=32",
        *extra])


def _in_memory(config: Config, shop):
    """The training rows loaded whole, as `data.stream=false` would read them."""
    paths = shop["paths"]
    return load_files(config.schema, paths["train.csv"], paths["items"],
                      paths["users"], labels=label_columns(config.tasks))


@pytest.mark.parametrize("suffix", FORMATS)
def test_streamed_pass_fits_what_fit_on_training_fits(repo_root, shop, suffix):
    config = _config(repo_root, shop, suffix)
    prepared = experiment.prepare_data(config)
    memory = _in_memory(config, shop)
    expected = fit_on_training(memory, memory.interactions, config.tasks)
    streamed = prepared.preprocessing
    assert set(streamed.features) == set(expected.features)
    for name, state in expected.features.items():
        got = streamed[name]
        assert got.vocabulary == state.vocabulary, name
        assert got.mean == pytest.approx(state.mean, rel=1e-9, abs=1e-12), name
        assert got.std == pytest.approx(state.std, rel=1e-9), name
        assert got.boundaries == pytest.approx(state.boundaries), name
    # The numeric features were fitted on something non-trivial.
    assert streamed["price"].std != 1.0 and streamed["age"].mean > 0
    assert prepared.num_train_examples == len(shop["parts"]["train"])
    assert prepared.sizes()["train"] == len(shop["parts"]["train"])
    # Few rows: build_model reads every training row, in order.
    pd.testing.assert_frame_equal(
        prepared.splits.train[["user_id", "item_id", "click"]].reset_index(drop=True),
        memory.interactions[["user_id", "item_id", "click"]])


@pytest.mark.parametrize("suffix", FORMATS)
def test_one_epoch_yields_every_training_row_once(repo_root, shop, suffix):
    config = _config(repo_root, shop, suffix)
    prepared = experiment.prepare_data(config)
    dataset = prepared.train_dataset(config)
    pairs = collections.Counter()
    batches = 0
    for batch in dataset:
        batches += 1
        for user, item in zip(batch["user_id"].numpy(), batch["item_id"].numpy()):
            pairs[(user.decode(), item.decode())] += 1
    train = shop["parts"]["train"]
    assert pairs == collections.Counter(zip(train["user_id"], train["item_id"]))
    assert batches == -(-len(train) // config.train.batch_size)
    memory = _in_memory(config, shop)
    arrays = example_arrays(memory, memory.interactions, config.tasks,
                            prepared.preprocessing.label_vocabularies)
    expected = make_dataset(arrays, config.train.batch_size).element_spec
    assert set(dataset.element_spec) == set(expected)
    for name, spec in expected.items():
        got = dataset.element_spec[name]
        assert (got.dtype, got.shape.rank) == (spec.dtype, spec.shape.rank), name


def test_chunks_hold_at_most_chunk_rows(shop):
    for suffix in FORMATS:
        sizes = [len(c) for c in read_chunks(shop["paths"][suffix], chunk_rows=37)]
        assert max(sizes) <= 37 and sum(sizes) == len(shop["parts"]["train"])
        assert len(sizes) >= 3 * (len(shop["parts"]["train"]) // 3 // 37)


def test_run_trains_exports_and_resume_reuses_the_pass(repo_root, shop, tmp_path):
    paths, run_dir = shop["paths"], tmp_path / "run"
    # The README's command for a streamed log.
    argv = ["--preset", "tiny", "--config", str(repo_root / "examples" /
                                                "shop_mmoe.json"),
            "--data", "files", "--set", "data.stream=true",
            "--set", f"data.path={paths['parquet']}",
            "--set", f"data.validation_path={paths['validation']}",
            "--set", f"data.test_path={paths['test']}",
            "--set", f"data.items_path={paths['items']}",
            "--set", f"data.users_path={paths['users']}",
            "--set", "train.epochs=2", "--set", "model.extra_negatives=32",
            "--output-dir", str(run_dir), "--export-dir", str(tmp_path / "saved")]
    config = train.resolve_config(train.parse_args(argv))
    result = experiment.run(config, run_dir, verbose=0)
    assert result["prepared"].stream.reused is False
    metrics = json.loads((run_dir / "metrics.json").read_text())
    values = metrics["metrics"]
    assert {"click_auc", "hit_rate_at_10"} <= set(values), sorted(values)
    assert all(np.isfinite(v) for v in values.values())
    assert metrics["data"]["train"] == len(shop["parts"]["train"])
    assert result["training"]["epochs"] == 2
    assert (result["export"] / "saved_model.pb").exists()
    summary = run_dir / SUMMARY_FILE
    stamp = summary.stat().st_mtime_ns
    # The same command again resumes the run dir: the pass is not recomputed.
    process = subprocess.run(
        [sys.executable, "-m", "mtl_tf.train", *argv, "--no-export", "--quiet"],
        cwd=repo_root, env=_clean_env(), capture_output=True, text=True,
        timeout=600)
    assert process.returncode == 0, process.stderr[-4000:]
    assert summary.stat().st_mtime_ns == stamp
    again = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert again["click_auc"] == pytest.approx(values["click_auc"], abs=1e-6)
    prepared = experiment.prepare_data(config, run_dir=run_dir)
    assert prepared.stream.reused is True
    # Another data section runs the pass again.
    changed = apply_overrides(config, ["data.chunk_rows=64"])
    assert experiment.prepare_data(changed, run_dir=run_dir).stream.reused is False
    assert summary.stat().st_mtime_ns != stamp


def test_seen_items_of_scored_users_come_from_the_training_shards(repo_root, shop):
    prepared = experiment.prepare_data(_config(repo_root, shop))
    train, test = shop["parts"]["train"], shop["parts"]["test"]
    scored = set(test.loc[test.click == 1, "user_id"])
    expected = train[(train.click == 1) & train.user_id.isin(scored)]
    got = prepared.stream.seen
    assert collections.Counter(zip(got.user_id, got.item_id)) == collections.Counter(
        zip(expected.user_id, expected.item_id))


def test_large_logs_give_build_model_a_sample_with_every_training_item(
        repo_root, shop):
    config = _config(repo_root, shop)
    prepared = experiment.prepare_data(config)
    streamed = run_pass(config, prepared.data, set(), sample_rows=50)
    train = shop["parts"]["train"]
    items = set(train["item_id"])
    assert set(streamed.sample["item_id"]) == items
    assert len(streamed.sample) <= 50 + len(items)
    assert streamed.num_rows == len(train)
    # The log-Q popularity is counted over every row, not the sample.
    clicked = train.loc[train.click == 1, "item_id"].astype(str)
    assert streamed.item_counts == clicked.value_counts().to_dict()
    model = build_model(config, prepared.data, streamed.sample,
                        streamed.preprocessing, item_counts=streamed.item_counts)
    catalog = list(prepared.data.item_ids)
    probabilities = np.exp(model._log_item_probability.numpy()[1:])
    expected = clicked.value_counts().reindex(catalog).fillna(0) / len(clicked)
    np.testing.assert_allclose(probabilities, np.maximum(expected, 1e-9), rtol=1e-5)


@pytest.mark.parametrize("changes, named", [
    ({"source": "synthetic"}, ("data.stream", "data.source")),
    ({"test_path": None}, ("data.test_path",)),
    ({"validation_path": None, "test_path": None},
     ("data.validation_path", "data.test_path")),
    ({"split": "cold_items"}, ("data.split", "data.stream")),
    ({"impression_negatives": 2}, ("data.impression_negatives", "data.stream")),
])
def test_unsupported_settings_raise_naming_them(changes, named):
    settings = {"source": "files", "stream": True, "path": "a.csv",
                "validation_path": "v.csv", "test_path": "t.csv", **changes}
    with pytest.raises(ValueError) as error:
        DataConfig(**settings)
    for name in named:
        assert name in str(error.value)


def test_derived_history_and_missing_side_table_raise(repo_root, shop):
    config = _config(repo_root, shop)
    history = Feature("history", "user", "sequence", max_length=5)
    derived = dataclasses.replace(
        config, schema=dataclasses.replace(
            config.schema, features=config.schema.features + (history,)))
    with pytest.raises(ValueError, match=r"derive=false.*data\.stream=false"):
        experiment.prepare_data(derived)
    without_items = apply_overrides(config, ["data.items_path=null"])
    with pytest.raises(ValueError, match=r"data\.items_path"):
        experiment.prepare_data(without_items)


def test_nan_label_in_a_shard_names_file_and_line(repo_root, shop, tmp_path):
    train = shop["parts"]["train"].astype({"click": object})
    train.loc[130, "click"] = ""
    train.iloc[:100].to_csv(tmp_path / "part-0.csv", index=False)
    train.iloc[100:].to_csv(tmp_path / "part-1.csv", index=False)
    config = _config(repo_root, shop, "csv.gz", f"data.path={tmp_path / 'part-*.csv'}")
    # Row 130 is row 30 of the second shard: line 32 (the header is line 1).
    with pytest.raises(ValueError, match=r"part-1\.csv, line 32.*'click'"):
        experiment.prepare_data(config)


def test_stream_reads_tf_string_and_number_features(repo_root, shop):
    config = _config(repo_root, shop, "tfrecord")
    prepared = experiment.prepare_data(config)
    batch = next(iter(prepared.train_dataset(config)))
    assert batch["device"].dtype == tf.string
    assert batch["position"].dtype == tf.float32
    assert batch["hour"].dtype == tf.int64
    assert set(np.unique(batch["click"].numpy())) <= {0.0, 1.0}


def test_lenient_stream_drops_and_counts_bad_rows(repo_root, shop, tmp_path):
    train = shop["parts"]["train"].astype({"click": object})
    train.loc[130, "click"] = ""
    train.iloc[:100].to_csv(tmp_path / "part-0.csv", index=False)
    text = train.iloc[100:].to_csv(index=False).splitlines()
    text.insert(5, "a,b")  # A line with the wrong number of fields.
    (tmp_path / "part-1.csv").write_text("\n".join(text) + "\n")
    config = _config(repo_root, shop, "csv.gz", f"data.path={tmp_path / 'part-*.csv'}",
                     "data.lenient=true")
    prepared = experiment.prepare_data(config)
    report = prepared.stream.report
    assert (report.malformed_rows, report.nan_labels) == (1, 1)
    assert prepared.num_train_examples == len(train) - 1
    rows = sum(len(b["user_id"]) for b in prepared.train_dataset(config))
    assert rows == len(train) - 1
