"""Random and temporal splits of interactions."""

import numpy as np
import pandas as pd
import pytest

import mtl_tf  # noqa: F401
from mtl_tf.config import SyntheticConfig
from mtl_tf.data import movielens_schema as F
from mtl_tf.data.splits import (
    published_file_split,
    published_split,
    random_split,
    split,
    temporal_split,
)
from mtl_tf.data.synthetic import make_synthetic

KEY = [F.USER_ID, F.ITEM_ID]


@pytest.fixture(scope="module")
def interactions() -> pd.DataFrame:
    data = make_synthetic(SyntheticConfig(num_users=150, num_items=100,
                                          interactions_per_user=20))
    frame = data.interactions
    # A row count divisible by 10 so "the first 80%" is unambiguous.
    return frame.iloc[: len(frame) // 10 * 10].reset_index(drop=True)


def _keys(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(map(tuple, frame[KEY].to_numpy().tolist()))


def test_random_split_sizes_and_disjointness(interactions):
    n = len(interactions)
    parts = random_split(interactions, test_fraction=0.2, validation_fraction=0.1,
                         seed=7)
    sizes = parts.sizes()
    assert sum(sizes.values()) == n
    assert abs(sizes["test"] - 0.2 * n) <= 1
    assert abs(sizes["validation"] - 0.1 * 0.8 * n) <= 1
    train, val, test = _keys(parts.train), _keys(parts.validation), _keys(parts.test)
    # (user, item) pairs are unique in the synthetic data, so keys identify rows.
    assert len(train) == sizes["train"] and len(test) == sizes["test"]
    assert not train & val and not train & test and not val & test
    assert train | val | test == _keys(interactions)
    assert list(parts.train.columns) == list(interactions.columns)


def test_random_split_is_reproducible(interactions):
    a = random_split(interactions, 0.2, 0.1, seed=3)
    b = random_split(interactions, 0.2, 0.1, seed=3)
    c = random_split(interactions, 0.2, 0.1, seed=4)
    pd.testing.assert_frame_equal(a.test, b.test)
    pd.testing.assert_frame_equal(a.train, b.train)
    assert _keys(a.test) != _keys(c.test)


def test_random_split_is_the_design_recipe(interactions):
    """DESIGN.md section 5: idx = default_rng(42).permutation(n), first 80% pool."""
    n = len(interactions)
    idx = np.random.default_rng(42).permutation(n)
    pool = interactions.iloc[idx[: int(0.8 * n)]].reset_index(drop=True)
    test = interactions.iloc[idx[int(0.8 * n):]].reset_index(drop=True)
    parts = random_split(interactions, test_fraction=0.2, validation_fraction=0.0,
                         seed=42)
    pd.testing.assert_frame_equal(parts.train, pool)
    pd.testing.assert_frame_equal(parts.test, test)
    assert len(parts.validation) == 0
    # With validation, train + validation is still that pool, in the same order.
    with_val = random_split(interactions, 0.2, 0.1, seed=42)
    pd.testing.assert_frame_equal(
        pd.concat([with_val.train, with_val.validation], ignore_index=True), pool)


def test_temporal_split_holds_out_each_users_latest(interactions):
    parts = temporal_split(interactions, test_fraction=0.2, validation_fraction=0.1,
                           user_column=F.USER_ID, time_column=F.TIMESTAMP)
    assert sum(parts.sizes().values()) == len(interactions)
    assert _keys(parts.train) | _keys(parts.validation) | _keys(parts.test) == \
        _keys(interactions)
    last_train = parts.train.groupby(F.USER_ID)[F.TIMESTAMP].max()
    first_val = parts.validation.groupby(F.USER_ID)[F.TIMESTAMP].min()
    first_test = parts.test.groupby(F.USER_ID)[F.TIMESTAMP].min()
    last_val = parts.validation.groupby(F.USER_ID)[F.TIMESTAMP].max()
    assert len(first_test) > 0
    for user, earliest in first_test.items():
        assert earliest >= last_train.get(user, -np.inf)
        assert earliest >= last_val.get(user, -np.inf)
    for user, earliest in first_val.items():
        assert earliest >= last_train.get(user, -np.inf)
    # Every user with at least 3 interactions has at least one test interaction.
    counts = interactions.groupby(F.USER_ID).size()
    assert set(counts[counts >= 3].index) == set(first_test.index)
    # About test_fraction of the interactions are held out.
    assert abs(len(parts.test) / len(interactions) - 0.2) < 0.03


def test_temporal_split_keeps_small_users_in_train():
    frame = pd.DataFrame({
        F.USER_ID: ["a", "a", "b", "b", "b"],
        F.ITEM_ID: ["1", "2", "1", "2", "3"],
        F.RATING: np.float32([4, 3, 5, 2, 1]),
        F.TIMESTAMP: np.int64([5, 1, 30, 10, 20]),
    })
    parts = temporal_split(frame, test_fraction=0.2, validation_fraction=0.1,
                           user_column=F.USER_ID, time_column=F.TIMESTAMP)
    assert sorted(parts.train[F.USER_ID]) == ["a", "a", "b"]
    assert parts.train[parts.train[F.USER_ID] == "b"][F.ITEM_ID].tolist() == ["2"]
    assert parts.validation[F.ITEM_ID].tolist() == ["3"]
    assert parts.test[F.ITEM_ID].tolist() == ["1"]  # b's latest (timestamp 30)


def test_split_dispatch_and_error(interactions):
    dispatched = split(interactions, F.MOVIELENS_SCHEMA, "random", 0.2, 0.1, 5)
    pd.testing.assert_frame_equal(dispatched.test,
                                  random_split(interactions, 0.2, 0.1, 5).test)
    without_time = F.MOVIELENS_SCHEMA.__class__(F.MOVIELENS_SCHEMA.features)
    with pytest.raises(ValueError, match="needs schema.timestamp and a user id"):
        split(interactions, without_time, "temporal", 0.2, 0.1, 5)
    with pytest.raises(ValueError, match="'chronological'"):
        split(interactions, F.MOVIELENS_SCHEMA, "chronological", 0.2, 0.1, 5)


def test_published_split_takes_validation_from_the_named_file():
    train = pd.DataFrame({"row": range(10)})
    test = pd.DataFrame({"row": range(100, 106)})
    from_test = published_split(train, test, validation_from="test",
                                validation_fraction=0.5, seed=1)
    assert from_test.train["row"].tolist() == list(range(10))
    assert sorted([*from_test.validation["row"], *from_test.test["row"]]) == list(
        range(100, 106))
    assert len(from_test.validation) == 3
    order = np.random.default_rng(1).permutation(6)
    assert from_test.validation["row"].tolist() == (100 + order[:3]).tolist()
    from_train = published_split(train, test, validation_from="train",
                                 validation_fraction=0.25, seed=1)
    assert from_train.sizes() == {"train": 8, "validation": 2, "test": 6}
    assert from_train.test["row"].tolist() == list(range(100, 106))  # in order
    with pytest.raises(ValueError, match="'train' or 'test'"):
        published_split(train, test, validation_from="both",
                        validation_fraction=0.1, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        published_split(train, test, validation_from="train",
                        validation_fraction=1.0, seed=0)


def test_published_file_split_tells_the_files_apart_by_name():
    rows = pd.DataFrame({"row": range(6), "_file": ["d/train.csv.gz"] * 4
                         + ["d/test.csv.gz"] * 2})
    parts = published_file_split(rows, "test.csv", validation_from="train",
                                 validation_fraction=0.5, seed=0)
    assert parts.test["row"].tolist() == [4, 5]
    assert sorted([*parts.train["row"], *parts.validation["row"]]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="expected rows from 'test.csv'"):
        published_file_split(rows.iloc[:4], "test.csv", validation_from="train",
                             validation_fraction=0.5, seed=0)
    with pytest.raises(ValueError, match="have no '_file' column"):
        published_file_split(rows[["row"]], "test.csv", validation_from="train",
                             validation_fraction=0.5, seed=0)
