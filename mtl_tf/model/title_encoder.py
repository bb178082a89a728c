"""Fine-tuned item titles in the candidate tower: a `TextEncoderAdapter` over tokens.

In the fine-tuning modes the catalog holds each item's word-piece ids (tokenized
once, in numpy, at build time) and the candidate tower runs the encoder on the
distinct items of every batch. `TitleEncoder` does that run:

- training: the given titles (a batch's distinct items) sorted by length and
  split into `train_buckets` parts, each a forward pass cut to its own longest
  title; a Python loop, so gradients reach the backbone. Catalog titles vary a
  lot in length (ml-100k: 9 word pieces on average, 29 at most), so one pass
  padded to the longest would do about twice the work;
- inference (evaluation re-embeds the whole catalog on every call; the export
  embeds it once): titles are sorted by length and encoded in chunks of
  `chunk_size`, each cut to its own longest title. Memory stays bounded however
  large the catalog, and short titles are not padded to the longest one.

`tokenize` turns raw title strings into the same ids in-graph. It needs the
keras-hub tokenizer's tensorflow-text ops, so only the optional cold-start item
encoder export uses it (`mtl_tf.export.export_item_encoder`); training and the
serving signatures never do.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from mtl_tf.model.text_encoder import TextEncoderAdapter


class TitleEncoder(tf.keras.layers.Layer):
    """Encodes tokenized titles with a (fine-tuned) `TextEncoderAdapter`.

    Args:
        adapter: the adapter holding the keras-hub backbone; its `mode` decides
            which backbone weights train.
        tokenizer: the backbone's keras-hub tokenizer (used by `tokenize` only;
            optional).
        sequence_length: word pieces per title, [CLS] and [SEP] included (the
            width of the catalog's token ids).
        chunk_size: titles per forward pass at inference.
        train_buckets: forward passes per training call (length buckets).

    Example:
        >>> backbone, tokenizer = tiny_backbone(["space", "robot"])
        >>> adapter = TextEncoderAdapter(backbone, mode="finetune")
        >>> encoder = TitleEncoder(adapter, tokenizer, sequence_length=8)
        >>> encoder(encoder.tokenize(tf.constant(["Space Robot"]))).shape
        TensorShape([1, 8])
    """

    def __init__(self, adapter: TextEncoderAdapter, tokenizer: Any = None,
                 sequence_length: int = 32, chunk_size: int = 512,
                 train_buckets: int = 4, **kwargs):
        super().__init__(**kwargs)
        if chunk_size < 1 or train_buckets < 1:
            raise ValueError(f"TitleEncoder: chunk_size and train_buckets must be "
                             f">= 1. Received: `chunk_size={chunk_size}`, "
                             f"`train_buckets={train_buckets}`.")
        if not 2 <= sequence_length <= adapter.backbone.max_sequence_length:
            raise ValueError(
                "TitleEncoder: sequence_length must be in [2, the backbone's "
                f"max_sequence_length={adapter.backbone.max_sequence_length}]. "
                f"Received: `sequence_length={sequence_length}`.")
        self.adapter = adapter
        # A plain attribute, not a tracked sub-layer: the tokenizer has no weights
        # and must stay out of checkpoints and of the serving SavedModel.
        self.__dict__["tokenizer"] = tokenizer
        self.sequence_length = sequence_length
        self.chunk_size = chunk_size
        self.train_buckets = train_buckets
        self.hidden_dim = adapter.hidden_dim

    def call(self, inputs: dict[str, tf.Tensor], training: bool | None = None
             ) -> tf.Tensor:
        """`{"token_ids", "padding_mask"}` [n, length] -> [n, hidden_dim]."""
        if tf.is_tensor(training):
            training = tf.get_static_value(training)
        token_ids = tf.cast(inputs["token_ids"], tf.int32)
        mask = tf.cast(inputs["padding_mask"], tf.int32)
        count = tf.shape(token_ids)[0]
        order = tf.argsort(tf.reduce_sum(mask, axis=1), stable=True)
        token_ids, mask = tf.gather(token_ids, order), tf.gather(mask, order)
        if training:
            bounds = [count * i // self.train_buckets
                      for i in range(self.train_buckets + 1)]
            in_length_order = tf.concat([
                self._encode_bucket(token_ids, mask, start, end)
                for start, end in zip(bounds[:-1], bounds[1:])], axis=0)
        else:
            in_length_order = self._encode_in_chunks(token_ids, mask, count)
        # Back from length order to the input order.
        return tf.gather(in_length_order, tf.math.invert_permutation(order))

    def _encode_bucket(self, token_ids, mask, start, end) -> tf.Tensor:
        """Training pass over rows [start, end); an empty bucket (fewer titles
        than buckets) skips the backbone, which fails on zero rows."""
        return tf.cond(
            end > start,
            lambda: self.adapter({"token_ids": token_ids[start:end],
                                  "padding_mask": mask[start:end]}, training=True),
            lambda: tf.zeros([0, self.hidden_dim], tf.float32))

    def _encode_in_chunks(self, token_ids: tf.Tensor, mask: tf.Tensor,
                          count: tf.Tensor) -> tf.Tensor:
        """Inference over titles sorted by length, `chunk_size` at a time."""
        num_chunks = (count + self.chunk_size - 1) // self.chunk_size

        def encode_chunk(index, encoded):
            start = index * self.chunk_size
            chunk = self.adapter(
                {"token_ids": token_ids[start:start + self.chunk_size],
                 "padding_mask": mask[start:start + self.chunk_size]},
                training=False)
            return index + 1, encoded.write(index, chunk)

        encoded = tf.TensorArray(tf.float32, size=num_chunks, infer_shape=False,
                                 element_shape=tf.TensorShape([None,
                                                               self.hidden_dim]))
        _, encoded = tf.while_loop(lambda index, _: index < num_chunks,
                                   encode_chunk, [tf.constant(0), encoded])
        return tf.cond(count > 0, encoded.concat,
                       lambda: tf.zeros([0, self.hidden_dim], tf.float32))

    def tokenize(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        """In-graph `text_encoder.tokenize_texts`: the same ids, [CLS] .. [SEP].

        Needs the tokenizer's tensorflow-text ops wherever it runs.
        """
        tokenizer = self.tokenizer
        if tokenizer is None:
            raise ValueError("TitleEncoder.tokenize needs the keras-hub tokenizer; "
                             "pass `tokenizer=` when creating the TitleEncoder.")
        texts = tf.reshape(tf.convert_to_tensor(texts, tf.string), [-1])
        pieces = tf.cast(tokenizer(texts), tf.int32)
        if not isinstance(pieces, tf.RaggedTensor):  # a batch of equal lengths
            pieces = tf.RaggedTensor.from_tensor(pieces)
        pieces = pieces[:, :self.sequence_length - 2]
        count = tf.shape(texts)[0]
        cls_ids = tf.fill([count, 1], tf.constant(tokenizer.cls_token_id, tf.int32))
        sep_ids = tf.fill([count, 1], tf.constant(tokenizer.sep_token_id, tf.int32))
        ids = tf.concat([cls_ids, pieces, sep_ids], axis=1)
        pad = getattr(tokenizer, "pad_token_id", 0) or 0
        shape = [None, self.sequence_length]
        return {"token_ids": ids.to_tensor(default_value=pad, shape=shape),
                "padding_mask": tf.ones_like(ids, tf.bool).to_tensor(
                    default_value=False, shape=shape)}


class PretrainedTextEncoder(tf.keras.layers.Layer):
    """An item text feature through a pretrained encoder, projected to `dim`.

    Frozen (no `title_encoder`): the catalog caches each item's embedding, so
    `embed` is only the projection and the encoder never runs in training or
    serving. Fine-tuned: the catalog holds token ids and `embed` runs the
    `TitleEncoder` on them. The unknown item embeds as zeros (`zero_unknown`).

    Args:
        output_dim: projection width.
        title_encoder: the fine-tuned `TitleEncoder`, or None (frozen cache).
    """

    zero_unknown = True

    def __init__(self, output_dim: int, title_encoder: TitleEncoder | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.title_encoder = title_encoder
        self.output_dim = output_dim
        self.projection = tf.keras.layers.Dense(output_dim, name="projection")

    def prepare(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        """Word-piece ids of raw texts (fine-tuned only; needs tensorflow-text)."""
        if self.title_encoder is None:
            raise ValueError("A frozen pretrained text encoder has no in-graph "
                             "form: its catalog embeddings are cached at build "
                             "time. Use model.text_encoder_mode=finetune or "
                             "finetune_top_n to encode new texts.")
        return self.title_encoder.tokenize(texts)

    def embed(self, prepared, training=None) -> tf.Tensor:
        if self.title_encoder is not None:
            prepared = self.title_encoder(prepared, training=training)
        return self.projection(prepared)
