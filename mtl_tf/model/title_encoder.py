"""Fine-tuned item titles in the candidate tower: a `TextEncoderAdapter` over tokens.

In the fine-tuning modes the catalog holds each item's word-piece ids (tokenized
once, in numpy, at build time) and the candidate tower runs the encoder on the
distinct items of every batch. `TitleEncoder` does that run:

- training: one forward pass over the given titles, so gradients reach the
  backbone (the batch's distinct items bound its size);
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

    Example:
        >>> backbone, tokenizer = tiny_backbone(["space", "robot"])
        >>> adapter = TextEncoderAdapter(backbone, mode="finetune")
        >>> encoder = TitleEncoder(adapter, tokenizer, sequence_length=8)
        >>> encoder(encoder.tokenize(tf.constant(["Space Robot"]))).shape
        TensorShape([1, 8])
    """

    def __init__(self, adapter: TextEncoderAdapter, tokenizer: Any = None,
                 sequence_length: int = 32, chunk_size: int = 512, **kwargs):
        super().__init__(**kwargs)
        if chunk_size < 1:
            raise ValueError(f"TitleEncoder: chunk_size must be >= 1. Received: "
                             f"`chunk_size={chunk_size}`.")
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
        self.hidden_dim = adapter.hidden_dim

    def call(self, inputs: dict[str, tf.Tensor], training: bool | None = None
             ) -> tf.Tensor:
        """`{"token_ids", "padding_mask"}` [n, length] -> [n, hidden_dim]."""
        if tf.is_tensor(training):
            training = tf.get_static_value(training)
        token_ids = tf.cast(inputs["token_ids"], tf.int32)
        mask = tf.cast(inputs["padding_mask"], tf.int32)
        if training:
            return self.adapter({"token_ids": token_ids, "padding_mask": mask},
                                training=True)
        return self._encode_in_chunks(token_ids, mask)

    def _encode_in_chunks(self, token_ids: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        count = tf.shape(token_ids)[0]
        order = tf.argsort(tf.reduce_sum(mask, axis=1), stable=True)
        token_ids, mask = tf.gather(token_ids, order), tf.gather(mask, order)
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
        in_length_order = tf.cond(
            count > 0, encoded.concat,
            lambda: tf.zeros([0, self.hidden_dim], tf.float32))
        # Back from length order to the input order.
        return tf.gather(in_length_order, tf.math.invert_permutation(order))

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
