"""Builds a `MultiTaskRecommender` from a config and the training split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from mtl_tf import features as F
from mtl_tf.config import Config, ModelConfig
from mtl_tf.data.dataset import RecDataset
from mtl_tf.model.catalog import ItemCatalog
from mtl_tf.model.history import UserHistory
from mtl_tf.model.multitask import MultiTaskRecommender
from mtl_tf.model.ranking import architecture_args, build_ranking_network
from mtl_tf.model.title_encoder import TitleEncoder
from mtl_tf.model.towers import CandidateTower, QueryTower
from mtl_tf.model.weighting import build_weighting


def _load_text_encoder(titles: list[str], model: ModelConfig, seed: int):
    """The configured pretrained backbone, its tokenizer and the title length."""
    import keras

    from mtl_tf.model import text_encoder

    # Keras 3 draws initial weights (the tiny backbone, the unused pooler) and
    # dropout masks from its own generator, which tf_keras' seeding leaves alone.
    keras.utils.set_random_seed(seed)
    if model.text_encoder == "tiny":
        words = sorted({w for t in titles for w in t.lower().split()})
        backbone, tokenizer = text_encoder.tiny_backbone(words)
    else:
        backbone, tokenizer = text_encoder.load_backbone_and_tokenizer(
            model.text_encoder)
    # Positions past the backbone's limit have no position embedding: cut there.
    length = min(model.text_encoder_sequence_length,
                 int(backbone.max_sequence_length))
    return backbone, tokenizer, length


def pretrained_title_embeddings(titles: list[str], model: ModelConfig,
                                seed: int = 0) -> np.ndarray:
    """Encodes every title once with the frozen pretrained encoder (the cache).

    Returns [len(titles) + 1, hidden] unit-norm embeddings; row 0 (the unknown
    item) is zeros.
    """
    from mtl_tf.model import text_encoder

    backbone, tokenizer, length = _load_text_encoder(titles, model, seed)
    tokens = text_encoder.tokenize_texts(tokenizer, [""] + titles, length)
    cache = text_encoder.encode_texts(backbone, tokens, pooling=model.text_pooling,
                                      normalize=True, verbose=0)
    cache[0] = 0.0
    return cache


def fine_tuned_title_encoder(titles: list[str], model: ModelConfig, seed: int = 0
                             ) -> tuple[TitleEncoder, dict[str, np.ndarray]]:
    """A `TitleEncoder` for `model.text_encoder_mode` and every title's tokens.

    Returns the encoder and `{"token_ids", "padding_mask"}` of
    [len(titles) + 1, length] (row 0: the unknown item's empty title).
    """
    from mtl_tf.model import text_encoder

    backbone, tokenizer, length = _load_text_encoder(titles, model, seed)
    num_layers = len(backbone.transformer_layers)
    top_n = None
    if model.text_encoder_mode == "finetune_top_n":
        top_n = model.text_encoder_train_layers
        if top_n > num_layers:
            raise ValueError(
                f"model.text_encoder_train_layers={top_n} exceeds the "
                f"{num_layers} transformer layers of text encoder "
                f"{model.text_encoder!r}. Set it to 1..{num_layers}, or use "
                "model.text_encoder_mode=finetune to train every layer.")
    adapter = text_encoder.TextEncoderAdapter(
        backbone, mode=model.text_encoder_mode, pooling=model.text_pooling,
        train_top_n_layers=top_n, normalize=True,
        learning_rate_multiplier=model.text_encoder_learning_rate_multiplier,
        name="text_encoder_adapter")
    tokens = text_encoder.tokenize_texts(tokenizer, [""] + titles, length)
    encoder = TitleEncoder(adapter, tokenizer, sequence_length=length,
                           name="title_encoder")
    return encoder, tokens


def build_model(config: Config, data: RecDataset,
                train: pd.DataFrame) -> MultiTaskRecommender:
    """Creates the model; vocabularies and label statistics come from `train` only.

    Every item of `data.items` is in the catalog (its text and genres are side
    information), but only items with training interactions get their own id row.
    """
    tf.keras.utils.set_random_seed(config.train.seed)
    model_config = config.model
    train_items = set(train[F.ITEM_ID].astype(str))
    items = data.items
    item_ids = items[F.ITEM_ID].astype(str).tolist()
    titles = items[F.ITEM_TITLE].fillna("").astype(str).tolist()
    text_embeddings = text_tokens = title_encoder = None
    if model_config.text_encoder not in ("bow", "none"):
        if model_config.text_encoder_mode == "frozen":
            text_embeddings = pretrained_title_embeddings(titles, model_config,
                                                          config.train.seed)
        else:
            title_encoder, text_tokens = fine_tuned_title_encoder(
                titles, model_config, config.train.seed)
    catalog = ItemCatalog(
        item_ids, titles,
        list(items[F.ITEM_GENRES]),
        vocabulary_titles=[t for i, t in zip(item_ids, items[F.ITEM_TITLE].astype(str))
                           if i in train_items],
        max_tokens=model_config.text_max_tokens,
        sequence_length=model_config.text_sequence_length,
        text_embeddings=text_embeddings, text_tokens=text_tokens)
    dim = model_config.embedding_dim
    query_tower = QueryTower(sorted(set(train[F.USER_ID].astype(str))),
                             model_config.user_features, dim,
                             model_config.num_oov_buckets, name="query_tower")
    # Unknown items share one id vector: the export bakes exactly that vector.
    candidate_tower = CandidateTower(sorted(train_items), catalog, dim,
                                     num_oov_buckets=1,
                                     use_text=model_config.text_encoder != "none",
                                     use_genres=model_config.item_genres,
                                     title_encoder=title_encoder,
                                     unknown_item_embedding=(
                                         model_config.unknown_item_embedding),
                                     id_dropout=model_config.item_id_dropout,
                                     name="candidate_tower")
    if model_config.user_history:
        user_rows = query_tower.id_lookup(train[F.USER_ID].astype(str).to_numpy())
        item_rows = candidate_tower.id_lookup(train[F.ITEM_ID].astype(str).to_numpy())
        history = UserHistory(user_rows.numpy(), item_rows.numpy(),
                              query_tower.id_lookup.vocabulary_size(),
                              candidate_tower.id_lookup.vocabulary_size(), dim,
                              name="user_history")
        query_tower.attach_history(history, candidate_tower.id_lookup)
    initial_biases = {t.name: float(train[t.label].mean()) for t in config.tasks
                      if t.type == "regression" and t.label in train}
    ranking_network = build_ranking_network(
        dim, config.tasks, model_config.mtl, architecture_args(model_config),
        model_config.head_units, initial_biases=initial_biases,
        seed=config.train.seed)
    loss = config.loss
    weighting = build_weighting(
        loss.weighting, [t.name for t in config.tasks],
        {t.name: t.type for t in config.tasks},
        fixed_weights={t.name: t.weight for t in config.tasks},
        **({"alpha": loss.gradnorm_alpha} if loss.weighting == "gradnorm" else {}),
        **({"temperature": loss.dwa_temperature} if loss.weighting == "dwa" else {}))
    counts = train[F.ITEM_ID].astype(str).value_counts()
    probabilities = np.zeros(catalog.size + 1, np.float64)
    probabilities[1:] = counts.reindex(item_ids).fillna(0).to_numpy() / len(train)
    return MultiTaskRecommender(
        query_tower, candidate_tower, ranking_network, config.tasks, catalog,
        temperature=model_config.temperature,
        extra_negatives=model_config.extra_negatives,
        logq_correction=model_config.logq_correction,
        item_probabilities=probabilities.tolist(), weighting=weighting,
        pcgrad=loss.pcgrad, clip_norm=loss.clip_norm)
