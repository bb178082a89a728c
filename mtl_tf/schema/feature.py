"""The declared feature schema: what the data holds and what the model reads.

A `Schema` lists `Feature`s, each with a `side` (whose property it is) and a
`kind` (how it is encoded). It is the single source of truth for data loading,
the towers and the export signatures: a new column in a log needs one schema
line, no code change. Labels are plain columns that tasks name; they are not
features (a task whose label is a feature would leak its own answer).

Example:
    >>> schema = Schema((
    ...     Feature("user_id", "user", "id"),
    ...     Feature("item_id", "item", "id"),
    ...     Feature("price", "item", "numeric", transform="log1p"),
    ...     Feature("device", "context", "categorical"),
    ... ), timestamp="ts")
    >>> schema.item_id.name, [f.name for f in schema.on_side("context")]
    ('item_id', ['device'])
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable

SIDES = ("user", "item", "context")
KINDS = ("id", "categorical", "multi_categorical", "numeric", "text", "sequence")
DTYPES = ("string", "int64", "float32", "bool")
NUMERIC_TRANSFORMS = ("standardize", "log1p", "buckets")
# What a sequence feature lists, event by event (`Feature.values`): the
# history's item ids, or the seconds from each event to the row; any other
# value names a column of the interactions table.
HISTORY_ITEM_IDS = "item_ids"
TIME_GAPS = "time_gaps"
# The dtype a kind gets when none is declared, and the dtypes it allows.
_KIND_DTYPES = {
    "id": ("string", "int64"),
    "categorical": DTYPES,
    "multi_categorical": ("string",),
    "numeric": ("float32",),
    "text": ("string",),
    "sequence": ("string", "float32"),
}


@dataclasses.dataclass(frozen=True)
class Feature:
    """One column the model reads.

    Attributes:
        name: the column name in the data (and the serving input name).
        side: "user", "item" or "context". Context features describe the
            request (device, hour, page position): they feed the query side
            and the ranking heads, never the cached item side.
        kind: "id" (the user key or the item key, at most one per side),
            "categorical" (a vocabulary from the training split plus an OOV
            row, or `hash_buckets`), "multi_categorical" (a variable-length
            list such as tags, mean-pooled; `separator` splits it in text
            files), "numeric" (see `transform`; a missing value is imputed and
            flagged) or "text" (a bag of words, or on the item side the
            pretrained encoder chosen by `model.text_encoder`) or "sequence"
            (the user's behaviour history: a time-ordered list of item ids of
            the schema's item key, derived by the pipeline from the log unless
            `derive` is false; see `mtl_tf.data.sequences`, and
            `model.history_encoder` for how it is encoded). A sequence is a
            query-side feature ("user" or "context"); a request sends it as
            string [batch, n] padded with "" (time gaps: float32).
        dtype: "string", "int64", "float32" or "bool": the column's type in the
            data and in serving requests. Default: "float32" for numeric
            features, "string" otherwise.
        min_count: categorical values seen fewer times in training share the
            OOV row.
        max_vocabulary: keep only this many most frequent values (0: all).
        hash_buckets: > 0 hashes values into this many rows instead of a
            vocabulary (for huge id spaces; no OOV row needed).
        separator: separator of a multi_categorical list in text files.
        transform: numeric features: "standardize" (training mean and std),
            "log1p" (log(1 + max(x, 0)), then standardized) or "buckets"
            (quantile boundaries from training, one embedding per bucket).
        num_buckets: buckets of `transform="buckets"`.
        max_length: sequence features: the most recent items kept in the
            list. The encoders read only its newest `model.history_window`;
            the whole list serves `model.mask_history_negatives`.
        derive: sequence features: derive the history from the log (the
            default), or, when false, read it from the interactions table's
            column of this name: a list (Parquet, pandas) or `separator`-joined
            text, oldest first. Such a history is taken as given: keeping
            held-out events out of it is the data's job.
        values: sequence features: what the list holds, event by event.
            "item_ids" (the default) is the history itself, the schema's one
            list of item ids. The others are parallel lists, aligned with it
            event by event and cut to its `max_length`: "time_gaps" (float32:
            the seconds from each event to the row, or to the request; needs
            the schema's timestamp) or the name of a column of the
            interactions table, e.g. the behaviour type (click / like / buy),
            encoded with a vocabulary like a categorical feature.
    """

    name: str
    side: str
    kind: str
    dtype: str = ""
    min_count: int = 1
    max_vocabulary: int = 0
    hash_buckets: int = 0
    separator: str = "|"
    transform: str = "standardize"
    num_buckets: int = 10
    max_length: int = 50
    derive: bool = True
    values: str = HISTORY_ITEM_IDS

    def __post_init__(self) -> None:
        where = f"schema feature {self.name!r}"
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"schema: every feature needs a `name`. Received: "
                             f"{self.name!r}.")
        if self.side not in SIDES:
            raise ValueError(f"{where}: side must be one of {list(SIDES)}. "
                             f"Received: side={self.side!r}.")
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {list(KINDS)}. "
                             f"Received: kind={self.kind!r}.")
        if self.kind == "sequence" and self.side == "item":
            raise ValueError(f"{where}: a sequence is the user's (or the "
                             "session's) history, a query-side feature; side "
                             "must be 'user' or 'context'. Received: side='item'.")
        if self.kind == "id" and self.side == "context":
            raise ValueError(f"{where}: an id feature is the user or the item key; "
                             "side must be 'user' or 'item'. Received: "
                             "side='context' (declare it as kind='categorical').")
        allowed = _KIND_DTYPES[self.kind]
        if self.kind == "sequence":
            allowed = ("float32",) if self.values == TIME_GAPS else ("string",)
        dtype = self.dtype or allowed[0]
        if dtype not in allowed:
            raise ValueError(f"{where}: a {self.kind} feature takes dtype "
                             f"{list(allowed)}. Received: dtype={self.dtype!r}.")
        object.__setattr__(self, "dtype", dtype)
        if self.transform not in NUMERIC_TRANSFORMS:
            raise ValueError(f"{where}: transform must be one of "
                             f"{list(NUMERIC_TRANSFORMS)}. Received: "
                             f"transform={self.transform!r}.")
        for key in ("min_count", "num_buckets", "max_length"):
            if getattr(self, key) < 1:
                raise ValueError(f"{where}: {key} must be >= 1. Received: "
                                 f"{key}={getattr(self, key)}.")
        for key in ("max_vocabulary", "hash_buckets"):
            if getattr(self, key) < 0:
                raise ValueError(f"{where}: {key} must be >= 0. Received: "
                                 f"{key}={getattr(self, key)}.")
        if not self.separator:
            raise ValueError(f"{where}: separator must not be empty.")
        if self.kind != "sequence" and (not self.derive
                                        or self.values != HISTORY_ITEM_IDS):
            raise ValueError(f"{where}: `derive` and `values` apply to sequence "
                             f"features only; remove them from this {self.kind} "
                             "feature.")
        if not self.values:
            raise ValueError(f"{where}: values must name what the list holds: "
                             f"{HISTORY_ITEM_IDS!r}, {TIME_GAPS!r} or a column.")
        if self.kind == "sequence" and self.hash_buckets:
            raise ValueError(f"{where}: a sequence lists item ids (or a "
                             "parallel list's values) through a vocabulary; "
                             "remove hash_buckets.")

    @property
    def is_list(self) -> bool:
        """Whether values are lists (multi_categorical, sequence)."""
        return self.kind in ("multi_categorical", "sequence")

    @property
    def is_parallel(self) -> bool:
        """Whether this is a list aligned with the history (a sequence of
        time gaps or of a log column's values, not of item ids)."""
        return self.kind == "sequence" and self.values != HISTORY_ITEM_IDS

    @property
    def is_derived(self) -> bool:
        """Whether the pipeline derives the values from the log (sequences,
        unless `derive` is false) rather than reading a column of the data's
        tables."""
        return self.kind == "sequence" and self.derive

    def to_dict(self) -> dict[str, Any]:
        """The non-default fields (plus name, side, kind): a short JSON object."""
        defaults = Feature(self.name, self.side, self.kind)
        out = {"name": self.name, "side": self.side, "kind": self.kind}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name not in out and value != getattr(defaults, field.name):
                out[field.name] = value
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Feature":
        """Builds a feature from a JSON object; unknown keys are an error."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(values, dict):
            raise ValueError(f"schema: a feature must be an object with keys "
                             f"{allowed}. Received: {values!r}.")
        unknown = sorted(set(values) - set(allowed))
        missing = [k for k in ("name", "side", "kind") if k not in values]
        if unknown or missing:
            name = values.get("name", "?")
            raise ValueError(
                f"schema feature {name!r}: "
                + (f"unknown keys {unknown}; " if unknown else "")
                + (f"missing keys {missing}; " if missing else "")
                + f"allowed keys: {allowed}.")
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Schema:
    """The features of a data set, and the column that orders its events.

    Attributes:
        features: the model's inputs, each declared once.
        timestamp: the column holding each event's time ("" if none): the
            temporal split orders by it.
    """

    features: tuple[Feature, ...] = ()
    timestamp: str = ""

    def __post_init__(self) -> None:
        features = tuple(self.features)
        object.__setattr__(self, "features", features)
        names = [f.name for f in features]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"schema: features {twice} are declared more than "
                             "once; declare each feature once.")
        for side in ("user", "item"):
            ids = [f.name for f in features if f.side == side and f.kind == "id"]
            if len(ids) > 1:
                raise ValueError(f"schema: the {side} side has {len(ids)} id "
                                 f"features {ids}; declare one key and make the "
                                 "others kind='categorical'.")
        if self.item_id is None and self.on_side("item"):
            extra = [f.name for f in self.on_side("item")]
            raise ValueError(f"schema: item features {extra} need an item key "
                             "(a feature with side='item', kind='id') to join "
                             "them on; add one or move them to side 'context'.")
        sequences = [f.name for f in features if f.kind == "sequence"]
        if sequences and (self.item_id is None or self.user_id is None):
            raise ValueError(f"schema: sequence features {sequences} list a "
                             "user's items, derived from the log by user: the "
                             "schema needs a user id and an item id.")
        histories = [f.name for f in features
                     if f.kind == "sequence" and not f.is_parallel]
        if len(histories) > 1:
            raise ValueError(f"schema: sequence features {histories}: declare "
                             "one history of item ids (values 'item_ids'); "
                             "other lists are parallel to it (set `values`).")
        parallel = self.parallel_sequences
        if parallel and not histories:
            raise ValueError(f"schema: parallel lists {[f.name for f in parallel]}"
                             " are aligned with a history of item ids; declare "
                             "one (kind 'sequence', values 'item_ids').")
        for feature in parallel:
            if feature.derive != self[histories[0]].derive:
                raise ValueError(f"schema feature {feature.name!r}: a parallel "
                                 "list is derived exactly when its history is; "
                                 f"set derive={self[histories[0]].derive}.")
            if feature.values == TIME_GAPS and feature.derive and not self.timestamp:
                raise ValueError(f"schema feature {feature.name!r}: time gaps "
                                 "are measured from the events' timestamps; "
                                 "set the schema's `timestamp` column.")
            if feature.values == self.timestamp:
                raise ValueError(f"schema feature {feature.name!r}: values "
                                 f"{feature.values!r} is the timestamp; use "
                                 f"values {TIME_GAPS!r} for the time from "
                                 "each event.")
        if self.timestamp in names:
            raise ValueError(f"schema: timestamp column {self.timestamp!r} is also "
                             "a feature; declare it as one or the other.")

    def __contains__(self, name: str) -> bool:
        return any(f.name == name for f in self.features)

    def __getitem__(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"schema has no feature {name!r}; features: {self.names}.")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def on_side(self, *sides: str, derived: bool = True) -> list[Feature]:
        """The features of the given sides, in declaration order; without the
        ones the pipeline derives (sequences) when `derived` is False."""
        return [f for f in self.features
                if f.side in sides and (derived or not f.is_derived)]

    @property
    def stored_features(self) -> list[Feature]:
        """The features read from the data's tables (all but sequences)."""
        return [f for f in self.features if not f.is_derived]

    @property
    def sequence(self) -> Feature | None:
        """The behaviour history (the sequence of item ids), or None."""
        return next((f for f in self.features
                     if f.kind == "sequence" and not f.is_parallel), None)

    @property
    def parallel_sequences(self) -> list[Feature]:
        """The lists aligned with the history (`Feature.values`)."""
        return [f for f in self.features if f.is_parallel]

    @property
    def history_columns(self) -> list[str]:
        """Columns of the interactions table that derived parallel lists read
        (kept by the loaders though no feature reads them directly)."""
        return [f.values for f in self.parallel_sequences
                if f.is_derived and f.values != TIME_GAPS
                and f.values not in self.names]

    def _id(self, side: str) -> Feature | None:
        return next((f for f in self.features
                     if f.side == side and f.kind == "id"), None)

    @property
    def user_id(self) -> Feature | None:
        """The user key, or None (e.g. one row per person, no user history)."""
        return self._id("user")

    @property
    def item_id(self) -> Feature | None:
        """The item key, or None: a data set without items (no retrieval)."""
        return self._id("item")

    @property
    def query_features(self) -> list[Feature]:
        """What a request carries: the user and context features."""
        return self.on_side("user", "context")

    def to_dict(self) -> dict[str, Any]:
        return {"features": [f.to_dict() for f in self.features],
                "timestamp": self.timestamp}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Schema":
        """Builds a schema from its JSON object (as `to_dict` writes it)."""
        if not isinstance(values, dict):
            raise ValueError("schema must be an object with keys 'features' and "
                             f"'timestamp'. Received: {values!r}.")
        unknown = sorted(set(values) - {"features", "timestamp"})
        if unknown:
            raise ValueError(f"schema: unknown keys {unknown}; allowed: "
                             "['features', 'timestamp'].")
        features = values.get("features", [])
        if not isinstance(features, list):
            raise ValueError("schema.features must be a list of feature objects. "
                             f"Received: {features!r}.")
        return cls(tuple(Feature.from_dict(f) for f in features),
                   str(values.get("timestamp", "") or ""))

    def replace_feature(self, name: str, **changes: Any) -> "Schema":
        """A copy with one feature's fields changed (`--set schema.<name>.<k>=v`)."""
        self[name]  # Raises KeyError naming the features.
        features = tuple(dataclasses.replace(f, **changes) if f.name == name else f
                         for f in self.features)
        return dataclasses.replace(self, features=features)

    def without(self, names: Iterable[str]) -> "Schema":
        """A copy without the named features."""
        drop = set(names)
        return dataclasses.replace(
            self, features=tuple(f for f in self.features if f.name not in drop))
