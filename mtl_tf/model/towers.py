"""Query (user) and candidate (item) towers: the shared representation of all tasks."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from mtl_tf import features as F
from mtl_tf.config import UNKNOWN_ITEM_EMBEDDINGS
from mtl_tf.model.catalog import ItemCatalog
from mtl_tf.model.history import UserHistory
from mtl_tf.model.title_encoder import TitleEncoder

# Any string that is never an item id: it looks up the unknown-item (OOV) id row.
UNKNOWN_ITEM_ID = "\x00unknown-item"


def _id_embedding(vocabulary: Sequence[str], dim: int, num_oov: int, name: str):
    lookup = tf.keras.layers.StringLookup(vocabulary=list(vocabulary),
                                          num_oov_indices=num_oov,
                                          name=f"{name}_lookup")
    embedding = tf.keras.layers.Embedding(len(vocabulary) + num_oov, dim,
                                          name=f"{name}_embedding")
    return lookup, embedding


class QueryTower(tf.keras.layers.Layer):
    """Embeds a user from their id and categorical side features.

    Ids outside `user_ids` share `num_oov_buckets` hashed OOV rows; feature values
    outside their known range map to an OOV row as well.

    Args:
        user_ids: training-split user ids.
        user_features: which of `features.USER_FEATURES` to embed.
        dim: output (and embedding) width.
        num_oov_buckets: OOV rows for unknown ids.
    """

    def __init__(self, user_ids: Sequence[str], user_features: Sequence[str],
                 dim: int, num_oov_buckets: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.history: UserHistory | None = None
        self.item_lookup: tf.keras.layers.StringLookup | None = None
        self.user_features = tuple(user_features)
        self.dim = dim
        self.id_lookup, self.id_embedding = _id_embedding(
            user_ids, dim, num_oov_buckets, "user_id")
        self.feature_lookups = {
            F.USER_AGE: tf.keras.layers.IntegerLookup(
                vocabulary=[int(a) for a in F.AGE_BUCKETS], name="age_lookup"),
            F.USER_GENDER: tf.keras.layers.IntegerLookup(vocabulary=[0, 1],
                                                         name="gender_lookup"),
            F.USER_OCCUPATION: tf.keras.layers.IntegerLookup(
                vocabulary=list(range(F.NUM_OCCUPATIONS)), name="occupation_lookup"),
        }
        self.feature_embeddings = {
            name: tf.keras.layers.Embedding(
                self.feature_lookups[name].vocabulary_size(), dim // 2,
                name=f"{name}_embedding")
            for name in self.user_features}
        self.projection = tf.keras.layers.Dense(dim, name="user_projection")

    def attach_history(self, history: "UserHistory",
                       item_lookup: tf.keras.layers.StringLookup) -> None:
        """Adds the SVD++ implicit-feedback term over training items to the user."""
        self.history = history
        self.item_lookup = item_lookup

    def call(self, features: dict[str, tf.Tensor],
             target_item_ids: tf.Tensor | None = None) -> tf.Tensor:
        """User representation; `target_item_ids` (training only) are left out of
        the user's history term."""
        user_rows = self.id_lookup(features[F.USER_ID])
        parts = [self.id_embedding(user_rows)]
        if self.history is not None:
            target_rows = (None if target_item_ids is None
                           else self.item_lookup(target_item_ids))
            parts.append(self.history(user_rows, target_rows))
        for name in self.user_features:
            values = tf.cast(features[name], tf.int64)
            parts.append(self.feature_embeddings[name](self.feature_lookups[name](values)))
        return self.projection(tf.concat(parts, axis=-1))


class CandidateTower(tf.keras.layers.Layer):
    """Embeds an item from its id, genres and title text into one projection.

    Item text and genres come from the `ItemCatalog`, so a request only carries the
    id. Items unseen in training but present in the catalog (cold start) have no
    id row: they get the `unknown_item_embedding` id vector plus their real text
    and genres. With "mean" (the default) that vector is the mean of the known
    items' id rows, so a cold item starts as the average item and its content
    moves it from there. With "oov" it is the OOV row, which no training item
    uses: unless `id_dropout` trains it, it stays at its random initialisation,
    and that random point decides how high every cold item scores, e.g. whether
    cold items crowd warm ones out of users' top 10.

    `id_dropout` is DropoutNet's input dropout (Volkovs et al., NeurIPS 2017):
    in training, each distinct item of a batch loses its id (it is embedded like
    an unknown item) with this probability, so the tower learns to embed items
    from content alone. It ranks cold items higher, at some cost to warm items.

    The title is a bag of words, the catalog's cached frozen-encoder
    embedding, or, with a `title_encoder`, the output of a pretrained encoder
    fine-tuned here; each distinct item of a batch is encoded once.

    Args:
        item_ids: training-split item ids (the id vocabulary).
        catalog: the `ItemCatalog` with every item's text and genres.
        dim: output (and embedding) width.
        num_oov_buckets: OOV rows for unknown ids.
        use_text, use_genres: include the title / genre features (both off: an
            id-only tower).
        title_encoder: a `TitleEncoder` run on the catalog's `text_tokens`.
        unknown_item_embedding: the id vector of unknown (and dropped) ids:
            "mean" (of the known items' id rows) or "oov" (the OOV row).
        id_dropout: in [0, 1); share of a training batch's distinct items
            embedded without their id.

    Example:
        >>> catalog = ItemCatalog(["7", "9"], ["Space Robot", "Robot Love"],
        ...                       [(15,), (4,)], ["Space Robot", "Robot Love"])
        >>> tower = CandidateTower(["7"], catalog, dim=4)  # "9" is a cold item.
        >>> tower(tf.constant(["7", "9"])).shape
        TensorShape([2, 4])
    """

    def __init__(self, item_ids: Sequence[str], catalog: ItemCatalog, dim: int,
                 num_oov_buckets: int = 1, use_text: bool = True,
                 use_genres: bool = True, title_encoder: TitleEncoder | None = None,
                 unknown_item_embedding: str = "mean", id_dropout: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        if title_encoder is not None and catalog.text_token_ids is None:
            raise ValueError("CandidateTower: a title_encoder needs a catalog with "
                             "`text_tokens` (the titles' word-piece ids).")
        if unknown_item_embedding not in UNKNOWN_ITEM_EMBEDDINGS:
            raise ValueError(
                "unknown_item_embedding must be one of "
                f"{list(UNKNOWN_ITEM_EMBEDDINGS)}. Received: "
                f"`unknown_item_embedding={unknown_item_embedding!r}`.")
        if not 0.0 <= id_dropout < 1.0:
            raise ValueError("id_dropout must be in [0, 1). "
                             f"Received: `id_dropout={id_dropout}`.")
        self.use_text = use_text
        self.use_genres = use_genres
        self.unknown_item_embedding = unknown_item_embedding
        self.id_dropout = float(id_dropout)
        self.num_oov_buckets = num_oov_buckets
        self.catalog = catalog
        self.title_encoder = title_encoder
        self.dim = dim
        self.id_lookup, self.id_embedding = _id_embedding(
            item_ids, dim, num_oov_buckets, "item_id")
        # Title text: a bag of words, or a projection of a pretrained encoder's
        # output (cached or fine-tuned). Only the layer in use is created: a
        # never-built one is dead weight in checkpoints and exports.
        pretrained = title_encoder is not None or catalog.text_embeddings is not None
        self.word_embedding = None if pretrained else tf.keras.layers.Embedding(
            catalog.text_vocabulary_size, dim, name="title_word_embedding")
        self.text_projection = (tf.keras.layers.Dense(dim, name="title_projection")
                                if pretrained else None)
        self.genre_embedding = tf.keras.layers.Dense(
            dim // 2, use_bias=False, name="genre_embedding")
        self.projection = tf.keras.layers.Dense(dim, name="item_projection")

    def call(self, item_ids: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        # Encode each distinct item of the batch once.
        unique_ids, positions = tf.unique(item_ids)
        encoded = self.encode(self.id_lookup(unique_ids), self.catalog(unique_ids),
                              training=training)
        return tf.gather(encoded, positions)

    def encode(self, id_rows: tf.Tensor, side: dict[str, tf.Tensor],
               training: bool | None = None) -> tf.Tensor:
        """The tower's output from id-embedding rows and side features.

        `side` is what `ItemCatalog.call` returns (`rows`, `genres` and the text
        features of the tower's kind); the cold-start item encoder export builds
        it from raw titles and genres instead.
        """
        parts = [self._id_vectors(id_rows, training)]
        if self.use_text and self.title_encoder is not None:
            text = self.title_encoder({"token_ids": side["text_token_ids"],
                                       "padding_mask": side["text_padding_mask"]},
                                      training=training)
            # The unknown item (row 0) has no title: zeros, as in the frozen cache.
            text *= tf.cast(side["rows"] > 0, text.dtype)[:, None]
            parts.append(self.text_projection(text))
        elif self.use_text and "text_embeddings" in side:
            parts.append(self.text_projection(side["text_embeddings"]))
        elif self.use_text:
            tokens = side["title_tokens"]
            mask = tf.cast(tokens > 0, tf.float32)[..., None]
            words = tf.reduce_sum(self.word_embedding(tokens) * mask, axis=1)
            parts.append(words / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0))
        if self.use_genres:
            genres = side["genres"] / tf.maximum(
                tf.reduce_sum(side["genres"], axis=1, keepdims=True), 1.0)
            parts.append(self.genre_embedding(genres))
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
