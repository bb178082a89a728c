"""The generated MovieLens-shaped data set (the default source)."""

import dataclasses
import itertools
import tracemalloc

import numpy as np
import pandas as pd
import pytest

import mtl_tf  # noqa: F401
from mtl_tf.config import SyntheticConfig
from mtl_tf.data import RecDataset, synthetic
from mtl_tf.data import movielens_schema as F
from mtl_tf.data.synthetic import FILLER_WORDS, make_synthetic

SMALL = SyntheticConfig(num_users=120, num_items=90, interactions_per_user=20)


@pytest.fixture(scope="module")
def small() -> RecDataset:
    return make_synthetic(SMALL)


def _assert_same(a: RecDataset, b: RecDataset) -> None:
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.users, b.users)


def test_same_seed_same_data(small):
    _assert_same(small, make_synthetic(SMALL))


def test_different_seed_different_data(small):
    other = make_synthetic(dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    assert not small.items[F.ITEM_TITLE].equals(other.items[F.ITEM_TITLE])
    assert not small.users[F.USER_OCCUPATION].equals(other.users[F.USER_OCCUPATION])
    same_shape = len(small.interactions) == len(other.interactions)
    assert not (same_shape and small.interactions.equals(other.interactions))


def test_schema_and_dtypes(small):
    assert small.num_users == SMALL.num_users
    assert small.num_items == SMALL.num_items
    assert list(small.interactions.columns) == list(F.INTERACTION_COLUMNS) + [F.LIKE]
    assert small.schema == F.MOVIELENS_SCHEMA
    assert set(F.ITEM_COLUMNS) <= set(small.items.columns)
    assert set(F.USER_COLUMNS) <= set(small.users.columns)

    inter = small.interactions
    for column in (F.USER_ID, F.ITEM_ID):
        assert pd.api.types.is_string_dtype(inter[column])
        assert all(isinstance(v, str) for v in inter[column].head(50))
    assert inter[F.RATING].dtype == np.float32
    assert inter[F.TIMESTAMP].dtype == np.int64

    items, users = small.items, small.users
    assert items[F.ITEM_ID].is_unique and users[F.USER_ID].is_unique
    assert all(isinstance(t, str) and t for t in items[F.ITEM_TITLE])
    for genres in items[F.ITEM_GENRES]:
        assert isinstance(genres, tuple) and len(genres) >= 1
        assert all(isinstance(g, int) and 0 <= g < F.NUM_GENRES for g in genres)
    assert users[F.USER_AGE].dtype == np.float32
    assert set(users[F.USER_AGE]) <= set(F.AGE_BUCKETS)
    assert users[F.USER_GENDER].dtype == bool
    assert users[F.USER_OCCUPATION].dtype == np.int64
    assert users[F.USER_OCCUPATION].between(0, F.NUM_OCCUPATIONS - 1).all()
    assert all(len(z) == 5 and z.isdigit() for z in users[F.USER_ZIP])
    assert small.report.rows_kept == len(inter)


def test_ratings_are_whole_stars_in_range(small):
    ratings = small.interactions[F.RATING].to_numpy()
    assert ratings.min() >= 1 and ratings.max() <= 5
    np.testing.assert_array_equal(ratings, np.round(ratings))
    # Every star value occurs, and the data is not degenerate.
    assert set(np.unique(ratings)) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_interactions_refer_to_known_items_and_users(small):
    inter = small.interactions
    assert inter[F.ITEM_ID].isin(small.items[F.ITEM_ID]).all()
    assert inter[F.USER_ID].isin(small.users[F.USER_ID]).all()
    # Watches are drawn without replacement: no repeated (user, item) pair.
    assert not inter.duplicated([F.USER_ID, F.ITEM_ID]).any()
    # Each user has at least a handful of interactions.
    assert inter.groupby(F.USER_ID).size().min() >= 5


def _title_words(title: str) -> set[str]:
    words = title.lower().split()
    return {w for w in words if not w.startswith("(") and w not in FILLER_WORDS}


def test_title_words_carry_item_information():
    data = make_synthetic(SyntheticConfig(num_users=50, num_items=200))
    words = [_title_words(t) for t in data.items[F.ITEM_TITLE]]
    genres = [set(g) for g in data.items[F.ITEM_GENRES]]
    sharing, every = [], []
    for i, j in itertools.combinations(range(len(words)), 2):
        jaccard = len(genres[i] & genres[j]) / len(genres[i] | genres[j])
        every.append(jaccard)
        if words[i] & words[j]:
            sharing.append(jaccard)
    assert len(sharing) > 100
    # Items whose titles share a (non-filler) word have far more similar genres.
    assert np.mean(sharing) > np.mean(every) + 0.3
    assert np.mean(sharing) > 2 * np.mean(every)


def _popularity_shares(data: RecDataset) -> tuple[float, float]:
    counts = (data.interactions[F.ITEM_ID].value_counts()
              .reindex(data.items[F.ITEM_ID]).fillna(0).to_numpy())
    counts = np.sort(counts)[::-1]
    top = counts[: len(counts) // 10].sum() / counts.sum()
    bottom_half = counts[len(counts) // 2:].sum() / counts.sum()
    return top, bottom_half


def test_popularity_skew_gives_a_long_tail():
    base = dict(num_users=300, num_items=200, interactions_per_user=40)
    skewed_top, skewed_bottom = _popularity_shares(
        make_synthetic(SyntheticConfig(**base, popularity_skew=0.8)))
    flat_top, flat_bottom = _popularity_shares(
        make_synthetic(SyntheticConfig(**base, popularity_skew=0.0)))
    # The top 10% of items take far more than 10% of the watches ...
    assert skewed_top > 0.2
    # ... and clearly more than without the popularity term.
    assert skewed_top > flat_top + 0.05
    assert skewed_bottom < flat_bottom - 0.05


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_rating_watch_correlation_is_validated(value):
    with pytest.raises(ValueError) as info:
        make_synthetic(SyntheticConfig(num_users=20, num_items=20,
                                       rating_watch_correlation=value))
    assert "rating_watch_correlation" in str(info.value)
    assert str(value) in str(info.value)


def test_too_small_population_is_rejected():
    with pytest.raises(ValueError, match="num_items"):
        make_synthetic(SyntheticConfig(num_users=20, num_items=5))


def test_watches_are_drawn_block_by_block_as_from_the_dense_matrix(monkeypatch):
    # A block of users at a time (memory ~ block x items) must give exactly the
    # data of one users x items draw: the Gumbel noise is consumed in the same
    # order, and each user's top items are the same.
    config = SyntheticConfig(num_users=90, num_items=60, interactions_per_user=12)
    whole = make_synthetic(config).interactions
    monkeypatch.setattr(synthetic, "_BLOCK_ELEMENTS", 7 * 60)  # 7 users a block
    blocks = make_synthetic(config).interactions
    pd.testing.assert_frame_equal(whole, blocks)
    # Each user's watches follow the Gumbel top-k order: no repeats per user.
    assert not whole.duplicated([F.USER_ID, F.ITEM_ID]).any()


def test_many_users_fit_without_a_users_x_items_matrix():
    # 4,000 x 5,000 logits are 160 MB of float64 per copy (the old generator held
    # several); numpy reports its buffers to tracemalloc.
    config = SyntheticConfig(num_users=4000, num_items=5000, interactions_per_user=8)
    tracemalloc.start()
    try:
        data = make_synthetic(config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data.interactions[F.USER_ID].nunique() == 4000
    assert peak < 4000 * 5000 * 8 / 2, peak
