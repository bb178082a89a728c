"""Ali-CCP: ESMM, single-task, shared-bottom, MMoE and PLE at equal budgets.

ESMM's data set (Ma et al., SIGIR 2018): Taobao impressions with click and
purchase labels; a purchase is only logged after a click. Tasks: `click` (CTR)
over all impressions and `purchase` over all impressions (CTCVR); the esmm row
learns purchase as p(click) x p(purchase | click) and also reports the CVR AUC
on clicked test rows (`purchase|click auc`, the paper's CVR metric), the other
rows learn p(click, purchase) directly. GAUC (per user, weighted by
impressions) and calibration (mean predicted / observed rate) are reported for
both tasks.

Protocol: train on sample_skeleton_train.csv minus a seeded 10% of its rows
(validation, for early stopping); test on the whole sample_skeleton_test.csv;
every AUC over the whole test file (`mtl_benchmark`). The published numbers
(EasyRec, docs/source/benchmark.md) use the same train / test files.

The train file holds about 42M rows: `--sample-fraction 0.1` keeps a seeded
tenth of each file's rows, `--max-rows N` the first N. A conversion on an
impression without a click stops the loader (the format has none);
`--lenient` skips and counts such rows, as torch-rechub's and AITM's
preprocessing drop them.

Usage:
    python benchmarks/ali_ccp.py --data-dir data/ali-ccp --seeds 5
"""

from __future__ import annotations

import argparse
import sys
import time

import mtl_benchmark as bench

from mtl_tf.data.ali_ccp import (
    ALI_CCP_TASKS,
    ali_ccp_splits,
    load_ali_ccp,
)

# EasyRec docs/source/benchmark.md (Ali-CCP, test file AUCs).
BENCHMARK = bench.Benchmark(
    name="ali_ccp", title="Ali-CCP, sample_skeleton_test",
    metrics=bench.task_metrics(ALI_CCP_TASKS, user_key=True),
    published={
        "esmm": {"click auc": 0.5975, "purchase auc": 0.6363,
                 "purchase|click auc": 0.6841},
        "mmoe": {"click auc": 0.5870, "purchase auc": 0.6330},
        "ple": {"click auc": 0.5874, "purchase auc": 0.6159}},
    published_by="EasyRec")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True,
                        help="folder with sample_skeleton_{train,test}.csv and "
                             "common_features_{train,test}.csv (or .gz)")
    parser.add_argument("--sample-fraction", type=float, default=1.0,
                        help="keep each row with this probability (seeded)")
    bench.add_arguments(parser, epochs=10, batch_size=4096, patience=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = load_ali_ccp(args.data_dir, max_rows=args.max_rows,
                        sample_fraction=args.sample_fraction, seed=args.split_seed,
                        lenient=args.lenient)
    splits = ali_ccp_splits(data, seed=args.split_seed)
    train = splits.train
    print(f"ali-ccp: {data.report.summary()}; split {splits.sizes()}; "
          f"{data.num_users} users, {data.num_items} items; click rate (train) "
          f"{train['click'].mean():.4f}, purchase rate (train) "
          f"{train['purchase'].mean():.5f}", flush=True)
    bench.run_and_report(BENCHMARK, data, splits, ALI_CCP_TASKS, args,
                         source="ali_ccp", started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
