"""Memory and speed of a streamed log (`data.stream=true`) as the log grows.

Generates the shop impression log (`mtl_tf.data.shop_log`: 100 impressions per
user, `--items` items) at each `--sizes` impression count, keeps 5% of its
rows for validation and 5% for test (seeded), and writes the training rows as
`--shards` Parquet shards. Then it trains `examples/shop_mmoe.json` for one
epoch on them twice, each run in a fresh Python process so that its peak
resident memory (`VmHWM`: `benchmarks/peak_memory.py`) is its own:

- `streamed`: `data.stream=true`, the training shards read `--chunk-rows` rows
  at a time through `tf.data`;
- `in memory`: the same training shards loaded whole (`data.stream=false`,
  `data.split=random`, which holds out its own small validation and test
  share of them).

It prints, per size and mode: training rows, examples/s (the epoch after its
first step), peak RSS and wall time (data, training, evaluation on
`eval.max_users` sampled test users; no export). The comparison lines are
ratios within this run: the streamed peak RSS of the largest size over the
smallest (memory that does not grow with the log stays near 1), and streamed
over in-memory peak RSS and examples/s at the largest size.

Usage:
    python benchmarks/streaming.py
    python benchmarks/streaming.py --sizes 100000,1000000 --shards 4
"""

from __future__ import annotations  # noqa: I001  (mtl_tf before tensorflow)

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPRESSIONS_PER_USER = 100
HELD_OUT_FRACTION = 0.05  # each of validation and test
MODES = ("streamed", "in memory")
COLUMNS = ["impressions", "mode", "train rows", "train ex/s", "peak RSS GB",
           "run s"]
CONFIG = Path(__file__).resolve().parent.parent / "examples" / "shop_mmoe.json"


def write_log(size: int, items: int, shards: int, folder: Path) -> dict[str, str]:
    """The shop log of `size` impressions in `folder`: training shards, the
    validation and test files and the side tables; their paths by role."""
    import numpy as np

    from mtl_tf.data.shop_log import make_shop_log

    tables = make_shop_log(num_users=max(size // IMPRESSIONS_PER_USER, 2),
                           num_items=items, impressions_per_user=IMPRESSIONS_PER_USER,
                           seed=0)
    log = tables["interactions"]
    order = np.random.default_rng(0).permutation(len(log))
    held = int(len(log) * HELD_OUT_FRACTION)
    paths = {}
    for name, rows in (("validation", order[:held]), ("test", order[held:2 * held])):
        paths[name] = str(folder / f"{name}.parquet")
        log.iloc[np.sort(rows)].to_parquet(paths[name], index=False)
    train = log.iloc[np.sort(order[2 * held:])].reset_index(drop=True)
    (folder / "train").mkdir()
    for index, part in enumerate(np.array_split(np.arange(len(train)), shards)):
        train.iloc[part].to_parquet(folder / "train" / f"part-{index:03d}.parquet",
                                    index=False)
    paths["train"] = str(folder / "train" / "part-*.parquet")
    for name in ("items", "users"):
        paths[name] = str(folder / f"{name}.csv")
        tables[name].to_csv(paths[name], index=False)
    return paths


def train_once(mode: str, paths: dict[str, str], chunk_rows: int, max_users: int,
               overrides: list[str]) -> dict:
    """One epoch in this process, streamed or in memory: its row of the table."""
    from peak_memory import peak_rss_gb

    import mtl_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
    from mtl_tf.config import apply_overrides, load_config_file
    from mtl_tf.experiment import run

    common = [f"data.path={paths['train']}", f"data.items_path={paths['items']}",
              f"data.users_path={paths['users']}", "train.epochs=1",
              # One epoch's cost is measured, not a final refit on validation.
              "train.refit=false", f"eval.max_users={max_users}"]
    if mode == "streamed":
        common += ["data.stream=true", f"data.chunk_rows={chunk_rows}",
                   f"data.validation_path={paths['validation']}",
                   f"data.test_path={paths['test']}"]
    else:
        common += ["data.split=random", f"data.test_fraction={HELD_OUT_FRACTION}",
                   f"data.validation_fraction={HELD_OUT_FRACTION}"]
    config = apply_overrides(load_config_file(CONFIG), [*common, *overrides])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        result = run(config, run_dir, export=False, verbose=0)
    return {"mode": mode, "train rows": result["prepared"].num_train_examples,
            "train ex/s": float(result["training"]["examples_per_second"]),
            "peak RSS GB": peak_rss_gb(),
            "run s": time.perf_counter() - started}


def run_in_subprocess(mode: str, paths: dict[str, str], size: int,
                      args: argparse.Namespace) -> dict:
    """`train_once` in a fresh interpreter (its own peak RSS); its row."""
    command = [sys.executable, __file__, "--worker", mode,
               "--paths", json.dumps(paths), "--chunk-rows", str(args.chunk_rows),
               "--max-users", str(args.max_users)]
    for override in args.set:
        command += ["--set", override]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"streaming.py: the {mode} run at {size:,} impressions "
                         f"failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    row = {"impressions": size, **json.loads(done.stdout.strip().splitlines()[-1])}
    print(f"  {size:,} impressions, {mode}: {row['train rows']:,} training rows, "
          f"{row['train ex/s']:,.0f} ex/s, {row['peak RSS GB']:.2f} GB peak RSS, "
          f"{row['run s']:.0f} s", flush=True)
    return row


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted(int(float(s)) for s in text.split(",") if s.strip())
    except ValueError:
        sizes = []
    if len(sizes) < 2 or sizes[0] < 20 * IMPRESSIONS_PER_USER:
        raise SystemExit(f"--sizes: received {text!r}; expected at least two "
                         "impression counts of at least 2000, e.g. "
                         "200000,2000000.")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200000,2000000",
                        help="comma-separated impression counts; the largest is "
                             "compared with the smallest")
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--chunk-rows", type=int, default=65536)
    parser.add_argument("--max-users", type=int, default=500,
                        help="test users sampled for the retrieval metrics")
    parser.add_argument("--set", action="append", default=[],
                        help="override the config, e.g. train.batch_size=1024")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.items < 10 or args.shards < 1 or args.chunk_rows < 1:
        raise SystemExit("--items must be >= 10, --shards and --chunk-rows >= 1.")
    if args.worker:
        print(json.dumps(train_once(args.worker, json.loads(args.paths),
                                    args.chunk_rows, args.max_users, args.set)))
        return 0
    sizes = parse_sizes(args.sizes)

    from mtl_tf.evaluation import format_table

    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            paths = write_log(size, args.items, args.shards, Path(folder))
            rows += [run_in_subprocess(mode, paths, size, args) for mode in MODES]
    print(format_table(rows, COLUMNS))
    streamed = [r for r in rows if r["mode"] == "streamed"]
    largest = [r for r in rows if r["impressions"] == sizes[-1]]
    print(f"streamed peak RSS, {sizes[-1]:,} / {sizes[0]:,} impressions "
          f"({sizes[-1] / sizes[0]:g}x the log): "
          f"{streamed[-1]['peak RSS GB'] / streamed[0]['peak RSS GB']:.3f}")
    print(f"at {sizes[-1]:,} impressions, streamed / in memory: peak RSS "
          f"{largest[0]['peak RSS GB'] / largest[1]['peak RSS GB']:.3f}, "
          f"examples/s {largest[0]['train ex/s'] / largest[1]['train ex/s']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
