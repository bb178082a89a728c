"""Configuration: one tree of frozen dataclasses, named presets, and CLI overrides.

A run is fully described by a `Config`. Presets are derived from the default with
`dataclasses.replace`; the CLI picks a preset or a JSON file and applies
``--set section.key=value`` overrides (``--set tasks.rating.weight=2`` for tasks).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from mtl_tf.data.movielens_schema import (
    ESMM_TASKS,
    MOVIELENS_SCHEMA,
    MOVIELENS_TASKS,
    WATCH,
)
from mtl_tf.data.public import PUBLIC_SOURCES, public_source
from mtl_tf.schema import Schema
from mtl_tf.task_config import (  # noqa: F401  (re-exported)
    TASK_TYPES,
    TaskConfig,
    validate_tasks,
    validate_tasks_against_schema,
)

DATA_SOURCES = ("synthetic", "movielens", "tfds", "files", *PUBLIC_SOURCES)
SPLITS = ("random", "temporal", "last_item", "cold_items", "published")
OPTIMIZERS = ("lazy_adam", "adam", "adagrad")
LEARNING_RATE_SCHEDULES = ("constant", "linear")
DISTRIBUTIONS = ("none", "mirrored", "multi_worker", "parameter_server")
TEXT_ENCODER_MODES = ("frozen", "finetune", "finetune_top_n")
MTL_ARCHITECTURES = ("shared_bottom", "single_task", "mmoe", "ple", "esmm")
UNKNOWN_ITEM_EMBEDDINGS = ("mean", "oov")
HISTORY_ENCODERS = ("none", "mean", "gru", "conv1d", "transformer")
HISTORY_POOLINGS = ("last", "attention", "mean")
WEIGHTINGS = ("fixed", "uncertainty", "dwa", "gradnorm")
# The grid of benchmarks/movielens_mtl.py ("fixed+pcgrad": fixed weights, PCGrad).
# ("esmm" needs its own tasks, see the "esmm" preset.)
ARCHITECTURES_AND_WEIGHTINGS = [(a, w) for a in MTL_ARCHITECTURES if a != "esmm"
                                for w in WEIGHTINGS + ("fixed+pcgrad",)]


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}. Received: {value!r}.")


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1). Received: {value}.")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where examples come from and how they are split.

    Attributes:
        source: "synthetic" (generated, the default), "movielens" (a local ml-100k or
            ml-1m directory, see `data_dir`), "tfds" (downloads `tfds_name`) or
            "files" (your own log: `path`, `items_path`, `users_path`, read
            with the config's `schema`), or a public benchmark data set,
            "census_income", "ali_ccp", "aliexpress" or "kuairand", read
            from its files as published in `data_dir` (`mtl_tf.data.public`;
            start from the preset of the same name, which has its schema and
            tasks). The first three have the built-in MovieLens schema.
        path: "files": the interactions table, a CSV / TSV / Parquet / JSON
            Lines file (optionally .gz) or a glob of shards.
        items_path, users_path: "files": optional item / user side tables,
            joined on the schema's id features.
        separator: "files": delimiter of CSV-like files ("" picks it from the
            extension).
        data_dir: directory of a local MovieLens copy (source "movielens"), of
            a public data set's files, or TFDS's data directory (source "tfds").
        tfds_name: TFDS ratings dataset, e.g. "movielens/100k-ratings".
        split: "random" (seeded), "temporal" (each user's latest interactions
            held out), "last_item" (each user's last interaction is test, the
            one before validation: the SASRec protocol), "cold_items" (a share
            of items held out of training entirely; metrics are also reported
            for cold and warm test items) or "published" (a public data set's
            own protocol, e.g. its test file; the fractions do not apply).
        cold_item_fraction: share of items held out by the "cold_items" split.
        test_fraction: share of interactions in the test split.
        validation_fraction: share of the remaining interactions used for validation
            (early stopping).
        seed: seed of the split.
        lenient: skip and count malformed rows and bad labels instead of failing.
        like_threshold: MovieLens sources: a rating at or above this is a "like".
        impression_negatives: for logs without impressions (e.g. MovieLens): per
            interaction, this many items the user never interacted with are
            added to every split, with `impression_label` = 0 (1 on the real
            rows) and every other label 0. Tasks select real rows with `where`
            (e.g. "watch == 1"); ESMM tasks train on all of them. 0 (default)
            adds none; a real impression log needs none.
        impression_label: the label column that marks real rows (1) against
            sampled ones (0).
        stream: "files" only: stream the training rows from `path` through
            `tf.data` (CSV / TSV / JSON Lines / Parquet / TFRecord shards,
            interleaved and prefetched, read `chunk_rows` at a time) instead of
            loading the log into memory; for a log larger than memory
            (`mtl_tf.data.stream`). `path` then holds the training rows only,
            and `validation_path` and `test_path` the held-out rows (read into
            memory: every metric needs its whole split), so `split` and the
            fractions do not apply (`split` must stay "random"). The
            vocabularies and statistics come from one pass over the training
            shards, saved in the run directory and reused on resume. Not
            supported: a derived behaviour history (give it as a list column,
            derive=false) and `impression_negatives`.
        validation_path, test_path: with `stream`: the validation and test
            rows, a file or a glob of shards (formats as `path`).
        chunk_rows: with `stream`: rows read from a shard at a time (the
            memory bound of reading).
    """

    source: str = "synthetic"
    data_dir: str | None = None
    path: str | None = None
    items_path: str | None = None
    users_path: str | None = None
    separator: str = ""
    tfds_name: str = "movielens/100k-ratings"
    split: str = "random"
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    cold_item_fraction: float = 0.1
    seed: int = 42
    lenient: bool = False
    like_threshold: float = 4.0
    impression_negatives: int = 0
    impression_label: str = "watch"
    stream: bool = False
    validation_path: str | None = None
    test_path: str | None = None
    chunk_rows: int = 65536

    def __post_init__(self) -> None:
        _check_choice("data.source", self.source, DATA_SOURCES)
        _check_choice("data.split", self.split, SPLITS)
        if self.split == "published" and self.source not in PUBLIC_SOURCES:
            raise ValueError("data.split='published' is the protocol of a public "
                             f"data set ({', '.join(PUBLIC_SOURCES)}); data.source "
                             f"{self.source!r} has none. Use random, temporal or "
                             "cold_items.")
        _check_fraction("data.test_fraction", self.test_fraction)
        _check_fraction("data.validation_fraction", self.validation_fraction)
        if self.impression_negatives < 0:
            raise ValueError("data.impression_negatives must be >= 0. "
                             f"Received: {self.impression_negatives}.")
        if self.chunk_rows < 1:
            raise ValueError("data.chunk_rows must be >= 1 (rows read from a shard "
                             f"at a time). Received: {self.chunk_rows}.")
        if self.stream:
            self._check_stream()

    def _check_stream(self) -> None:
        """The settings `stream` needs, and those it does not support."""
        if self.source != "files":
            raise ValueError("data.stream=true streams the shards of data.path and "
                             f"needs data.source='files'. Received: data.source="
                             f"{self.source!r}. Set data.source=files or "
                             "data.stream=false.")
        missing = [f"data.{key}" for key in ("validation_path", "test_path")
                   if not getattr(self, key)]
        if missing:
            raise ValueError(
                f"data.stream=true reads the held-out rows from their own files; "
                f"set {' and '.join(missing)} (a file or a glob of shards). "
                "data.path then holds the training rows only.")
        if self.split != "random":
            raise ValueError(
                f"data.split={self.split!r} does not apply with data.stream=true: "
                "the split comes from the files (data.path, data.validation_path, "
                "data.test_path). Write the split's files, or set "
                "data.stream=false.")
        if self.impression_negatives:
            raise ValueError(
                "data.impression_negatives > 0 samples against each user's whole "
                "log, which data.stream=true never holds. Write the sampled "
                "impressions into the files, or set data.impression_negatives=0 "
                "or data.stream=false.")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Size and structure of the generated MovieLens-shaped data set.

    Attributes:
        num_users, num_items: population sizes.
        interactions_per_user: mean number of watched items per user.
        latent_dim: dimension of the planted user/item factors.
        rating_noise: std of the Gaussian noise added to the latent rating.
        rating_watch_correlation: in [0, 1]; how much the rating depends on the same
            factors that drive what users watch (1 = the same factors, 0 = independent).
        popularity_skew: Zipf-like exponent of item popularity in watch choices.
        seed: generator seed; the same seed gives the same data set.
    """

    num_users: int = 1000
    num_items: int = 800
    interactions_per_user: int = 60
    latent_dim: int = 8
    rating_noise: float = 0.6
    rating_watch_correlation: float = 0.8
    popularity_skew: float = 0.8
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Towers, shared bottom and task heads.

    Attributes:
        embedding_dim: width of id/feature embeddings and of the tower outputs
            (categorical, list and bucket features get `embedding_dim // 2`).
        text_encoder: how text features are encoded: "none" (not at all),
            "bow" (a bag of words over
            `TextVectorization` tokens), or a pretrained keras-hub BERT-family
            encoder: a keras-hub preset name (e.g. "bert_tiny_en_uncased"), an
            "hf://" handle, a local Hugging Face checkpoint directory, "minilm"
            (the offline all-MiniLM-L6-v2 package) or "tiny" (an untrained
            from-config backbone, for tests); pretrained encoders apply to item
            text (encoded at build time and baked into the export), user and
            context text always uses the bag of words. See
            `mtl_tf.model.text_encoder`.
        text_encoder_mode: how a pretrained encoder is used. "frozen" (default):
            the catalog's titles are encoded once and cached; training never runs
            the encoder. "finetune": every encoder weight trains. "finetune_top_n":
            only the top `text_encoder_train_layers` transformer layers train. In
            the fine-tuning modes the catalog holds each title's word-piece ids
            and the candidate tower runs the encoder on the distinct items of each
            batch; exports still bake the (fine-tuned) item representations in.
        text_encoder_train_layers: transformer layers trained by
            "finetune_top_n" (1 .. the encoder's number of layers; ignored by
            the other modes).
        text_encoder_learning_rate_multiplier: the encoder's weights are updated
            by a second optimizer at `train.learning_rate` times this (> 0); small
            values keep fine-tuning from wrecking the pretrained weights.
        text_pooling: "mean" or "cls" pooling of the pretrained encoder.
        unknown_item_embedding: the id vector of items without an id row (cold
            items, and ids dropped by `item_id_dropout`): "mean" (the mean of
            the known items' id rows: an unknown item starts as the average
            item and its features move it from there) or "oov" (the OOV
            row; untrained unless `item_id_dropout` > 0, so its random
            initialisation decides how high all cold items score).
        item_id_dropout: in [0, 1); in training, the share of a batch's distinct
            items embedded without their id (DropoutNet, Volkovs et al.,
            NeurIPS 2017), so the candidate tower learns to embed items from
            content alone; ranks cold items higher at some cost to warm items.
        text_encoder_sequence_length: word pieces per text for pretrained encoders.
        text_max_tokens: vocabulary size of each bag-of-words text encoder.
        text_sequence_length: tokens kept per text by the bag of words.
        mtl: multi-task architecture of the ranking network: "single_task"
            (the default: one MLP per ranking task over the shared towers, chosen
            from the MovieLens grid in docs/movielens_mtl.md), "shared_bottom",
            "mmoe" (Ma et al., KDD 2018), "ple"
            (Tang et al., RecSys 2020) or "esmm" (Ma et al., SIGIR 2018: one MLP
            per task over the shared embeddings, with tasks chained by
            `depends_on`; see the "esmm" preset).
        bottom_units: hidden sizes of the shared bottom (and of each single-task MLP).
        num_experts, expert_units: MMoE experts and their hidden sizes (PLE experts
            use `expert_units` too).
        num_levels, num_shared_experts, num_task_experts: PLE's stacked CGC levels
            and experts per level.
        head_units: hidden sizes of each task head.
        dropout: dropout rate in the ranking network.
        num_oov_buckets: hash buckets for user ids unseen in training (unknown items
            share `unknown_item_embedding`; their features still come from the
            catalog).
        history_encoder: how the query tower encodes the schema's sequence
            feature (the behaviour history; `mtl_tf.model.history`): "mean"
            (the SVD++ term over the row's own history), "gru", "conv1d",
            "transformer" (SASRec / BST self-attention) or "none" (ignored).
        history_window: the history encoder and the target attention read the
            newest `history_window` known items of the sequence feature (at
            most its `max_length`). The whole list still serves
            `mask_history_negatives`, so a long list with a short window masks
            nearly all of a heavy user's positives at the cost of one lookup.
        history_shares_item_embeddings: the history embeds its items with the
            candidate tower's item id embeddings (the default), or with its own.
        history_layers: transformer blocks (or conv1d layers) of the encoder.
        history_heads: attention heads of the transformer.
        history_causal: causal self-attention (SASRec) instead of bidirectional.
        history_pooling: the transformer's pooling: "last" (the most recent
            position), "attention" (a learned query) or "mean".
        history_item_dropout: in [0, 1); in training, the share of each
            history's items dropped at random (input dropout), a regulariser.
        target_attention: the ranking heads also see the candidate item's
            attention over the history (DIN, Zhou et al., KDD 2018;
            `mtl_tf.model.history.TargetAttention`); needs a sequence feature.
        target_attention_units: hidden sizes of its activation unit's MLP.
        temperature: softmax temperature of the retrieval task.
        extra_negatives: catalog items sampled uniformly per training step as extra
            negatives beside the in-batch ones (mixed negative sampling, Yang et al.,
            WWW 2020 companion); 0 uses in-batch negatives only.
        logq_correction: subtract log sampling probability of in-batch candidates
            (Yi et al., RecSys 2019).
        mask_history_negatives: a retrieval candidate in the row's behaviour
            history is no negative of that row (it is one of the user's own
            positives, which serving never recommends again); applies when the
            schema has a sequence feature (`mtl_tf.model.negatives`).
    """

    embedding_dim: int = 64
    text_encoder: str = "bow"
    text_encoder_mode: str = "frozen"
    text_encoder_train_layers: int = 1
    text_encoder_learning_rate_multiplier: float = 0.1
    text_pooling: str = "mean"
    unknown_item_embedding: str = "mean"
    item_id_dropout: float = 0.0
    text_encoder_sequence_length: int = 32
    text_max_tokens: int = 5000
    text_sequence_length: int = 12
    mtl: str = "single_task"
    bottom_units: tuple[int, ...] = (128, 64)
    num_experts: int = 4
    expert_units: tuple[int, ...] = (64,)
    num_levels: int = 1
    num_shared_experts: int = 2
    num_task_experts: int = 2
    head_units: tuple[int, ...] = (32,)
    dropout: float = 0.1
    num_oov_buckets: int = 1
    history_encoder: str = "mean"
    history_window: int = 50
    history_shares_item_embeddings: bool = True
    history_layers: int = 1
    history_heads: int = 2
    history_causal: bool = False
    history_pooling: str = "last"
    history_item_dropout: float = 0.0
    target_attention: bool = False
    target_attention_units: tuple[int, ...] = (32,)
    temperature: float = 0.2
    extra_negatives: int = 1024
    logq_correction: bool = True
    mask_history_negatives: bool = True

    def __post_init__(self) -> None:
        _check_choice("model.mtl", self.mtl, MTL_ARCHITECTURES)
        _check_choice("model.text_pooling", self.text_pooling, ("mean", "cls"))
        _check_choice("model.text_encoder_mode", self.text_encoder_mode,
                      TEXT_ENCODER_MODES)
        if self.text_encoder_mode != "frozen" and self.text_encoder in ("bow",
                                                                        "none"):
            raise ValueError(
                f"model.text_encoder_mode={self.text_encoder_mode!r} fine-tunes a "
                "pretrained text encoder, but model.text_encoder="
                f"{self.text_encoder!r} is not one. Set model.text_encoder to a "
                "pretrained encoder (e.g. minilm) or model.text_encoder_mode=frozen.")
        if self.text_encoder_train_layers < 1:
            raise ValueError("model.text_encoder_train_layers must be >= 1 (the "
                             "number of top transformer layers that train). "
                             f"Received: {self.text_encoder_train_layers}.")
        if not self.text_encoder_learning_rate_multiplier > 0:
            raise ValueError(
                "model.text_encoder_learning_rate_multiplier must be > 0 (to keep "
                "the encoder fixed, use model.text_encoder_mode=frozen). Received: "
                f"{self.text_encoder_learning_rate_multiplier}.")
        if self.text_encoder_sequence_length < 2:
            raise ValueError("model.text_encoder_sequence_length must be >= 2 (room "
                             "for [CLS] and [SEP]). Received: "
                             f"{self.text_encoder_sequence_length}.")
        _check_choice("model.unknown_item_embedding", self.unknown_item_embedding,
                      UNKNOWN_ITEM_EMBEDDINGS)
        _check_fraction("model.item_id_dropout", self.item_id_dropout)
        _check_choice("model.history_encoder", self.history_encoder,
                      HISTORY_ENCODERS)
        _check_choice("model.history_pooling", self.history_pooling,
                      HISTORY_POOLINGS)
        _check_fraction("model.history_item_dropout", self.history_item_dropout)
        for key in ("history_layers", "history_heads", "history_window"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be >= 1. Received: "
                                 f"{getattr(self, key)}.")
        if self.embedding_dim <= 0:
            raise ValueError("model.embedding_dim must be positive. "
                             f"Received: {self.embedding_dim}.")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """How task losses are combined into the training loss.

    Attributes:
        weighting: "fixed" (the tasks' `weight`s), "uncertainty" (learned
            log-variances; Kendall et al., CVPR 2018), "dwa" (dynamic weight average;
            Liu et al., CVPR 2019) or "gradnorm" (Chen et al., ICML 2018, balancing
            gradient norms at the towers' output projections).
        pcgrad: project conflicting task gradients (Yu et al., NeurIPS 2020).
        clip_norm: global-norm gradient clipping (0 disables it).
        gradnorm_alpha: GradNorm's restoring-force strength.
        dwa_temperature: DWA's softmax temperature.
    """

    weighting: str = "fixed"
    pcgrad: bool = False
    clip_norm: float = 0.0
    gradnorm_alpha: float = 1.5
    dwa_temperature: float = 2.0

    def __post_init__(self) -> None:
        _check_choice("loss.weighting", self.weighting, WEIGHTINGS)
        if self.clip_norm < 0:
            raise ValueError("loss.clip_norm must be >= 0. "
                             f"Received: {self.clip_norm}.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and run control.

    Attributes:
        batch_size, epochs, learning_rate.
        learning_rate_schedule: "linear" (default): the rate falls linearly
            over the run's `epochs` to 5% of `learning_rate`; or "constant".
        optimizer: "lazy_adam" (default: Adam whose embedding updates touch
            only the rows a batch looked up, so a step costs the same however
            large the id tables grow; `mtl_tf.optimizers.LazyAdam`), "adam"
            (Keras' Adam: every step decays and updates every embedding row)
            or "adagrad".
        weight_decay: decoupled weight decay (AdamW, Loshchilov & Hutter, ICLR 2019)
            when > 0 with optimizer "adam" or "lazy_adam" (then Keras' AdamW,
            dense); the main regulariser of the embeddings.
        early_stopping_patience: epochs without validation improvement before
            stopping (0 disables early stopping); the best weights are restored.
        seed: seed of weight initialisation and shuffling.
        eval_batch_size: batch size for validation and test scoring.
        init_from: the run directory (`--output-dir`) of an earlier run whose
            final model weights this run starts from (optimizer state and epoch
            count start fresh); a new run only, a resumed one continues from its
            own checkpoint. Layers the earlier model lacks keep their fresh (or
            pretrained) values. The two-stage recipe for a pretrained text
            encoder: train with `model.text_encoder_mode=frozen`, then a few
            epochs of "finetune_top_n" with `init_from` pointing at that run.
        distribution: the `tf.distribute` strategy: "none" (the default
            strategy, one device), "mirrored" (MirroredStrategy over the
            local devices, e.g. GPUs), "multi_worker" (MultiWorkerMirrored-
            Strategy over the `TF_CONFIG` cluster) or "parameter_server"
            (ParameterServerStrategy; embedding tables sharded over the ps
            tasks). `batch_size` is the global batch, split across replicas,
            and the retrieval task all-gathers candidates so in-batch
            negatives do not shrink with the replica count. See
            `mtl_tf/distribution.py` and docs/distributed.md.
        shard_min_bytes: under "parameter_server", variables are split over
            the ps tasks into shards of at least this many bytes (so small
            variables stay whole and big embedding tables spread out).
        refit: (default true) once early stopping has picked the best epoch
            count on the validation split, train a fresh model on the training and
            validation rows together for that many epochs and keep it (the
            final model learns from every row the protocol allows, as the
            baselines of `benchmarks/` do). Its checkpoints and logs go to
            `<run dir>/refit`. Needs in-memory data with a validation split;
            with `data.stream=true` or `data.split=cold_items` there is none
            to merge, so it is skipped (with a message).
    """

    batch_size: int = 1024
    epochs: int = 30
    learning_rate: float = 3e-3
    learning_rate_schedule: str = "linear"
    optimizer: str = "lazy_adam"
    weight_decay: float = 0.0
    early_stopping_patience: int = 3
    seed: int = 1
    eval_batch_size: int = 8192
    init_from: str | None = None
    distribution: str = "none"
    shard_min_bytes: int = 256 << 10
    refit: bool = True

    def __post_init__(self) -> None:
        _check_choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("train.learning_rate_schedule", self.learning_rate_schedule,
                      LEARNING_RATE_SCHEDULES)
        _check_choice("train.distribution", self.distribution, DISTRIBUTIONS)
        if self.shard_min_bytes <= 0:
            raise ValueError("train.shard_min_bytes must be positive. "
                             f"Received: {self.shard_min_bytes}.")
        if self.batch_size <= 0 or self.epochs <= 0:
            raise ValueError("train.batch_size and train.epochs must be positive. "
                             f"Received: {self.batch_size}, {self.epochs}.")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """SavedModel export for TF Serving.

    Attributes:
        model_name: directory under `export_dir`, the TF Serving model name.
        export_dir: base directory; versions go to `<export_dir>/<model_name>/<n>/`.
        default_k: `k` used by `recommend` callers that do not pass one.
        item_encoder: also export the cold-start item encoder (raw item
            features in, item embeddings out) to
            `<export_dir>/<model_name>_item_encoder/<n>/`. Needs a fine-tuned text
            encoder (`model.text_encoder_mode` "finetune" or "finetune_top_n"),
            and its server needs the tensorflow-text ops; see
            `mtl_tf.export.export_item_encoder`.
        item_embeddings: also add a `user_embedding` signature and write the
            catalog's retrieval embeddings (`assets.extra/item_ids.txt`,
            `assets.extra/item_embeddings.npy`), for serving retrieval from an
            external nearest-neighbour index (needs a retrieval task).
    """

    model_name: str = "mtl_movielens"
    export_dir: str = "saved_models"
    default_k: int = 10
    item_encoder: bool = False
    item_embeddings: bool = False


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Test-time evaluation.

    Attributes:
        max_users: retrieval hit rates over the test rows of a seeded sample of
            at most this many test users (0: every test user); the metrics'
            `hit_rate_users` says how many were scored. Each user costs a
            catalog-wide ranking, so million-user test splits want a sample.
        seed: seed of that sample.
    """

    max_users: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_users < 0:
            raise ValueError("eval.max_users must be >= 0 (0: every test user). "
                             f"Received: {self.max_users}.")


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole run: data, schema, model, tasks, training, export and evaluation.

    `schema` declares the features (`mtl_tf.schema`); the default is the
    built-in MovieLens schema of the synthetic, movielens and tfds sources.
    """

    data: DataConfig = DataConfig()
    synthetic: SyntheticConfig = SyntheticConfig()
    schema: Schema = MOVIELENS_SCHEMA
    model: ModelConfig = ModelConfig()
    tasks: tuple[TaskConfig, ...] = MOVIELENS_TASKS
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    export: ExportConfig = ExportConfig()
    eval: EvalConfig = EvalConfig()

    def __post_init__(self) -> None:
        validate_tasks(self.tasks)
        validate_tasks_against_schema(self.tasks, self.schema)
        if self.model.mtl == "esmm" and not any(t.depends_on for t in self.tasks):
            raise ValueError("model.mtl=esmm needs a task with `depends_on` (e.g. "
                             "purchase depends on click); start from the 'esmm' "
                             "preset.")
        if self.export.item_encoder and self.model.text_encoder_mode == "frozen":
            raise ValueError(
                "export.item_encoder=true exports the candidate tower's text "
                "encoder, which a frozen encoder does not keep (its titles are "
                "cached). Set model.text_encoder_mode=finetune or finetune_top_n "
                "(with a pretrained model.text_encoder), or export.item_encoder="
                "false.")

    def task(self, name: str) -> TaskConfig | None:
        return next((t for t in self.tasks if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["schema"] = self.schema.to_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


PRESETS: dict[str, Config] = {}
PRESETS["default"] = Config()
PRESETS["tiny"] = Config(
    synthetic=SyntheticConfig(num_users=300, num_items=200, interactions_per_user=40),
    model=ModelConfig(embedding_dim=32, bottom_units=(64, 32), head_units=(16,),
                      text_max_tokens=1000),
    # No refit, a constant rate: the quickest run.
    train=TrainConfig(batch_size=512, epochs=8, learning_rate=5e-3,
                      early_stopping_patience=2, refit=False,
                      learning_rate_schedule="constant"),
    export=ExportConfig(model_name="mtl_tiny"),
)
# ESMM on MovieLens: p(watch) and p(watch, like) on impressions (4 sampled
# non-watched items per watched one), retrieval and rating on the watched rows.
PRESETS["esmm"] = Config(
    data=DataConfig(impression_negatives=4, impression_label=WATCH),
    model=ModelConfig(mtl="esmm"),
    tasks=ESMM_TASKS,
    # The settings docs/esmm_movielens.md was measured with.
    train=TrainConfig(refit=False, learning_rate_schedule="constant"),
    export=ExportConfig(model_name="mtl_esmm"),
)

# The public benchmark data sets: their schema, tasks and published split;
# pass the folder holding the files with --data-dir.
for _name in PUBLIC_SOURCES:
    _source = public_source(_name)
    PRESETS[_name] = Config(
        data=DataConfig(source=_name, split="published"), schema=_source.schema,
        tasks=_source.tasks, export=ExportConfig(model_name=f"mtl_{_name}"),
        # Their protocol (benchmarks/mtl_benchmark.py): the model early
        # stopping keeps, at a constant rate.
        train=TrainConfig(refit=False, learning_rate_schedule="constant"))


def get_preset(name: str) -> Config:
    """Returns the named preset; raises ValueError listing the presets."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; available: {sorted(PRESETS)}.")
    return PRESETS[name]


# Parsing lives in its own module; imported last because it needs `Config`.
from mtl_tf.config_parsing import (  # noqa: E402,F401  (re-exported)
    apply_overrides,
    from_dict,
    load_config_file,
)
