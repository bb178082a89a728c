"""Training speed and memory as the log grows: 10^5, 10^6 and 10^7 interactions.

Trains the default model for one epoch on synthetic logs of each `--sizes`
interaction count (`synthetic.interactions_per_user` at its default 60, so
users = size / 60, over `--items` items), each size in a fresh Python process
so that its peak resident memory (`VmHWM`: `benchmarks/peak_memory.py`) is
its own. Retrieval metrics are computed on a sample of `eval.max_users` test
users. It prints, per size:
training rows, examples/s (the epoch after its first step, which traces the
graph), peak RSS and wall time (data, training, evaluation; no export).

The acceptance lines compare the largest size with the smallest: examples/s
ratio >= 0.8 (cost per example does not grow with the log) and peak RSS of the
largest <= 12 GB. PASS / FAIL is printed; the exit code is 0 either way. On 2
cores the default sizes take about 45 minutes, almost all of it the 10^7 run.

Usage:
    python benchmarks/scale.py
    python benchmarks/scale.py --sizes 100000,1000000 --items 5000
"""

from __future__ import annotations  # noqa: I001  (mtl_tf before tensorflow)

import argparse
import json
import subprocess
import sys
import tempfile
import time

SPEED_RATIO_LIMIT = 0.8  # train examples/s, largest / smallest size: at least
RSS_LIMIT_GB = 12.0  # peak RSS of the largest size: at most
INTERACTIONS_PER_USER = 60
COLUMNS = ["interactions", "users", "items", "train rows", "train ex/s",
           "peak RSS GB", "run s"]


def train_once(size: int, items: int, max_users: int, overrides: list[str]) -> dict:
    """One run at `size` interactions in this process: its row of the table."""
    from peak_memory import peak_rss_gb

    import mtl_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
    from mtl_tf.config import apply_overrides, get_preset
    from mtl_tf.experiment import run

    users = max(size // INTERACTIONS_PER_USER, 2)
    config = apply_overrides(get_preset("default"), [
        "data.source=synthetic", f"synthetic.num_users={users}",
        f"synthetic.num_items={items}",
        f"synthetic.interactions_per_user={INTERACTIONS_PER_USER}",
        "train.epochs=1", f"eval.max_users={max_users}",
        # One epoch's cost is measured, not a final refit on validation rows.
        "train.refit=false", *overrides])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        result = run(config, run_dir, export=False, verbose=0)
    prepared = result["prepared"]
    return {"interactions": len(prepared.data.interactions), "users": users,
            "items": items, "train rows": len(prepared.splits.train),
            "train ex/s": float(result["training"]["examples_per_second"]),
            "peak RSS GB": peak_rss_gb(),
            "run s": time.perf_counter() - started}


def run_in_subprocess(size: int, args: argparse.Namespace) -> dict:
    """`train_once` in a fresh interpreter (its own peak RSS); its row."""
    command = [sys.executable, __file__, "--worker", str(size),
               "--items", str(args.items), "--max-users", str(args.max_users)]
    for override in args.set:
        command += ["--set", override]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"scale.py: the {size:,}-interaction run failed "
                         f"(exit {done.returncode}):\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {size:,} interactions: {row['train rows']:,} training rows, "
          f"{row['train ex/s']:,.0f} ex/s, {row['peak RSS GB']:.2f} GB peak RSS, "
          f"{row['run s']:.0f} s", flush=True)
    return row


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(s)) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 10 * INTERACTIONS_PER_USER:
        raise SystemExit(f"--sizes: received {text!r}; expected at least two "
                         "interaction counts of at least 600, e.g. "
                         "100000,1000000,10000000.")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000",
                        help="comma-separated interaction counts; the largest is "
                             "compared with the smallest")
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--max-users", type=int, default=1000,
                        help="test users sampled for the retrieval metrics")
    parser.add_argument("--set", action="append", default=[],
                        help="override the default config, e.g. "
                             "train.batch_size=1024")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.items < 10 or args.max_users < 1:
        raise SystemExit("--items must be >= 10 and --max-users >= 1.")
    if args.worker:
        print(json.dumps(train_once(args.worker, args.items, args.max_users,
                                    args.set)))
        return 0
    sizes = sorted(parse_sizes(args.sizes))

    from mtl_tf.evaluation import format_table

    started = time.perf_counter()
    rows = [run_in_subprocess(size, args) for size in sizes]
    first, last = rows[0], rows[-1]
    ratio = {"interactions": f"ratio {last['interactions']:,} / "
                             f"{first['interactions']:,}"}
    for column in ("train rows", "train ex/s", "peak RSS GB", "run s"):
        ratio[column] = last[column] / first[column]
    print(format_table([*rows, ratio], COLUMNS))
    speed, rss = ratio["train ex/s"], last["peak RSS GB"]
    print(f"train ex/s ratio {speed:.3f} >= {SPEED_RATIO_LIMIT}: "
          f"{'PASS' if speed >= SPEED_RATIO_LIMIT else 'FAIL'}")
    print(f"peak RSS at {last['interactions']:,} interactions {rss:.2f} GB <= "
          f"{RSS_LIMIT_GB:g} GB: {'PASS' if rss <= RSS_LIMIT_GB else 'FAIL'}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
