"""Census-Income (KDD): single-task, shared-bottom, MMoE and PLE at equal budgets.

The MMoE paper's first real-data setting (Ma et al., KDD 2018, section 5.2):
two binary tasks on one row per person, `income` (> $50K) and `marital` (never
married; marital status is out of the inputs). Protocol as published with the
torch-rechub results (examples/ranking/README.md): train on census-income.data;
split census-income.test 1:1 (seeded) into validation and test. Each model
trains until the validation loss stops improving (early stopping restores the
best epoch's weights); the test half is touched once, and each AUC is computed
over the whole test half (`mtl_tf.evaluation.roc_auc`, never per batch).

Bodies at one parameter budget (heads and feature towers, identical across
architectures, excluded): the reference is MMoE with 8 experts of one 16-unit
layer (+ 2 gates) on the 32-wide user tower output; shared-bottom and the two
single-task MLPs get one hidden layer and PLE (1 level, 2 shared + 2 per-task
experts) one layer per expert, each sized by `units_for_budget`. Every task
head: one 8-unit layer.

Reports mean +- std over `--seeds` training seeds (the split stays fixed at
`--split-seed`) beside the published numbers, and writes census_income.csv and
census_income.png to `--out-dir`.

Usage:
    python benchmarks/census_income.py --data-dir data/census-income --seeds 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from reporting import write_csv

import mtl_tf  # noqa: F401
from mtl_tf.config import Config, apply_overrides
from mtl_tf.data.census_income import (
    CENSUS_INCOME_SCHEMA,
    CENSUS_INCOME_TASKS,
    census_income_splits,
    load_census_income,
)
from mtl_tf.evaluation import format_table
from mtl_tf.experiment import prepare_data, run
from mtl_tf.model.architectures import (
    build_architecture,
    parameter_count,
    units_for_budget,
)

ARCHITECTURES = ("single_task", "shared_bottom", "mmoe", "ple")
EMBEDDING_DIM = 32  # The user tower's output: the input of every body.
REFERENCE = {"num_experts": 8, "expert_units": (16,)}  # MMoE: sets the budget.
PLE_EXPERTS = {"num_levels": 1, "num_shared_experts": 2, "num_task_experts": 2}
# torch-rechub examples/ranking/README.md (census-income, same protocol):
# (income AUC, marital AUC).
PUBLISHED = {"shared_bottom": (0.9560, 0.9948), "mmoe": (0.9579, 0.9950),
             "ple": (0.9583, 0.9951), "aitm": (0.9595, 0.9951)}
NUM_TASKS = len(CENSUS_INCOME_TASKS)


def body_sizes() -> dict[str, dict]:
    """Constructor kwargs of every body, all at the reference MMoE's budget."""
    budget = parameter_count(build_architecture("mmoe", NUM_TASKS, **REFERENCE),
                             EMBEDDING_DIM)
    sizes = {"mmoe": dict(REFERENCE),
             "ple": units_for_budget("ple", NUM_TASKS, EMBEDDING_DIM, budget,
                                     **PLE_EXPERTS)}
    for name in ("single_task", "shared_bottom"):
        sizes[name] = units_for_budget(name, NUM_TASKS, EMBEDDING_DIM, budget,
                                       num_layers=1)
    return sizes


def overrides_for(name: str, kwargs: dict) -> list[str]:
    """`--set`-style overrides giving `model.mtl=name` the body `kwargs`."""
    def units(values) -> str:
        return "[" + ",".join(str(v) for v in values) + "]"

    out = [f"model.mtl={name}"]
    if "units" in kwargs:
        out.append(f"model.bottom_units={units(kwargs['units'])}")
    for key, value in kwargs.items():
        if key != "units":
            out.append(f"model.{key}="
                       + (units(value) if isinstance(value, tuple) else str(value)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True,
                        help="folder with census-income.data and .test (or .gz)")
    parser.add_argument("--max-rows", type=int, default=0,
                        help="read only the first N lines of each file (0: all)")
    parser.add_argument("--seeds", type=int, default=5,
                        help="training seeds per architecture")
    parser.add_argument("--epochs", type=int, default=30,
                        help="most epochs; early stopping on validation picks one")
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--split-seed", type=int, default=42)
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES))
    parser.add_argument("--out-dir", default="docs")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    parts = load_census_income(args.data_dir, max_rows=args.max_rows)
    data, splits = census_income_splits(parts, seed=args.split_seed)
    print(f"census-income: {data.report.summary()}; split {splits.sizes()}; "
          f"income rate (train) {splits.train['income'].mean():.4f}, never-married "
          f"rate (train) {splits.train['never_married'].mean():.4f}", flush=True)
    base = apply_overrides(Config(schema=CENSUS_INCOME_SCHEMA,
                                  tasks=CENSUS_INCOME_TASKS), [
        "data.source=census_income", f"data.data_dir={args.data_dir}",
        f"data.seed={args.split_seed}", f"model.embedding_dim={EMBEDDING_DIM}",
        "model.user_history=false", "model.head_units=[8]",
        f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}",
        f"train.early_stopping_patience={args.patience}"])
    prepared = prepare_data(base, data, splits)
    sizes = body_sizes()
    rows = []
    for name in args.architectures.split(","):
        config = apply_overrides(base, overrides_for(name, sizes[name]))
        body = parameter_count(build_architecture(name, NUM_TASKS, **sizes[name]),
                               EMBEDDING_DIM)
        scores: dict[str, list[float]] = {"income": [], "marital": [], "epochs": []}
        params = 0
        for seed in range(1, args.seeds + 1):
            run_started = time.perf_counter()
            with tempfile.TemporaryDirectory() as run_dir:
                result = run(apply_overrides(config, [f"train.seed={seed}"]),
                             run_dir, export=False, verbose=0, prepared=prepared)
            params = result["model"].count_params()
            losses = result["history"].get("val_total_loss", [])
            best = int(np.argmin(losses)) + 1 if losses else result["training"][
                "epochs"]
            scores["income"].append(result["metrics"]["income_auc"])
            scores["marital"].append(result["metrics"]["marital_auc"])
            scores["epochs"].append(best)
            print(f"  {name} seed {seed}: {time.perf_counter() - run_started:.0f} s, "
                  f"best epoch {best}, income auc {scores['income'][-1]:.4f}, "
                  f"marital auc {scores['marital'][-1]:.4f}", flush=True)
        published = PUBLISHED.get(name, (None, None))
        rows.append({
            "architecture": name, "body": _describe(sizes[name]),
            "body params": body, "params": params, "seeds": args.seeds,
            "income auc": float(np.mean(scores["income"])),
            "income std": float(np.std(scores["income"])),
            "marital auc": float(np.mean(scores["marital"])),
            "marital std": float(np.std(scores["marital"])),
            "best epoch": float(np.mean(scores["epochs"])),
            "published income": published[0], "published marital": published[1]})
    columns = list(rows[0])
    shown = [{**row,
              "income auc": f"{row['income auc']:.4f} ± {row['income std']:.4f}",
              "marital auc": f"{row['marital auc']:.4f} ± {row['marital std']:.4f}"}
             for row in rows]
    shown.append({"architecture": "aitm (published only)",
                  "published income": PUBLISHED["aitm"][0],
                  "published marital": PUBLISHED["aitm"][1]})
    print(format_table(shown, [c for c in columns if not c.endswith("std")]))
    print(f"total {time.perf_counter() - started:.0f} s")
    out = Path(args.out_dir)
    write_csv(rows, columns, out / "census_income.csv")
    plot(rows, out / "census_income.png")
    return 0


def _describe(kwargs: dict) -> str:
    return " ".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, tuple) else v}"
                    for k, v in kwargs.items())


def plot(rows: list[dict], path: Path) -> None:
    """Mean test AUC (error bar: std over seeds) per task; published as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for axis, task in zip(axes, ("income", "marital")):
        x = np.arange(len(rows))
        axis.bar(x, [r[f"{task} auc"] for r in rows],
                 yerr=[r[f"{task} std"] for r in rows], capsize=3, label="ours")
        published = [(i, r[f"published {task}"]) for i, r in enumerate(rows)
                     if r[f"published {task}"] is not None]
        if published:
            axis.scatter(*zip(*published), color="black", zorder=3,
                         label="torch-rechub")
        low = min(r[f"{task} auc"] - r[f"{task} std"] for r in rows)
        axis.set_ylim(max(0.5, low - 0.01), 1.002)
        axis.set_xticks(x, [r["architecture"] for r in rows], fontsize=8)
        axis.set_title(f"{task} AUC (test half)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
