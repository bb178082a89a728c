"""Loads a TFDS `movielens/*-ratings` dataset into a `RecDataset`.

TFDS downloads the archive on first use (users have internet; tests do not), so the
conversion from TFDS examples to tables is a separate pure function,
`examples_to_dataset`, that tests run on hand-built examples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtl_tf.data import movielens_schema as F
from mtl_tf.data.dataset import CleaningReport, RecDataset
from mtl_tf.data.movielens_cleaning import clean_interactions

# TFDS movielens configs that hold ratings (the "-movies" ones hold only items).
TFDS_RATINGS_NAMES = (
    "movielens/100k-ratings", "movielens/1m-ratings", "movielens/20m-ratings",
    "movielens/25m-ratings", "movielens/latest-small-ratings",
)
# Stand-ins for the configs without demographics (20m, 25m, latest-small).
_OTHER_OCCUPATION = 11  # "other/not specified" in TFDS user_occupation_label.
_USER_DEFAULTS = {F.USER_AGE: 0.0, F.USER_GENDER: False,
                  F.USER_OCCUPATION: _OTHER_OCCUPATION, F.USER_ZIP: ""}
_BATCH = 65536


def load_tfds(
    name: str = "movielens/100k-ratings",
    *,
    data_dir: str | None = None,
    lenient: bool = False,
    like_threshold: float = 4.0,
) -> RecDataset:
    """Loads the "train" split of a TFDS movielens ratings config.

    Downloads and prepares the dataset on first use (into `data_dir`, default
    `~/tensorflow_datasets`).

    Example:
        >>> data = load_tfds("movielens/100k-ratings")
        >>> len(data.interactions), data.num_items, data.num_users
        (100000, 1682, 943)

    Args:
        name: one of `TFDS_RATINGS_NAMES`.
        data_dir: where TFDS keeps its prepared datasets.
        lenient: drop and count bad labels instead of raising (see
            `clean_interactions`).

    Returns:
        A `RecDataset` named `name`.

    Raises:
        ValueError: `name` is not a movielens ratings config, or a bad label
            (strict mode).
        RuntimeError: TFDS could not download or read the dataset.
    """
    if name not in TFDS_RATINGS_NAMES:
        raise ValueError(
            f"load_tfds reads the TFDS movielens ratings configs "
            f"{list(TFDS_RATINGS_NAMES)}; received: `name={name!r}`.")
    try:
        # Imported here: it pulls in TensorFlow and is only needed on this path.
        import tensorflow_datasets as tfds

        ds = tfds.load(name, split="train", data_dir=data_dir)
        examples = dataset_to_numpy(ds)
    except Exception as err:  # Network, disk, missing optional dependency, ...
        raise RuntimeError(
            f"could not load TFDS dataset {name!r} (data_dir={data_dir!r}): "
            f"{type(err).__name__}: {err}. TFDS downloads MovieLens on first use; "
            "without internet use `--data synthetic`, or download and extract "
            "ml-100k / ml-1m yourself and use `--data movielens --data-dir "
            "path/to/ml-100k`.") from err
    return examples_to_dataset(examples, name, lenient=lenient,
                               like_threshold=like_threshold)


def dataset_to_numpy(ds) -> dict[str, np.ndarray]:
    """Turns a `tf.data.Dataset` of TFDS movielens examples into numpy columns.

    Args:
        ds: unbatched dataset of feature dicts; `movie_genres` may be ragged.

    Returns:
        One array per feature; ragged features become object arrays of int64
        arrays, strings stay bytes.
    """
    parts: dict[str, list] = {}
    for batch in ds.ragged_batch(_BATCH):
        for key, value in batch.items():
            if hasattr(value, "row_splits"):  # tf.RaggedTensor
                flat = value.flat_values.numpy()
                splits = value.row_splits.numpy()
                column = np.empty(len(splits) - 1, dtype=object)
                for i in range(len(column)):  # Item by item: equal lengths must
                    column[i] = flat[splits[i]:splits[i + 1]]  # not turn 2-D.
            else:
                column = value.numpy()
            parts.setdefault(key, []).append(column)
    return {key: np.concatenate(chunks) for key, chunks in parts.items()}


def _text(values) -> np.ndarray:
    """Decodes TFDS string features (bytes) to str; passes str through."""
    return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v)
                     for v in values], dtype=object)


def examples_to_dataset(
    examples: dict[str, np.ndarray],
    name: str,
    *,
    lenient: bool = False,
    like_threshold: float = 4.0,
) -> RecDataset:
    """Splits denormalized TFDS movielens examples into interactions, items, users.

    Items and users keep their first occurrence. Configs without demographics get
    `bucketized_user_age` 0.0, `user_gender` False, `user_occupation_label` 11
    ("other/not specified") and an empty zip code.

    Example:
        >>> examples = {"user_id": np.array([b"1"]), "movie_id": np.array([b"7"]),
        ...             "movie_title": np.array([b"Heat (1995)"]),
        ...             "movie_genres": [np.array([0, 5])],
        ...             "user_rating": np.array([4.0], np.float32),
        ...             "timestamp": np.array([874965758])}
        >>> examples_to_dataset(examples, "movielens/100k-ratings").num_items
        1

    Args:
        examples: one array (or sequence) per TFDS feature; ids and text as bytes
            or str, `movie_genres` a sequence of int arrays.
        name: the dataset name stored on the result and used in messages.
        lenient: drop and count bad labels instead of raising.

    Returns:
        A `RecDataset`; `report.rows_read` is the number of examples.

    Raises:
        ValueError: a required feature is missing, or a bad label (strict mode).
    """
    required = (F.USER_ID, F.ITEM_ID, F.ITEM_TITLE, F.ITEM_GENRES, F.RATING,
                F.TIMESTAMP)
    missing = [k for k in required if k not in examples]
    if missing:
        raise ValueError(
            f"{name}: examples are missing features {missing}; received "
            f"{sorted(examples)}.")
    n = len(examples[F.USER_ID])
    rows = pd.DataFrame({
        F.USER_ID: _text(examples[F.USER_ID]),
        F.ITEM_ID: _text(examples[F.ITEM_ID]),
        F.RATING: np.asarray(examples[F.RATING], np.float32),
        F.TIMESTAMP: np.asarray(examples[F.TIMESTAMP], np.int64),
    })
    first_item = ~rows[F.ITEM_ID].duplicated().to_numpy()
    genres = [tuple(int(g) for g in genre_ids) for genre_ids, first
              in zip(examples[F.ITEM_GENRES], first_item) if first]
    items = pd.DataFrame({
        F.ITEM_ID: rows[F.ITEM_ID].to_numpy()[first_item],
        F.ITEM_TITLE: _text(np.asarray(examples[F.ITEM_TITLE], object)[first_item]),
        F.ITEM_GENRES: pd.Series(genres, dtype=object).to_numpy(),
    }).astype({F.ITEM_ID: str, F.ITEM_TITLE: str})

    first_user = ~rows[F.USER_ID].duplicated().to_numpy()
    users = {F.USER_ID: rows[F.USER_ID].to_numpy()[first_user]}
    for key, default in _USER_DEFAULTS.items():
        column = (np.asarray(examples[key])[first_user] if key in examples
                  else np.full(int(first_user.sum()), default))
        users[key] = _text(column) if key == F.USER_ZIP else column
    users = pd.DataFrame(users).astype({
        F.USER_ID: str, F.USER_AGE: np.float32, F.USER_GENDER: bool,
        F.USER_OCCUPATION: np.int64, F.USER_ZIP: str})

    report = CleaningReport(rows_read=n)
    interactions = clean_interactions(rows, report, lenient=lenient, source=name)
    interactions = F.add_like_label(interactions, like_threshold)
    return RecDataset(F.MOVIELENS_SCHEMA, interactions,
                      items.reset_index(drop=True), users, name=name, report=report)
