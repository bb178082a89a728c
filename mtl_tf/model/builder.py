"""Builds a `MultiTaskRecommender` from a config, the schema and the training split.

Every tower input comes from the schema: the query tower encodes the user and
context features, the candidate tower the item features, each with the encoder
of its kind (`mtl_tf.model.encoders`) fitted on the training split.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import tensorflow as tf

from mtl_tf.config import Config, ModelConfig
from mtl_tf.data.dataset import RecDataset
from mtl_tf.data.pipeline import fit_on_training, pad_lists, retrieval_positives
from mtl_tf.model.catalog import ItemCatalog
from mtl_tf.model.encoders import build_encoder
from mtl_tf.model.history import HistoryEncoder, ParallelEmbedding, TargetAttention
from mtl_tf.model.multitask import MultiTaskRecommender
from mtl_tf.model.ranking import (
    PAIR_TASK_TYPES,
    architecture_args,
    build_ranking_network,
)
from mtl_tf.model.title_encoder import PretrainedTextEncoder, TitleEncoder
from mtl_tf.model.towers import CandidateTower, QueryTower
from mtl_tf.model.weighting import build_weighting
from mtl_tf.schema import Feature
from mtl_tf.schema.feature import TIME_GAPS
from mtl_tf.schema.fitted import Preprocessing


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


def build_model(config: Config, data: RecDataset, train: pd.DataFrame,
                preprocessing: Preprocessing | None = None,
                item_counts: Mapping[str, int] | None = None
                ) -> MultiTaskRecommender:
    """Creates the model; vocabularies and statistics come from `train` only.

    `preprocessing` is the state fitted on `train` (`pipeline.fit_on_training`,
    which runs here when it is not given). `item_counts` ({item id: training
    retrieval positives}) gives the log-Q item popularity when `train` is only
    a sample of the training rows (a streamed log); default: counted in `train`.

    Every item of `data.items` is in the catalog (its features are side
    information), but only items with training interactions get their own id
    row. Without an item key in the schema there is no candidate tower: the
    ranking tasks read the query side alone.
    """
    tf.keras.utils.set_random_seed(config.train.seed)
    schema, model_config = data.schema, config.model
    if preprocessing is None:
        preprocessing = fit_on_training(data, train, config.tasks)
    dim = model_config.embedding_dim
    joined_train = data.joined(train)
    query_encoders = {
        f.name: build_encoder(f, preprocessing[f.name], dim,
                              texts=joined_train[f.name].astype(str).tolist(),
                              text_max_tokens=model_config.text_max_tokens,
                              text_sequence_length=model_config.text_sequence_length)
        for f in schema.query_features
        if f.kind not in ("id", "sequence") and not (
            f.kind == "text" and model_config.text_encoder == "none")}
    candidate_tower = catalog = target_attention = None
    parallel: dict[str, ParallelEmbedding] = {}
    positives = retrieval_positives(train, config.tasks)
    if schema.item_id is not None:
        catalog, candidate_tower = _item_side(config, data, train, preprocessing)
        parallel = {f.name: ParallelEmbedding(
            dim, None if f.values == TIME_GAPS else preprocessing[f.name].vocabulary,
            name=f"{f.name}_embedding") for f in schema.parallel_sequences}
        if schema.sequence is not None and model_config.history_encoder != "none":
            query_encoders[schema.sequence.name] = _history_encoder(
                schema.sequence, model_config, candidate_tower, parallel)
    if model_config.target_attention:
        target_attention = _target_attention(config, schema, candidate_tower,
                                             parallel)
    user_id = schema.user_id
    query_tower = QueryTower(
        query_encoders, dim, user_id=user_id.name if user_id else "",
        user_ids=preprocessing[user_id.name].vocabulary if user_id else (),
        num_oov_buckets=model_config.num_oov_buckets, name="query_tower")
    initial_biases = {}
    for task in config.tasks:
        if task.type == "regression":
            rows = task.condition.rows(train)
            labels = train[task.label].to_numpy(np.float64)[rows]
            if len(labels):
                initial_biases[task.name] = float(np.nanmean(labels))
    ranking_network = build_ranking_network(
        dim, config.tasks, model_config.mtl, architecture_args(model_config),
        model_config.head_units, initial_biases=initial_biases,
        label_sizes={t.name: len(preprocessing.label_vocabularies[t.label])
                     for t in config.tasks if t.type == "multilabel"},
        with_item=candidate_tower is not None,
        with_history=target_attention is not None, seed=config.train.seed)
    loss = config.loss
    weighting = build_weighting(
        loss.weighting, [t.name for t in config.tasks],
        {t.name: t.type for t in config.tasks},
        fixed_weights={t.name: t.weight for t in config.tasks},
        **({"alpha": loss.gradnorm_alpha} if loss.weighting == "gradnorm" else {}),
        **({"temperature": loss.dwa_temperature} if loss.weighting == "dwa" else {}))
    probabilities = None
    if catalog is not None:
        counts = (pd.Series(item_counts, dtype=np.float64) if item_counts is not None
                  else positives[schema.item_id.name].astype(str).value_counts())
        probabilities = np.zeros(catalog.size + 1, np.float64)
        probabilities[1:] = (counts.reindex(catalog.item_ids).fillna(0).to_numpy()
                             / max(counts.sum(), 1))
        probabilities = probabilities.tolist()
    return MultiTaskRecommender(
        schema, query_tower, candidate_tower, ranking_network, config.tasks, catalog,
        temperature=model_config.temperature,
        extra_negatives=model_config.extra_negatives,
        logq_correction=model_config.logq_correction,
        item_probabilities=probabilities, weighting=weighting,
        pcgrad=loss.pcgrad, clip_norm=loss.clip_norm,
        target_attention=target_attention,
        mask_history_negatives=model_config.mask_history_negatives)


def _history_encoder(feature: Feature, model: ModelConfig,
                     candidate_tower: CandidateTower,
                     parallel: dict[str, ParallelEmbedding]) -> HistoryEncoder:
    """The `model.history_encoder` of the sequence feature and its `parallel`
    lists, over the candidate tower's item vocabulary (and its id embeddings,
    unless told otherwise)."""
    shared = model.history_shares_item_embeddings
    return HistoryEncoder(
        model.history_encoder, candidate_tower.id_lookup,
        candidate_tower.id_lookup.vocabulary_size(), model.embedding_dim,
        min(feature.max_length, model.history_window),
        item_embedding=candidate_tower.id_embedding if shared else None,
        num_oov=candidate_tower.num_oov_buckets, num_layers=model.history_layers,
        num_heads=model.history_heads, causal=model.history_causal,
        pooling=model.history_pooling, dropout=model.dropout,
        item_dropout=model.history_item_dropout, history_name=feature.name,
        parallel=parallel, name=f"{feature.name}_encoder")


def _target_attention(config: Config, schema, candidate_tower: CandidateTower | None,
                      parallel: dict[str, ParallelEmbedding]) -> TargetAttention:
    """DIN attention of the candidate over the schema's history, embedded like
    the query tower's history (`model.history_shares_item_embeddings`)."""
    if schema.sequence is None or candidate_tower is None:
        raise ValueError(
            "model.target_attention=true: the candidate item attends over the "
            "behaviour history, but the schema declares no `sequence` feature (or "
            "no item id). Declare one (kind: sequence) or set "
            "model.target_attention=false.")
    if not any(t.type in PAIR_TASK_TYPES for t in config.tasks):
        raise ValueError(
            "model.target_attention=true feeds the ranking tasks, but the config "
            "has no regression or binary task. Add one or set "
            "model.target_attention=false.")
    model = config.model
    embedding = (candidate_tower.id_embedding
                 if model.history_shares_item_embeddings else
                 tf.keras.layers.Embedding(
                     candidate_tower.id_lookup.vocabulary_size(),
                     model.embedding_dim, name="target_attention_item_embedding"))
    return TargetAttention(
        candidate_tower.id_lookup, embedding,
        min(schema.sequence.max_length, model.history_window),
        num_oov=candidate_tower.num_oov_buckets,
        units=model.target_attention_units, history_name=schema.sequence.name,
        parallel=parallel, name="target_attention")


def _item_side(config: Config, data: RecDataset, train: pd.DataFrame,
               preprocessing: Preprocessing) -> tuple[ItemCatalog, CandidateTower]:
    """The catalog of every item (prepared item features) and the item tower."""
    schema, model_config = data.schema, config.model
    dim = model_config.embedding_dim
    item_key = schema.item_id.name
    items = data.items
    item_ids = data.item_ids.tolist()
    train_items = set(train[item_key].astype(str))
    is_train_item = np.asarray([i in train_items for i in item_ids], bool)
    features = [f for f in schema.on_side("item") if f.kind != "id"]
    text_features = [f for f in features if f.kind == "text"]
    pretrained = model_config.text_encoder not in ("bow", "none")
    if (pretrained and model_config.text_encoder_mode != "frozen"
            and len(text_features) > 1):
        raise ValueError(
            f"model.text_encoder_mode={model_config.text_encoder_mode!r} fine-tunes "
            "one text encoder, but the schema has item text features "
            f"{[f.name for f in text_features]}; keep one text feature, or use "
            "model.text_encoder_mode=frozen.")
    encoders, prepared = {}, {}
    for feature in features:
        values = items[feature.name]
        if feature.kind == "text":
            if model_config.text_encoder == "none":
                continue
            texts = values.fillna("").astype(str).tolist()
            if pretrained:
                encoders[feature.name], prepared[feature.name] = _pretrained_text(
                    feature, texts, model_config, config.train.seed)
                continue
            encoder = build_encoder(
                feature, preprocessing[feature.name], dim,
                texts=[t for t, known in zip(texts, is_train_item) if known],
                text_max_tokens=model_config.text_max_tokens,
                text_sequence_length=model_config.text_sequence_length)
            raw = np.asarray(texts, dtype=object)
        else:
            encoder = build_encoder(feature, preprocessing[feature.name], dim)
            raw = _raw_values(feature, values)
        rows = encoder.prepare(tf.constant(raw)).numpy()
        unknown = (encoder.prepare(tf.constant([np.nan], tf.float32)).numpy()
                   if feature.kind == "numeric" else np.zeros_like(rows[:1]))
        encoders[feature.name] = encoder
        prepared[feature.name] = np.concatenate([unknown, rows])
    catalog = ItemCatalog(item_ids, prepared, name="item_catalog")
    # Unknown items share one id vector: the export bakes exactly that vector.
    tower = CandidateTower(
        preprocessing[item_key].vocabulary, catalog, encoders, dim,
        num_oov_buckets=1,
        unknown_item_embedding=model_config.unknown_item_embedding,
        id_dropout=model_config.item_id_dropout, name="candidate_tower")
    return catalog, tower


def _raw_values(feature: Feature, values: pd.Series) -> np.ndarray:
    """A side-table column as the array its encoder prepares."""
    if feature.kind == "multi_categorical":
        return pad_lists(list(values)).astype(str)
    if feature.kind == "numeric":
        return values.to_numpy(np.float32)
    if feature.dtype == "string":
        return values.astype(str).to_numpy()
    return values.to_numpy({"int64": np.int64, "bool": bool,
                            "float32": np.float32}[feature.dtype])


def _pretrained_text(feature: Feature, texts: list[str], model: ModelConfig,
                     seed: int):
    """A pretrained text encoder and the catalog's prepared rows: cached unit-norm
    embeddings (frozen) or word-piece ids (fine-tuned); row 0 is the unknown item."""
    dim = model.embedding_dim
    name = f"{feature.name}_encoder"
    if model.text_encoder_mode == "frozen":
        cache = pretrained_title_embeddings(texts, model, seed)
        return PretrainedTextEncoder(dim, name=name), cache
    title_encoder, tokens = fine_tuned_title_encoder(texts, model, seed)
    return PretrainedTextEncoder(dim, title_encoder, name=name), tokens
