"""MovieLens 100K: every MTL architecture x loss weighting vs single-task models.

Each task's test metric is reported as a ratio to a single-task model (the same
towers trained on that task alone) trained in the same run, oriented so that > 1
means positive transfer: hit rate@10 (seen excluded) / single, single RMSE / RMSE,
like AUC / single. Writes a CSV and a PNG next to `--out`.

Usage:
    python benchmarks/movielens_mtl.py --data-dir ../shared/data/ml-100k --out docs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from reporting import write_csv

import mtl_tf  # noqa: F401
from mtl_tf.config import (
    ARCHITECTURES_AND_WEIGHTINGS,
    apply_overrides,
    from_dict,
    get_preset,
)
from mtl_tf.evaluation import format_table
from mtl_tf.experiment import prepare_data, run

SINGLE_TASKS = {
    "retrieval": '[{"name": "retrieval", "type": "retrieval"}]',
    "rating": '[{"name": "rating", "type": "regression", "label": "user_rating"}]',
    "like": '[{"name": "like", "type": "binary", "label": "like"}]',
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default="docs")
    parser.add_argument("--quick", action="store_true",
                        help="architectures with fixed weights, and every weighting "
                        "with shared_bottom, instead of the full grid")
    args = parser.parse_args(argv)
    base = apply_overrides(get_preset("default"), [
        "data.source=movielens", f"data.data_dir={args.data_dir}", "data.seed=42"])
    prepared = prepare_data(base)

    def train(overrides: list[str]) -> dict:
        config = apply_overrides(base, overrides)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:
            result = run(config, run_dir, export=False, verbose=0, prepared=prepared)
        metrics = result["metrics"]
        print(f"  {overrides}: {time.perf_counter() - start:.0f} s, hr@10 "
              f"{metrics['hit_rate_at_10']:.4f}, rmse {metrics['rating_rmse']:.4f}, "
              f"like auc {metrics['like_auc']:.4f}", flush=True)
        return metrics

    single = {}
    for task, tasks_json in SINGLE_TASKS.items():
        config = from_dict({"tasks": json.loads(tasks_json)}, base)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:
            single[task] = run(config, run_dir, export=False, verbose=0,
                               prepared=prepared)["metrics"]
        print(f"  single {task}: {time.perf_counter() - start:.0f} s", flush=True)

    grid = ARCHITECTURES_AND_WEIGHTINGS
    if args.quick:
        grid = [(a, w) for a, w in grid if w == "fixed" or a == "shared_bottom"]
    rows = []
    for architecture, weighting in grid:
        pcgrad = weighting == "fixed+pcgrad"
        overrides = [f"model.mtl={architecture}",
                     f"loss.weighting={'fixed' if pcgrad else weighting}",
                     f"loss.pcgrad={'true' if pcgrad else 'false'}"]
        metrics = train(overrides)
        rows.append({
            "architecture": architecture, "weighting": weighting,
            "hr@10": metrics["hit_rate_at_10"], "rmse": metrics["rating_rmse"],
            "like auc": metrics["like_auc"],
            "hr@10 ratio": metrics["hit_rate_at_10"] / single["retrieval"][
                "hit_rate_at_10"],
            "rmse ratio": single["rating"]["rating_rmse"] / metrics["rating_rmse"],
            "auc ratio": metrics["like_auc"] / single["like"]["like_auc"]})
    columns = list(rows[0])
    print(f"single-task: hr@10 {single['retrieval']['hit_rate_at_10']:.4f}, "
          f"rmse {single['rating']['rating_rmse']:.4f}, "
          f"like auc {single['like']['like_auc']:.4f}")
    print(format_table(rows, columns))
    out = Path(args.out)
    write_csv(rows, columns, out / "movielens_mtl.csv")
    plot(rows, out / "movielens_mtl.png")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['architecture']}\n{r['weighting']}" for r in rows]
    figure, axis = plt.subplots(figsize=(max(8, len(rows) * 0.7), 4))
    width = 0.27
    for offset, key in zip((-width, 0, width), ("hr@10 ratio", "rmse ratio",
                                                "auc ratio")):
        axis.bar([i + offset for i in range(len(rows))], [r[key] for r in rows],
                 width, label=key)
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_xticks(range(len(rows)), labels, rotation=60, fontsize=7)
    axis.set_ylabel("metric vs single-task (> 1 = positive transfer)")
    axis.set_ylim(0.8, 1.2)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
