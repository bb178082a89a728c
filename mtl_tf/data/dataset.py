"""The in-memory form every data source produces: interactions, items and users.

`RecDataset.from_frames` is the pandas entry point (and what the `files` source
calls): an interactions table, plus optional item and user side tables joined on
the schema's id features, checked and converted to the canonical column forms
of `mtl_tf.data.columns`.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import pandas as pd

from mtl_tf.data.cleaning import (  # noqa: F401  (CleaningReport re-exported)
    HELPER_COLUMNS,
    LENIENT_HINT,
    CleaningReport,
    row_location,
)
from mtl_tf.data.columns import (
    as_list_column,
    coerce_feature,
    to_float,
    to_timestamps,
)
from mtl_tf.schema import Feature, Schema

# Kinds of label columns: "number" (regression, binary, `where` and weight
# columns) or "list" (multilabel).
LABEL_KINDS = ("number", "list")


@dataclasses.dataclass
class RecDataset:
    """Interactions plus item and user side tables, shaped by a `Schema`.

    Attributes:
        schema: the declared features.
        interactions: one row per event: the id features, context features,
            label columns and the timestamp (and, from files, the `_line` /
            `_file` helper columns that error messages point at).
        items: the item catalog, one row per item (the item id and item-side
            features), including items nobody interacted with; None when the
            schema has no item key.
        users: one row per user (user id and user-side features); None when the
            schema has no user key, in which case the user features are
            columns of `interactions`.
        name: a short label used in logs ("synthetic", "ml-100k", ...).
        report: what cleaning dropped while loading.
    """

    schema: Schema
    interactions: pd.DataFrame
    items: pd.DataFrame | None
    users: pd.DataFrame | None
    name: str
    report: CleaningReport = dataclasses.field(default_factory=CleaningReport)

    def __post_init__(self) -> None:
        for table_name, table, columns in self._layout():
            if table is None:
                if columns:
                    raise ValueError(f"RecDataset {self.name!r}: schema features "
                                     f"{columns} need a {table_name} table.")
                continue
            missing = [c for c in columns if c not in table.columns]
            if missing:
                raise ValueError(
                    f"RecDataset {self.name!r}: the {table_name} table is missing "
                    f"columns {missing}; columns present: {list(table.columns)}.")

    def _layout(self) -> list[tuple[str, pd.DataFrame | None, list[str]]]:
        schema = self.schema
        keys = [f.name for f in (schema.user_id, schema.item_id) if f is not None]
        # A history given in the data belongs to its interaction.
        histories = [f.name for f in schema.stored_features if f.kind == "sequence"]
        user_side = [f.name for f in schema.on_side("user", derived=False)
                     if f.kind != "id" and f.name not in histories]
        item_side = [f.name for f in schema.on_side("item") if f.kind != "id"]
        context = [f.name for f in schema.on_side("context", derived=False)
                   if f.name not in histories]
        in_interactions = (keys + context + histories + schema.history_columns
                           + ([] if schema.user_id else user_side))
        if schema.timestamp:
            in_interactions.append(schema.timestamp)
        return [("interactions", self.interactions, in_interactions),
                ("items", self.items,
                 [schema.item_id.name] + item_side if schema.item_id else []),
                ("users", self.users,
                 [schema.user_id.name] + user_side if schema.user_id else [])]

    @property
    def num_users(self) -> int:
        return 0 if self.users is None else len(self.users)

    @property
    def num_items(self) -> int:
        return 0 if self.items is None else len(self.items)

    @property
    def item_ids(self) -> np.ndarray:
        """Every catalog item id, as strings, in table order."""
        return self.items[self.schema.item_id.name].astype(str).to_numpy()

    def with_interactions(self, interactions: pd.DataFrame) -> "RecDataset":
        """Returns a copy that shares the side tables but holds other interactions."""
        return dataclasses.replace(self,
                                   interactions=interactions.reset_index(drop=True))

    def joined(self, interactions: pd.DataFrame | None = None) -> pd.DataFrame:
        """Interactions with their item and user side columns joined on.

        A row whose item or user is missing from a side table gets missing
        values ("" / NaN / empty lists), which the model maps to OOV rows.
        """
        rows = self.interactions if interactions is None else interactions
        joined = rows.reset_index(drop=True)
        for key, table in ((self.schema.item_id, self.items),
                           (self.schema.user_id, self.users)):
            if key is not None and table is not None and len(table.columns) > 1:
                joined = joined.merge(table, on=key.name, how="left",
                                      suffixes=("", "_side"))
        for feature in self.schema.stored_features:
            column = joined[feature.name]
            if column.isna().any():
                joined[feature.name] = fill_missing(column, feature)
        return joined

    @classmethod
    def from_frames(cls, schema: Schema, interactions: pd.DataFrame,
                    items: pd.DataFrame | None = None,
                    users: pd.DataFrame | None = None, *,
                    labels: Mapping[str, str] | None = None, name: str = "frames",
                    lenient: bool = False, sources: Mapping[str, str] | None = None
                    ) -> "RecDataset":
        """Checks and converts pandas tables into a `RecDataset`.

        Item-side (user-side) features are read from `items` (`users`) when
        given, else from the interactions, where each item's (user's) last row
        wins. Interactions whose item or user is missing from a given side
        table raise (strict) or are dropped and counted (lenient).

        Example:
            >>> schema = Schema((Feature("user", "user", "id"),
            ...                  Feature("item", "item", "id"),
            ...                  Feature("price", "item", "numeric")))
            >>> log = pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"],
            ...                     "price": [1.0, 2.5], "click": [1, 0]})
            >>> data = RecDataset.from_frames(schema, log, labels={"click": "number"})
            >>> data.num_items, list(data.interactions.columns)
            (2, ['user', 'item', 'click'])

        Args:
            schema: the declared features.
            interactions: the event log.
            items, users: optional side tables.
            labels: label columns the tasks read, each "number" or "list" (as
                `task_config.label_columns` returns them).
            name: the data set's name in logs.
            lenient: drop and count malformed rows instead of raising.
            sources: file names of the tables (keys "interactions", "items",
                "users") for messages; `_file` / `_line` helper columns, when
                present, point messages at the exact line.

        Raises:
            ValueError: a schema or label column missing from its table (the
                message lists the columns present), a value that does not parse
                for its kind, a duplicate side-table key, or an unknown
                reference (strict mode).
        """
        labels = dict(labels or {})
        sources = {"interactions": "<interactions>", "items": "<items>",
                   "users": "<users>", **(sources or {})}
        report = CleaningReport(rows_read=len(interactions))
        frames = {"interactions": interactions.reset_index(drop=True),
                  "items": None if items is None else items.reset_index(drop=True),
                  "users": None if users is None else users.reset_index(drop=True)}
        where = _feature_tables(schema, items is not None, users is not None)
        # A label lives in the interactions, or else in the side table that has
        # it (e.g. an item's tags for a multilabel task).
        label_table = {
            column: next((t for t in ("interactions", "items", "users")
                          if frames[t] is not None and column in frames[t].columns),
                         "interactions") for column in labels}
        for table in ("interactions", "items", "users"):
            wanted = [f for f in schema.stored_features if table in where[f.name]]
            wanted_labels = [c for c in labels if label_table[c] == table]
            if table == "interactions":
                # What derived parallel lists read, as categorical strings.
                wanted += [Feature(c, "context", "categorical")
                           for c in schema.history_columns]
                if schema.timestamp:
                    wanted_labels.append(schema.timestamp)
            frame = frames[table]
            if frame is None:
                continue
            missing = [f.name for f in wanted if f.name not in frame.columns]
            missing += [c for c in wanted_labels if c not in frame.columns]
            if missing:
                present = [c for c in frame.columns if c not in HELPER_COLUMNS]
                raise ValueError(
                    f"{sources[table]}: columns {missing} (declared in the schema "
                    f"or read by a task) are missing; columns present: {present}. "
                    "Fix the column names in the schema / tasks or in the file.")
            bad = np.zeros(len(frame), bool)
            out = frame.copy()
            for feature in wanted:
                out[feature.name], failed = coerce_feature(frame, feature,
                                                           sources[table], lenient)
                bad |= failed
            for column in wanted_labels:
                if labels.get(column) == "list":
                    out[column] = as_list_column(frame[column])
                elif column == schema.timestamp:
                    out[column], failed = to_timestamps(frame, column,
                                                        sources[table], lenient)
                    bad |= failed
                else:
                    out[column], failed = to_float(frame, column, sources[table],
                                                   lenient)
                    bad |= failed
            report.malformed_rows += int(bad.sum())
            frames[table] = out.loc[~bad].reset_index(drop=True)
        interactions = frames["interactions"]
        side_tables = {}
        for side, key, table in (("item", schema.item_id, "items"),
                                 ("user", schema.user_id, "users")):
            if key is None:
                continue
            # A history (sequence) belongs to its interaction, not to the user.
            columns = [key.name] + [f.name for f in
                                    schema.on_side(side, derived=False)
                                    if f.kind not in ("id", "sequence")]
            columns += [c for c in labels if label_table[c] == table]
            if frames[table] is None:
                side_tables[table] = (interactions[columns]
                                      .drop_duplicates(key.name, keep="last")
                                      .reset_index(drop=True))
            else:
                side_tables[table] = _unique_keys(frames[table], key.name,
                                                  sources[table], lenient, report)
                side_tables[table] = side_tables[table][columns]
            interactions = _known_references(interactions, side_tables[table],
                                             key.name, side, sources, lenient,
                                             report)
            interactions = interactions.drop(columns=[c for c in columns[1:]
                                                      if c in interactions])
        report.rows_kept = len(interactions)
        return cls(schema, interactions.reset_index(drop=True),
                   side_tables.get("items"), side_tables.get("users"), name, report)


def fill_missing(column: pd.Series, feature: Feature) -> pd.Series:
    """Missing values of a joined column in the canonical form of its kind."""
    if feature.is_list:
        return pd.Series([v if isinstance(v, tuple) else () for v in column],
                         index=column.index, dtype=object)
    if feature.kind == "numeric":
        return column.astype(np.float64)
    if feature.dtype == "string":
        return column.fillna("").astype(str)
    if feature.dtype == "bool":
        return column.fillna(False).astype(bool)
    return column.fillna(0).astype(feature.dtype)


def _feature_tables(schema: Schema, has_items: bool, has_users: bool
                    ) -> dict[str, tuple[str, ...]]:
    """Which tables must hold each feature column."""
    where = {}
    for feature in schema.stored_features:
        if feature.kind == "sequence":  # One history per interaction.
            where[feature.name] = ("interactions",)
        elif feature.kind == "id":
            table = {"item": "items", "user": "users"}[feature.side]
            has_table = has_items if feature.side == "item" else has_users
            where[feature.name] = ("interactions",) + ((table,) if has_table else ())
        elif feature.side == "item" and has_items:
            where[feature.name] = ("items",)
        elif feature.side == "user" and has_users and schema.user_id is not None:
            where[feature.name] = ("users",)
        else:
            where[feature.name] = ("interactions",)
    return where


def _unique_keys(table: pd.DataFrame, key: str, source: str, lenient: bool,
                 report: CleaningReport) -> pd.DataFrame:
    duplicated = table[key].duplicated(keep="first").to_numpy()
    if duplicated.any() and not lenient:
        pos = int(np.argmax(duplicated))
        raise ValueError(f"{row_location(table, pos, source)}: key {key!r} "
                         f"{table[key].iloc[pos]!r} appears twice in the side table; "
                         f"keep one row per key, or {LENIENT_HINT}.")
    report.duplicate_rows += int(duplicated.sum())
    return table.loc[~duplicated].reset_index(drop=True)


def _known_references(interactions: pd.DataFrame, table: pd.DataFrame, key: str,
                      side: str, sources: Mapping[str, str], lenient: bool,
                      report: CleaningReport) -> pd.DataFrame:
    unknown = ~interactions[key].isin(table[key]).to_numpy()
    if unknown.any():
        if not lenient:
            pos = int(np.argmax(unknown))
            raise ValueError(
                f"{row_location(interactions, pos, sources['interactions'])}: "
                f"{key!r} {interactions[key].iloc[pos]!r} is not in the {side} "
                f"table ({sources[side + 's']}). Add it there, or {LENIENT_HINT}.")
        counter = "unknown_item_rows" if side == "item" else "unknown_user_rows"
        setattr(report, counter, getattr(report, counter) + int(unknown.sum()))
    return interactions.loc[~unknown].reset_index(drop=True)
