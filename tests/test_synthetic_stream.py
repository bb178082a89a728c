"""The synthetic log made a block of users at a time, and written as shards
(`iter_synthetic_interactions`, `python -m mtl_tf.data.synthetic`)."""

import dataclasses  # noqa: I001  (mtl_tf must be imported before tensorflow)
import shlex
import subprocess
import sys
import tracemalloc

import numpy as np
import pandas as pd
import pytest

import mtl_tf  # noqa: F401
from test_end_to_end import _clean_env

from mtl_tf import experiment, train
from mtl_tf.config import SyntheticConfig
from mtl_tf.data import movielens_schema as F
from mtl_tf.data import synthetic
from mtl_tf.data.files import read_table
from mtl_tf.data.shard_writer import SHARD_FORMATS, ShardWriter
from mtl_tf.data.synthetic import (
    USERS_PER_BLOCK,
    iter_synthetic_interactions,
    make_synthetic,
    num_blocks,
    synthetic_population,
)
from mtl_tf.data.synthetic_shards import main, write_synthetic

# Three blocks (1,000, 1,000 and 500 users), small enough to make in a second.
THREE_BLOCKS = SyntheticConfig(num_users=2500, num_items=60, interactions_per_user=8)
KEY = [F.USER_ID, F.ITEM_ID]


@pytest.fixture(scope="module")
def whole():
    return make_synthetic(THREE_BLOCKS)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEY).reset_index(drop=True)


def test_blocks_concatenated_are_make_synthetic(whole):
    blocks = list(iter_synthetic_interactions(THREE_BLOCKS))
    assert len(blocks) == num_blocks(THREE_BLOCKS) == 3
    users = [block[F.USER_ID].astype(int) for block in blocks]
    assert [u.nunique() for u in users] == [USERS_PER_BLOCK, USERS_PER_BLOCK, 500]
    assert [(u.min(), u.max()) for u in users] == [(1, 1000), (1001, 2000),
                                                   (2001, 2500)]
    for block in blocks:
        pd.testing.assert_series_equal(block.dtypes, whole.interactions.dtypes)
    pd.testing.assert_frame_equal(pd.concat(blocks, ignore_index=True),
                                  whole.interactions)
    population = synthetic_population(THREE_BLOCKS)
    pd.testing.assert_frame_equal(population.items, whole.items)
    pd.testing.assert_frame_equal(population.users, whole.users)


def test_same_seed_same_blocks_however_consumed(whole, monkeypatch):
    # Two generators advanced in turn, and one stopped after its first block.
    pairs = list(zip(iter_synthetic_interactions(THREE_BLOCKS),
                     iter_synthetic_interactions(THREE_BLOCKS)))
    for a, b in pairs:
        pd.testing.assert_frame_equal(a, b)
    first = next(iter(iter_synthetic_interactions(THREE_BLOCKS)))
    pd.testing.assert_frame_equal(first, pairs[0][0])
    # Fewer users a logit step within a block: the same data.
    monkeypatch.setattr(synthetic, "_BLOCK_ELEMENTS", 7 * THREE_BLOCKS.num_items)
    pd.testing.assert_frame_equal(make_synthetic(THREE_BLOCKS).interactions,
                                  whole.interactions)


def test_other_seed_other_blocks(whole):
    other = make_synthetic(dataclasses.replace(THREE_BLOCKS, seed=1))
    last = whole.interactions[F.USER_ID].astype(int) > 2000
    other_last = other.interactions[F.USER_ID].astype(int) > 2000
    assert not whole.interactions[last].reset_index(drop=True).equals(
        other.interactions[other_last].reset_index(drop=True))


def test_fixed_moments_keep_every_block_alike(whole):
    # The first block's standardization serves every block: ratings do not drift.
    inter = whole.interactions
    block = (inter[F.USER_ID].astype(int) - 1) // USERS_PER_BLOCK
    means = inter.groupby(block)[F.RATING].mean()
    likes = inter.groupby(block)[F.LIKE].mean()
    assert means.max() - means.min() < 0.1, means.tolist()
    assert likes.max() - likes.min() < 0.05, likes.tolist()
    # Watches still follow preference: rated items are the planted favourites.
    assert set(np.unique(inter[F.RATING])) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_writer_holds_one_block_and_the_shards_hold_every_row(whole, tmp_path,
                                                              monkeypatch):
    writes = []
    original = ShardWriter.write

    def spy(self, frame):
        writes.append(len(frame))
        original(self, frame)

    monkeypatch.setattr(ShardWriter, "write", spy)
    write_synthetic(THREE_BLOCKS, tmp_path, shards=3)
    largest = whole.interactions.groupby(
        (whole.interactions[F.USER_ID].astype(int) - 1) // USERS_PER_BLOCK).size()
    # The items and users tables, then at most a block of rows a write.
    assert writes[:2] == [THREE_BLOCKS.num_items, THREE_BLOCKS.num_users]
    assert max(writes[2:]) <= largest.max()

    parts = {name: pd.read_parquet(tmp_path / name)
             for name in ("train", "validation", "test")}
    shards = sorted((tmp_path / "train").glob("part-*-of-00003.parquet"))
    sizes = [len(pd.read_parquet(s)) for s in shards]
    assert len(shards) == 3 and max(sizes) - min(sizes) <= 1
    pd.testing.assert_frame_equal(_sorted(pd.concat(parts.values())),
                                  _sorted(whole.interactions))
    total = len(whole.interactions)
    assert len(parts["test"]) / total == pytest.approx(0.2, abs=0.02)
    assert len(parts["validation"]) / total == pytest.approx(0.08, abs=0.02)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "users"), whole.users)
    items = pd.read_parquet(tmp_path / "items")
    assert [tuple(g) for g in items[F.ITEM_GENRES]] == list(whole.items[F.ITEM_GENRES])


def _writer_peak(config: SyntheticConfig, out) -> int:
    """Peak memory numpy and pandas report to tracemalloc while writing."""
    tracemalloc.start()
    try:
        write_synthetic(config, out, shards=2)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_writer_memory_does_not_grow_with_the_log(tmp_path):
    # 10 and then 20 blocks: the second log holds twice the rows.
    config = SyntheticConfig(num_users=10_000, num_items=150, interactions_per_user=60)
    ten = make_synthetic(config).interactions.memory_usage(deep=True).sum()
    peaks = [_writer_peak(config, tmp_path / "ten"),
             _writer_peak(dataclasses.replace(config, num_users=20_000),
                          tmp_path / "twenty")]
    # The 10 more blocks' rows (~`ten` bytes) are never held; only the users
    # table and factors (O(users)) grow.
    assert peaks[1] - peaks[0] < ten / 4, (peaks, ten)


@pytest.mark.parametrize("file_format", ["csv", "tfrecord"])
def test_shard_writer_formats_read_back(tmp_path, file_format):
    frame = pd.DataFrame({"user_id": ["1", "2", "3", "4", "5"],
                          "rating": [1.0, 2.0, 3.0, 4.0, 5.0],
                          "genres": [(1,), (2, 3), (4,), (5, 6), (7,)]})
    # A shard of an earlier run with 9 shards: replaced, not read with the new.
    (tmp_path / f"part-00000-of-00009{SHARD_FORMATS[file_format]}").touch()
    writer = ShardWriter(tmp_path, shards=2, file_format=file_format)
    with writer:
        writer.write(frame.iloc[:3])
        writer.write(frame.iloc[3:])
    got = read_table(writer.pattern).drop(columns=["_file", "_line"])
    # Rows are dealt in turn: shard 0 holds rows 0, 2, 4; shard 1 rows 1, 3.
    assert got["user_id"].tolist() == ["1", "3", "5", "2", "4"]
    assert got["rating"].astype(float).tolist() == [1.0, 3.0, 5.0, 2.0, 4.0]
    genres = got["genres"].tolist()
    expected = ["1", "4", "7", "2|3", "5|6"] if file_format == "csv" else [
        "1", "4", "7", ("2", "3"), ("5", "6")]
    assert genres == expected
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(
        "part-")) == [p.name for p in writer.paths]
    assert not list(tmp_path.glob(".part-*"))  # No temporary left.


def test_shard_writer_checks_and_leaves_nothing_on_error(tmp_path):
    with pytest.raises(ValueError, match="file_format.*'orc'"):
        ShardWriter(tmp_path, file_format="orc")
    with pytest.raises(ValueError, match="4 rows cannot fill shards=5"):
        with ShardWriter(tmp_path / "out", shards=5) as writer:
            writer.write(pd.DataFrame({"a": [1, 2, 3, 4]}))
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(ValueError, match=r"shards must be in \[1, num_users=2500\]"):
        write_synthetic(THREE_BLOCKS, tmp_path, shards=2501)


def test_cli_errors_name_the_setting(tmp_path, capsys):
    assert main([str(tmp_path), "--test-fraction", "1.5", "--quiet"]) == 2
    assert "test_fraction must be in (0, 1). Received: 1.5" in capsys.readouterr().err


def test_cli_writes_3000_users_and_its_command_trains_streamed(tmp_path, repo_root):
    # The README's command, then the training command it prints.
    out = tmp_path / "synthetic"
    process = subprocess.run(
        [sys.executable, "-m", "mtl_tf.data.synthetic", str(out), "--num-users",
         "3000", "--num-items", "200", "--interactions-per-user", "20",
         "--shards", "4", "--quiet"],
        cwd=repo_root, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-4000:]
    command = shlex.split(process.stdout.strip().splitlines()[-1])
    assert command[:3] == ["python", "-m", "mtl_tf.train"]
    train_rows = sum(len(pd.read_parquet(s))
                     for s in (out / "train").glob("part-*.parquet"))
    assert len(list((out / "train").glob("part-*-of-00004.parquet"))) == 4

    run_dir = tmp_path / "run"
    argv = ["--preset", "tiny", *command[3:], "--set", "train.epochs=1",
            "--output-dir", str(run_dir)]
    config = train.resolve_config(train.parse_args(argv))
    assert config.data.stream and config.data.source == "files"
    assert F.HISTORY not in config.schema.names
    result = experiment.run(config, run_dir, export=False, verbose=0)
    assert result["prepared"].num_train_examples == train_rows
    assert result["training"]["epochs"] == 1
    metrics = result["metrics"]
    assert {"rating_rmse", "like_auc", "hit_rate_at_10"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    # One epoch on planted structure already beats chance.
    assert metrics["like_auc"] > 0.55 and metrics["hit_rate_at_100"] > 0.5
