"""`python -m mtl_tf.data.synthetic OUT_DIR`: the synthetic log as shards.

Writes the data of `make_synthetic` one block of users at a time
(`iter_synthetic_interactions`), so memory holds the items, the users and one
block, never the whole log: training shards, held-out validation and test
rows, the item and user tables, and a schema; then prints the
`python -m mtl_tf.train` command that streams them (`data.stream=true`).

Example:
    python -m mtl_tf.data.synthetic synthetic_data --num-users 100000 --shards 16
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from mtl_tf.config import DataConfig, SyntheticConfig
from mtl_tf.data import movielens_schema as F
from mtl_tf.data.shard_writer import SHARD_FORMATS, ShardWriter
from mtl_tf.data.synthetic import (
    SPLIT_STREAM,
    USERS_PER_BLOCK,
    interaction_blocks,
    num_blocks,
    synthetic_population,
)


def write_synthetic(config: SyntheticConfig, out_dir: str | os.PathLike, *,
                    shards: int = 8, file_format: str = "parquet",
                    test_fraction: float = 0.2, validation_fraction: float = 0.1,
                    like_threshold: float = 4.0, verbose: bool = False
                    ) -> list[str]:
    """Writes `make_synthetic(config, like_threshold)` to `out_dir` a block at
    a time, never holding more than one block of interactions.

    Each row is held out at random (a generator seeded with (seed, block)),
    with the shares of `data.split=random`: `test_fraction` of the rows go to
    `test/`, `validation_fraction` of the rest to `validation/` (one shard
    each: training reads them into memory), the others, shuffled within their
    block, to `shards` shards in `train/` (`ShardWriter`). `items/` and
    `users/` hold the side tables, and `schema.json` the built-in MovieLens
    schema without the behaviour history (streaming cannot derive it).

    Returns:
        The `python -m mtl_tf.train` arguments that train on the files with
        `data.stream=true`.

    Raises:
        ValueError: a fraction outside (0, 1) or more shards than users.
    """
    for name, value in (("test_fraction", test_fraction),
                        ("validation_fraction", validation_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1). Received: {value}.")
    if not 1 <= shards <= config.num_users:
        raise ValueError(f"shards must be in [1, num_users={config.num_users}]. "
                         f"Received: {shards}.")
    out = Path(out_dir)
    population = synthetic_population(config)
    # Rows held out (test, then validation: `validation_fraction` of the rest).
    held_out = test_fraction + (1 - test_fraction) * validation_fraction
    writers = {"train": ShardWriter(out / "train", shards, file_format)}
    for name in ("validation", "test", "items", "users"):
        writers[name] = ShardWriter(out / name, 1, file_format)
    progress = None
    if verbose:
        import tensorflow as tf

        progress = tf.keras.utils.Progbar(num_blocks(config), unit_name="block",
                                          stateful_metrics=["rows"])
    started = time.perf_counter()
    try:
        writers["items"].write(population.items)
        writers["users"].write(population.users)
        blocks = interaction_blocks(population, config, like_threshold)
        for index, block in enumerate(blocks):
            rng = np.random.default_rng([config.seed, SPLIT_STREAM, index])
            share = rng.random(len(block))
            train = block[share >= held_out]
            writers["test"].write(block[share < test_fraction])
            writers["validation"].write(
                block[(share >= test_fraction) & (share < held_out)])
            writers["train"].write(train.iloc[rng.permutation(len(train))])
            if progress is not None:
                rows = sum(writers[name].rows for name in ("train", "validation",
                                                           "test"))
                progress.update(index + 1, [("rows", rows)])
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    schema = F.MOVIELENS_SCHEMA.without([F.HISTORY])
    (out / "schema.json").write_text(json.dumps({"schema": schema.to_dict()},
                                                indent=2) + "\n")
    if verbose:
        rows = {name: writers[name].rows for name in ("train", "validation", "test")}
        print(f"wrote {sum(rows.values())} interactions ({rows}) of "
              f"{config.num_users} users and {config.num_items} items to {out} "
              f"in {time.perf_counter() - started:.1f} s")
    paths = {name: writer.pattern for name, writer in writers.items()}
    return ["--config", str(out / "schema.json"), "--data", "files",
            "--set", "data.stream=true", "--set", f"data.path={paths['train']}",
            "--set", f"data.validation_path={paths['validation']}",
            "--set", f"data.test_path={paths['test']}",
            "--set", f"data.items_path={paths['items']}",
            "--set", f"data.users_path={paths['users']}"]


def main(argv: list[str] | None = None) -> int:
    """`python -m mtl_tf.data.synthetic OUT_DIR`: see `write_synthetic`."""
    defaults, split = SyntheticConfig(), DataConfig()
    parser = argparse.ArgumentParser(
        prog="python -m mtl_tf.data.synthetic",
        description="Writes the synthetic MovieLens-shaped log as shards, a "
                    f"block of {USERS_PER_BLOCK} users at a time, with held-out "
                    "validation / test files, item and user tables and a "
                    "schema, and prints the command that streams it "
                    "(data.stream=true).")
    parser.add_argument("out_dir", help="folder for train/, validation/, test/, "
                        "items/, users/ and schema.json")
    parser.add_argument("--num-users", type=int, default=defaults.num_users)
    parser.add_argument("--num-items", type=int, default=defaults.num_items)
    parser.add_argument("--interactions-per-user", type=int,
                        default=defaults.interactions_per_user)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--shards", type=int, default=8,
                        help="training shards (default: 8)")
    parser.add_argument("--format", choices=list(SHARD_FORMATS), default="parquet",
                        help="file format (default: parquet)")
    parser.add_argument("--test-fraction", type=float, default=split.test_fraction,
                        help="share of rows in test/ (default: %(default)s; the "
                        "held-out rows are read into memory when training)")
    parser.add_argument("--validation-fraction", type=float,
                        default=split.validation_fraction,
                        help="share of the other rows in validation/ "
                        "(default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        config = dataclasses.replace(
            defaults, num_users=args.num_users, num_items=args.num_items,
            interactions_per_user=args.interactions_per_user, seed=args.seed)
        arguments = write_synthetic(
            config, args.out_dir, shards=args.shards, file_format=args.format,
            test_fraction=args.test_fraction,
            validation_fraction=args.validation_fraction,
            like_threshold=split.like_threshold, verbose=not args.quiet)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("Train on it (add e.g. --preset tiny, --set train.epochs=1):\n"
          f"python -m mtl_tf.train {shlex.join(arguments)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
