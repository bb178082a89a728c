"""Task declarations: what each model output learns, from which label, with what loss.

Tasks are data, not code: a `TaskConfig` names an output, its type, label, loss,
weight and metrics, the example space it trains on, and optionally the task it
depends on (an ESMM chain, Ma et al., SIGIR 2018: the task's output is its own
conditional probability times its parent's output).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from mtl_tf import features as F

TASK_TYPES = ("regression", "binary", "multilabel", "retrieval")
# Per type, the allowed losses and metrics; the first of each is the default.
TASK_LOSSES = {"regression": ("mse", "huber"), "binary": ("bce",),
               "multilabel": ("bce",), "retrieval": ("softmax",)}
TASK_METRICS = {"regression": ("rmse", "mae"), "binary": ("auc", "accuracy"),
                "multilabel": ("auc",), "retrieval": ("top_k",)}
# "interactions": rows the user interacted with (watched); "impressions": those
# plus sampled items the user did not interact with (`data.impression_negatives`).
TASK_SPACES = ("interactions", "impressions")
# Multi-label tasks read their label from the item catalog, not from the example.
MULTILABEL_LABELS = (F.ITEM_GENRES,)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """One training objective; its `name` is the model output name.

    Attributes:
        name: output name, e.g. "rating", "like", "retrieval".
        type: "regression", "binary", "multilabel" (several independent binary
            labels, e.g. an item's genres; the head reads the item representation
            only, an auxiliary task on the item tower) or "retrieval" (two-tower
            softmax over in-batch and sampled candidates).
        label: the example feature holding the label (unused for retrieval;
            "movie_genres" for a multilabel task, read from the item catalog).
        weight: the task's weight in the total loss (fixed weighting; the starting
            point of the adaptive ones).
        loss: "" picks the type's default (mse / bce / softmax); regression also
            allows "huber".
        metrics: metric names reported during training; empty picks the type's
            default (rmse / auc / top_k); regression also allows "mae", binary
            "accuracy".
        depends_on: name of a binary task this binary task is conditional on
            (ESMM): the output is p(task | parent) * p(parent), trained against
            `label` on the impression space; the conditional probability is also
            an output, `<name>_given_<parent>`.
        space: "interactions" (default: only rows the user interacted with) or
            "impressions" (also the sampled non-interactions, see
            `data.impression_negatives`); tasks in a `depends_on` chain need it.
    """

    name: str
    type: str
    label: str = ""
    weight: float = 1.0
    loss: str = ""
    metrics: tuple[str, ...] = ()
    depends_on: str = ""
    space: str = "interactions"

    def __post_init__(self) -> None:
        where = f"tasks.{self.name}"
        if self.type not in TASK_TYPES:
            raise ValueError(f"{where}.type must be one of {list(TASK_TYPES)}. "
                             f"Received: {self.type!r}.")
        if self.weight < 0:
            raise ValueError(f"{where}.weight must be >= 0. "
                             f"Received: weight={self.weight}.")
        if self.type != "retrieval" and not self.label:
            raise ValueError(f"{where}: a {self.type} task needs a `label` "
                             "feature name.")
        if self.type == "multilabel" and self.label not in MULTILABEL_LABELS:
            raise ValueError(f"{where}.label: multilabel tasks read an item feature "
                             f"of the catalog, one of {list(MULTILABEL_LABELS)}. "
                             f"Received: {self.label!r}.")
        loss = self.loss or TASK_LOSSES[self.type][0]
        if loss not in TASK_LOSSES[self.type]:
            raise ValueError(f"{where}.loss must be one of "
                             f"{list(TASK_LOSSES[self.type])} for a {self.type} task. "
                             f"Received: {self.loss!r}.")
        metrics = tuple(self.metrics) or TASK_METRICS[self.type][:1]
        unknown = [m for m in metrics if m not in TASK_METRICS[self.type]]
        if unknown:
            raise ValueError(f"{where}.metrics: {unknown} unknown for a {self.type} "
                             f"task; allowed: {list(TASK_METRICS[self.type])}.")
        if self.space not in TASK_SPACES:
            raise ValueError(f"{where}.space must be one of {list(TASK_SPACES)}. "
                             f"Received: {self.space!r}.")
        if self.depends_on and self.type != "binary":
            raise ValueError(f"{where}.depends_on: only binary tasks can depend on "
                             f"another task. Received type {self.type!r}.")
        # Frozen dataclass: fill in the defaults once, so configs compare equal.
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "metrics", metrics)


def validate_tasks(tasks: Sequence[TaskConfig]) -> None:
    """Checks the task list as a whole: names, retrieval count, dependency chains.

    Raises:
        ValueError: naming the offending task field and the fix.
    """
    names = [t.name for t in tasks]
    if not tasks:
        raise ValueError("Config needs at least one task.")
    if len(set(names)) != len(names):
        raise ValueError(f"tasks have duplicate names: {names}.")
    retrieval = [t.name for t in tasks if t.type == "retrieval"]
    if len(retrieval) > 1:
        raise ValueError(f"At most one retrieval task is supported. Received: "
                         f"{retrieval}.")
    by_name = {t.name: t for t in tasks}
    for task in tasks:
        if not task.depends_on:
            continue
        parent = by_name.get(task.depends_on)
        if parent is None:
            raise ValueError(f"tasks.{task.name}.depends_on={task.depends_on!r} is "
                             f"not a task; tasks: {names}.")
        if parent.type != "binary":
            raise ValueError(f"tasks.{task.name}.depends_on: the parent task "
                             f"{parent.name!r} must be binary (a probability). "
                             f"Received type {parent.type!r}.")
        for member in (task, parent):
            if member.space != "impressions":
                raise ValueError(
                    f"tasks.{member.name}.space: tasks of a depends_on chain train "
                    "on all impressions (ESMM); set "
                    f"tasks.{member.name}.space=impressions.")
    task_order(tasks)  # Raises on cycles.


def task_order(tasks: Sequence[TaskConfig]) -> list[TaskConfig]:
    """The tasks with every `depends_on` parent before its children.

    Raises:
        ValueError: if the dependencies form a cycle.
    """
    by_name = {t.name: t for t in tasks}
    ordered: list[TaskConfig] = []
    state: dict[str, str] = {}

    def visit(task: TaskConfig, path: tuple[str, ...]) -> None:
        if state.get(task.name) == "done":
            return
        if state.get(task.name) == "open":
            raise ValueError(f"tasks: depends_on forms a cycle: "
                             f"{' -> '.join(path + (task.name,))}.")
        state[task.name] = "open"
        if task.depends_on in by_name:
            visit(by_name[task.depends_on], path + (task.name,))
        state[task.name] = "done"
        ordered.append(task)

    for task in tasks:
        visit(task, ())
    return ordered


def conditional_output_name(task: TaskConfig) -> str:
    """Name of the conditional-probability output of a `depends_on` task."""
    return f"{task.name}_given_{task.depends_on}"


DEFAULT_TASKS = (
    TaskConfig("retrieval", "retrieval", weight=1.0),
    TaskConfig("rating", "regression", label=F.RATING, weight=1.0),
    TaskConfig("like", "binary", label=F.LIKE, weight=0.5),
)

# ESMM on MovieLens: p(watch) on impressions and p(like) = p(watch) p(like | watch),
# beside retrieval and rating on the watched rows.
ESMM_TASKS = (
    TaskConfig("retrieval", "retrieval", weight=1.0),
    TaskConfig("rating", "regression", label=F.RATING, weight=1.0),
    TaskConfig("watch", "binary", label=F.WATCH, weight=0.5, space="impressions"),
    TaskConfig("like", "binary", label=F.LIKE, weight=0.5, depends_on="watch",
               space="impressions"),
)

# The item-genre auxiliary task (the seed documents' "item feature" task).
GENRE_TASK = TaskConfig("genres", "multilabel", label=F.ITEM_GENRES, weight=1.0)
