"""The protocol of the public multi-task benchmarks: one grid, one table.

`benchmarks/census_income.py`, `ali_ccp.py`, `aliexpress.py` and `kuairand.py`
each load their data set with its published split and describe it as a
`Benchmark`; `run_benchmark` then trains every architecture (single_task,
shared_bottom, mmoe, ple, and esmm where a task chain exists) for `--seeds`
training seeds on the same `PreparedData`, and `report` prints mean +- std of
each metric beside the published numbers and writes `<name>.csv` and
`<name>.png` to `--out-dir`.

The rules every script follows:
- Model selection uses the validation split only: each run trains until the
  validation loss stops improving and early stopping restores the best epoch's
  weights. The test split is scored once per run.
- Every AUC is computed over the whole test split (`mtl_tf.evaluation`), never
  averaged over batches.
- Bodies have one parameter budget (heads and feature towers, identical across
  architectures, excluded): the reference is MMoE with 8 experts of one 16-unit
  layer (+ one gate per task); shared-bottom and single-task get one hidden
  layer, PLE (1 level, 2 shared + 2 per-task experts) one layer per expert,
  each sized by `units_for_budget`. ESMM is single-task towers under the task
  chain, so it has single-task's body. Every head: one 8-unit layer.
- Without a chain in the table (every architecture but esmm), a task with
  `depends_on` is trained as an independent task on all rows: the purchase head
  then learns the CTCVR target p(click, buy) directly.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from reporting import write_csv

import mtl_tf  # noqa: F401
from mtl_tf.config import Config, apply_overrides
from mtl_tf.data import RecDataset
from mtl_tf.data.splits import Splits
from mtl_tf.evaluation import format_table
from mtl_tf.experiment import PreparedData, prepare_data, run
from mtl_tf.model.architectures import (
    build_architecture,
    parameter_count,
    units_for_budget,
)
from mtl_tf.model.ranking import PAIR_TASK_TYPES
from mtl_tf.task_config import TaskConfig, conditional_output_name

ARCHITECTURES = ("single_task", "shared_bottom", "mmoe", "ple")
EMBEDDING_DIM = 32  # Each tower's output.
REFERENCE = {"num_experts": 8, "expert_units": (16,)}  # MMoE: sets the budget.
PLE_EXPERTS = {"num_levels": 1, "num_shared_experts": 2, "num_task_experts": 2}


@dataclasses.dataclass(frozen=True)
class Metric:
    """One reported number: its table column and its key in a run's metrics."""

    column: str
    key: str
    plot: bool = False  # One panel of the PNG per plotted metric.


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """What a benchmark script reports.

    Attributes:
        name: the output files' stem (`<name>.csv`, `<name>.png`).
        title: the data set's name in messages and plots.
        metrics: the reported numbers, in column order.
        published: architecture -> {metric column: published value}; an
            architecture we do not run (e.g. AITM) is shown as its own row.
        published_by: who published them (the plot's legend).
    """

    name: str
    title: str
    metrics: tuple[Metric, ...]
    published: Mapping[str, Mapping[str, float]] = dataclasses.field(
        default_factory=dict)
    published_by: str = ""


def task_metrics(tasks: Sequence[TaskConfig], *, user_key: bool) -> tuple[Metric, ...]:
    """The issue's metrics of binary tasks: AUC (plotted), the CVR AUC of a
    chained task on its parent's positives, GAUC with a user key, calibration."""
    out = []
    for task in tasks:
        if task.type != "binary":
            continue
        out.append(Metric(f"{task.name} auc", f"{task.name}_auc", plot=True))
        if task.depends_on:
            out.append(Metric(f"{task.name}|{task.depends_on} auc",
                              f"{conditional_output_name(task)}_auc"))
        if user_key:
            out.append(Metric(f"{task.name} gauc", f"{task.name}_gauc"))
        out.append(Metric(f"{task.name} calibration", f"{task.name}_calibration"))
    return tuple(out)


def add_arguments(parser: argparse.ArgumentParser, *, epochs: int = 30,
                  batch_size: int = 1024, patience: int = 3) -> None:
    """The options every benchmark script shares."""
    parser.add_argument("--max-rows", type=int, default=0,
                        help="read only the first N rows of each file (0: all)")
    parser.add_argument("--seeds", type=int, default=5,
                        help="training seeds per architecture")
    parser.add_argument("--epochs", type=int, default=epochs,
                        help="most epochs; early stopping on validation picks one")
    parser.add_argument("--patience", type=int, default=patience)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--split-seed", type=int, default=42)
    parser.add_argument("--architectures", default="",
                        help="comma-separated subset (default: all)")
    parser.add_argument("--out-dir", default="docs")
    parser.add_argument("--lenient", action="store_true",
                        help="skip and count malformed rows instead of stopping "
                             "at the first (the table's first line says how many)")


def base_overrides(args: argparse.Namespace) -> list[str]:
    """`--set`-style overrides of the options `add_arguments` adds."""
    return [f"model.embedding_dim={EMBEDDING_DIM}", "model.history_encoder=none",
            "model.head_units=[8]", f"train.epochs={args.epochs}",
            f"train.batch_size={args.batch_size}",
            f"train.early_stopping_patience={args.patience}"]


def architectures_of(tasks: Sequence[TaskConfig]) -> tuple[str, ...]:
    """The table's rows: the four bodies, and esmm where a task chain exists."""
    chained = any(t.depends_on for t in tasks)
    return ARCHITECTURES + (("esmm",) if chained else ())


def body_sizes(num_tasks: int, input_dim: int) -> dict[str, dict]:
    """Constructor kwargs of every body, all at the reference MMoE's budget."""
    budget = parameter_count(build_architecture("mmoe", num_tasks, **REFERENCE),
                             input_dim)
    sizes = {"mmoe": dict(REFERENCE),
             "ple": units_for_budget("ple", num_tasks, input_dim, budget,
                                     **PLE_EXPERTS)}
    for name in ("single_task", "shared_bottom"):
        sizes[name] = units_for_budget(name, num_tasks, input_dim, budget,
                                       num_layers=1)
    sizes["esmm"] = sizes["single_task"]
    return sizes


def body_input_dim(prepared: PreparedData) -> int:
    """The body's input width: the user tower alone without items, else user,
    item and their product (`mtl_tf.model.ranking`)."""
    return EMBEDDING_DIM * (3 if prepared.data.items is not None else 1)


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


def run_and_report(benchmark: Benchmark, data: RecDataset, splits: Splits,
                   tasks: Sequence[TaskConfig], args: argparse.Namespace, *,
                   source: str, started: float) -> list[dict]:
    """Prepares `data` on its published `splits` once, runs the grid and
    reports it; `source` is the `data.source` the runs' config.json names."""
    base = apply_overrides(Config(schema=data.schema, tasks=tuple(tasks)), [
        f"data.source={source}", f"data.data_dir={args.data_dir}",
        f"data.seed={args.split_seed}", *base_overrides(args)])
    prepared = prepare_data(base, data, splits)
    rows = run_benchmark(benchmark, base, prepared, args)
    report(benchmark, rows, args, started)
    return rows


def run_benchmark(benchmark: Benchmark, base: Config, prepared: PreparedData,
                  args: argparse.Namespace) -> list[dict]:
    """Trains every architecture `args.seeds` times; one row of means and stds
    per architecture."""
    tasks = base.tasks
    num_tasks = sum(t.type in PAIR_TASK_TYPES for t in tasks)
    input_dim = body_input_dim(prepared)
    sizes = body_sizes(num_tasks, input_dim)
    names = args.architectures.split(",") if args.architectures else \
        architectures_of(tasks)
    unknown = sorted(set(names) - set(architectures_of(tasks)))
    if unknown:
        raise SystemExit(f"--architectures: unknown {unknown}; choose from "
                         f"{list(architectures_of(tasks))}.")
    unchained = tuple(dataclasses.replace(t, depends_on="") for t in tasks)
    rows = []
    for name in names:
        config = apply_overrides(dataclasses.replace(
            base, tasks=tasks if name == "esmm" else unchained),
            overrides_for(name, sizes[name]))
        scores: dict[str, list[float]] = {m.column: [] for m in benchmark.metrics}
        epochs, params = [], 0
        for seed in range(1, args.seeds + 1):
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as run_dir:
                result = run(apply_overrides(config, [f"train.seed={seed}"]),
                             run_dir, export=False, verbose=0, prepared=prepared)
            params = result["model"].count_params()
            losses = result["history"].get("val_total_loss", [])
            epochs.append(int(np.argmin(losses)) + 1 if losses
                          else result["training"]["epochs"])
            for metric in benchmark.metrics:
                value = result["metrics"].get(metric.key)
                if value is not None:
                    scores[metric.column].append(float(value))
            shown = ", ".join(f"{c} {v[-1]:.4f}" for c, v in scores.items() if v)
            print(f"  {name} seed {seed}: {time.perf_counter() - started:.0f} s, "
                  f"best epoch {epochs[-1]}, {shown}", flush=True)
        row = {"architecture": name, "body": _describe(sizes[name]),
               "body params": parameter_count(build_architecture(
                   "single_task" if name == "esmm" else name, num_tasks,
                   **sizes[name]), input_dim),
               "params": params, "seeds": args.seeds}
        for metric in benchmark.metrics:
            values = scores[metric.column]
            row[metric.column] = float(np.mean(values)) if values else None
            row[f"{metric.column} std"] = float(np.std(values)) if values else None
        row["best epoch"] = float(np.mean(epochs))
        published = benchmark.published.get(name, {})
        for metric in benchmark.metrics:
            if any(metric.column in p for p in benchmark.published.values()):
                row[f"published {metric.column}"] = published.get(metric.column)
        rows.append(row)
    return rows


def report(benchmark: Benchmark, rows: list[dict], args: argparse.Namespace,
           started: float) -> None:
    """Prints the table (mean +- std beside the published numbers) and writes
    `<name>.csv` and `<name>.png` to `args.out_dir`."""
    columns = list(dict.fromkeys(c for row in rows for c in row))
    shown = []
    for row in rows:
        cells = dict(row)
        for metric in benchmark.metrics:
            if row.get(metric.column) is not None:
                cells[metric.column] = (f"{row[metric.column]:.4f} ± "
                                        f"{row[metric.column + ' std']:.4f}")
        shown.append(cells)
    ran = {row["architecture"] for row in rows}
    for name, values in benchmark.published.items():
        if name not in ran and name not in ARCHITECTURES + ("esmm",):
            shown.append({"architecture": f"{name} (published only)",
                          **{f"published {c}": v for c, v in values.items()}})
    print(format_table(shown, [c for c in columns if not c.endswith(" std")]))
    print(f"total {time.perf_counter() - started:.0f} s")
    out = Path(args.out_dir)
    write_csv(rows, columns, out / f"{benchmark.name}.csv")
    plot(benchmark, rows, out / f"{benchmark.name}.png")


def _describe(kwargs: dict) -> str:
    return " ".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, tuple) else v}"
                    for k, v in kwargs.items())


def plot(benchmark: Benchmark, rows: list[dict], path: Path) -> None:
    """Mean test AUC (error bar: std over seeds) per plotted metric; the
    published numbers as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in benchmark.metrics if m.plot]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5),
                                squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        x = np.arange(len(rows))
        means = [row[metric.column] or 0.0 for row in rows]
        stds = [row[metric.column + " std"] or 0.0 for row in rows]
        axis.bar(x, means, yerr=stds, capsize=3, label="mtl_tf")
        published = [(i, row.get(f"published {metric.column}"))
                     for i, row in enumerate(rows)]
        published = [(i, v) for i, v in published if v is not None]
        if published:
            axis.scatter(*zip(*published), color="black", zorder=3,
                         label=benchmark.published_by)
        values = [v for _, v in published]
        low = min([m - s for m, s in zip(means, stds)] + values)
        high = max([m + s for m, s in zip(means, stds)] + values)
        axis.set_ylim(max(0.0, low - 0.02), min(1.0, high + 0.01) + 0.002)
        axis.set_xticks(x, [row["architecture"] for row in rows], fontsize=8)
        axis.set_title(f"{metric.column} (test)")
        axis.legend(fontsize=7)
    figure.suptitle(benchmark.title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
