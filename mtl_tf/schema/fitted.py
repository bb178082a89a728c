"""What preprocessing learns from the training split, saved with the run.

Per feature: the vocabulary of an id / categorical / multi_categorical feature
(most frequent first is not needed: values are kept in sorted order), the mean
and standard deviation of a numeric one (after its transform) and quantile
boundaries of a bucketized one; the word vocabulary of a bag-of-words text
feature is learned by the text layer itself. Multilabel task labels get a
vocabulary too. Only training rows are read, so validation and test values never
leak into vocabularies or statistics; unseen values map to OOV rows.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Iterable, Mapping

import numpy as np

from mtl_tf.schema.feature import TIME_GAPS, Feature, Schema


def as_strings(values: np.ndarray, dtype: str) -> np.ndarray:
    """Values as the strings `tf.strings.as_string` makes of them in the graph.

    Categorical features of any dtype are looked up by string, so vocabularies
    built here must match what the serving graph computes from a request.
    """
    values = np.asarray(values)
    if dtype == "string":
        return values.astype(str)
    if dtype == "bool":
        return np.where(values.astype(bool), "true", "false")
    if dtype == "float32":
        return np.asarray([f"{v:f}" for v in values.astype(np.float32)], dtype=str)
    return values.astype(np.int64).astype(str)


@dataclasses.dataclass
class FeatureState:
    """The fitted state of one feature (unused fields stay empty)."""

    vocabulary: list[str] = dataclasses.field(default_factory=list)
    mean: float = 0.0
    std: float = 1.0
    boundaries: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Preprocessing:
    """Fitted states of every feature, and vocabularies of multilabel labels."""

    features: dict[str, FeatureState]
    label_vocabularies: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def __getitem__(self, name: str) -> FeatureState:
        return self.features[name]

    def to_dict(self) -> dict[str, Any]:
        features = {n: dataclasses.asdict(s) for n, s in self.features.items()}
        return {"features": features, "label_vocabularies": self.label_vocabularies}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Preprocessing":
        return cls({n: FeatureState(**s) for n, s in values["features"].items()},
                   {n: list(v) for n, v in values.get("label_vocabularies",
                                                      {}).items()})


def vocabulary(values: Iterable[str], min_count: int = 1, max_size: int = 0
               ) -> list[str]:
    """Sorted values seen at least `min_count` times; the `max_size` most frequent
    when capped (ties broken by value). The empty string is never a value."""
    counts = collections.Counter(v for v in values if v != "")
    kept = [(v, c) for v, c in counts.items() if c >= min_count]
    if max_size and len(kept) > max_size:
        kept = sorted(kept, key=lambda vc: (-vc[1], vc[0]))[:max_size]
    return sorted(v for v, _ in kept)


def numeric_transform(values: np.ndarray, transform: str) -> np.ndarray:
    """The transform before standardizing: log1p(max(x, 0)) or the identity."""
    values = np.asarray(values, np.float64)
    if transform == "log1p":
        with np.errstate(invalid="ignore"):
            return np.log1p(np.maximum(values, 0.0))
    return values


def fit_feature(feature: Feature, values: np.ndarray) -> FeatureState:
    """Fits one feature on its training values (see `Preprocessing`)."""
    if feature.kind in ("id", "categorical"):
        if feature.hash_buckets:
            return FeatureState()
        strings = as_strings(values, feature.dtype)
        min_count = 1 if feature.kind == "id" else feature.min_count
        return FeatureState(vocabulary(strings, min_count, feature.max_vocabulary))
    if feature.kind == "multi_categorical":
        if feature.hash_buckets:
            return FeatureState()
        flat = (str(v) for row in values for v in row)
        return FeatureState(vocabulary(flat, feature.min_count,
                                       feature.max_vocabulary))
    if feature.kind == "numeric":
        x = numeric_transform(values, feature.transform)
        x = x[np.isfinite(x)]
        if not len(x):
            return FeatureState()
        if feature.transform == "buckets":
            quantiles = np.quantile(x, np.linspace(0, 1, feature.num_buckets + 1)[1:-1])
            return FeatureState(mean=float(x.mean()),
                                boundaries=sorted({float(q) for q in quantiles}))
        std = float(x.std())
        return FeatureState(mean=float(x.mean()), std=std if std > 1e-12 else 1.0)
    return FeatureState()  # text: the text layer learns its own vocabulary


def _fit_sequence(feature: Feature, values: np.ndarray | None) -> FeatureState:
    """A history's ids use the item key's vocabulary, and time gaps need
    none; a parallel list of a log column gets a vocabulary of its training
    values (one value per training event, or the lists given in the data)."""
    if not feature.is_parallel or feature.values == TIME_GAPS:
        return FeatureState()
    kind = "categorical" if feature.is_derived else "multi_categorical"
    return fit_feature(Feature(feature.name, "context", kind,
                               min_count=feature.min_count,
                               max_vocabulary=feature.max_vocabulary), values)


def fit_preprocessing(schema: Schema, feature_values: Mapping[str, np.ndarray],
                      list_labels: Mapping[str, np.ndarray] | None = None
                      ) -> Preprocessing:
    """Fits every schema feature on training values.

    Args:
        schema: the declared features.
        feature_values: training values per feature name; item features come
            from the training items, user features from the training users.
        list_labels: training values of multilabel task labels (rows of lists).
    """
    states = {f.name: _fit_sequence(f, feature_values.get(f.name))
              if f.kind == "sequence" else fit_feature(f, feature_values[f.name])
              for f in schema.features}
    labels = {name: vocabulary(str(v) for row in rows for v in row)
              for name, rows in (list_labels or {}).items()}
    return Preprocessing(states, labels)
