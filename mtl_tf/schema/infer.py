"""Drafts a `Schema` and a task list from data (``python -m mtl_tf.schema infer``).

The draft is a starting point to read and edit, not a decision: each column's
guess comes with a note saying why (`Draft.notes`). The heuristics, in the
order they apply:

1. Keys. The user id is a column named like ``user_id``, ``user``, ``uid``,
   ``userId``, ``customer_id`` or ``*_user_id``; the item id one named like
   ``item_id``, ``item``, ``iid``, ``itemId`` or ``<noun>_id`` for an item
   noun (``movie_id``, ``video_id``, ``product_id``, ``song_id``, ...). A side
   table's key is the column it shares with the interactions (the named id
   first); without a named item (user) id, that shared column is the id.
2. Labels (interactions only; labels are never features). A column whose
   values are all 0/1 (numbers, "0"/"1", true/false) is a label: it gets a
   binary task. When label B is 1 only on rows where label A is 1 and A has
   more positives (a funnel: click, then purchase), B's task trains on
   ``"where": "A == 1"`` (the nearest such A). A numeric column named like a
   rating, score, label, target, watch / dwell / play time or duration is a
   regression label, unless it has one value per item or per user (a video's
   duration is an item feature); it gets a `where` too when it is non-zero
   only on rows where a binary label is 1. With a user id and an item id a
   retrieval task is suggested; its positives are the rows where the
   click-like label (named click / clicked / is_click / ..., else the first
   binary label that no funnel conditions) is 1, or every row without one.
3. Timestamp. A column named like ``timestamp``, ``ts``, ``time``, ``date``,
   ``event_time``, ``created_at`` holding dates or epoch numbers (>= 1e8),
   else the first string column that parses as dates.
4. Sides. Items-table columns are item features and users-table columns user
   features. An interactions column with one value per item (every item seen
   twice or more has a single value) is an item feature, else one with one
   value per user a user feature, otherwise context. When an items (users)
   file is given, interaction columns stay context: item (user) features are
   read from that file.
5. Kinds. Each feature column's kind (categorical, numeric with an optional
   ``log1p``, text, or multi_categorical, with a `separator` for strings) and
   hashing past 100000 distinct values are guessed from its profile: see
   `mtl_tf.schema.profile`.
6. Left out: constant or empty columns, a second date column, and strings
   unique per row of the interactions (an event id).

Example:
    >>> log = pd.DataFrame({"user_id": ["u1", "u2", "u1"],
    ...                     "item_id": ["a", "b", "b"],
    ...                     "click": [1, 0, 1]})
    >>> schema, tasks = infer_schema(log)
    >>> schema.names, [t["name"] for t in tasks]
    (['user_id', 'item_id'], ['click', 'retrieval'])
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pandas as pd

from mtl_tf.schema.condition import parse_condition
from mtl_tf.schema.feature import Feature, Schema
from mtl_tf.schema.profile import (
    HASH_ABOVE,
    HASH_BUCKETS,
    Profile,
    guess_kind,
    snake_case,
)

__all__ = ["HASH_BUCKETS", "Draft", "draft_schema", "infer_schema"]

# The `_line` / `_file` columns `mtl_tf.data.files` adds (cleaning.HELPER_COLUMNS).
_HELPER_COLUMNS = ("_line", "_file")
_ITEM_NOUNS = ("item", "movie", "video", "product", "song", "track", "book",
               "article", "news", "ad", "post", "doc", "document", "content",
               "offer", "listing", "game", "recipe", "business", "restaurant",
               "hotel", "course", "music", "photo", "image", "episode", "show",
               "app", "job", "question", "place", "venue", "poi", "anime", "sku")
_USER_NOUNS = ("customer", "client", "member", "visitor", "account", "viewer",
               "reader", "buyer", "person", "player", "listener")
_REGRESSION_NAME = re.compile(
    r"(^|_)(rating|ratings|score|label|target)($|_)"
    r"|^(watch|dwell|play|view|listen|read|stay)_?(time|duration|seconds|secs|ms)$"
    r"|^(duration|watch_duration|time_spent)$")
_TIME_NAME = re.compile(r"(^|_)(ts|timestamp|time|date|datetime|created_at|"
                        r"updated_at|event_time)($|_)")
_CLICK_NAMES = ("click", "clicked", "clicks", "is_click", "is_clicked", "watch",
                "watched", "view", "viewed", "play", "played")


@dataclasses.dataclass(frozen=True)
class Draft:
    """An inferred schema, the suggested tasks and why each column got its role.

    Attributes:
        schema: the draft `Schema` (features and timestamp).
        tasks: task objects for a config's "tasks" section.
        notes: per column, in table order, its role and the reason
            (e.g. ``"item numeric: one value per item; log1p: max 4999 > ..."``).
    """

    schema: Schema
    tasks: list[dict[str, Any]]
    notes: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """The config sections: ``{"schema": ..., "tasks": [...]}``."""
        return {"schema": self.schema.to_dict(), "tasks": list(self.tasks)}


def infer_schema(interactions: pd.DataFrame, items: pd.DataFrame | None = None,
                 users: pd.DataFrame | None = None
                 ) -> tuple[Schema, list[dict[str, Any]]]:
    """A draft schema and suggested tasks for a log and optional side tables.

    See the module docstring (and `mtl_tf.schema.profile` for kinds) for the
    heuristics, and `draft_schema` for the reasons behind each guess.

    Raises:
        ValueError: a side table shares no column with the interactions, or
            several without a named id among them.
    """
    draft = draft_schema(interactions, items, users)
    return draft.schema, draft.tasks


def draft_schema(interactions: pd.DataFrame, items: pd.DataFrame | None = None,
                 users: pd.DataFrame | None = None) -> Draft:
    """Like `infer_schema`, with a note per column on how it was guessed.

    Example:
        >>> draft = draft_schema(events, items=catalog)
        >>> draft.notes["price"]
        'item numeric: column of the items file; numbers in [1, 9]: standardized'

    Args:
        interactions: the event log (columns as strings, as CSV files are
            read, or with native types); `_line` / `_file` are ignored.
        items, users: optional side tables, joined on the column they share
            with the log.

    Returns:
        The draft schema, the suggested tasks and the notes, in table order.

    Raises:
        ValueError: as `infer_schema`.
    """
    log = interactions.drop(columns=[c for c in _HELPER_COLUMNS
                                     if c in interactions.columns])
    tables = {name: None if table is None else
              table.drop(columns=[c for c in _HELPER_COLUMNS if c in table.columns])
              for name, table in (("items", items), ("users", users))}
    profiles = {c: Profile.of(log[c]) for c in log.columns}
    notes: dict[str, str] = {}
    user_id = _named_key(profiles, "user")
    item_id = _named_key(profiles, "item", exclude=user_id)
    keys = {"user": user_id, "item": item_id}
    for side, table in (("item", tables["items"]), ("user", tables["users"])):
        if table is not None:
            keys[side] = _side_key(log, table, keys[side], side)
    features: list[Feature] = []
    for side in ("user", "item"):
        if keys[side]:
            column = keys[side]
            article = "an" if side == "item" else "a"
            how = (f"named like {article} {side} id" if column in (user_id, item_id)
                   else f"the column the {side}s file shares with the log")
            features.append(_id_feature(column, side, log[column], notes, how))

    timestamp, other_times = _timestamp(profiles, set(keys.values()), notes)
    taken = {keys["user"], keys["item"], timestamp, *other_times} - {None, ""}
    binary = {c: p.binary_values for c, p in profiles.items()
              if c not in taken and p.binary and p.distinct > 1}
    regression, label_like = {}, {}
    for column, profile in profiles.items():
        if column in taken or column in binary or profile.numbers is None:
            continue
        if _REGRESSION_NAME.search(snake_case(column)) and profile.distinct > 1:
            per = _constant_per(log, profile, keys)
            if per:
                label_like[column] = (f"; named like a label, but one value per "
                                      f"{per}: a feature, not a task")
            else:
                regression[column] = profile.numbers
    tasks = _tasks(binary, regression, keys, profiles, notes)
    taken |= set(binary) | set(regression)

    for column, profile in profiles.items():
        if column in taken:
            continue
        side, why_side = _log_side(log, column, profile, keys, tables)
        if side is None:
            notes[column] = f"left out: {why_side}"
            continue
        units = _units(log, keys, side)
        feature = _feature(column, side, profile, units, notes, why_side,
                           unique_rows=side == "context")
        notes[column] += label_like.get(column, "")
        if feature is not None:
            features.append(feature)
    for side, table_name in (("item", "items"), ("user", "users")):
        table = tables[table_name]
        if table is None:
            continue
        for column in table.columns:
            if column == keys[side]:
                continue
            if column in taken or column in [f.name for f in features]:
                notes[f"{table_name}:{column}"] = (
                    f"left out of the {table_name} file: {column!r} is already "
                    "a key, label or feature")
                continue
            where = f"column of the {table_name} file"
            if column in log.columns:
                where += " (its copy in the log is ignored)"
            profile = Profile.of(table[column])
            feature = _feature(column, side, profile, len(table), notes, where,
                               unique_rows=False)
            if feature is not None:
                features.append(feature)
    order = [*log.columns, *(c for t in tables.values() if t is not None
                             for c in t.columns)]
    ordered = {c: notes[c] for c in dict.fromkeys(order) if c in notes}
    ordered.update((c, note) for c, note in notes.items() if c not in ordered)
    return Draft(Schema(tuple(features), timestamp), tasks, ordered)


def _key_rank(name: str, side: str) -> int | None:
    """How surely a column name is the side's key (0 best), or None."""
    snake = snake_case(name)
    if side == "user":
        nouns, exact, fallback = _USER_NOUNS, ("user", "uid", "userid"), "user"
    else:
        nouns, exact, fallback = _ITEM_NOUNS, ("item", "iid", "itemid", "sku",
                                               "asin"), "item"
    if snake == f"{fallback}_id":
        return 0
    if snake in exact:
        return 1
    if any(snake in (f"{noun}_id", f"{noun}id") for noun in nouns):
        return 2
    if snake.endswith(f"_{fallback}_id"):
        return 3
    return None


def _named_key(profiles: dict[str, Profile], side: str, exclude: str | None = None
               ) -> str | None:
    ranked = [(rank, i, column) for i, (column, profile) in enumerate(profiles.items())
              if column != exclude and not profile.lists and not profile.binary
              and (rank := _key_rank(column, side)) is not None]
    return min(ranked)[2] if ranked else None


def _side_key(log: pd.DataFrame, table: pd.DataFrame, named: str | None, side: str
              ) -> str:
    shared = [c for c in table.columns if c in log.columns]
    if named in shared:
        return named
    ranked = [c for c in shared if _key_rank(c, side) is not None]
    unique = [c for c in shared if table[c].is_unique]
    for candidates in (ranked, unique if len(unique) == 1 else [],
                       shared if len(shared) == 1 else []):
        if candidates:
            return candidates[0]
    raise ValueError(
        f"the {side}s file and the interactions share "
        + (f"columns {shared}, none of them named like a {side} id" if shared
           else f"no column (the {side}s file has {list(table.columns)}, the log "
                f"has {list(log.columns)})")
        + f"; give the {side} id the same name in both, e.g. {side}_id.")


def _id_feature(column: str, side: str, series: pd.Series, notes: dict[str, str],
                how: str) -> Feature:
    distinct = series.nunique()
    notes[column] = f"{side} id: {how}; {distinct} distinct values"
    if distinct > HASH_ABOVE:
        notes[column] += f" (> {HASH_ABOVE}: hashed)"
        return Feature(column, side, "id", hash_buckets=HASH_BUCKETS)
    return Feature(column, side, "id")


def _timestamp(profiles: dict[str, Profile], keys: set, notes: dict[str, str]
               ) -> tuple[str, list[str]]:
    """The timestamp column ("" if none) and the other time columns."""
    named, dated = [], []
    for column, profile in profiles.items():
        if column in keys or profile.lists or profile.binary:
            continue
        snake = snake_case(column)
        epoch = (profile.numbers is not None and profile.count
                 and np.nanmin(profile.numbers) >= 1e8)
        if profile.dates or epoch:
            if _TIME_NAME.search(snake) and not _REGRESSION_NAME.search(snake):
                named.append((snake not in ("timestamp", "ts", "event_time",
                                            "time"), column))
            elif profile.dates:
                dated.append(column)
    ordered = [c for _, c in sorted(named, key=lambda rank: rank[0])] + dated
    if not ordered:
        return "", []
    chosen = ordered[0]
    form = "dates" if profiles[chosen].dates else "epoch numbers"
    reason = "named like a time" if chosen not in dated else "parses as dates"
    notes[chosen] = f"timestamp: {reason}, holds {form} (orders temporal splits)"
    for other in ordered[1:]:
        notes[other] = ("left out: a second time column; derive features from "
                        "it (hour, weekday) if they matter")
    return chosen, ordered[1:]


def _constant_per(log: pd.DataFrame, profile: Profile,
                  keys: dict[str, str | None]) -> str:
    """"item" / "user" if the column has one value per item / user, else ""."""
    for side in ("item", "user"):
        key = keys[side]
        if key and key in log.columns and _one_value_per(log[key], profile.hashable):
            return side
    return ""


def _one_value_per(key: pd.Series, values: pd.Series) -> bool:
    """Whether every key seen twice or more has a single value (evidence needed:
    False when no key repeats)."""
    groups = pd.DataFrame({"key": key.astype(str).to_numpy(),
                           "value": values.to_numpy(object)}).groupby("key")
    sizes = groups.size()
    repeated = sizes[sizes >= 2].index
    if not len(repeated):
        return False
    counts = groups["value"].nunique(dropna=False)
    return bool((counts.loc[repeated] <= 1).all())


def _log_side(log: pd.DataFrame, column: str, profile: Profile,
              keys: dict[str, str | None], tables: dict[str, pd.DataFrame | None]
              ) -> tuple[str | None, str]:
    """The side of an interactions column and why (side None: left out)."""
    for side, table_name in (("item", "items"), ("user", "users")):
        table = tables[table_name]
        if table is not None and column in table.columns:
            return None, f"also a column of the {table_name} file, read from there"
    per = _constant_per(log, profile, keys)
    if per and tables[f"{per}s"] is None:
        return per, f"one value per {per}"
    if per:
        article = "an" if per == "item" else "a"
        return "context", (f"one value per {per}, but the {per}s file has no such "
                           f"column (move it there to make it {article} {per} "
                           "feature)")
    varies = [f"per {s}" for s in ("user", "item") if keys[s]]
    return "context", ("varies " + " and ".join(varies) if varies
                       else "no user or item id to attach it to")


def _units(log: pd.DataFrame, keys: dict[str, str | None], side: str) -> int:
    """Rows that carry one value of a feature on `side`: its keys, or events."""
    key = keys.get(side)
    return log[key].nunique() if key and key in log.columns else len(log)


def _feature(column: str, side: str, profile: Profile, units: int,
             notes: dict[str, str], why: str, unique_rows: bool) -> Feature | None:
    """The feature of a non-key, non-label column (None: left out), with a note."""
    if profile.count == 0 or profile.distinct <= 1:
        if column not in notes:
            notes[column] = "left out: " + ("empty" if profile.count == 0
                                            else "constant")
        return None
    if profile.dates:
        notes[column] = "left out: a date column other than the timestamp"
        return None
    kind, extra, how = guess_kind(profile, column, units, unique_rows)
    if kind is None:
        notes[column] = f"left out: {how}"
        return None
    notes[column] = f"{side} {kind}: {why}; {how}"
    return Feature(column, side, kind, **extra)


def _tasks(binary: dict[str, np.ndarray], regression: dict[str, np.ndarray],
           keys: dict[str, str | None], profiles: dict[str, Profile],
           notes: dict[str, str]) -> list[dict[str, Any]]:
    """Binary and regression tasks (with funnel `where`s), then retrieval."""
    positives = {c: int(np.nansum(v == 1)) for c, v in binary.items()}
    parents = {}
    for child, values in binary.items():
        on = values == 1
        candidates = [c for c, v in binary.items() if c != child
                      and positives[c] > positives[child] and positives[child]
                      and bool((v[on] == 1).all())]
        if candidates:
            parents[child] = min(candidates, key=lambda c: positives[c])
    for label, values in regression.items():
        on = ~np.isnan(values) & (values != 0)
        candidates = [c for c, v in binary.items() if on.any()
                      and positives[c] < np.sum(~np.isnan(v))
                      and bool((v[on] == 1).all())]
        if candidates:
            parents[label] = min(candidates, key=lambda c: positives[c])
    tasks = []
    for column in profiles:
        if column not in binary and column not in regression:
            continue
        kind = "binary" if column in binary else "regression"
        task = {"name": column, "type": kind, "label": column}
        parent = parents.get(column)
        reason = ("0/1 values" if kind == "binary" else "numbers named like a label")
        if parent and _condition(f"{parent} == 1"):
            task["where"] = f"{parent} == 1"
            reason += (f"; 1 only where {parent} is 1" if kind == "binary"
                       else f"; non-zero only where {parent} is 1")
        notes[column] = f"label: {reason} -> {kind} task {column!r}"
        tasks.append(task)
    if keys["user"] and keys["item"]:
        named = [c for c in binary if snake_case(c) in _CLICK_NAMES]
        roots = [c for c in binary if c not in parents]
        click = (named or roots or list(binary) or [None])[0]
        retrieval = {"name": "retrieval", "type": "retrieval"}
        if click and _condition(f"{click} == 1"):
            retrieval["where"] = f"{click} == 1"
        tasks.append(retrieval)
    return tasks


def _condition(text: str) -> bool:
    try:
        parse_condition(text)
    except ValueError:
        return False
    return True
