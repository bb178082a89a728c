"""Train / validation / test splits of a RecDataset's interactions."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd

from mtl_tf.data.cleaning import FILE_COLUMN
from mtl_tf.schema import Schema

# Splits that hold out each user's latest events: a row's history is what
# happened before it.
TEMPORAL_SPLITS = ("temporal", "last_item")


@dataclasses.dataclass
class Splits:
    """Interactions of each split (side tables stay in the RecDataset)."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    cold_items: frozenset[str] = frozenset()

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation),
                "test": len(self.test)}

    def with_validation_in_train(self) -> "Splits":
        """The validation rows moved into training (an empty validation
        split), for a final fit on every row before the test split."""
        return Splits(pd.concat([self.train, self.validation], ignore_index=True),
                      self.validation.iloc[:0], self.test, self.cold_items)


def random_split(interactions: pd.DataFrame, test_fraction: float,
                 validation_fraction: float, seed: int) -> Splits:
    """Seeded random split.

    Rows are permuted once with `np.random.default_rng(seed).permutation`; the first
    ``1 - test_fraction`` share is the training pool, the rest the test split. With
    seed 42 and test_fraction 0.2 this is exactly the ml-100k split of DESIGN.md
    section 5. Validation is the last `validation_fraction` share of the pool.
    """
    n = len(interactions)
    order = np.random.default_rng(seed).permutation(n)
    n_pool = n - int(round(n * test_fraction))
    pool, test = order[:n_pool], order[n_pool:]
    n_train = n_pool - int(round(n_pool * validation_fraction))
    return Splits(train=_take(interactions, pool[:n_train]),
                  validation=_take(interactions, pool[n_train:]),
                  test=_take(interactions, test))


def temporal_split(interactions: pd.DataFrame, test_fraction: float,
                   validation_fraction: float, user_column: str,
                   time_column: str) -> Splits:
    """Per-user temporal hold-out: each user's latest interactions are held out.

    For every user with at least 3 interactions, the latest `test_fraction` share
    (at least one) goes to test and the latest `validation_fraction` share of the
    rest (at least one) to validation; ties in timestamp keep file order.
    """
    frame = interactions.reset_index(drop=True)
    order = np.lexsort((np.arange(len(frame)), frame[time_column].to_numpy(),
                        frame[user_column].to_numpy()))
    frame = frame.iloc[order]
    position = frame.groupby(user_column, sort=False).cumcount().to_numpy()
    count = frame.groupby(user_column, sort=False)[user_column].transform(
        "size").to_numpy()
    eligible = count >= 3
    n_test = np.where(eligible, np.maximum(1, np.round(count * test_fraction)), 0)
    n_pool = count - n_test
    n_val = np.where(eligible & (validation_fraction > 0),
                     np.maximum(1, np.round(n_pool * validation_fraction)), 0)
    is_test = position >= n_pool
    is_val = ~is_test & (position >= n_pool - n_val)
    is_train = ~is_test & ~is_val
    return Splits(train=frame[is_train].reset_index(drop=True),
                  validation=frame[is_val].reset_index(drop=True),
                  test=frame[is_test].reset_index(drop=True))


def last_item_split(interactions: pd.DataFrame, user_column: str,
                    time_column: str) -> Splits:
    """The leave-last-out protocol of sequential recommendation (SASRec, Kang &
    McAuley, ICDM 2018): per user with at least 3 interactions, the latest one
    is test and the one before it validation; ties in time keep file order.
    Users with fewer interactions stay in training.
    """
    frame = interactions.reset_index(drop=True)
    order = np.lexsort((np.arange(len(frame)), frame[time_column].to_numpy(),
                        frame[user_column].to_numpy()))
    frame = frame.iloc[order]
    from_end = frame.groupby(user_column, sort=False).cumcount(
        ascending=False).to_numpy()
    count = frame.groupby(user_column, sort=False)[user_column].transform(
        "size").to_numpy()
    eligible = count >= 3
    is_test, is_val = eligible & (from_end == 0), eligible & (from_end == 1)
    return Splits(train=frame[~is_test & ~is_val].reset_index(drop=True),
                  validation=frame[is_val].reset_index(drop=True),
                  test=frame[is_test].reset_index(drop=True))


def cold_item_split(interactions: pd.DataFrame, test_fraction: float,
                    validation_fraction: float, seed: int,
                    cold_item_fraction: float, item_column: str) -> Splits:
    """Holds a seeded share of items out of training entirely (cold start).

    Every interaction with a cold item goes to test; the other interactions are
    split with `random_split`. `Splits.cold_items` names the cold items, so metrics
    can be reported for cold and warm test items separately.
    """
    items = np.sort(interactions[item_column].astype(str).unique())
    rng = np.random.default_rng(seed + 1)
    count = int(round(len(items) * cold_item_fraction))
    cold = frozenset(rng.choice(items, size=count, replace=False).tolist())
    is_cold = interactions[item_column].astype(str).isin(cold).to_numpy()
    warm = random_split(interactions[~is_cold].reset_index(drop=True), test_fraction,
                        validation_fraction, seed)
    test = pd.concat([warm.test, interactions[is_cold]], ignore_index=True)
    return Splits(warm.train, warm.validation, test, cold_items=cold)


def published_split(train: pd.DataFrame, test: pd.DataFrame, *,
                    validation_from: str, validation_fraction: float,
                    seed: int) -> Splits:
    """The protocol of a data set published as a train and a test file.

    The validation rows are a seeded random share of one of the two files
    (`validation_from`: "train" or "test"; `np.random.default_rng(seed)`
    permutes its rows and the first `validation_fraction` of them, rounded
    down, are validation). Census-income's published protocol, for example,
    is `validation_from="test", validation_fraction=0.5`.

    Raises:
        ValueError: `validation_from` is neither "train" nor "test", or the
            fraction is outside [0, 1).
    """
    if validation_from not in ("train", "test"):
        raise ValueError("published_split: validation_from must be 'train' or "
                         f"'test'. Received: {validation_from!r}.")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError("published_split: validation_fraction must lie in "
                         f"[0, 1). Received: {validation_fraction!r}.")
    source = train if validation_from == "train" else test
    order = np.random.default_rng(seed).permutation(len(source))
    cut = int(len(order) * validation_fraction)
    validation, rest = _take(source, order[:cut]), _take(source, order[cut:])
    if validation_from == "train":
        return Splits(rest, validation, test.reset_index(drop=True))
    return Splits(train.reset_index(drop=True), validation, rest)


def published_file_split(interactions: pd.DataFrame, test_file: str, *,
                         validation_from: str, validation_fraction: float,
                         seed: int) -> Splits:
    """`published_split` of rows read from a train and a test file: a row is a
    test row when the name of its `_file` (the loaders' helper column) starts
    with `test_file` (e.g. "census-income.test" matches its `.gz` too).

    Raises:
        ValueError: no `_file` column (the rows were not read by a loader), no
            row from the test file or none from another, or as
            `published_split`.
    """
    if FILE_COLUMN not in interactions:
        raise ValueError(f"published_file_split: the interactions have no "
                         f"{FILE_COLUMN!r} column telling train from test rows; "
                         "read them with the data set's loader.")
    files = interactions[FILE_COLUMN].astype("category")  # per file, not per row
    test = [f for f in files.cat.categories
            if os.path.basename(str(f)).startswith(test_file)]
    is_test = files.isin(test).to_numpy()
    if is_test.all() or not is_test.any():
        raise ValueError(f"published_file_split: expected rows from {test_file!r} "
                         "and from the train file; the rows come from "
                         f"{list(files.cat.categories)[:5]}.")
    return published_split(interactions[~is_test], interactions[is_test],
                           validation_from=validation_from,
                           validation_fraction=validation_fraction, seed=seed)


def split(interactions: pd.DataFrame, schema: Schema, method: str,
          test_fraction: float, validation_fraction: float, seed: int,
          cold_item_fraction: float = 0.1) -> Splits:
    """Dispatches to `random_split`, `temporal_split`, `last_item_split` or
    `cold_item_split`.

    Raises:
        ValueError: the split needs a column the schema does not declare.
    """
    if method == "random":
        return random_split(interactions, test_fraction, validation_fraction, seed)
    if method in TEMPORAL_SPLITS:
        if not schema.timestamp or schema.user_id is None:
            raise ValueError(f"data.split={method!r} holds out each user's latest "
                             "rows: it needs schema.timestamp and a user id "
                             "feature. Received: timestamp="
                             f"{schema.timestamp!r}, user id "
                             f"{getattr(schema.user_id, 'name', None)!r}.")
        if method == "last_item":
            return last_item_split(interactions, schema.user_id.name,
                                   schema.timestamp)
        return temporal_split(interactions, test_fraction, validation_fraction,
                              schema.user_id.name, schema.timestamp)
    if method == "cold_items":
        if schema.item_id is None:
            raise ValueError("data.split='cold_items' holds items out: it needs an "
                             "item id feature in the schema.")
        return cold_item_split(interactions, test_fraction, validation_fraction, seed,
                               cold_item_fraction, schema.item_id.name)
    raise ValueError("data.split must be 'random', 'temporal', 'last_item' or "
                     f"'cold_items'. Received: {method!r}.")


def _take(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    return frame.iloc[rows].reset_index(drop=True)
