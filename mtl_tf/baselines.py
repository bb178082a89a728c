"""Simple-but-strong baselines in plain numpy: most-popular retrieval, a bias model
and EASE.

A multi-task model is only worth its cost if it beats these (DESIGN.md section 5):
on MovieLens 100K most-popular already beats the TFRS tutorial's retrieval, the
bias model its rating RMSE, and EASE (a closed-form item-item model) is the
strongest top-k ranker of the three.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np

from mtl_tf.evaluation import SeenItems, hit_rates


def _check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: `{name}={value!r}`"
        )
    return int(value)


def _as_index(name: str, values: np.ndarray | Sequence) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be one-dimensional. Received: shape {array.shape}"
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"`{name}` must hold integer indices. Received: dtype {array.dtype}"
        )
    array = array.astype(np.int64, copy=False)
    if array.size and array.min() < 0:
        raise ValueError(
            f"`{name}` must be non-negative. Received: minimum {array.min()}"
        )
    return array


def _check_below(name: str, array: np.ndarray, upper: int) -> None:
    if array.size and array.max() >= upper:
        raise ValueError(
            f"`{name}` must lie in [0, {upper}). Received: maximum {array.max()}"
        )


def _training_pairs(user_index, item_index, num_users: int, num_items: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Both index arrays checked: integer, 1-D, in [0, num_users / num_items)."""
    users = _as_index("user_index", user_index)
    items = _as_index("item_index", item_index)
    _check_below("user_index", users, num_users)
    _check_below("item_index", items, num_items)
    return users, items


class PopularityBaseline:
    """Scores every item by its number of training interactions, the same for all users.

    Example:
        >>> model = PopularityBaseline(num_items=3).fit([2, 0, 2])
        >>> model.score([0, 1])
        array([[1., 0., 2.],
               [1., 0., 2.]])

    Args:
        num_items: Number of items; item indices lie in [0, num_items).

    Attributes:
        num_items: As passed.
        counts: Training interaction count per item, float64 [num_items]; None
            before ``fit``.
    """

    def __init__(self, num_items: int) -> None:
        self.num_items = _check_positive_int("num_items", num_items)
        self.counts: np.ndarray | None = None

    def fit(self, item_index: np.ndarray | Sequence) -> PopularityBaseline:
        """Counts the training interactions of each item.

        Args:
            item_index: Item index of each training interaction, shape [n].

        Returns:
            ``self``, fitted.
        """
        items = _as_index("item_index", item_index)
        _check_below("item_index", items, self.num_items)
        self.counts = np.bincount(items, minlength=self.num_items).astype(np.float64)
        return self

    def score(self, user_index: np.ndarray | Sequence) -> np.ndarray:
        """Returns the popularity row for each user, shape [len(user_index), num_items].

        Usable directly as the ``score_fn`` of `mtl_tf.evaluation.hit_rates`.
        """
        if self.counts is None:
            raise RuntimeError("PopularityBaseline.score called before fit.")
        num_rows = len(np.asarray(user_index).reshape(-1))
        return np.tile(self.counts, (num_rows, 1))


class BiasBaseline:
    """Rating = global mean + user bias + item bias, fitted by regularised ALS.

    This is the baseline predictor of Koren, Bell and Volinsky, "Matrix factorization
    techniques for recommender systems", IEEE Computer 42(8), 2009 (eq. 3 without the
    factor term). Each sweep sets, in closed form with the other side fixed,

        b_i = sum_{u in R(i)} (r_ui - mu - b_u) / (n_i + l2)
        b_u = sum_{i in R(u)} (r_ui - mu - b_i) / (n_u + l2)

    starting from zero biases. With ``l2=0`` one sweep gives b_i = item mean - mu and
    b_u = mean residual of the user. Users or items without training ratings, and
    indices past ``num_users`` / ``num_items`` at prediction time (e.g. an
    out-of-vocabulary bucket), get bias 0.

    Example:
        >>> model = BiasBaseline(num_users=2, num_items=2, l2=0.0, sweeps=1)
        >>> model = model.fit([0, 0, 1], [0, 1, 0], [5.0, 3.0, 4.0])
        >>> model.predict([1, 1], [1, 5])  # mu 4, b_u1 -0.5, b_i1 -1, item 5 unknown
        array([2.5, 3.5])

    Args:
        num_users: Number of users; training user indices lie in [0, num_users).
        num_items: Number of items; training item indices lie in [0, num_items).
        l2: L2 regularisation strength (a pseudo-count shrinking biases to 0), >= 0.
        sweeps: Number of ALS sweeps (item update then user update), >= 1.
        clip: ``(low, high)`` range predictions are clipped to, or None for no
            clipping.

    Attributes:
        num_users, num_items, l2, sweeps, clip: As passed.
        global_mean: Mean training rating (None before ``fit``).
        user_bias: float64 [num_users] (None before ``fit``).
        item_bias: float64 [num_items] (None before ``fit``).
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        l2: float = 10.0,
        sweeps: int = 10,
        clip: tuple[float, float] | None = (1.0, 5.0),
    ) -> None:
        self.num_users = _check_positive_int("num_users", num_users)
        self.num_items = _check_positive_int("num_items", num_items)
        if not isinstance(l2, Real) or not l2 >= 0:
            raise ValueError(f"`l2` must be a number >= 0. Received: `l2={l2!r}`")
        self.l2 = float(l2)
        self.sweeps = _check_positive_int("sweeps", sweeps)
        if clip is not None:
            if len(clip) != 2 or not clip[0] < clip[1]:
                raise ValueError(
                    "`clip` must be None or (low, high) with low < high. "
                    f"Received: `clip={clip!r}`"
                )
            clip = (float(clip[0]), float(clip[1]))
        self.clip = clip
        self.global_mean: float | None = None
        self.user_bias: np.ndarray | None = None
        self.item_bias: np.ndarray | None = None

    def fit(
        self,
        user_index: np.ndarray | Sequence,
        item_index: np.ndarray | Sequence,
        ratings: np.ndarray | Sequence,
    ) -> BiasBaseline:
        """Fits the global mean and the biases on training ratings.

        Args:
            user_index: User index per rating, shape [n], in [0, num_users).
            item_index: Item index per rating, shape [n], in [0, num_items).
            ratings: The ratings, shape [n].

        Returns:
            ``self``, fitted.
        """
        users, items = _training_pairs(user_index, item_index, self.num_users,
                                       self.num_items)
        ratings = np.asarray(ratings, dtype=np.float64)
        if not users.shape == items.shape == ratings.shape:
            raise ValueError(
                "`user_index`, `item_index` and `ratings` must have the same shape. "
                f"Received: {users.shape}, {items.shape} and {ratings.shape}"
            )
        if ratings.size == 0:
            raise ValueError("`ratings` must not be empty.")
        mu = float(ratings.mean())
        residual = ratings - mu
        user_count = np.bincount(users, minlength=self.num_users)
        item_count = np.bincount(items, minlength=self.num_items)
        user_bias = np.zeros(self.num_users)
        item_bias = np.zeros(self.num_items)
        for _ in range(self.sweeps):
            item_bias = self._solve(items, residual - user_bias[users], item_count)
            user_bias = self._solve(users, residual - item_bias[items], user_count)
        self.global_mean, self.user_bias, self.item_bias = mu, user_bias, item_bias
        return self

    def _solve(self, index: np.ndarray, target: np.ndarray, count: np.ndarray):
        sums = np.bincount(index, weights=target, minlength=count.size)
        denominator = count + self.l2
        # Rows without ratings (0 / 0 when l2 == 0) keep bias 0.
        return np.divide(
            sums, denominator, out=np.zeros_like(sums), where=denominator > 0
        )

    def predict(
        self, user_index: np.ndarray | Sequence, item_index: np.ndarray | Sequence
    ) -> np.ndarray:
        """Predicts ratings for (user, item) pairs, float64 [n], clipped to ``clip``.

        Indices >= ``num_users`` / ``num_items`` are treated as unknown (bias 0).
        """
        if self.global_mean is None:
            raise RuntimeError("BiasBaseline.predict called before fit.")
        users = _as_index("user_index", user_index)
        items = _as_index("item_index", item_index)
        if users.shape != items.shape:
            raise ValueError(
                "`user_index` and `item_index` must have the same shape. "
                f"Received: {users.shape} and {items.shape}"
            )
        prediction = (
            self.global_mean
            + _lookup(self.user_bias, users)
            + _lookup(self.item_bias, items)
        )
        if self.clip is not None:
            prediction = np.clip(prediction, *self.clip)
        return prediction


def _lookup(bias: np.ndarray, index: np.ndarray) -> np.ndarray:
    """bias[index], with 0 for indices past the end."""
    known = index < bias.size
    return np.where(known, bias[np.where(known, index, 0)], 0.0)


class EASEBaseline:
    """EASE: closed-form item-item weights over the binary user x item matrix.

    Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019: with X
    the binary training matrix (users x items), the weights minimising
    ||X - X B||^2 + l2 ||B||^2 subject to diag(B) = 0 are

        P = (X^T X + l2 I)^-1,   B_ij = -P_ij / P_jj  (i != j),   B_jj = 0,

    and a user's scores are their row of X times B. Repeated (user, item) pairs
    count once. B is a dense [num_items, num_items] float64 matrix, so this is a
    baseline for catalogs up to `MAX_ITEMS` items; `select_l2` picks l2 on a
    validation split.

    Example:
        >>> model = EASEBaseline(num_users=3, num_items=3, l2=1.0)
        >>> model = model.fit([0, 0, 1, 1, 2], [0, 1, 0, 1, 2])
        >>> np.round(model.score([2, 0]), 3)  # items 0, 1 co-occur; 2 stands alone
        array([[0.   , 0.   , 0.   ],
               [0.667, 0.667, 0.   ]])

    Args:
        num_users: Number of users; user indices lie in [0, num_users).
        num_items: Number of items, at most `MAX_ITEMS`.
        l2: The ridge strength, > 0 (Steck's l2 is a few hundred on MovieLens).

    Attributes:
        num_users, num_items, l2: As passed.
        weights: B, float64 [num_items, num_items] (None before ``fit``).
    """

    MAX_ITEMS = 50_000  # B is num_items^2 float64: 20 GB at 50k items.

    def __init__(self, num_users: int, num_items: int, l2: float = 500.0) -> None:
        self.num_users = _check_positive_int("num_users", num_users)
        self.num_items = _check_positive_int("num_items", num_items)
        if self.num_items > self.MAX_ITEMS:
            raise ValueError(
                f"EASE holds a dense num_items x num_items matrix; `num_items` must "
                f"be at most {self.MAX_ITEMS}. Received: `num_items={num_items}`"
            )
        if not isinstance(l2, Real) or not l2 > 0:
            raise ValueError(f"`l2` must be a number > 0. Received: `l2={l2!r}`")
        self.l2 = float(l2)
        self.weights: np.ndarray | None = None
        self._rows: np.ndarray | None = None

    def fit(
        self, user_index: np.ndarray | Sequence, item_index: np.ndarray | Sequence
    ) -> EASEBaseline:
        """Builds X from training (user, item) pairs and solves for B.

        Returns:
            ``self``, fitted.
        """
        users, items = _training_pairs(user_index, item_index, self.num_users,
                                       self.num_items)
        if users.shape != items.shape:
            raise ValueError(
                "`user_index` and `item_index` must have the same shape. "
                f"Received: {users.shape} and {items.shape}"
            )
        rows = np.zeros((self.num_users, self.num_items), dtype=np.float32)
        rows[users, items] = 1.0
        gram = rows.T.astype(np.float64) @ rows
        gram[np.diag_indices_from(gram)] += self.l2
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights, self._rows = weights, rows
        return self

    def score(self, user_index: np.ndarray | Sequence) -> np.ndarray:
        """Scores of every item for each user, [len(user_index), num_items]; usable
        as the ``score_fn`` of `mtl_tf.evaluation.hit_rates`."""
        if self.weights is None:
            raise RuntimeError("EASEBaseline.score called before fit.")
        users = _as_index("user_index", user_index)
        _check_below("user_index", users, self.num_users)
        return self._rows[users] @ self.weights

    @classmethod
    def select_l2(
        cls,
        num_users: int,
        num_items: int,
        train: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray],
        l2_values: Sequence[float] = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0),
        k: int = 10,
    ) -> tuple[float, dict[float, float]]:
        """Picks l2 by validation hit rate@k (training items excluded).

        Args:
            train, validation: (user indices, item indices) of each split.
            l2_values: The candidates.

        Returns:
            (the best l2, {l2: validation hit rate@k}).
        """
        seen = SeenItems(*train, num_users=num_users, num_items=num_items)
        rates = {}
        for l2 in l2_values:
            model = cls(num_users, num_items, l2).fit(*train)
            rates[float(l2)] = hit_rates(model.score, *validation,
                                         num_items=num_items, seen=seen,
                                         ks=(k,), ties="average")[f"hit_rate_at_{k}"]
        return max(rates, key=rates.get), rates
