"""Tests for mtl_tf.data.tfds_source, offline: hand-built examples and mocked TFDS."""

import numpy as np
import pandas as pd
import pytest

from mtl_tf.data.tfds_source import dataset_to_numpy, examples_to_dataset, load_tfds


def _examples():
    """Four denormalized rows the way `tfds.as_numpy` yields them (bytes ids)."""
    return {
        "user_id": np.array([b"138", b"92", b"138", b"92"], dtype=object),
        "movie_id": np.array([b"357", b"709", b"709", b"357"], dtype=object),
        "movie_title": np.array([b"One Flew Over the Cuckoo's Nest (1975)",
                                 b"Strictly Ballroom (1992)",
                                 b"Strictly Ballroom (1992)",
                                 b"One Flew Over the Cuckoo's Nest (1975)"],
                                dtype=object),
        "movie_genres": [np.array([7]), np.array([4, 14]), np.array([4, 14]),
                         np.array([7])],
        "user_rating": np.array([4.0, 2.0, 5.0, 4.0], np.float32),
        "timestamp": np.array([879024327, 875654590, 879024500, 875654600]),
        "bucketized_user_age": np.array([45.0, 25.0, 45.0, 25.0], np.float32),
        "user_gender": np.array([True, True, True, True]),
        "user_occupation_label": np.array([4, 5, 4, 5]),
        "user_occupation_text": np.array([b"doctor", b"entertainment"] * 2),
        "user_zip_code": np.array([b"53211", b"80525", b"53211", b"80525"]),
        "raw_user_age": np.array([46.0, 32.0, 46.0, 32.0], np.float32),
    }


def test_examples_to_dataset_tables():
    data = examples_to_dataset(_examples(), "movielens/100k-ratings")
    assert data.name == "movielens/100k-ratings"
    rows = data.interactions
    assert rows["user_id"].tolist() == ["138", "92", "138", "92"]
    assert rows["movie_id"].tolist() == ["357", "709", "709", "357"]
    assert rows["user_rating"].tolist() == [4.0, 2.0, 5.0, 4.0]
    assert rows["user_rating"].dtype == np.float32
    assert rows["timestamp"].dtype == np.int64
    assert pd.api.types.is_string_dtype(rows["user_id"])

    items = data.items
    assert items["movie_id"].tolist() == ["357", "709"]
    assert items["movie_title"].tolist() == [
        "One Flew Over the Cuckoo's Nest (1975)", "Strictly Ballroom (1992)"]
    assert items["movie_genres"].tolist() == [(7,), (4, 14)]

    users = data.users
    assert users["user_id"].tolist() == ["138", "92"]
    assert users["bucketized_user_age"].tolist() == [45.0, 25.0]
    assert users["bucketized_user_age"].dtype == np.float32
    assert users["user_gender"].dtype == bool
    assert users["user_occupation_label"].tolist() == [4, 5]
    assert users["user_occupation_label"].dtype == np.int64
    assert users["user_zip_code"].tolist() == ["53211", "80525"]
    assert (data.report.rows_read, data.report.rows_kept) == (4, 4)


def test_examples_without_demographics_get_documented_defaults():
    examples = {k: v for k, v in _examples().items()
                if k in ("user_id", "movie_id", "movie_title", "movie_genres",
                         "user_rating", "timestamp")}
    users = examples_to_dataset(examples, "movielens/latest-small-ratings").users
    assert users["bucketized_user_age"].tolist() == [0.0, 0.0]
    assert users["user_gender"].tolist() == [False, False]
    assert users["user_occupation_label"].tolist() == [11, 11]  # other/not specified
    assert users["user_zip_code"].tolist() == ["", ""]


def test_examples_are_cleaned():
    examples = _examples()
    examples["user_rating"] = np.array([4.0, 2.0, 9.0, 4.0], np.float32)
    with pytest.raises(ValueError, match=r"movielens/1m-ratings, row 3: field "
                                         r"'user_rating' is out of range"):
        examples_to_dataset(examples, "movielens/1m-ratings")
    data = examples_to_dataset(examples, "movielens/1m-ratings", lenient=True)
    assert data.report.out_of_range_labels == 1
    assert data.num_items == 2  # The catalog keeps items of dropped rows.

    examples = _examples()
    # (138, 357) twice: row 1 is later in time than row 4, so it is the one kept.
    examples["user_id"][3] = b"138"
    data = examples_to_dataset(examples, "movielens/100k-ratings")
    assert data.report.duplicate_rows == 1
    assert data.interactions["timestamp"].tolist() == [879024327, 875654590, 879024500]


def test_examples_missing_feature_raises():
    examples = _examples()
    del examples["timestamp"]
    with pytest.raises(ValueError, match=r"missing features \['timestamp'\]"):
        examples_to_dataset(examples, "movielens/100k-ratings")


def _tf_dataset(examples):
    import tensorflow as tf  # After mtl_tf: it selects Keras 2 first.

    def rows():
        for i in range(len(examples["user_id"])):
            yield {k: v[i] for k, v in examples.items()}

    spec = {k: tf.TensorSpec((None,) if k == "movie_genres" else (),
                             tf.as_dtype(np.asarray(v[0]).dtype)
                             if not isinstance(v[0], bytes) else tf.string)
            for k, v in examples.items()}
    return tf.data.Dataset.from_generator(rows, output_signature=spec)


def test_dataset_to_numpy_keeps_ragged_genres():
    examples = _examples()
    columns = dataset_to_numpy(_tf_dataset(examples))
    assert columns["user_id"].tolist() == examples["user_id"].tolist()
    assert columns["user_rating"].tolist() == [4.0, 2.0, 5.0, 4.0]
    assert [g.tolist() for g in columns["movie_genres"]] == [[7], [4, 14], [4, 14], [7]]


def test_dataset_to_numpy_equal_length_genres_stay_one_array_per_row():
    examples = _examples()
    examples["movie_genres"] = [np.array([1, 2])] * 4
    genres = dataset_to_numpy(_tf_dataset(examples))["movie_genres"]
    assert genres.shape == (4,) and genres[0].tolist() == [1, 2]


def test_load_tfds_end_to_end_with_mocked_tfds(tmp_path):
    import tensorflow_datasets as tfds

    def as_dataset(self, *args, **kwargs):
        return _tf_dataset(_examples())

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        data = load_tfds("movielens/100k-ratings", data_dir=str(tmp_path))
    assert data.name == "movielens/100k-ratings"
    assert len(data.interactions) == 4 and data.num_items == 2
    assert data.items["movie_genres"].tolist() == [(7,), (4, 14)]
    assert data.users["user_id"].tolist() == ["138", "92"]


def test_load_tfds_rejects_non_ratings_names():
    with pytest.raises(ValueError, match=r"received: `name='movielens/1m-movies'`"):
        load_tfds("movielens/1m-movies")


def test_load_tfds_download_failure_suggests_offline_sources(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    def fail(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'files.grouplens.org'")

    monkeypatch.setattr(tfds, "load", fail)
    with pytest.raises(RuntimeError) as info:
        load_tfds(data_dir=str(tmp_path))
    message = str(info.value)
    assert "movielens/100k-ratings" in message
    assert "ConnectionError: Failed to resolve" in message
    assert "--data synthetic" in message and "--data movielens --data-dir" in message
