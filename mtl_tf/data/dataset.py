"""The in-memory form every data source produces: interactions, items and users."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from mtl_tf import features as F


@dataclasses.dataclass
class CleaningReport:
    """Counts of what cleaning dropped or repaired, printed and saved with a run."""

    rows_read: int = 0
    malformed_rows: int = 0
    duplicate_rows: int = 0
    nan_labels: int = 0
    out_of_range_labels: int = 0
    unknown_item_rows: int = 0
    unknown_user_rows: int = 0
    rows_kept: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        dropped = {k: v for k, v in self.as_dict().items()
                   if k not in ("rows_read", "rows_kept") and v}
        detail = ", ".join(f"{k}={v}" for k, v in dropped.items()) or "nothing dropped"
        return f"read {self.rows_read} rows, kept {self.rows_kept} ({detail})"


@dataclasses.dataclass
class RecDataset:
    """Interactions plus item and user side tables, in the TFDS movielens schema.

    Attributes:
        interactions: one row per (user, item) event with columns
            `features.INTERACTION_COLUMNS`; ids are strings, `user_rating` float32.
        items: the item catalog (`features.ITEM_COLUMNS`), one row per item, including
            items nobody interacted with. `movie_genres` holds tuples of genre ids.
        users: user side features (`features.USER_COLUMNS`), one row per user.
        name: a short label used in logs ("synthetic", "ml-100k", ...).
        report: what cleaning dropped while loading.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    name: str
    report: CleaningReport = dataclasses.field(default_factory=CleaningReport)

    def __post_init__(self) -> None:
        for table, columns in ((self.interactions, F.INTERACTION_COLUMNS),
                               (self.items, F.ITEM_COLUMNS),
                               (self.users, F.USER_COLUMNS)):
            missing = [c for c in columns if c not in table.columns]
            if missing:
                raise ValueError(
                    f"RecDataset {self.name!r}: table is missing columns {missing}; "
                    f"received columns {list(table.columns)}.")

    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def num_items(self) -> int:
        return len(self.items)

    def with_interactions(self, interactions: pd.DataFrame) -> "RecDataset":
        """Returns a copy that shares the side tables but holds other interactions."""
        return dataclasses.replace(self,
                                   interactions=interactions.reset_index(drop=True))

    def to_examples(self, interactions: pd.DataFrame | None = None
                    ) -> dict[str, np.ndarray]:
        """Joins interactions with side tables into TFDS-schema example columns.

        `movie_genres` comes back as an object array of int64 arrays (ragged).
        """
        rows = self.interactions if interactions is None else interactions
        joined = rows.merge(self.items, on=F.ITEM_ID, how="left").merge(
            self.users, on=F.USER_ID, how="left")
        out = {
            F.USER_ID: joined[F.USER_ID].astype(str).to_numpy(),
            F.ITEM_ID: joined[F.ITEM_ID].astype(str).to_numpy(),
            F.ITEM_TITLE: joined[F.ITEM_TITLE].fillna("").astype(str).to_numpy(),
            F.RATING: joined[F.RATING].to_numpy(np.float32),
            F.TIMESTAMP: joined[F.TIMESTAMP].to_numpy(np.int64),
            F.USER_AGE: joined[F.USER_AGE].fillna(0).to_numpy(np.float32),
            F.USER_GENDER: joined[F.USER_GENDER].fillna(False).to_numpy(bool),
            F.USER_OCCUPATION: joined[F.USER_OCCUPATION].fillna(0).to_numpy(np.int64),
            F.USER_ZIP: joined[F.USER_ZIP].fillna("").astype(str).to_numpy(),
        }
        genres = np.empty(len(joined), dtype=object)
        genres[:] = [np.asarray(g if isinstance(g, (tuple, list)) else (), np.int64)
                     for g in joined[F.ITEM_GENRES]]
        out[F.ITEM_GENRES] = genres
        return out
