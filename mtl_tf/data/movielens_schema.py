"""The built-in MovieLens schema and tasks, shared by the MovieLens, TFDS and
synthetic sources.

Every one of these sources yields the TFDS ``movielens`` columns, so a model
trained on synthetic data, on local MovieLens files or on TFDS sees the same
features. This module and the three loaders are the only places that name a
MovieLens column; everything else reads the `Schema`.
"""

from __future__ import annotations

import pandas as pd

from mtl_tf.schema import Feature, Schema
from mtl_tf.task_config import TaskConfig

USER_ID = "user_id"
ITEM_ID = "movie_id"
ITEM_TITLE = "movie_title"
ITEM_GENRES = "movie_genres"
RATING = "user_rating"
TIMESTAMP = "timestamp"
USER_AGE = "bucketized_user_age"
USER_GENDER = "user_gender"
USER_OCCUPATION = "user_occupation_label"
USER_ZIP = "user_zip_code"
# The behaviour history, derived from the log (not a TFDS column).
HISTORY = "history_item_ids"

# Derived label: rating >= `data.like_threshold`.
LIKE = "like"

# Genre class names of TFDS movielens `movie_genres`, in id order (alphabetical,
# "Unknown" = 17); every source maps its genres to these ids.
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "Unknown", "War", "Western", "(no genres listed)",
)
NUM_GENRES = len(GENRES)

NUM_OCCUPATIONS = 22  # TFDS user_occupation_label is a class id in 0..21.

# Columns of the three tables a MovieLens RecDataset holds.
INTERACTION_COLUMNS = (USER_ID, ITEM_ID, RATING, TIMESTAMP)
ITEM_COLUMNS = (ITEM_ID, ITEM_TITLE, ITEM_GENRES)
USER_COLUMNS = (USER_ID, USER_AGE, USER_GENDER, USER_OCCUPATION, USER_ZIP)

# TFDS `bucketized_user_age` values (ml-1m's age codes; ml-100k ages are bucketed
# to the largest bucket start not above the age).
AGE_BUCKETS = (1.0, 18.0, 25.0, 35.0, 45.0, 50.0, 56.0)

MOVIELENS_SCHEMA = Schema((
    Feature(USER_ID, "user", "id"),
    Feature(USER_AGE, "user", "categorical", dtype="float32"),
    Feature(USER_GENDER, "user", "categorical", dtype="bool"),
    Feature(USER_OCCUPATION, "user", "categorical", dtype="int64"),
    # 400 events hold nearly every ml-100k user's whole history, so the
    # retrieval softmax can leave out almost all of a heavy user's positives;
    # the encoder still reads only the newest `model.history_window`.
    Feature(HISTORY, "user", "sequence", max_length=400),
    Feature(ITEM_ID, "item", "id"),
    Feature(ITEM_TITLE, "item", "text"),
    Feature(ITEM_GENRES, "item", "multi_categorical"),
), timestamp=TIMESTAMP)

MOVIELENS_TASKS = (
    TaskConfig("retrieval", "retrieval", weight=1.0),
    TaskConfig("rating", "regression", label=RATING, weight=1.0),
    TaskConfig("like", "binary", label=LIKE, weight=0.5),
)

# ESMM on MovieLens, which has no impression log: `data.impression_negatives`
# sampled never-rated items per rating, labelled `watch` = 0 (rated rows have
# `watch` = 1). p(watch) on all rows and p(like) = p(watch) p(like | watch),
# beside retrieval and rating on the watched rows.
WATCH = "watch"
ESMM_TASKS = (
    TaskConfig("retrieval", "retrieval", weight=1.0, where=f"{WATCH} == 1"),
    TaskConfig("rating", "regression", label=RATING, weight=1.0,
               where=f"{WATCH} == 1"),
    TaskConfig("watch", "binary", label=WATCH, weight=0.5),
    TaskConfig("like", "binary", label=LIKE, weight=0.5, depends_on="watch"),
)

# The item-genre auxiliary task (the seed documents' "item feature" task): the
# genres become a label, so the schema must not also read them.
GENRE_TASK = TaskConfig("genres", "multilabel", label=ITEM_GENRES, weight=1.0)
GENRE_TASK_SCHEMA = MOVIELENS_SCHEMA.without([ITEM_GENRES])


def add_like_label(interactions: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Adds the `like` label column (rating >= `threshold`, as 0/1 floats)."""
    out = interactions.copy()
    out[LIKE] = (out[RATING] >= threshold).astype("float32")
    return out
