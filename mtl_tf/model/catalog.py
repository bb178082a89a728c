"""The item catalog baked into the model: id -> row, and every row's prepared
item features."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf


class ItemCatalog(tf.keras.layers.Layer):
    """Maps item ids to catalog rows and holds each row's prepared item features.

    Row 0 is the "unknown item": ids missing from the catalog map there instead
    of failing, so serving never errors on a new id. The prepared features are
    what each item feature's encoder `prepare`s from the raw values (vocabulary
    rows, token ids, a frozen text encoder's cached embeddings), computed once
    when the model is built; row 0 holds the prepared form of missing values.

    Args:
        item_ids: ids of every catalog item (strings).
        prepared: per item feature, an array (or a dict of arrays) with
            `len(item_ids) + 1` rows, row 0 for the unknown item.

    Example:
        >>> catalog = ItemCatalog(["7", "9"], {"price": np.zeros((3, 2))})
        >>> catalog.rows(tf.constant(["9", "unknown"])).numpy().tolist()
        [2, 0]
    """

    def __init__(self, item_ids: Sequence[str],
                 prepared: Mapping[str, np.ndarray | Mapping[str, np.ndarray]],
                 **kwargs):
        super().__init__(**kwargs)
        self.item_ids = np.asarray(item_ids, dtype=object).astype(str)
        for name, values in prepared.items():
            for array in tf.nest.flatten(values):
                if len(array) != len(item_ids) + 1:
                    raise ValueError(
                        f"ItemCatalog: feature {name!r} needs one row per item plus "
                        f"the unknown row ({len(item_ids) + 1}). Received "
                        f"{len(array)} rows.")
        self.prepared = {name: tf.nest.map_structure(tf.constant, values)
                         for name, values in prepared.items()}
        self.catalog_ids = tf.constant(self.item_ids)
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

    def gather(self, rows: tf.Tensor) -> dict[str, tf.Tensor]:
        """The prepared features of catalog `rows`, plus the rows themselves."""
        side = {name: tf.nest.map_structure(lambda t: tf.gather(t, rows), values)
                for name, values in self.prepared.items()}
        side["rows"] = rows
        return side

    def call(self, item_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.gather(self.rows(item_ids))
