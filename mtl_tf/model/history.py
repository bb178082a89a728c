"""Encoders of the user's behaviour history: the query tower's sequence
encoders (`model.history_encoder`) and the ranking heads' target attention
(`model.target_attention`).

The history is a schema `sequence` feature: item ids, oldest first, padded with
"" ([batch, n] strings, in training and in serving requests alike). Every
encoder looks the ids up in the candidate tower's item vocabulary and, by
default, embeds them with the candidate tower's item id embeddings. Unknown ids
and padding are masked out, so an all-unknown history encodes exactly like an
empty one: as zeros. Only the `max_length` most recent known items count. The
cost of a step or a request is that of the row's own history: nothing is
computed over all users or over the log.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from mtl_tf.config import HISTORY_ENCODERS, HISTORY_POOLINGS
from mtl_tf.model.encoders import as_string

# Time gaps are embedded in log2 buckets of their seconds: bucket 0 holds
# negative gaps (events after the row, in random splits), bucket b >= 1 gaps in
# [2^(b-1) - 1, 2^b - 1) seconds, the last bucket everything from ~34 years.
NUM_TIME_GAP_BUCKETS = 32


class ParallelEmbedding(tf.keras.layers.Layer):
    """Embeds a list parallel to the history, event by event: a log column's
    values through their training vocabulary (unknown values share an OOV
    row), or, without a vocabulary, time gaps in seconds in log2 buckets.

    Example:
        >>> kinds = ParallelEmbedding(4, vocabulary=["click", "buy"])
        >>> kinds(tf.constant([["buy", "??"]])).shape
        TensorShape([1, 2, 4])
        >>> ParallelEmbedding(4)(tf.constant([[-5.0, 3600.0]])).shape
        TensorShape([1, 2, 4])
    """

    def __init__(self, dim: int, vocabulary: Sequence[str] | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.is_time_gap = vocabulary is None
        rows = NUM_TIME_GAP_BUCKETS
        if not self.is_time_gap:
            self.lookup = tf.keras.layers.StringLookup(vocabulary=list(vocabulary))
            rows = len(vocabulary) + 1
        self.embedding = tf.keras.layers.Embedding(
            rows, dim, embeddings_initializer=tf.keras.initializers.RandomNormal(
                stddev=0.05), name="embedding")

    def call(self, values: tf.Tensor) -> tf.Tensor:
        if not self.is_time_gap:
            return self.embedding(self.lookup(as_string(values)))
        gaps = tf.cast(values, tf.float32)
        buckets = 1 + tf.floor(tf.math.log(1.0 + tf.maximum(gaps, 0.0))
                               / tf.math.log(2.0))
        buckets = tf.where(gaps < 0, 0.0, tf.minimum(
            buckets, NUM_TIME_GAP_BUCKETS - 1))
        return self.embedding(tf.cast(buckets, tf.int64))


class HistoryItems(tf.keras.layers.Layer):
    """The history's `max_length` most recent known events as vectors, and the
    mask of known items: each item's id embedding plus the embeddings of its
    parallel lists (`ParallelEmbedding`).

    Events are right-aligned in time order (a stable sort moves unknown ids
    and padding to the left, masked), so the most recent event is always the
    last position. In training, `item_dropout` also masks items at random.

    Args:
        item_lookup: the candidate tower's item id `StringLookup`.
        item_embedding: the embedding layer of history items.
        max_length: most recent known events kept.
        num_oov: the lookup's OOV rows (ids below it are unknown).
        history_name: the history's input name (needed with `parallel`).
        parallel: embedders of the parallel lists, by input name.
    """

    def __init__(self, item_lookup: tf.keras.layers.StringLookup,
                 item_embedding: tf.keras.layers.Embedding, max_length: int,
                 num_oov: int = 1, history_name: str = "",
                 parallel: Mapping[str, ParallelEmbedding] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.item_lookup, self.embedding = item_lookup, item_embedding
        self.max_length, self.num_oov = int(max_length), num_oov
        self.history_name = history_name
        self.parallel = dict(parallel or {})
        if self.parallel and not history_name:
            raise ValueError("HistoryItems: parallel lists need the history's "
                             "input name (history_name).")

    @property
    def input_names(self) -> list[str]:
        """The request inputs read: the history and its parallel lists."""
        return [self.history_name, *self.parallel] if self.history_name else []

    def call(self, inputs, item_dropout: float = 0.0
             ) -> tuple[tf.Tensor, tf.Tensor]:
        if isinstance(inputs, Mapping):
            ids, values = inputs[self.history_name], [inputs[n] for n in self.parallel]
        elif self.parallel:
            raise ValueError(f"HistoryItems: pass {self.input_names} as a dict.")
        else:
            ids, values = inputs, []
        ids = tf.convert_to_tensor(ids)
        if ids.shape.rank == 1:
            ids = ids[:, None]
        length, width = self.max_length, tf.shape(ids)[1]
        # At least `length` columns, so the shapes below never depend on n.
        ids = tf.concat([tf.fill([tf.shape(ids)[0], length], ""), as_string(ids)], 1)
        rows = tf.cast(self.item_lookup(ids), tf.int64)
        known = rows >= self.num_oov
        if item_dropout > 0:
            known &= tf.random.uniform(tf.shape(rows)) >= item_dropout
        # Known items to the right, in order (a stable sort); keep the newest.
        order = tf.argsort(tf.cast(known, tf.int32), axis=1, stable=True)[:, -length:]
        items = self.embedding(tf.gather(rows, order, batch_dims=1))
        for embed, value in zip(self.parallel.values(), values):
            items += embed(tf.gather(_aligned(value, width, length), order,
                                     batch_dims=1))
        known = tf.gather(known, order, batch_dims=1)
        return items * tf.cast(known, items.dtype)[..., None], known


def _aligned(values: tf.Tensor, width: tf.Tensor, length: int) -> tf.Tensor:
    """A parallel list cut or padded to the history's `width`, with the
    history's `length` columns of padding in front."""
    values = tf.convert_to_tensor(values)
    if values.shape.rank == 1:
        values = values[:, None]
    if values.dtype != tf.float32:
        values = as_string(values)
    pad = tf.zeros([], values.dtype)
    missing = tf.maximum(width - tf.shape(values)[1], 0)
    values = tf.pad(values, [[0, 0], [0, missing]], constant_values=pad)[:, :width]
    return tf.concat([tf.fill([tf.shape(values)[0], length], pad), values], 1)


class HistoryEncoder(tf.keras.layers.Layer):
    """One vector per history, from one of the encoder kinds below.

    - "mean": the implicit-feedback term of SVD++ (Koren, "Factorization meets
      the neighborhood", KDD 2008), |N(u)|^-1/2 sum_{j in N(u)} y_j, over the
      row's own history.
    - "gru": a GRU over the items in time order, its last state (GRU4Rec,
      Hidasi et al., ICLR 2016).
    - "conv1d": causal 1-D convolutions over the item embeddings, max-pooled
      over time (after Caser, Tang & Wang, WSDM 2018).
    - "transformer": self-attention blocks over the item embeddings plus
      learned position embeddings (SASRec, Kang & McAuley, ICDM 2018; BST,
      Chen et al., DLP-KDD 2019), causal or bidirectional, pooled at the most
      recent position ("last", SASRec's choice), by a learned attention query
      ("attention") or by the mean.

    Positions count back from the most recent item, so the same item at the
    same recency gets the same position whatever the padding.

    Args:
        kind: one of "mean", "gru", "conv1d", "transformer".
        item_lookup: the candidate tower's item id `StringLookup`.
        num_item_rows: rows of that lookup (its vocabulary size).
        dim: embedding and output width.
        max_length: most recent known items encoded.
        item_embedding: the embedding layer to share (the candidate tower's
            item id embeddings); None gives the history its own.
        num_oov: the lookup's OOV rows (ids below it are unknown).
        num_layers, num_heads, causal, pooling, dropout: the transformer's.
        item_dropout: in training, the share of history items dropped at
            random (input dropout, as in the denoising autoencoders of Liang et
            al., "Variational Autoencoders for Collaborative Filtering", WWW
            2018): the model cannot lean on any single item of a history.
        history_name, parallel: the history's input name and the embedders
            of its parallel lists (`HistoryItems`); with them the encoder
            takes a dict of its `input_names`.

    Example:
        >>> lookup = tf.keras.layers.StringLookup(vocabulary=["x", "y"])
        >>> encoder = HistoryEncoder("mean", lookup, 3, dim=4, max_length=5)
        >>> encoder(tf.constant([["x", "y"], ["new", ""]])).numpy()[1].tolist()
        [0.0, 0.0, 0.0, 0.0]
    """

    def __init__(self, kind: str, item_lookup: tf.keras.layers.StringLookup,
                 num_item_rows: int, dim: int, max_length: int,
                 item_embedding: tf.keras.layers.Embedding | None = None,
                 num_oov: int = 1, num_layers: int = 1, num_heads: int = 2,
                 causal: bool = False, pooling: str = "last", dropout: float = 0.1,
                 item_dropout: float = 0.0, history_name: str = "",
                 parallel: Mapping[str, ParallelEmbedding] | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if kind not in HISTORY_ENCODERS or kind == "none":
            raise ValueError(f"HistoryEncoder: kind must be one of "
                             f"{list(HISTORY_ENCODERS[1:])}. Received: {kind!r}.")
        if pooling not in HISTORY_POOLINGS:
            raise ValueError(f"HistoryEncoder: pooling must be one of "
                             f"{list(HISTORY_POOLINGS)}. Received: {pooling!r}.")
        self.kind, self.dim, self.max_length = kind, dim, int(max_length)
        if not 0.0 <= item_dropout < 1.0:
            raise ValueError("HistoryEncoder: item_dropout must be in [0, 1). "
                             f"Received: {item_dropout}.")
        self.num_oov, self.pooling, self.causal = num_oov, pooling, causal
        self.item_dropout = float(item_dropout)
        self.items = HistoryItems(
            item_lookup, item_embedding or tf.keras.layers.Embedding(
                num_item_rows, dim, name="history_item_embedding",
                embeddings_initializer=tf.keras.initializers.RandomNormal(
                    stddev=0.05)),
            max_length, num_oov, history_name, parallel, name="history_items")
        if kind == "gru":
            self.gru = tf.keras.layers.GRU(dim, name="gru")
        elif kind == "conv1d":
            self.convolutions = [
                tf.keras.layers.Conv1D(dim, 3, padding="causal", activation="relu",
                                       dilation_rate=2 ** i, name=f"conv_{i}")
                for i in range(num_layers)]
        elif kind == "transformer":
            self.positions = tf.keras.layers.Embedding(
                self.max_length, dim, name="position_embedding")
            self.blocks = [_TransformerBlock(dim, num_heads, dropout, name=f"block_{i}")
                           for i in range(num_layers)]
            self.input_dropout = tf.keras.layers.Dropout(dropout)
            if pooling == "attention":
                self.pool_query = self.add_weight(
                    name="pool_query", shape=(dim,),
                    initializer=tf.keras.initializers.RandomNormal(stddev=0.05))

    @property
    def input_names(self) -> list[str]:
        """The request inputs read (see `HistoryItems.input_names`)."""
        return self.items.input_names

    def call(self, inputs, training=None) -> tf.Tensor:
        items, known = self.items(inputs,
                                  item_dropout=self.item_dropout if training else 0.0)
        mask = tf.cast(known, tf.float32)[..., None]
        encoded = self._encode(items, known, mask, training)
        has_items = tf.reduce_any(known, axis=1, keepdims=True)
        return encoded * tf.cast(has_items, encoded.dtype)

    def _encode(self, items, known, mask, training):
        count = tf.reduce_sum(mask, axis=1)
        if self.kind == "mean":
            return tf.reduce_sum(items, 1) / tf.sqrt(tf.maximum(count, 1.0))
        if self.kind == "gru":
            return self.gru(items, mask=known, training=training)
        if self.kind == "conv1d":
            hidden = items
            for convolution in self.convolutions:
                hidden = convolution(hidden) * mask
            return tf.reduce_max(hidden, axis=1)  # ReLU outputs: >= 0
        hidden = items + self.positions(tf.range(self.max_length))[None] * mask
        hidden = self.input_dropout(hidden, training=training)
        attend = known[:, None, :] & known[:, :, None]
        if self.causal:
            attend &= tf.linalg.band_part(
                tf.ones([self.max_length] * 2, tf.bool), -1, 0)[None]
        for block in self.blocks:
            hidden = block(hidden, attend, training=training) * mask
        if self.pooling == "last":
            return hidden[:, -1]
        if self.pooling == "mean":
            return tf.reduce_sum(hidden, 1) / tf.maximum(count, 1.0)
        logits = tf.einsum("bld,d->bl", hidden, self.pool_query)
        logits = tf.where(known, logits, -1e9)
        return tf.einsum("bl,bld->bd", tf.nn.softmax(logits, axis=1), hidden)


class _TransformerBlock(tf.keras.layers.Layer):
    """Post-norm self-attention and feed-forward block (Vaswani et al., 2017)."""

    def __init__(self, dim: int, num_heads: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.attention = tf.keras.layers.MultiHeadAttention(
            num_heads, max(1, dim // num_heads), dropout=dropout, name="attention")
        self.feed_forward = [tf.keras.layers.Dense(2 * dim, activation="relu"),
                             tf.keras.layers.Dense(dim)]
        self.norms = [tf.keras.layers.LayerNormalization(epsilon=1e-6)
                      for _ in range(2)]
        self.dropout = tf.keras.layers.Dropout(dropout)

    def call(self, hidden, attend, training=None):
        attended = self.attention(hidden, hidden, attention_mask=attend,
                                  training=training)
        hidden = self.norms[0](hidden + self.dropout(attended, training=training))
        forward = self.feed_forward[1](self.feed_forward[0](hidden))
        return self.norms[1](hidden + self.dropout(forward, training=training))


class TargetAttention(tf.keras.layers.Layer):
    """The candidate item attends over the history: DIN's local activation unit
    (Zhou et al., "Deep Interest Network for Click-Through Rate Prediction",
    KDD 2018), for the ranking heads (`model.target_attention`).

    Each history item j with embedding e_j gets the weight
    w_j = MLP([e_j, v, e_j - v, e_j * v]) for the candidate's vector v, and the
    output is sum_j w_j e_j over the known items. As in DIN, the weights are not
    normalised by a softmax, so the output's size keeps how much of the history
    relates to the candidate. An empty or all-unknown history gives zeros.

    Args:
        item_lookup: the candidate tower's item id `StringLookup`.
        item_embedding: the embedding of history items (by default the
            candidate tower's item id embeddings).
        max_length: most recent known items attended over.
        num_oov: the lookup's OOV rows (ids below it are unknown).
        units: hidden sizes of the activation unit's MLP.
        history_name, parallel: as for `HistoryEncoder`.

    Example:
        >>> lookup = tf.keras.layers.StringLookup(vocabulary=["x", "y"])
        >>> embedding = tf.keras.layers.Embedding(3, 4)
        >>> attention = TargetAttention(lookup, embedding, max_length=5)
        >>> attention(tf.constant([["x", "y"], ["", ""]]), tf.ones([2, 4])).shape
        TensorShape([2, 4])
    """

    def __init__(self, item_lookup: tf.keras.layers.StringLookup,
                 item_embedding: tf.keras.layers.Embedding, max_length: int,
                 num_oov: int = 1, units: tuple[int, ...] = (32,),
                 history_name: str = "",
                 parallel: Mapping[str, ParallelEmbedding] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.items = HistoryItems(item_lookup, item_embedding, max_length, num_oov,
                                  history_name, parallel, name="history_items")
        self.hidden = [tf.keras.layers.Dense(width, activation="relu",
                                             name=f"activation_hidden_{i}")
                       for i, width in enumerate(units)]
        self.weight_layer = tf.keras.layers.Dense(1, name="activation_weight")

    @property
    def input_names(self) -> list[str]:
        """The request inputs read (see `HistoryItems.input_names`)."""
        return self.items.input_names

    def call(self, inputs, target: tf.Tensor, training=None) -> tf.Tensor:
        items, known = self.items(inputs)
        candidate = tf.broadcast_to(target[:, None, :], tf.shape(items))
        h = tf.concat([items, candidate, items - candidate, items * candidate], -1)
        for layer in self.hidden:
            h = layer(h)
        weights = self.weight_layer(h) * tf.cast(known, tf.float32)[..., None]
        return tf.reduce_sum(weights * items, axis=1)
