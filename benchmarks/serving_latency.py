"""`recommend` latency as the catalog grows: exports with 10k, 100k and 1M items.

For each `--items` count, trains the default model for `--epochs` on synthetic
data with that many catalog items and `--users` users (most items of a large
catalog have no interactions: they are cold items, embedded from their title
and genres, and they are all scored), exports it, and records the export's
size and the peak RSS of the process so far. Then it times `recommend`
(k 10) at each `--batches` size on every export, in turns
(`recommend_timing.py`). Retrieval metrics use a sample of `eval.max_users`
test users, so evaluation stays short at 1M items.

`recommend` scores the whole catalog with one matrix product and takes the
top k, so its cost should grow linearly with the items. The acceptance line:
p50 at the largest catalog is at most 12 x p50 at the one before (the issue's
1M vs 100k), at batch 1. PASS / FAIL is printed; the exit code is 0 either
way. At the default sizes the script needs about 15 minutes on 2 cores, most
of it generating and exporting the 1M-item catalog.

Usage:
    python benchmarks/serving_latency.py
    python benchmarks/serving_latency.py --items 10000,100000 --batches 1,32
"""

from __future__ import annotations  # noqa: I001  (mtl_tf before tensorflow)

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import mtl_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from recommend_timing import time_recommend

from mtl_tf.config import apply_overrides, get_preset
from mtl_tf.evaluation import format_table
from mtl_tf.experiment import run

P50_GROWTH_LIMIT = 12.0  # p50, largest / second-largest catalog (10x the items)


def parse_counts(text: str, flag: str, minimum: int) -> list[int]:
    try:
        counts = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < minimum:
        raise SystemExit(f"{flag}: received {text!r}; expected comma-separated "
                         f"counts >= {minimum}, e.g. 10000,100000.")
    return counts


def peak_rss_gb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def train_and_export(items: int, args: argparse.Namespace, export_dir: Path) -> dict:
    """One catalog size: the default model trained and exported."""
    config = apply_overrides(get_preset("default"), [
        "data.source=synthetic", f"synthetic.num_users={args.users}",
        f"synthetic.num_items={items}", f"train.epochs={args.epochs}",
        "train.refit=false",  # Serving cost is measured, not model quality.
        # Validation scores each batch against the whole catalog: 8,192 x 1M
        # floats would not fit in memory.
        "eval.max_users=200", "train.eval_batch_size=512",
        f"export.export_dir={export_dir}",
        f"export.model_name=items_{items}", *args.set])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        result = run(config, run_dir, export=True, verbose=0)
    export = Path(result["export"])
    size = sum(p.stat().st_size for p in export.rglob("*") if p.is_file())
    row = {"items": items, "export MB": size / 2 ** 20,
           "peak RSS GB": peak_rss_gb(), "run s": time.perf_counter() - started}
    print(f"  {items:,} items: export {row['export MB']:.0f} MB, "
          f"{row['run s']:.0f} s", flush=True)
    return {"row": row, "export": export, "prepared": result["prepared"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", default="10000,100000,1000000",
                        help="comma-separated catalog sizes; the last is "
                             "compared with the one before")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batches", default="1,32", help="request batch sizes")
    parser.add_argument("--requests", type=int, default=200,
                        help="timed recommend calls per export and batch size")
    parser.add_argument("--set", action="append", default=[],
                        help="override the default config")
    args = parser.parse_args(argv)
    items = parse_counts(args.items, "--items", 10)
    batches = parse_counts(args.batches, "--batches", 1)
    if args.requests <= 0 or args.epochs <= 0 or args.users < 2:
        raise SystemExit("--requests and --epochs must be positive and --users "
                         ">= 2.")

    started = time.perf_counter()
    columns = ["items", "export MB", "peak RSS GB", "run s"]
    with tempfile.TemporaryDirectory() as export_dir:
        runs = [train_and_export(n, args, Path(export_dir)) for n in items]
        for batch in batches:
            timings = time_recommend([r["export"] for r in runs],
                                     [r["prepared"] for r in runs],
                                     args.requests, batch=batch)
            for entry, timing in zip(runs, timings):
                for name, value in timing.items():
                    entry["row"][f"batch {batch} {name}"] = value
            columns += [f"batch {batch} p50 ms", f"batch {batch} p99 ms"]
    rows = [entry["row"] for entry in runs]
    print(format_table(rows, columns))
    print(f"recommend: k 10, {args.requests} timed calls per export and batch "
          f"after warm-up; {args.users:,} users, {args.epochs} epoch(s).")
    if len(rows) > 1:
        key = f"batch {batches[0]} p50 ms"
        growth = rows[-1][key] / rows[-2][key]
        scale = rows[-1]["items"] / rows[-2]["items"]
        print(f"p50 ratio {rows[-1]['items']:,} / {rows[-2]['items']:,} items "
              f"({scale:g}x the items), batch {batches[0]}: {growth:.3f} <= "
              f"{P50_GROWTH_LIMIT:g}: "
              f"{'PASS' if growth <= P50_GROWTH_LIMIT else 'FAIL'}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
