"""Tests for mtl_tf.baselines; expected values are worked out by hand."""

from fractions import Fraction

import numpy as np
import pytest

from mtl_tf.baselines import BiasBaseline, EASEBaseline, PopularityBaseline
from mtl_tf.evaluation import hit_rates

# --- PopularityBaseline -----------------------------------------------------------


def test_popularity_counts_and_scores():
    model = PopularityBaseline(num_items=5).fit([2, 0, 2, 3, 2, 0])
    np.testing.assert_array_equal(model.counts, [2, 0, 3, 1, 0])
    scores = model.score(np.array([7, 1]))
    np.testing.assert_array_equal(scores, [[2, 0, 3, 1, 0]] * 2)
    # Most popular first: item 2 (3), item 0 (2), item 3 (1).
    assert np.argsort(-scores[0], kind="stable")[:3].tolist() == [2, 0, 3]


def test_popularity_as_score_fn():
    model = PopularityBaseline(num_items=5).fit([2, 0, 2, 3, 2, 0])
    # Item 2 ranks 1, item 0 ranks 2, item 3 ranks 3.
    result = hit_rates(
        model.score, [0, 1, 1], [2, 0, 3], num_items=5, seen=None, ks=(1, 2)
    )
    assert result == pytest.approx({"hit_rate_at_1": 1 / 3, "hit_rate_at_2": 2 / 3})


def test_popularity_errors():
    with pytest.raises(RuntimeError, match="before fit"):
        PopularityBaseline(num_items=3).score([0])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        PopularityBaseline(num_items=3).fit([0, 3])
    with pytest.raises(ValueError, match="num_items=0"):
        PopularityBaseline(num_items=0)


# --- BiasBaseline -----------------------------------------------------------------

# A full 3 x 4 matrix that is exactly additive: r = 3 + a_u + b_i with zero-mean
# a and b, so the global mean is 3 and, with l2 = 0, one sweep recovers a and b as
# plain means: b_i = column mean - 3, then a_u = row mean of the residual.
USER_EFFECT = np.array([0.5, -0.5, 0.0])
ITEM_EFFECT = np.array([1.0, 0.0, -1.0, 0.0])
USERS, ITEMS = (g.ravel() for g in np.meshgrid(range(3), range(4), indexing="ij"))
RATINGS = 3.0 + USER_EFFECT[USERS] + ITEM_EFFECT[ITEMS]


@pytest.mark.parametrize("sweeps", [1, 10])
def test_bias_with_no_regularisation_recovers_exact_means(sweeps):
    model = BiasBaseline(num_users=3, num_items=4, l2=0.0, sweeps=sweeps)
    model.fit(USERS, ITEMS, RATINGS)
    assert model.global_mean == pytest.approx(3.0)
    np.testing.assert_allclose(model.user_bias, USER_EFFECT, atol=1e-12)
    np.testing.assert_allclose(model.item_bias, ITEM_EFFECT, atol=1e-12)
    np.testing.assert_allclose(model.predict(USERS, ITEMS), RATINGS)


# Ratings (user, item, r): (0, 0, 5), (0, 1, 3), (1, 0, 4); mu = 4, residuals 1, -1, 0.
SMALL = ([0, 0, 1], [0, 1, 0], [5.0, 3.0, 4.0])


def _hand_als(l2, sweeps):
    """The ALS updates in exact fractions for the SMALL data set."""
    l2 = Fraction(l2)
    bu, bi = [Fraction(0)] * 2, [Fraction(0)] * 2
    for _ in range(sweeps):
        bi = [(1 - bu[0] + 0 - bu[1]) / (2 + l2), (-1 - bu[0]) / (1 + l2)]
        bu = [(1 - bi[0] + -1 - bi[1]) / (2 + l2), (0 - bi[0]) / (1 + l2)]
    return bu, bi


def test_bias_one_and_two_sweeps_by_hand():
    # l2 = 1, sweep 1: b_i = (1 + 0) / 3 = 1/3, -1 / 2; b_u0 = (2/3 - 1/2) / 3 = 1/18,
    # b_u1 = (-1/3) / 2 = -1/6.
    bu, bi = _hand_als(1, 1)
    assert bi == [Fraction(1, 3), Fraction(-1, 2)]
    assert bu == [Fraction(1, 18), Fraction(-1, 6)]
    for sweeps in (1, 2):
        bu, bi = _hand_als(1, sweeps)
        model = BiasBaseline(num_users=2, num_items=2, l2=1.0, sweeps=sweeps)
        model.fit(*SMALL)
        assert model.global_mean == 4.0
        np.testing.assert_allclose(model.user_bias, [float(b) for b in bu])
        np.testing.assert_allclose(model.item_bias, [float(b) for b in bi])
    # Sweep 2 by hand: b_i0 = (17/18 + 3/18) / 3 = 10/27, b_u1 = -(10/27) / 2.
    assert model.predict([1], [0])[0] == pytest.approx(4 - 5 / 27 + 10 / 27)


def test_bias_converges_to_regularised_least_squares():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20, 300)
    items = rng.integers(0, 30, 300)
    ratings = rng.integers(1, 6, 300).astype(float)
    l2 = 2.0
    model = BiasBaseline(20, 30, l2=l2, sweeps=500, clip=None)
    model.fit(users, items, ratings)
    residual = ratings - model.predict(users, items)
    # Zero gradient of sum(residual^2) + l2 * (|b_u|^2 + |b_i|^2).
    grad_user = -np.bincount(users, residual, 20) + l2 * model.user_bias
    grad_item = -np.bincount(items, residual, 30) + l2 * model.item_bias
    np.testing.assert_allclose(grad_user, 0.0, atol=1e-8)
    np.testing.assert_allclose(grad_item, 0.0, atol=1e-8)


def test_bias_clipping():
    # Additive with a wide spread: r = 3 + a_u + b_i goes past both ends of [1, 5].
    users, items = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    ratings = 3.0 + np.array([2.0, -2.0])[users] + np.array([1.5, -1.5])[items]
    unclipped = BiasBaseline(2, 2, l2=0.0, sweeps=1, clip=None).fit(
        users, items, ratings
    )
    np.testing.assert_allclose(unclipped.predict(users, items), [6.5, 3.5, 2.5, -0.5])
    clipped = BiasBaseline(2, 2, l2=0.0, sweeps=1).fit(users, items, ratings)
    np.testing.assert_allclose(clipped.predict(users, items), [5.0, 3.5, 2.5, 1.0])
    custom = BiasBaseline(2, 2, l2=0.0, sweeps=1, clip=(0.0, 4.0))
    custom.fit(users, items, ratings)
    np.testing.assert_allclose(custom.predict(users, items), [4.0, 3.5, 2.5, 0.0])


def test_bias_unknown_and_unrated_indices_get_zero_bias():
    # l2 = 0: user 2 and item 2 have no ratings (0 / 0) and must stay 0, not NaN.
    model = BiasBaseline(num_users=3, num_items=3, l2=0.0, sweeps=1).fit(*SMALL)
    assert model.user_bias[2] == 0.0 and model.item_bias[2] == 0.0
    # mu 4, b_u0 = 1/4, b_u1 = -1/2, b_i0 = 1/2, b_i1 = -1; index 3 / 9 are OOV.
    predictions = model.predict([2, 3, 0, 9], [0, 1, 7, 2])
    np.testing.assert_allclose(predictions, [4.5, 3.0, 4.25, 4.0])


def test_bias_errors():
    with pytest.raises(RuntimeError, match="before fit"):
        BiasBaseline(2, 2).predict([0], [0])
    with pytest.raises(ValueError, match="l2=-1"):
        BiasBaseline(2, 2, l2=-1)
    with pytest.raises(ValueError, match="sweeps=0"):
        BiasBaseline(2, 2, sweeps=0)
    with pytest.raises(ValueError, match="clip"):
        BiasBaseline(2, 2, clip=(5.0, 1.0))
    with pytest.raises(ValueError, match="num_users"):
        BiasBaseline(0, 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        BiasBaseline(2, 2).fit([0, 2], [0, 0], [1.0, 2.0])
    with pytest.raises(ValueError, match="same shape"):
        BiasBaseline(2, 2).fit([0, 1], [0, 0], [1.0])
    model = BiasBaseline(2, 2).fit([0], [0], [3.0])
    with pytest.raises(ValueError, match="non-negative"):
        model.predict([-1], [0])


# --- EASEBaseline ------------------------------------------------------------------


def test_ease_weights_by_hand():
    # Items 0 and 1 co-occur twice; with l2 = 1, G + I = [[3, 2], [2, 3]] on them,
    # P = [[3, -2], [-2, 3]] / 5, so B_01 = B_10 = 2/3; item 2 stands alone.
    model = EASEBaseline(num_users=3, num_items=3, l2=1.0)
    model.fit([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 2, 2])  # a repeat counts once
    expected = np.array([[0, 2 / 3, 0], [2 / 3, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(model.weights, expected, atol=1e-12)
    np.testing.assert_allclose(model.score([0]), [[2 / 3, 2 / 3, 0]])


def test_ease_matches_the_objective_it_minimises():
    # B solves min ||X - XB||^2 + l2 ||B||^2 s.t. diag(B) = 0: each column's
    # off-diagonal part is the ridge regression of X_j on the other columns.
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 30, 200), rng.integers(0, 8, 200)
    model = EASEBaseline(30, 8, l2=3.0).fit(users, items)
    x = np.zeros((30, 8))
    x[users, items] = 1
    for j in range(8):
        others = [i for i in range(8) if i != j]
        a = x[:, others]
        ridge = np.linalg.solve(a.T @ a + 3.0 * np.eye(7), a.T @ x[:, j])
        np.testing.assert_allclose(model.weights[others, j], ridge, atol=1e-9)
        assert model.weights[j, j] == 0


def test_ease_beats_popularity_on_planted_item_groups():
    # Users like one of four item groups; popularity cannot tell them apart.
    rng = np.random.default_rng(1)
    num_users, num_items = 400, 40
    group = rng.integers(0, 4, num_users)
    users = np.repeat(np.arange(num_users), 6)
    items = group[users] * 10 + rng.integers(0, 10, users.size)
    train, test = np.arange(users.size) % 6 != 0, np.arange(users.size) % 6 == 0
    seen = None
    ease = EASEBaseline(num_users, num_items, l2=10.0).fit(users[train], items[train])
    popularity = PopularityBaseline(num_items).fit(items[train])
    rates = [hit_rates(m.score, users[test], items[test], num_items=num_items,
                       seen=seen, ks=(10,), ties="average")["hit_rate_at_10"]
             for m in (ease, popularity)]
    assert rates[0] > 0.9 and rates[0] > rates[1] + 0.5


def test_ease_select_l2_picks_the_best_validation_hit_rate():
    rng = np.random.default_rng(2)
    users, items = rng.integers(0, 100, 1500), rng.integers(0, 30, 1500)
    items = np.where(users % 2 == 0, items % 15, 15 + items % 15)
    train, validation = slice(0, 1200), slice(1200, None)
    best, rates = EASEBaseline.select_l2(
        100, 30, (users[train], items[train]),
        (users[validation], items[validation]), l2_values=(1.0, 30.0, 1e4))
    assert set(rates) == {1.0, 30.0, 1e4}
    assert rates[best] == max(rates.values()) and 0 < rates[best] <= 1


def test_ease_errors():
    with pytest.raises(ValueError, match="at most 50000"):
        EASEBaseline(2, 60_000)
    with pytest.raises(ValueError, match="`l2=0`"):
        EASEBaseline(2, 2, l2=0)
    with pytest.raises(RuntimeError, match="before fit"):
        EASEBaseline(2, 2).score([0])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        EASEBaseline(2, 2).fit([0, 2], [0, 1])
