"""Query (user) and candidate (item) towers: the shared representation of all tasks."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from mtl_tf import features as F
from mtl_tf.config import CONTENT_FUSIONS, UNKNOWN_ITEM_EMBEDDINGS
from mtl_tf.model.catalog import ItemCatalog
from mtl_tf.model.history import UserHistory


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
    """Embeds an item from its id and its content: title text and genres.

    Item text and genres come from the `ItemCatalog`, so a request only carries the
    id. Items unseen in training but present in the catalog (cold start) get the
    OOV id row plus their real text and genres.

    The content enters in one of two ways (`content_fusion`):

    - "concat": the text and genre vectors are concatenated with the id embedding
      before one shared item projection.
    - "gated": the content is a separate additive term,
      ``item = projection(id) + gate * content_projection([text, genres])``, with
      `gate` a learned per-dimension vector started at `content_gate_init`. With
      a gate of 0 the tower is exactly the id-only tower, so warm items stay
      id-driven and the content only takes what the training signal gives it.

    `id_dropout` is DropoutNet's input dropout (Volkovs et al., NeurIPS 2017):
    in training, each distinct item of a batch has its id replaced by the OOV
    (unknown-item) id with this probability, so the tower learns to embed items
    from their content alone, as it must for cold items.

    Args:
        item_ids: training-split item ids (the id vocabulary).
        catalog: the `ItemCatalog` with every item's text and genres.
        dim: output (and embedding) width.
        num_oov_buckets: OOV rows for unknown ids.
        use_text, use_genres: include the title / genre features (both off: an
            id-only tower).
        content_fusion: "concat" or "gated" (see above).
        content_gate_init: initial value of every gate dimension ("gated" only).
        id_dropout: in [0, 1); share of a training batch's distinct items embedded
            with the OOV id instead of their own.
        text_dropout: in [0, 1); dropout rate on the text vector in training.
        unknown_item_embedding: id vector of unknown (and dropped) ids: "oov"
            (the OOV row) or "mean" (the mean of the known items' id rows).

    Example:
        >>> catalog = ItemCatalog(["7", "9"], ["Space Robot", "Robot Love"],
        ...                       [(15,), (4,)], ["Space Robot", "Robot Love"])
        >>> tower = CandidateTower(["7"], catalog, dim=4, content_fusion="gated")
        >>> tower(tf.constant(["7", "9"])).shape
        TensorShape([2, 4])
    """

    def __init__(self, item_ids: Sequence[str], catalog: ItemCatalog, dim: int,
                 num_oov_buckets: int = 1, use_text: bool = True,
                 use_genres: bool = True, content_fusion: str = "concat",
                 content_gate_init: float = 0.0, id_dropout: float = 0.0,
                 text_dropout: float = 0.0, unknown_item_embedding: str = "oov",
                 **kwargs):
        super().__init__(**kwargs)
        if content_fusion not in CONTENT_FUSIONS:
            raise ValueError(
                f"content_fusion must be one of {list(CONTENT_FUSIONS)}. "
                f"Received: `content_fusion={content_fusion!r}`.")
        for name, rate in (("id_dropout", id_dropout),
                           ("text_dropout", text_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1). "
                                 f"Received: `{name}={rate}`.")
        if unknown_item_embedding not in UNKNOWN_ITEM_EMBEDDINGS:
            raise ValueError(
                "unknown_item_embedding must be one of "
                f"{list(UNKNOWN_ITEM_EMBEDDINGS)}. Received: "
                f"`unknown_item_embedding={unknown_item_embedding!r}`.")
        self.unknown_item_embedding = unknown_item_embedding
        self.use_text = use_text
        self.use_genres = use_genres
        self.content_fusion = content_fusion
        self.content_gate_init = float(content_gate_init)
        self.id_dropout = float(id_dropout)
        self.text_dropout = float(text_dropout)
        self.num_oov_buckets = num_oov_buckets
        self.catalog = catalog
        self.dim = dim
        self.id_lookup, self.id_embedding = _id_embedding(
            item_ids, dim, num_oov_buckets, "item_id")
        self.word_embedding = tf.keras.layers.Embedding(
            catalog.text_vocabulary_size, dim, name="title_word_embedding")
        # With cached pretrained title embeddings, a projection replaces the BOW.
        self.text_projection = tf.keras.layers.Dense(dim, name="title_projection")
        self.text_dropout_layer = tf.keras.layers.Dropout(text_dropout,
                                                          name="title_dropout")
        self.genre_embedding = tf.keras.layers.Dense(
            dim // 2, use_bias=False, name="genre_embedding")
        self.projection = tf.keras.layers.Dense(dim, name="item_projection")
        self.content_projection = None
        self.content_gate = None
        if (use_text or use_genres) and content_fusion == "gated":
            self.content_projection = tf.keras.layers.Dense(
                dim, name="content_projection")
            self.content_gate = self.add_weight(
                name="content_gate", shape=(dim,),
                initializer=tf.keras.initializers.Constant(self.content_gate_init))

    def call(self, item_ids: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        # Encode each distinct item of the batch once.
        unique_ids, positions = tf.unique(item_ids)
        side = self.catalog(unique_ids)
        id_rows = self.id_lookup(unique_ids)
        if training and self.id_dropout > 0:
            # StringLookup puts its OOV rows first; an unknown id hashes into them.
            oov_rows = tf.strings.to_hash_bucket_fast(unique_ids, self.num_oov_buckets)
            dropped = tf.random.uniform(tf.shape(id_rows)) < self.id_dropout
            id_rows = tf.where(dropped, oov_rows, id_rows)
        id_vector = self.id_embedding(id_rows)
        if self.unknown_item_embedding == "mean":
            # Unknown (and dropped) ids: the mean of the known items' id rows.
            table = self.id_embedding.embeddings
            mean = tf.reduce_mean(table[self.num_oov_buckets:], axis=0)
            known = (id_rows >= self.num_oov_buckets)[:, None]
            id_vector = tf.where(known, id_vector, mean[None])
        content = []
        if self.use_text:
            content.append(self._text(side, training))
        if self.use_genres:
            genres = side["genres"] / tf.maximum(
                tf.reduce_sum(side["genres"], axis=1, keepdims=True), 1.0)
            content.append(self.genre_embedding(genres))
        if self.content_gate is None:
            encoded = self.projection(tf.concat([id_vector] + content, axis=-1))
        else:
            encoded = self.projection(id_vector) + self.content_gate * (
                self.content_projection(tf.concat(content, axis=-1)))
        return tf.gather(encoded, positions)

    def _text(self, side: dict[str, tf.Tensor], training) -> tf.Tensor:
        """The title vector: projected pretrained embedding or mean word vector."""
        if "text_embeddings" in side:
            text = self.text_projection(side["text_embeddings"])
        else:
            tokens = side["title_tokens"]
            mask = tf.cast(tokens > 0, tf.float32)[..., None]
            words = tf.reduce_sum(self.word_embedding(tokens) * mask, axis=1)
            text = words / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        return self.text_dropout_layer(text, training=training)
