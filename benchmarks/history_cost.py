"""What the behaviour history costs as users grow: training speed and serving latency.

Trains the default model (history encoder "mean" unless `--set` says otherwise)
on synthetic data with each `--users` count (default 1k and 10k; the same
`--items`, `synthetic.interactions_per_user` at its default 60, so training
rows grow with users), exports it to a temporary directory, and measures
(a) training examples/s, `result["training"]["examples_per_second"]`: the
mean over epochs after the first (the first traces the graph), hence the
default of 2 epochs; and (b) `recommend` latency at batch 1, k 10, on the
SavedModel loaded with `tf.saved_model.load`: a real test user's features with
a 5-item history of their training items, warmed up, then `--requests` calls
timed in turns (`recommend_timing.py`).

The acceptance lines compare the last `--users` run with the first: recommend
p50 ratio <= 1.2 (serving scores the catalog, so it should not grow with the
user table) and training examples/s ratio >= 0.8. PASS / FAIL is printed; the
exit code is 0 either way. `run s` is each run's wall time: data, training,
evaluation and export. At the default sizes the whole script needs about 6
minutes on 2 shared cores; `--users 1000,4000` about 3.

Usage:
    python benchmarks/history_cost.py
    python benchmarks/history_cost.py --users 1000,10000 --items 1000 --epochs 2 \\
        --set model.history_encoder=transformer
"""

from __future__ import annotations  # noqa: I001  (mtl_tf before tensorflow)

import argparse
import sys
import tempfile
import time
from pathlib import Path

import mtl_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from recommend_timing import HISTORY_ITEMS, WARMUP_CALLS, time_recommend

from mtl_tf.config import apply_overrides, get_preset
from mtl_tf.evaluation import format_table
from mtl_tf.experiment import run

P50_RATIO_LIMIT = 1.2  # recommend p50, largest / smallest user count: at most
SPEED_RATIO_LIMIT = 0.8  # train examples/s, largest / smallest: at least
COLUMNS = ["users", "train rows", "epochs", "train ex/s", "recommend p50 ms",
           "recommend p99 ms", "run s"]


def train_and_export(users: int, args: argparse.Namespace, export_dir: Path) -> dict:
    """One run at `users` users: its training numbers and its SavedModel path."""
    config = apply_overrides(get_preset("default"), [
        "data.source=synthetic", f"synthetic.num_users={users}",
        f"synthetic.num_items={args.items}", f"train.epochs={args.epochs}",
        "train.refit=false",  # Cost per step and per request is measured.
        f"export.export_dir={export_dir}", f"export.model_name=users_{users}",
        *args.set])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        result = run(config, run_dir, export=True, verbose=0)
    training = result["training"]
    row = {"users": users, "train rows": len(result["prepared"].splits.train),
           "epochs": training["epochs"],
           "train ex/s": float(training["examples_per_second"]),
           "run s": time.perf_counter() - started}
    print(f"  {users} users: {row['train rows']} training rows, "
          f"{row['train ex/s']:.0f} ex/s, {row['run s']:.0f} s", flush=True)
    return {"row": row, "export": result["export"], "prepared": result["prepared"]}


def time_runs(runs: list[dict], requests: int) -> None:
    """Adds p50 / p99 `recommend` latency (ms, batch 1, k 10) to each run's
    row, timing the loaded SavedModels in turns."""
    timings = time_recommend([entry["export"] for entry in runs],
                             [entry["prepared"] for entry in runs], requests)
    for entry, timing in zip(runs, timings):
        entry["row"]["recommend p50 ms"] = timing["p50 ms"]
        entry["row"]["recommend p99 ms"] = timing["p99 ms"]


def parse_users(text: str) -> list[int]:
    try:
        users = [int(u) for u in text.split(",") if u.strip()]
    except ValueError:
        users = []
    if len(users) < 2 or min(users) <= 0:
        raise SystemExit(f"--users: received {text!r}; expected at least two "
                         "positive counts, e.g. 1000,10000.")
    return users


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="1000,10000",
                        help="comma-separated user counts; the last is compared "
                             "with the first")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2,
                        help="training epochs (examples/s is measured after the "
                             "first)")
    parser.add_argument("--requests", type=int, default=300,
                        help="timed recommend calls per model")
    parser.add_argument("--set", action="append", default=[],
                        help="override the default config, e.g. "
                             "model.history_encoder=gru")
    args = parser.parse_args(argv)
    users = parse_users(args.users)
    if args.requests <= 0 or args.epochs <= 0 or args.items <= 0:
        raise SystemExit("--requests, --epochs and --items must be positive.")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as export_dir:
        runs = [train_and_export(n, args, Path(export_dir)) for n in users]
        time_runs(runs, args.requests)
    rows = [entry["row"] for entry in runs]
    first, last = rows[0], rows[-1]
    ratio = {"users": f"ratio {last['users']:,} / {first['users']:,}"}
    for column in ("train rows", "train ex/s", "recommend p50 ms",
                   "recommend p99 ms", "run s"):
        ratio[column] = last[column] / first[column]
    print(format_table([*rows, ratio], COLUMNS))
    print(f"recommend: batch 1, k 10, {HISTORY_ITEMS}-item history, "
          f"{args.requests} timed calls per model after {WARMUP_CALLS} warm-up "
          "calls; train ex/s over epochs after the first.")
    p50 = ratio["recommend p50 ms"]
    speed = ratio["train ex/s"]
    print(f"recommend p50 ratio {p50:.3f} <= {P50_RATIO_LIMIT}: "
          f"{'PASS' if p50 <= P50_RATIO_LIMIT else 'FAIL'}")
    print(f"train ex/s ratio {speed:.3f} >= {SPEED_RATIO_LIMIT}: "
          f"{'PASS' if speed >= SPEED_RATIO_LIMIT else 'FAIL'}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
