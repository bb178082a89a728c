"""AliExpress: ESMM, single-task, shared-bottom, MMoE and PLE at equal budgets,
per country.

The AliExpress search logs (Tianchi dataset 74690) in the per-country folders
MTReclib and torch-rechub use: 16 categorical and 63 numeric features per
impression, labels click and conversion. Tasks: `click` (CTR) and `purchase`
(the conversion, CTCVR) over all impressions; the esmm row chains purchase on
click and also reports the CVR AUC on clicked test rows. Calibration (mean
predicted / observed rate) is reported for both tasks; the files have no user
key, so there is no GAUC.

Protocol: train on `AliExpress_<CC>/train.csv` minus a seeded 10% of its rows
(validation, for early stopping); test on the whole `test.csv`; every AUC over
the whole test file (`mtl_benchmark`). The published numbers (MTReclib README,
mean of 5 runs, embeddings of 128) select their model on the test set, which
flatters them; ours never look at the test file before the final score.

Usage:
    python benchmarks/aliexpress.py --data-dir data/aliexpress --country NL
"""

from __future__ import annotations

import argparse
import sys
import time

import mtl_benchmark as bench

from mtl_tf.data.aliexpress import (
    ALIEXPRESS_TASKS,
    COUNTRIES,
    aliexpress_splits,
    load_aliexpress,
)

# MTReclib (easezyc/Multitask-Recommendation-Library) README: (CTR AUC, CTCVR AUC).
MTRECLIB = {
    "NL": {"single_task": (0.7222, 0.8590), "shared_bottom": (0.7228, 0.8511),
           "mmoe": (0.7234, 0.8606), "ple": (0.7292, 0.8591),
           "aitm": (0.7240, 0.8577), "metaheac": (0.7263, 0.8615)},
    "ES": {"single_task": (0.7266, 0.8855), "shared_bottom": (0.7287, 0.8866),
           "mmoe": (0.7285, 0.8898), "ple": (0.7273, 0.8913),
           "aitm": (0.7290, 0.8885), "metaheac": (0.7299, 0.8883)},
    "FR": {"single_task": (0.7259, 0.8737), "shared_bottom": (0.7245, 0.8700),
           "mmoe": (0.7216, 0.8811), "ple": (0.7276, 0.8805),
           "aitm": (0.7236, 0.8763), "metaheac": (0.7249, 0.8813)},
    "US": {"single_task": (0.7061, 0.8637), "shared_bottom": (0.7029, 0.8698),
           "mmoe": (0.7043, 0.8758), "ple": (0.7138, 0.8675),
           "aitm": (0.7048, 0.8730), "metaheac": (0.7089, 0.8743)},
}


def benchmark_for(country: str) -> bench.Benchmark:
    """The table of one country, beside MTReclib's numbers for it."""
    return bench.Benchmark(
        name=f"aliexpress_{country.lower()}",
        title=f"AliExpress {country}, test.csv",
        metrics=bench.task_metrics(ALIEXPRESS_TASKS, user_key=False),
        published={name: {"click auc": ctr, "purchase auc": ctcvr}
                   for name, (ctr, ctcvr) in MTRECLIB[country].items()},
        published_by="MTReclib")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True,
                        help="the AliExpress_<CC> folder, or the folder holding it")
    parser.add_argument("--country", default="NL", choices=COUNTRIES)
    bench.add_arguments(parser, epochs=10, batch_size=2048, patience=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = load_aliexpress(args.data_dir, args.country, max_rows=args.max_rows,
                           lenient=args.lenient)
    splits = aliexpress_splits(data, seed=args.split_seed)
    train = splits.train
    print(f"aliexpress {args.country}: {data.report.summary()}; split "
          f"{splits.sizes()}; click rate (train) {train['click'].mean():.4f}, "
          f"purchase rate (train) {train['purchase'].mean():.5f}", flush=True)
    benchmark = benchmark_for(args.country)
    bench.run_and_report(benchmark, data, splits, ALIEXPRESS_TASKS, args,
                         source="aliexpress", started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
