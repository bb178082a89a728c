"""What preprocessing learns from the training split, saved with the run.

Per feature: the vocabulary of an id / categorical / multi_categorical feature
(most frequent first is not needed: values are kept in sorted order), the mean
and standard deviation of a numeric one (after its transform) and quantile
boundaries of a bucketized one; the word vocabulary of a bag-of-words text
feature is learned by the text layer itself. Multilabel task labels get a
vocabulary too. Only training rows are read, so validation and test values never
leak into vocabularies or statistics; unseen values map to OOV rows.

`FeatureSummary` and `PreprocessingSummary` gather the same statistics chunk
by chunk, for a log that is read a piece at a time; `fit_preprocessing` is
their one-chunk case.
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
    return counted_vocabulary(collections.Counter(values), min_count, max_size)


def counted_vocabulary(counts: Mapping[str, int], min_count: int = 1,
                       max_size: int = 0) -> list[str]:
    """`vocabulary` of values already counted ({value: count})."""
    kept = [(v, c) for v, c in counts.items() if c >= min_count and v != ""]
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


class FeatureSummary:
    """One feature's training statistics, gathered chunk by chunk.

    A vocabulary feature (id, categorical, multi_categorical) counts its
    values; a numeric one keeps the count, mean and sum of squared deviations
    of its transformed finite values, merged exactly chunk by chunk (the
    pairwise update of Chan, Golub & LeVeque, "Algorithms for computing the
    sample variance", 1983), and for bucket boundaries a uniform sample of at
    most `max_sample` values (every value when 0). `state()` is the
    `FeatureState` of all values seen, whatever the chunking (up to rounding;
    boundaries are exact while the sample holds every value).

    Example:
        >>> summary = FeatureSummary(Feature("age", "user", "numeric"))
        >>> summary.add(np.array([1.0, 2.0]))
        >>> summary.add(np.array([3.0, np.nan]))
        >>> summary.state().mean
        2.0
    """

    def __init__(self, feature: Feature, max_sample: int = 0, seed: int = 0):
        if max_sample < 0:
            raise ValueError(f"FeatureSummary: max_sample must be >= 0 (0 keeps "
                             f"every value). Received: max_sample={max_sample}.")
        self.feature, self.max_sample = feature, max_sample
        self.counts: collections.Counter = collections.Counter()
        self.count, self.mean, self.squares = 0, 0.0, 0.0
        self._rng = np.random.default_rng(seed)
        self._sample = np.zeros(0, np.float64)
        self._keys = np.zeros(0, np.float64)  # Random keys: the smallest stay.

    def add(self, values: np.ndarray) -> None:
        """Adds one chunk of the feature's training values."""
        feature = self.feature
        if feature.kind in ("id", "categorical", "multi_categorical"):
            if feature.hash_buckets:
                return
            if feature.kind == "multi_categorical":
                self.counts.update(str(v) for row in values for v in row)
            else:
                self.counts.update(as_strings(values, feature.dtype).tolist())
        elif feature.kind == "numeric":
            x = numeric_transform(values, feature.transform)
            self._add_numbers(x[np.isfinite(x)])

    def _add_numbers(self, x: np.ndarray) -> None:
        if not len(x):
            return
        count, mean = len(x), float(x.mean())
        squares = float(((x - mean) ** 2).sum())
        total = self.count + count
        delta = mean - self.mean
        self.squares += squares + delta * delta * self.count * count / total
        self.mean += delta * count / total
        self.count = total
        if self.feature.transform == "buckets":
            self._sample = np.concatenate([self._sample, x])
            if self.max_sample:
                self._keys = np.concatenate([self._keys, self._rng.random(count)])
                if len(self._sample) > self.max_sample:
                    kept = np.argpartition(self._keys, self.max_sample)[
                        :self.max_sample]
                    self._sample, self._keys = self._sample[kept], self._keys[kept]

    def state(self) -> FeatureState:
        """The fitted state of everything added (see `Preprocessing`)."""
        feature = self.feature
        if feature.kind in ("id", "categorical", "multi_categorical"):
            if feature.hash_buckets:
                return FeatureState()
            min_count = 1 if feature.kind == "id" else feature.min_count
            return FeatureState(counted_vocabulary(self.counts, min_count,
                                                   feature.max_vocabulary))
        if feature.kind != "numeric" or not self.count:
            return FeatureState()  # text: the text layer learns its own vocabulary
        if feature.transform == "buckets":
            quantiles = np.quantile(
                self._sample, np.linspace(0, 1, feature.num_buckets + 1)[1:-1])
            return FeatureState(mean=self.mean,
                                boundaries=sorted({float(q) for q in quantiles}))
        std = float(np.sqrt(self.squares / self.count))
        return FeatureState(mean=self.mean, std=std if std > 1e-12 else 1.0)


def fit_feature(feature: Feature, values: np.ndarray) -> FeatureState:
    """Fits one feature on its training values (see `Preprocessing`)."""
    summary = FeatureSummary(feature)
    summary.add(values)
    return summary.state()


class PreprocessingSummary:
    """Every schema feature's `FeatureSummary`, and the value counts of
    multilabel task labels, gathered chunk by chunk; `fit()` is the
    `Preprocessing` of all chunks together.

    Args:
        schema: the declared features.
        max_sample: bucketized numeric features: the most values sampled for
            their quantiles (0: every value).
        seed: seed of that sample.
    """

    def __init__(self, schema: Schema, max_sample: int = 0, seed: int = 0):
        self.schema = schema
        # None: nothing to fit (a history's ids, time gaps).
        self.summaries = {f.name: None if stats is None else
                          FeatureSummary(stats, max_sample, seed)
                          for f in schema.features
                          for stats in [_statistics_feature(f)]}
        self.label_counts: dict[str, collections.Counter] = {}

    def add(self, feature_values: Mapping[str, np.ndarray],
            list_labels: Mapping[str, np.ndarray] | None = None) -> None:
        """Adds one chunk: training values per feature name (a sequence
        feature's only when it has a vocabulary to fit), and rows of lists per
        multilabel label."""
        for feature in self.schema.features:
            summary = self.summaries[feature.name]
            if summary is not None and (feature.kind != "sequence"
                                        or feature.name in feature_values):
                summary.add(feature_values[feature.name])
        for name, rows in (list_labels or {}).items():
            self.label_counts.setdefault(name, collections.Counter()).update(
                str(v) for row in rows for v in row)

    def fit(self) -> Preprocessing:
        return Preprocessing(
            {name: FeatureState() if summary is None else summary.state()
             for name, summary in self.summaries.items()},
            {name: counted_vocabulary(counts)
             for name, counts in self.label_counts.items()})


def _statistics_feature(feature: Feature) -> Feature | None:
    """The feature whose statistics a schema feature needs: None for a
    history's ids (they use the item key's vocabulary) and time gaps; a
    parallel list of a log column gets a
    vocabulary of its training values (one value per training event, or the
    lists given in the data)."""
    if feature.kind != "sequence":
        return feature
    if not feature.is_parallel or feature.values == TIME_GAPS:
        return None
    kind = "categorical" if feature.is_derived else "multi_categorical"
    return Feature(feature.name, "context", kind, min_count=feature.min_count,
                   max_vocabulary=feature.max_vocabulary)


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
    summary = PreprocessingSummary(schema)
    summary.add(feature_values, list_labels)
    return summary.fit()
