"""One encoder layer per feature kind: raw feature values in, a vector out.

Every encoder splits its work in two, so the item side can be cached:
`prepare` maps raw values to model-ready tensors (vocabulary rows, standardized
numbers, token ids), and `embed` maps those to vectors. Calling the layer runs
both. The item catalog stores every item's prepared features once; the query
tower runs the whole encoder on each request, so serving takes the raw values of
the schema and never fails on an unknown one: unseen categories go to an OOV row,
a missing number is imputed and flagged.

Example:
    >>> encoder = CategoricalEncoder(["ios", "web"], output_dim=4, name="device")
    >>> encoder(tf.constant(["web", "tv"])).shape  # "tv" takes the OOV row
    TensorShape([2, 4])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from mtl_tf.schema import Feature
from mtl_tf.schema.fitted import FeatureState


def as_string(values: tf.Tensor) -> tf.Tensor:
    """Strings as `schema.fitted.as_strings` makes them (vocabularies match)."""
    if values.dtype == tf.string:
        return values
    if values.dtype == tf.bool:
        return tf.where(values, "true", "false")
    return tf.strings.as_string(values)


def masked_mean(embedding: tf.keras.layers.Embedding, rows: tf.Tensor
                ) -> tf.Tensor:
    """Mean of the embeddings of `rows` [batch, n] over the non-padding ones
    (row 0 is padding); all padding gives zeros."""
    mask = tf.cast(rows > 0, tf.float32)[..., None]
    total = tf.reduce_sum(embedding(rows) * mask, axis=1)
    return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


class CategoricalEncoder(tf.keras.layers.Layer):
    """A vocabulary (plus `num_oov` OOV rows) or hash buckets, then an embedding.

    Args:
        vocabulary: the training values (as strings); ignored with
            `hash_buckets`.
        output_dim: embedding width.
        num_oov: OOV rows (hashed) for values outside the vocabulary.
        hash_buckets: > 0 hashes values into this many rows instead.
    """

    def __init__(self, vocabulary: Sequence[str], output_dim: int, num_oov: int = 1,
                 hash_buckets: int = 0, **kwargs):
        super().__init__(**kwargs)
        if output_dim < 1:
            raise ValueError(f"CategoricalEncoder: output_dim must be >= 1. "
                             f"Received: `output_dim={output_dim}`.")
        self.output_dim = output_dim
        self.hash_buckets = hash_buckets
        if hash_buckets:
            self.lookup = tf.keras.layers.Hashing(hash_buckets, name="hashing")
            rows = hash_buckets
        else:
            self.lookup = tf.keras.layers.StringLookup(
                vocabulary=list(vocabulary), num_oov_indices=num_oov,
                name="lookup")
            rows = len(vocabulary) + num_oov
        self.num_rows = rows
        self.embedding = tf.keras.layers.Embedding(rows, output_dim,
                                                   name="embedding")

    def prepare(self, values: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.lookup(as_string(values)), tf.int64)

    def embed(self, rows: tf.Tensor, training=None) -> tf.Tensor:
        return self.embedding(rows)

    def call(self, values, training=None):
        return self.embed(self.prepare(values))


class MultiCategoricalEncoder(tf.keras.layers.Layer):
    """Mean of the embeddings of a list's values ([batch, n] strings, "" pads).

    Row 0 is padding; unseen values share one OOV row. An empty list embeds as
    zeros.
    """

    def __init__(self, vocabulary: Sequence[str], output_dim: int,
                 hash_buckets: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = output_dim
        if hash_buckets:
            self.lookup = tf.keras.layers.Hashing(hash_buckets + 1, mask_value="",
                                                  name="hashing")
            rows = hash_buckets + 1
        else:
            self.lookup = tf.keras.layers.StringLookup(
                vocabulary=list(vocabulary), mask_token="", num_oov_indices=1,
                name="lookup")
            rows = len(vocabulary) + 2
        # Glorot, as a Dense layer over the normalised multi-hot would start:
        # the mean of a few small uniform rows would start near zero.
        self.embedding = tf.keras.layers.Embedding(
            rows, output_dim, embeddings_initializer="glorot_uniform",
            name="embedding")

    def prepare(self, values: tf.Tensor) -> tf.Tensor:
        values = tf.convert_to_tensor(values)
        if values.shape.rank == 1:
            values = values[:, None]
        return tf.cast(self.lookup(as_string(values)), tf.int64)

    def embed(self, rows: tf.Tensor, training=None) -> tf.Tensor:
        return masked_mean(self.embedding, rows)

    def call(self, values, training=None):
        return self.embed(self.prepare(values))


class NumericEncoder(tf.keras.layers.Layer):
    """A number, transformed with training statistics, plus a missing flag.

    "standardize" / "log1p": `prepare` gives [batch, 2] = (z-score, missing),
    where a missing value (NaN) is imputed with the training mean (z = 0).
    "buckets": `prepare` gives the bucket row (0 = missing) and `embed` its
    embedding.
    """

    def __init__(self, transform: str, mean: float = 0.0, std: float = 1.0,
                 boundaries: Sequence[float] = (), output_dim: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.transform = transform
        self.mean, self.std = float(mean), float(std) or 1.0
        self.boundaries = [float(b) for b in boundaries]
        if transform == "buckets":
            self.embedding = tf.keras.layers.Embedding(len(self.boundaries) + 2,
                                                       output_dim, name="embedding")
        self.output_dim = output_dim if transform == "buckets" else 2

    def prepare(self, values: tf.Tensor) -> tf.Tensor:
        x = tf.cast(values, tf.float32)
        missing = tf.math.is_nan(x)
        if self.transform == "log1p":
            x = tf.math.log1p(tf.maximum(x, 0.0))
        if self.transform == "buckets":
            bucket = tf.raw_ops.Bucketize(input=tf.where(missing, 0.0, x),
                                          boundaries=self.boundaries)
            return tf.where(missing, 0, tf.cast(bucket, tf.int64) + 1)
        z = tf.where(missing, 0.0, (x - self.mean) / self.std)
        return tf.stack([z, tf.cast(missing, tf.float32)], axis=-1)

    def embed(self, prepared: tf.Tensor, training=None) -> tf.Tensor:
        if self.transform == "buckets":
            return self.embedding(prepared)
        return prepared

    def call(self, values, training=None):
        return self.embed(self.prepare(values))


class BagOfWordsEncoder(tf.keras.layers.Layer):
    """Mean embedding of a text's tokens (`TextVectorization` over training text).

    Args:
        texts: training texts the word vocabulary is learned from.
        output_dim: embedding width.
        max_tokens: vocabulary size (incl. padding and OOV).
        sequence_length: tokens kept per text.
    """

    def __init__(self, texts: Sequence[str], output_dim: int, max_tokens: int = 5000,
                 sequence_length: int = 12, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = output_dim
        learner = tf.keras.layers.TextVectorization(max_tokens=max_tokens)
        learner.adapt(np.asarray(list(texts) or [""], dtype=object))
        # A fixed vocabulary (not an adapted layer) keeps the lookup a static
        # table: no vocabulary "weight" among the model's variables.
        self.vectorizer = tf.keras.layers.TextVectorization(
            max_tokens=max_tokens, output_mode="int",
            output_sequence_length=sequence_length,
            vocabulary=learner.get_vocabulary()[2:], name="vectorizer")
        self.embedding = tf.keras.layers.Embedding(
            self.vectorizer.vocabulary_size(), output_dim, name="embedding")

    def prepare(self, texts: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.vectorizer(texts), tf.int64)

    def embed(self, tokens: tf.Tensor, training=None) -> tf.Tensor:
        return masked_mean(self.embedding, tokens)

    def call(self, texts, training=None):
        return self.embed(self.prepare(texts))


def build_encoder(feature: Feature, state: FeatureState, dim: int, *,
                  texts: Sequence[str] = (), text_max_tokens: int = 5000,
                  text_sequence_length: int = 12) -> tf.keras.layers.Layer:
    """The encoder of one non-id schema feature.

    Widths follow the towers' habit: categorical, list and bucket embeddings are
    `dim // 2` wide, a text embedding `dim`; standardized numbers pass through as
    (value, missing).
    """
    half = max(1, dim // 2)
    name = f"{feature.name}_encoder"
    if feature.kind == "categorical":
        return CategoricalEncoder(state.vocabulary, half,
                                  hash_buckets=feature.hash_buckets, name=name)
    if feature.kind == "multi_categorical":
        return MultiCategoricalEncoder(state.vocabulary, half,
                                       hash_buckets=feature.hash_buckets, name=name)
    if feature.kind == "numeric":
        return NumericEncoder(feature.transform, state.mean, state.std,
                              state.boundaries, output_dim=half, name=name)
    if feature.kind == "text":
        return BagOfWordsEncoder(texts, dim, max_tokens=text_max_tokens,
                                 sequence_length=text_sequence_length, name=name)
    raise ValueError(f"build_encoder: feature {feature.name!r} of kind "
                     f"{feature.kind!r} has no encoder here (ids are embedded by "
                     "the towers).")
