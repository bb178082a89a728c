"""Task declarations: what each model output learns, from which label, with what loss.

Tasks are data, not code: a `TaskConfig` names an output, its type, label column,
loss, weight and metrics, the rows it trains on (`where`, a label mask) and their
`sample_weight`, and optionally the task it depends on (an ESMM chain, Ma et al.,
SIGIR 2018: the task's output is its own conditional probability times its
parent's output). Labels are plain columns of the data; no task names a feature.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from mtl_tf.schema import Schema, parse_condition

TASK_TYPES = ("regression", "binary", "multilabel", "retrieval")
# Per type, the allowed losses and metrics; the first of each is the default.
TASK_LOSSES = {"regression": ("mse", "huber"), "binary": ("bce",),
               "multilabel": ("bce",), "retrieval": ("softmax",)}
TASK_METRICS = {"regression": ("rmse", "mae"), "binary": ("auc", "accuracy"),
                "multilabel": ("auc",), "retrieval": ("top_k",)}


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """One training objective; its `name` is the model output name.

    Attributes:
        name: output name, e.g. "rating", "click", "retrieval".
        type: "regression" (any number), "binary" (a 0/1 column), "multilabel"
            (a list column, e.g. an item's tags: one probability per value of
            the training vocabulary; the head reads the item representation
            only, an auxiliary task on the item tower) or "retrieval" (two-tower
            softmax over in-batch and sampled candidates).
        label: the column holding the label (unused for retrieval).
        weight: the task's weight in the total loss (fixed weighting; the starting
            point of the adaptive ones).
        loss: "" picks the type's default (mse / bce / softmax); regression also
            allows "huber".
        metrics: metric names reported during training; empty picks the type's
            default (rmse / auc / top_k); regression also allows "mae", binary
            "accuracy".
        where: the rows the task trains and is scored on, e.g. "click == 1"
            (`mtl_tf.schema.condition`); "" is every row. For retrieval it
            selects the positives: other rows (impressions without the
            positive label) never count as retrieval positives.
        sample_weight: a column of per-row loss weights ("" for 1).
        depends_on: name of a binary task this binary task is conditional on
            (ESMM): the output is p(task | parent) * p(parent), trained against
            `label` on every row; the conditional probability is also an output,
            `<name>_given_<parent>`, scored on the parent's positive rows.
    """

    name: str
    type: str
    label: str = ""
    weight: float = 1.0
    loss: str = ""
    metrics: tuple[str, ...] = ()
    where: str = ""
    sample_weight: str = ""
    depends_on: str = ""

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
                             "column name.")
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
        parse_condition(self.where, f"{where}.where")  # Raises on bad syntax.
        if self.depends_on and self.type != "binary":
            raise ValueError(f"{where}.depends_on: only binary tasks can depend on "
                             f"another task. Received type {self.type!r}.")
        # Frozen dataclass: fill in the defaults once, so configs compare equal.
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "metrics", metrics)

    @property
    def condition(self):
        """The parsed `where`."""
        return parse_condition(self.where, f"tasks.{self.name}.where")


def label_columns(tasks: Sequence[TaskConfig]) -> dict[str, str]:
    """Every column the tasks read, each "number" or "list" (multilabel labels):
    labels, the columns of `where` conditions and sample weights."""
    columns: dict[str, str] = {}
    for task in tasks:
        if task.label and task.type != "retrieval":
            columns[task.label] = "list" if task.type == "multilabel" else "number"
        for column in task.condition.columns + [task.sample_weight]:
            if column:
                columns.setdefault(column, "number")
    return columns


def validate_tasks_against_schema(tasks: Sequence[TaskConfig], schema: Schema
                                  ) -> None:
    """Checks that tasks fit the schema: no label is a model input (leakage),
    and retrieval has a user and an item key.

    Raises:
        ValueError: naming the task, the column and the fix.
    """
    for task in tasks:
        for kind, column in (("label", task.label), ("sample_weight",
                                                     task.sample_weight)):
            if column and task.type != "retrieval" and column in schema:
                raise ValueError(
                    f"tasks.{task.name}.{kind}={column!r} is also a model input "
                    f"(schema feature, side {schema[column].side!r}): the model "
                    "would read its own answer. Remove it from the schema "
                    "features, or predict another column.")
        if task.type == "retrieval" and (schema.user_id is None
                                         or schema.item_id is None):
            raise ValueError(
                f"tasks.{task.name}: a retrieval task needs a user key and an "
                "item key (schema features with kind 'id'); this schema has "
                f"user id {getattr(schema.user_id, 'name', None)!r} and item id "
                f"{getattr(schema.item_id, 'name', None)!r}. Remove the "
                "retrieval task to train the ranking tasks alone.")


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
            if member.where:
                raise ValueError(
                    f"tasks.{member.name}.where={member.where!r}: tasks of a "
                    "depends_on chain train on every row (ESMM's entire space); "
                    f"remove the condition (the conditional output "
                    f"{conditional_output_name(task)!r} is scored on the rows "
                    f"where {parent.label!r} is 1).")
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
