"""The item catalog baked into the model: id -> row, tokenized text and genres."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from mtl_tf import features as F


class ItemCatalog(tf.keras.layers.Layer):
    """Maps item ids to catalog rows and holds each row's title tokens and genres.

    Row 0 is the "unknown item" (no title, no genres): ids missing from the catalog
    map there instead of failing, so serving never errors on a new id. Title tokens
    come from a bag-of-words `TextVectorization` adapted on the titles of
    `vocabulary_titles` (the training items only, so test text does not leak).

    Args:
        item_ids: ids of every catalog item (strings).
        titles: item titles, aligned with `item_ids`.
        genres: tuples of genre ids, aligned with `item_ids`.
        vocabulary_titles: titles the text vocabulary is learned from.
        max_tokens: text vocabulary size (incl. padding and OOV).
        sequence_length: title tokens kept per item.
        text_embeddings: optional [len(item_ids) + 1, hidden] title embeddings from
            a frozen pretrained encoder (row 0: the unknown item), computed once.
        text_tokens: optional word-piece ids of every title for an encoder that
            is fine-tuned in the tower: `{"token_ids", "padding_mask"}` arrays of
            shape [len(item_ids) + 1, length] (row 0: the unknown item), as made
            by `text_encoder.tokenize_texts`.

    Example:
        >>> catalog = ItemCatalog(["7"], ["Space Robot"], [(15,)], ["Space Robot"])
        >>> catalog.rows(tf.constant(["7", "unknown"])).numpy().tolist()
        [1, 0]
    """

    def __init__(self, item_ids: Sequence[str], titles: Sequence[str],
                 genres: Sequence[Sequence[int]], vocabulary_titles: Sequence[str],
                 max_tokens: int = 5000, sequence_length: int = 12,
                 text_embeddings: np.ndarray | None = None,
                 text_tokens: dict[str, np.ndarray] | None = None, **kwargs):
        super().__init__(**kwargs)
        if not (len(item_ids) == len(titles) == len(genres)):
            raise ValueError("ItemCatalog: item_ids, titles and genres must align. "
                             f"Received lengths {len(item_ids)}, {len(titles)}, "
                             f"{len(genres)}.")
        self.item_ids = np.asarray(item_ids, dtype=object).astype(str)
        self.max_tokens = max_tokens
        self.sequence_length = sequence_length
        vectorizer = tf.keras.layers.TextVectorization(
            max_tokens=max_tokens, output_mode="int",
            output_sequence_length=sequence_length)
        vectorizer.adapt(np.asarray(list(vocabulary_titles) or [""], dtype=object))
        self.text_vocabulary_size = vectorizer.vocabulary_size()
        tokens = vectorizer(np.asarray([""] + list(titles), dtype=object)).numpy()
        multi_hot = np.zeros((len(item_ids) + 1, F.NUM_GENRES), np.float32)
        for row, item_genres in enumerate(genres, start=1):
            valid = [g for g in item_genres if 0 <= g < F.NUM_GENRES]
            multi_hot[row, valid] = 1.0
        self.title_tokens = tf.constant(tokens, tf.int64)
        self.genre_multi_hot = tf.constant(multi_hot)
        self.catalog_ids = tf.constant(self.item_ids)
        self.text_embeddings = None
        if text_embeddings is not None:
            if text_embeddings.shape[0] != len(item_ids) + 1:
                raise ValueError("ItemCatalog: text_embeddings needs one row per item "
                                 f"plus the unknown row ({len(item_ids) + 1}). "
                                 f"Received shape {text_embeddings.shape}.")
            self.text_embeddings = tf.constant(text_embeddings, tf.float32)
        self.text_token_ids = self.text_padding_mask = None
        if text_tokens is not None:
            token_ids = np.asarray(text_tokens["token_ids"], np.int32)
            if token_ids.ndim != 2 or token_ids.shape[0] != len(item_ids) + 1:
                raise ValueError("ItemCatalog: text_tokens needs one row per item "
                                 f"plus the unknown row ({len(item_ids) + 1}). "
                                 f"Received token_ids of shape {token_ids.shape}.")
            self.text_token_ids = tf.constant(token_ids)
            self.text_padding_mask = tf.constant(
                np.asarray(text_tokens["padding_mask"], bool))
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self.catalog_ids, tf.range(1, len(item_ids) + 1, dtype=tf.int64)),
            default_value=0)

    @property
    def size(self) -> int:
        """Number of catalog items (the unknown row not counted)."""
        return len(self.item_ids)

    def rows(self, item_ids: tf.Tensor) -> tf.Tensor:
        """Catalog rows of string ids; unknown ids give row 0."""
        return self._table.lookup(item_ids)

    def call(self, item_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        rows = self.rows(item_ids)
        side = {"rows": rows, "title_tokens": tf.gather(self.title_tokens, rows),
                "genres": tf.gather(self.genre_multi_hot, rows)}
        if self.text_embeddings is not None:
            side["text_embeddings"] = tf.gather(self.text_embeddings, rows)
        if self.text_token_ids is not None:
            side["text_token_ids"] = tf.gather(self.text_token_ids, rows)
            side["text_padding_mask"] = tf.gather(self.text_padding_mask, rows)
        return side
