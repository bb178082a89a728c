"""Census-Income (KDD): single-task, shared-bottom, MMoE and PLE at equal budgets.

The MMoE paper's first real-data setting (Ma et al., KDD 2018, section 5.2):
two binary tasks on one row per person, `income` (> $50K) and `marital` (never
married; marital status is out of the inputs). Protocol as published with the
torch-rechub results (examples/ranking/README.md): train on census-income.data;
split census-income.test 1:1 (seeded) into validation and test. Model
selection, budgets and the table follow `mtl_benchmark` (early stopping on the
validation loss; every AUC over the whole test half).

Reports mean +- std over `--seeds` training seeds (the split stays fixed at
`--split-seed`) beside the published numbers, and writes census_income.csv and
census_income.png to `--out-dir`.

Usage:
    python benchmarks/census_income.py --data-dir data/census-income --seeds 5
"""

from __future__ import annotations

import argparse
import sys
import time

import mtl_benchmark as bench

from mtl_tf.data.census_income import (
    CENSUS_INCOME_TASKS,
    census_income_splits,
    load_census_income,
)

# torch-rechub examples/ranking/README.md (census-income, same protocol).
BENCHMARK = bench.Benchmark(
    name="census_income", title="Census-Income (KDD), test half of census-income.test",
    metrics=bench.task_metrics(CENSUS_INCOME_TASKS, user_key=False),
    published={
        "shared_bottom": {"income auc": 0.9560, "marital auc": 0.9948},
        "mmoe": {"income auc": 0.9579, "marital auc": 0.9950},
        "ple": {"income auc": 0.9583, "marital auc": 0.9951},
        "aitm": {"income auc": 0.9595, "marital auc": 0.9951}},
    published_by="torch-rechub")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True,
                        help="folder with census-income.data and .test (or .gz)")
    bench.add_arguments(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    parts = load_census_income(args.data_dir, max_rows=args.max_rows,
                               lenient=args.lenient)
    data, splits = census_income_splits(parts, seed=args.split_seed)
    print(f"census-income: {data.report.summary()}; split {splits.sizes()}; "
          f"income rate (train) {splits.train['income'].mean():.4f}, never-married "
          f"rate (train) {splits.train['never_married'].mean():.4f}", flush=True)
    bench.run_and_report(BENCHMARK, data, splits, CENSUS_INCOME_TASKS, args,
                         source="census_income", started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
