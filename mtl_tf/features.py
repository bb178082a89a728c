"""Feature names shared by data sources, the model and the export signatures.

Every source yields the TFDS ``movielens`` schema, so a model trained on synthetic
data, on local MovieLens files or on TFDS sees the same dict of tensors.
"""

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

# Derived labels, computed by the pipeline from the raw feedback.
LIKE = "like"
WATCH = "watch"  # 1 for an interaction, 0 for a sampled non-interaction.

# Genre class names of TFDS movielens `movie_genres`, in id order (alphabetical,
# "Unknown" = 17); every source maps its genres to these ids.
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "Unknown", "War", "Western", "(no genres listed)",
)
NUM_GENRES = len(GENRES)

NUM_OCCUPATIONS = 22  # TFDS user_occupation_label is a class id in 0..21.

# Columns of the three tables a RecDataset holds.
INTERACTION_COLUMNS = (USER_ID, ITEM_ID, RATING, TIMESTAMP)
ITEM_COLUMNS = (ITEM_ID, ITEM_TITLE, ITEM_GENRES)
USER_COLUMNS = (USER_ID, USER_AGE, USER_GENDER, USER_OCCUPATION, USER_ZIP)

# User side features the query tower can use (all categorical).
USER_FEATURES = (USER_AGE, USER_GENDER, USER_OCCUPATION)

# TFDS `bucketized_user_age` values (ml-1m's age codes; ml-100k ages are bucketed
# to the largest bucket start not above the age).
AGE_BUCKETS = (1.0, 18.0, 25.0, 35.0, 45.0, 50.0, 56.0)
