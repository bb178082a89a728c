"""Configuration: one tree of frozen dataclasses, named presets, and CLI overrides.

A run is fully described by a `Config`. Presets are derived from the default with
`dataclasses.replace`; the CLI picks a preset or a JSON file and applies
``--set section.key=value`` overrides (``--set tasks.rating.weight=2`` for tasks).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from mtl_tf import features as F

DATA_SOURCES = ("synthetic", "movielens", "tfds")
SPLITS = ("random", "temporal", "cold_items")
TASK_TYPES = ("regression", "binary", "retrieval")
OPTIMIZERS = ("adam", "adagrad")
MTL_ARCHITECTURES = ("shared_bottom", "single_task", "mmoe", "ple")
UNKNOWN_ITEM_EMBEDDINGS = ("mean", "oov")
WEIGHTINGS = ("fixed", "uncertainty", "dwa", "gradnorm")
# The grid of benchmarks/movielens_mtl.py ("fixed+pcgrad": fixed weights, PCGrad).
ARCHITECTURES_AND_WEIGHTINGS = [(a, w) for a in MTL_ARCHITECTURES
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
            ml-1m directory, see `data_dir`) or "tfds" (downloads `tfds_name`).
        data_dir: directory of a local MovieLens copy (source "movielens") or TFDS's
            data directory (source "tfds").
        tfds_name: TFDS ratings dataset, e.g. "movielens/100k-ratings".
        split: "random" (seeded), "temporal" (each user's latest interactions
            held out) or "cold_items" (a share of items held out of training
            entirely; metrics are also reported for cold and warm test items).
        cold_item_fraction: share of items held out by the "cold_items" split.
        test_fraction: share of interactions in the test split.
        validation_fraction: share of the remaining interactions used for validation
            (early stopping).
        seed: seed of the split.
        lenient: skip and count malformed rows and bad labels instead of failing.
        like_threshold: a rating at or above this is a "like".
    """

    source: str = "synthetic"
    data_dir: str | None = None
    tfds_name: str = "movielens/100k-ratings"
    split: str = "random"
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    cold_item_fraction: float = 0.1
    seed: int = 42
    lenient: bool = False
    like_threshold: float = 4.0

    def __post_init__(self) -> None:
        _check_choice("data.source", self.source, DATA_SOURCES)
        _check_choice("data.split", self.split, SPLITS)
        _check_fraction("data.test_fraction", self.test_fraction)
        _check_fraction("data.validation_fraction", self.validation_fraction)


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
class TaskConfig:
    """One training objective; its `name` is the model output name.

    Attributes:
        name: output name, e.g. "rating", "like", "retrieval".
        type: "regression" (MSE), "binary" (cross-entropy) or "retrieval" (two-tower
            softmax over in-batch candidates).
        label: the example feature holding the label (unused for retrieval).
        weight: the task's weight in the total loss.
    """

    name: str
    type: str
    label: str = ""
    weight: float = 1.0

    def __post_init__(self) -> None:
        _check_choice(f"tasks.{self.name}.type", self.type, TASK_TYPES)
        if self.weight < 0:
            raise ValueError(f"tasks.{self.name}.weight must be >= 0. "
                             f"Received: weight={self.weight}.")
        if self.type != "retrieval" and not self.label:
            raise ValueError(f"tasks.{self.name}: a {self.type} task needs a `label` "
                             "feature name.")


DEFAULT_TASKS = (
    TaskConfig("retrieval", "retrieval", weight=1.0),
    TaskConfig("rating", "regression", label=F.RATING, weight=1.0),
    TaskConfig("like", "binary", label=F.LIKE, weight=0.5),
)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Towers, shared bottom and task heads.

    Attributes:
        embedding_dim: width of id/feature embeddings and of the tower outputs.
        user_features: user side features the query tower embeds.
        text_encoder: "none" (no title features), "bow" (a bag of words over
            `TextVectorization` tokens), or a
            pretrained keras-nlp encoder used frozen: a keras-nlp preset name
            (e.g. "bert_tiny_en_uncased"), an "hf://" handle, a local Hugging Face
            checkpoint directory, "minilm" (the offline all-MiniLM-L6-v2 package)
            or "tiny" (an untrained from-config backbone, for tests). The catalog's
            titles are encoded once and cached; see `mtl_tf.model.text_encoder`.
        text_pooling: "mean" or "cls" pooling of the pretrained encoder.
        item_genres: embed the item's genres in the candidate tower.
        unknown_item_embedding: the id vector of items without an id row (cold
            items, and ids dropped by `item_id_dropout`): "mean" (the mean of
            the known items' id rows: an unknown item starts as the average
            item and its text and genres move it from there) or "oov" (the OOV
            row; untrained unless `item_id_dropout` > 0, so its random
            initialisation decides how high all cold items score).
        item_id_dropout: in [0, 1); in training, the share of a batch's distinct
            items embedded without their id (DropoutNet, Volkovs et al.,
            NeurIPS 2017), so the candidate tower learns to embed items from
            content alone; ranks cold items higher at some cost to warm items.
        text_encoder_sequence_length: word pieces per title for pretrained encoders.
        text_max_tokens: vocabulary size of the bag-of-words title encoder.
        text_sequence_length: title tokens kept per item.
        mtl: multi-task architecture of the ranking network: "shared_bottom",
            "single_task" (no sharing), "mmoe" (Ma et al., KDD 2018) or "ple"
            (Tang et al., RecSys 2020).
        bottom_units: hidden sizes of the shared bottom (and of each single-task MLP).
        num_experts, expert_units: MMoE experts and their hidden sizes (PLE experts
            use `expert_units` too).
        num_levels, num_shared_experts, num_task_experts: PLE's stacked CGC levels
            and experts per level.
        head_units: hidden sizes of each task head.
        dropout: dropout rate in the ranking network.
        num_oov_buckets: hash buckets for user ids unseen in training (unknown items
            share `unknown_item_embedding`; their text and genres still come from
            the catalog).
        temperature: softmax temperature of the retrieval task.
        extra_negatives: catalog items sampled uniformly per training step as extra
            negatives beside the in-batch ones (mixed negative sampling, Yang et al.,
            WWW 2020 companion); 0 uses in-batch negatives only.
        logq_correction: subtract log sampling probability of in-batch candidates
            (Yi et al., RecSys 2019).
    """

    embedding_dim: int = 64
    user_features: tuple[str, ...] = F.USER_FEATURES
    text_encoder: str = "bow"
    text_pooling: str = "mean"
    item_genres: bool = True
    unknown_item_embedding: str = "mean"
    item_id_dropout: float = 0.0
    text_encoder_sequence_length: int = 32
    text_max_tokens: int = 5000
    text_sequence_length: int = 12
    mtl: str = "shared_bottom"
    bottom_units: tuple[int, ...] = (128, 64)
    num_experts: int = 4
    expert_units: tuple[int, ...] = (64,)
    num_levels: int = 1
    num_shared_experts: int = 2
    num_task_experts: int = 2
    head_units: tuple[int, ...] = (32,)
    dropout: float = 0.1
    num_oov_buckets: int = 1
    user_history: bool = True
    temperature: float = 0.2
    extra_negatives: int = 1024
    logq_correction: bool = True

    def __post_init__(self) -> None:
        _check_choice("model.mtl", self.mtl, MTL_ARCHITECTURES)
        _check_choice("model.text_pooling", self.text_pooling, ("mean", "cls"))
        _check_choice("model.unknown_item_embedding", self.unknown_item_embedding,
                      UNKNOWN_ITEM_EMBEDDINGS)
        _check_fraction("model.item_id_dropout", self.item_id_dropout)
        unknown = [f for f in self.user_features if f not in F.USER_FEATURES]
        if unknown:
            raise ValueError(f"model.user_features has unknown features {unknown}; "
                             f"allowed: {list(F.USER_FEATURES)}.")
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
        batch_size, epochs, learning_rate, optimizer ("adam" or "adagrad").
        weight_decay: decoupled weight decay (AdamW, Loshchilov & Hutter, ICLR 2019)
            when > 0 with optimizer "adam"; the main regulariser of the embeddings.
        early_stopping_patience: epochs without validation improvement before
            stopping (0 disables early stopping); the best weights are restored.
        seed: seed of weight initialisation and shuffling.
        eval_batch_size: batch size for validation and test scoring.
    """

    batch_size: int = 1024
    epochs: int = 30
    learning_rate: float = 3e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    early_stopping_patience: int = 3
    seed: int = 1
    eval_batch_size: int = 8192

    def __post_init__(self) -> None:
        _check_choice("train.optimizer", self.optimizer, OPTIMIZERS)
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
    """

    model_name: str = "mtl_movielens"
    export_dir: str = "saved_models"
    default_k: int = 10


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole run: data, model, tasks, training and export."""

    data: DataConfig = DataConfig()
    synthetic: SyntheticConfig = SyntheticConfig()
    model: ModelConfig = ModelConfig()
    tasks: tuple[TaskConfig, ...] = DEFAULT_TASKS
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    export: ExportConfig = ExportConfig()

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"tasks have duplicate names: {names}.")
        if not self.tasks:
            raise ValueError("Config needs at least one task.")
        retrieval = [t.name for t in self.tasks if t.type == "retrieval"]
        if len(retrieval) > 1:
            raise ValueError(f"At most one retrieval task is supported. Received: "
                             f"{retrieval}.")

    def task(self, name: str) -> TaskConfig | None:
        return next((t for t in self.tasks if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


PRESETS: dict[str, Config] = {}
PRESETS["default"] = Config()
PRESETS["tiny"] = Config(
    synthetic=SyntheticConfig(num_users=300, num_items=200, interactions_per_user=40),
    model=ModelConfig(embedding_dim=32, bottom_units=(64, 32), head_units=(16,),
                      text_max_tokens=1000),
    train=TrainConfig(batch_size=512, epochs=8, learning_rate=5e-3,
                      early_stopping_patience=2),
    export=ExportConfig(model_name="mtl_tiny"),
)


def get_preset(name: str) -> Config:
    """Returns the named preset; raises ValueError listing the presets."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; available: {sorted(PRESETS)}.")
    return PRESETS[name]


def from_dict(values: dict[str, Any], base: Config | None = None) -> Config:
    """Builds a Config from a (possibly partial) nested dict over `base`.

    Unknown sections or keys raise ValueError naming them and the allowed keys.
    """
    base = base or Config()
    if not isinstance(values, dict):
        raise ValueError("A config must be a JSON object of sections. Received: "
                         f"{type(values).__name__}.")
    unknown = set(values) - {f.name for f in dataclasses.fields(Config)}
    if unknown:
        raise ValueError(f"Unknown config sections {sorted(unknown)}; allowed: "
                         f"{[f.name for f in dataclasses.fields(Config)]}.")
    changes: dict[str, Any] = {}
    for section, section_values in values.items():
        if section == "tasks":
            if not isinstance(section_values, list):
                raise ValueError("Config section 'tasks' must be a list of task "
                                 f"objects. Received: {section_values!r}.")
            changes["tasks"] = tuple(_task_from_dict(t) for t in section_values)
            continue
        if not isinstance(section_values, dict):
            raise ValueError(f"Config section {section!r} must be an object of keys. "
                             f"Received: {section_values!r}.")
        current = getattr(base, section)
        changes[section] = _replace_fields(current, section_values, section)
    return dataclasses.replace(base, **changes)


def load_config_file(path: str | Path, base: Config | None = None) -> Config:
    """Reads a JSON config file (as written to `config.json` by every run)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Config file not found: {path}.")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"Config file {path} is not valid JSON: {error}.") from None
    return from_dict(values, base)


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Applies ``section.key=value`` strings; values are parsed as JSON when possible.

    ``tasks.<name>.<field>=value`` changes one task. Examples:
    ``train.epochs=5``, ``model.bottom_units=[256,128]``, ``tasks.like.weight=0``.
    """
    for override in overrides:
        if "=" not in override:
            raise ValueError(f"Override {override!r} must look like section.key=value.")
        path, raw = override.split("=", 1)
        parts = path.strip().split(".")
        value = _parse_value(raw)
        if _takes_text(config, parts) and not isinstance(value, (str, type(None))):
            value = raw  # `--set export.export_dir=123` means the text "123".
        if parts[0] == "tasks":
            if len(parts) != 3:
                raise ValueError(f"Override {override!r}: use "
                                 "tasks.<name>.<field>=value.")
            config = _override_task(config, parts[1], parts[2], value)
            continue
        if len(parts) != 2:
            raise ValueError(f"Override {override!r}: use section.key=value.")
        config = from_dict({parts[0]: {parts[1]: value}}, config)
    return config


def _takes_text(config: Config, parts: list[str]) -> bool:
    """Whether the overridden field is a plain string (so `123` stays "123")."""
    if len(parts) == 2 and parts[0] in {f.name for f in dataclasses.fields(Config)}:
        section = getattr(config, parts[0])
        if dataclasses.is_dataclass(section):
            hint = typing.get_type_hints(type(section)).get(parts[1])
            if typing.get_origin(hint) is tuple:
                return False
            allowed = typing.get_args(hint) or (hint,)
            return str in allowed and not {int, float, bool} & set(allowed)
    return False


def _override_task(config: Config, name: str, field: str, value: Any) -> Config:
    if config.task(name) is None:
        raise ValueError(f"Unknown task {name!r} in override; tasks: "
                         f"{[t.name for t in config.tasks]}.")
    tasks = tuple(_replace_fields(t, {field: value}, f"tasks.{name}")
                  if t.name == name else t for t in config.tasks)
    return dataclasses.replace(config, tasks=tasks)


def _task_from_dict(values: dict[str, Any]) -> TaskConfig:
    allowed = {f.name for f in dataclasses.fields(TaskConfig)}
    if not isinstance(values, dict):
        raise ValueError(f"A task must be an object with keys {sorted(allowed)}. "
                         f"Received: {values!r}.")
    unknown = set(values) - allowed
    if unknown or "name" not in values or "type" not in values:
        raise ValueError(f"Bad task entry {values}: needs name and type; allowed keys "
                         f"{sorted(allowed)}.")
    return TaskConfig(**values)


def _replace_fields(obj: Any, values: dict[str, Any], section: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    hints = typing.get_type_hints(type(obj))
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"Unknown keys {sorted(unknown)} in config section "
                         f"{section!r}; allowed: {sorted(fields)}.")
    coerced = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    return dataclasses.replace(obj, **coerced)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    allowed = typing.get_args(hint) if origin is not None else (hint,)
    allowed = tuple(typing.get_origin(a) or a for a in allowed)
    if value is None and type(None) in allowed:
        return None
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    wrong_bool = isinstance(value, bool) and bool not in allowed
    if not isinstance(value, allowed) or wrong_bool:
        names = [getattr(a, "__name__", str(a)) for a in allowed]
        raise ValueError(f"{where} expects {' or '.join(names)}. Received: {value!r}.")
    return value


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # A bare string such as `mmoe` or a path.
