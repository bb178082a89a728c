"""Query (user + context) and candidate (item) towers: the shared representation
of all tasks. A tower is the encoders of one side of the schema."""

from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from mtl_tf.model.catalog import ItemCatalog
from mtl_tf.model.encoders import as_string

UNKNOWN_EMBEDDINGS = ("mean", "oov")
# Any string that is never an item id: it looks up the unknown-item (OOV) id row.
UNKNOWN_ITEM_ID = "\x00unknown-item"


def _id_lookup(vocabulary: Sequence[str], num_oov: int, name: str):
    return tf.keras.layers.StringLookup(vocabulary=list(vocabulary),
                                        num_oov_indices=num_oov,
                                        name=f"{name}_lookup")


class QueryTower(tf.keras.layers.Layer):
    """Embeds a request: the user id (if any), the user and context features and
    the behaviour history.

    Ids outside `user_ids` share `num_oov_buckets` hashed OOV rows; feature
    values outside their vocabulary map to OOV rows and missing numbers are
    imputed (see `mtl_tf.model.encoders`). A new or anonymous user is the OOV
    id row plus their features and history (`mtl_tf.model.history`).

    Args:
        encoders: one encoder per user or context feature (the history's is a
            `HistoryEncoder`), by feature name.
        dim: output (and id embedding) width.
        user_id: the user id feature's name ("" when the data has none).
        user_ids: training-split user ids.
        num_oov_buckets: OOV rows for unknown ids.

    Example:
        >>> tower = QueryTower({}, dim=4, user_id="user", user_ids=["a", "b"])
        >>> tower({"user": tf.constant(["a", "new"])}).shape
        TensorShape([2, 4])
    """

    def __init__(self, encoders: Mapping[str, tf.keras.layers.Layer], dim: int,
                 user_id: str = "", user_ids: Sequence[str] = (),
                 num_oov_buckets: int = 1, **kwargs):
        super().__init__(**kwargs)
        if not encoders and not user_id:
            raise ValueError("QueryTower needs a user id or at least one user or "
                             "context feature; the schema declares none.")
        self.encoders = dict(encoders)
        self.user_id = user_id
        self.dim = dim
        if user_id:
            self.id_lookup = _id_lookup(user_ids, num_oov_buckets, "user_id")
            self.id_embedding = tf.keras.layers.Embedding(
                len(user_ids) + num_oov_buckets, dim, name="user_id_embedding")
        self.projection = tf.keras.layers.Dense(dim, name="user_projection")

    def call(self, features: dict[str, tf.Tensor], training=None) -> tf.Tensor:
        parts = []
        if self.user_id:
            user_rows = self.id_lookup(as_string(features[self.user_id]))
            parts.append(self.id_embedding(user_rows))
        for name, encoder in self.encoders.items():
            # The history encoder reads its parallel lists too.
            names = getattr(encoder, "input_names", None)
            inputs = {n: features[n] for n in names} if names else features[name]
            parts.append(encoder(inputs, training=training))
        return self.projection(tf.concat(parts, axis=-1))


class CandidateTower(tf.keras.layers.Layer):
    """Embeds an item from its id and its item features into one projection.

    Item features come from the `ItemCatalog` (prepared once), so a request only
    carries the id. Items unseen in training but present in the catalog (cold
    start) have no id row: they get the `unknown_item_embedding` id vector plus
    their real features. With "mean" (the default) that vector is the mean of
    the known items' id rows, so a cold item starts as the average item and its
    content moves it from there. With "oov" it is the OOV row, which no training
    item uses: unless `id_dropout` trains it, it stays at its random
    initialisation, and that random point decides how high every cold item
    scores.

    `id_dropout` is DropoutNet's input dropout (Volkovs et al., NeurIPS 2017):
    in training, each distinct item of a batch loses its id (it is embedded like
    an unknown item) with this probability, so the tower learns to embed items
    from content alone. It ranks cold items higher, at some cost to warm items.

    Args:
        item_ids: training-split item ids (the id vocabulary).
        catalog: the `ItemCatalog` with every item's prepared features.
        encoders: one encoder per item feature (by name), each with an `embed`
            of the catalog's prepared values.
        dim: output (and id embedding) width.
        num_oov_buckets: OOV rows for unknown ids.
        unknown_item_embedding: the id vector of unknown (and dropped) ids:
            "mean" (of the known items' id rows) or "oov" (the OOV row).
        id_dropout: in [0, 1); share of a training batch's distinct items
            embedded without their id.

    Example:
        >>> catalog = ItemCatalog(["7", "9"], {})
        >>> tower = CandidateTower(["7"], catalog, {}, dim=4)  # "9" is cold.
        >>> tower(tf.constant(["7", "9"])).shape
        TensorShape([2, 4])
    """

    def __init__(self, item_ids: Sequence[str], catalog: ItemCatalog,
                 encoders: Mapping[str, tf.keras.layers.Layer], dim: int,
                 num_oov_buckets: int = 1, unknown_item_embedding: str = "mean",
                 id_dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if unknown_item_embedding not in UNKNOWN_EMBEDDINGS:
            raise ValueError(
                "unknown_item_embedding must be one of "
                f"{list(UNKNOWN_EMBEDDINGS)}. Received: "
                f"`unknown_item_embedding={unknown_item_embedding!r}`.")
        if not 0.0 <= id_dropout < 1.0:
            raise ValueError("id_dropout must be in [0, 1). "
                             f"Received: `id_dropout={id_dropout}`.")
        missing = [n for n in encoders if n not in catalog.prepared]
        if missing:
            raise ValueError(f"CandidateTower: the catalog holds no prepared "
                             f"values of features {missing}.")
        self.unknown_item_embedding = unknown_item_embedding
        self.id_dropout = float(id_dropout)
        self.num_oov_buckets = num_oov_buckets
        self.catalog = catalog
        self.encoders = dict(encoders)
        self.dim = dim
        self.id_lookup = _id_lookup(item_ids, num_oov_buckets, "item_id")
        self.id_embedding = tf.keras.layers.Embedding(
            len(item_ids) + num_oov_buckets, dim, name="item_id_embedding")
        self.projection = tf.keras.layers.Dense(dim, name="item_projection")

    @property
    def title_encoder(self):
        """The fine-tuned pretrained text encoder (a `TitleEncoder`), if any."""
        for encoder in self.encoders.values():
            if getattr(encoder, "title_encoder", None) is not None:
                return encoder.title_encoder
        return None

    def call(self, item_ids: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        # Encode each distinct item of the batch once.
        unique_ids, positions = tf.unique(as_string(item_ids))
        encoded = self.encode(self.id_lookup(unique_ids), self.catalog(unique_ids),
                              training=training)
        return tf.gather(encoded, positions)

    def encode(self, id_rows: tf.Tensor, side: dict[str, tf.Tensor],
               training: bool | None = None) -> tf.Tensor:
        """The tower's output from id-embedding rows and prepared item features.

        `side` is what `ItemCatalog.call` returns (`rows` and each feature's
        prepared values); the cold-start item encoder export prepares it from
        raw item features instead.
        """
        parts = [self._id_vectors(id_rows, training)]
        for name, encoder in self.encoders.items():
            vector = encoder.embed(side[name], training=training)
            if getattr(encoder, "zero_unknown", False):
                # The unknown item (row 0) has no text: zeros, as in the cache.
                vector *= tf.cast(side["rows"] > 0, vector.dtype)[:, None]
            parts.append(vector)
        return self.projection(tf.concat(parts, axis=-1))

    def _id_vectors(self, rows: tf.Tensor, training) -> tf.Tensor:
        """Id embeddings of id-lookup `rows`; unknown (and, in training, dropped)
        ids get the unknown-item vector."""
        if training and self.id_dropout > 0:
            # StringLookup puts its OOV rows first: row 0 is an unknown item.
            dropped = tf.random.uniform(tf.shape(rows)) < self.id_dropout
            rows = tf.where(dropped, tf.zeros_like(rows), rows)
        vectors = self.id_embedding(rows)
        if self.unknown_item_embedding == "oov":
            return vectors
        mean = tf.reduce_mean(self.id_embedding.embeddings[self.num_oov_buckets:],
                              axis=0)
        known = (rows >= self.num_oov_buckets)[:, None]
        return tf.where(known, vectors, mean[None])
