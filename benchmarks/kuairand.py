"""KuaiRand-Pure: retrieval plus click, long-view and like heads, trained jointly,
with single-task, shared-bottom, MMoE and PLE bodies at equal budgets.

KuaiRand (Gao et al., CIKM 2022): Kuaishou's short-video feed logs with many
feedback signals per impression, user and video side tables. The model is one
two-tower retrieval task on clicks (hit rate@10 / @100 over the whole catalog,
the user's earlier clicks excluded) and three binary ranking heads over every
impression: `click` (is_click), `long_view` and `like` (is_like). Each head's
AUC, GAUC (per user, weighted by impressions) and calibration are reported.

Protocol (`mtl_tf.data.kuairand.kuairand_splits`): the two standard logs
(2022-04-08 to 05-08) split by date, the last days test and the days before
them validation (early stopping); every metric over the whole test split
(`mtl_benchmark`). No published multi-task numbers use this protocol, so the
table stands alone; the single_task row is the baseline to compare with.

Usage:
    python benchmarks/kuairand.py --data-dir data/KuaiRand-Pure --seeds 5
"""

from __future__ import annotations

import argparse
import sys
import time

import mtl_benchmark as bench

from mtl_tf.data.kuairand import (
    KUAIRAND_TASKS,
    kuairand_splits,
    load_kuairand,
)

BENCHMARK = bench.Benchmark(
    name="kuairand", title="KuaiRand-Pure, last days of the standard logs",
    metrics=(bench.Metric("hr@10", "hit_rate_at_10"),
             bench.Metric("hr@100", "hit_rate_at_100"),
             *bench.task_metrics(KUAIRAND_TASKS, user_key=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True,
                        help="the KuaiRand-Pure folder (or its data/ subfolder)")
    bench.add_arguments(parser, epochs=10, batch_size=2048, patience=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = load_kuairand(args.data_dir, max_rows=args.max_rows,
                         lenient=args.lenient)
    splits = kuairand_splits(data)
    rates = ", ".join(f"{t.label} {splits.train[t.label].mean():.4f}"
                      for t in KUAIRAND_TASKS if t.type == "binary")
    print(f"kuairand: {data.report.summary()}; split {splits.sizes()}; "
          f"{data.num_users} users, {data.num_items} videos; rates (train) {rates}",
          flush=True)
    bench.run_and_report(BENCHMARK, data, splits, KUAIRAND_TASKS, args,
                         source="kuairand", started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
