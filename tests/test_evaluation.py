"""Tests for mtl_tf.evaluation; expected values are worked out by hand."""

import math

import numpy as np
import pytest

from mtl_tf import evaluation
from mtl_tf.evaluation import (
    SeenItems,
    accuracy,
    calibration,
    format_table,
    group_auc,
    hit_rates,
    mae,
    rmse,
    roc_auc,
)

# 3 users x 5 items. Ranks (1 = best): user 0 ranks items 0..4 in order, user 1 in
# reverse, user 2 ranks item 2 > 4 > 0 > 3 > 1.
SCORES = np.array(
    [
        [5.0, 4.0, 3.0, 2.0, 1.0],
        [1.0, 2.0, 3.0, 4.0, 5.0],
        [0.5, 0.1, 0.9, 0.3, 0.7],
    ]
)
# Test rows (user, item) and their ranks over all items: (0, 2) -> 3, (1, 0) -> 5,
# (2, 4) -> 2, (2, 2) -> 1.
TEST_USERS = np.array([0, 1, 2, 2])
TEST_ITEMS = np.array([2, 0, 4, 2])


def score_rows(users):
    return SCORES[users]


# --- rmse -------------------------------------------------------------------------


def test_rmse_by_hand():
    # Errors 0, 1, -2, 0 -> mean square 5 / 4.
    assert rmse([1, 2, 3, 4], [1, 3, 1, 4]) == pytest.approx(math.sqrt(1.25))
    assert rmse(np.ones(3), np.ones(3)) == 0.0


def test_rmse_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        rmse([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="empty"):
        rmse([], [])


# --- mae, accuracy -----------------------------------------------------------------


def test_mae_and_accuracy_by_hand():
    # Errors 0, 1, -2, 0 -> mean absolute 3 / 4.
    assert mae([1, 2, 3, 4], [1, 3, 1, 4]) == pytest.approx(0.75)
    # Predicted positive at >= 0.5: 1, 0, 0, 1 against labels 1, 0, 1, 0.
    assert accuracy([1, 0, 1, 0], [0.9, 0.2, 0.4, 0.5]) == 0.5
    assert accuracy([1.0, 0.0], [0.5, 0.49]) == 1.0


@pytest.mark.parametrize("metric", [mae, accuracy])
def test_mae_and_accuracy_reject_bad_shapes(metric):
    with pytest.raises(ValueError, match="same shape"):
        metric([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="empty"):
        metric([], [])
    with pytest.raises(ValueError, match="one-dimensional"):
        metric([[1.0]], [[1.0]])


# --- roc_auc ----------------------------------------------------------------------


def test_roc_auc_orderings():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    # All scores tied: every pair counts one half.
    assert roc_auc([0, 1, 0, 1, 1], [0.7] * 5) == 0.5
    # Positive 0.6 vs negatives (0.6, 0.2): 1/2 + 1; positive 0.2: 0 + 1/2 -> 2 / 4.
    assert roc_auc([1, 0, 1, 0], [0.6, 0.6, 0.2, 0.2]) == 0.5


def test_roc_auc_with_ties_by_hand():
    # Positive 0.8 vs negatives (0.8, 0.3, 0.1): 1/2 + 1 + 1; positive 0.3: 0 + 1/2 + 1.
    labels = np.array([True, False, True, False, False])
    scores = [0.8, 0.8, 0.3, 0.3, 0.1]
    assert roc_auc(labels, scores) == pytest.approx(4.0 / 6.0)


def test_roc_auc_matches_pairwise_count():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = rng.integers(0, 10, 300).astype(float)  # many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    expected = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert roc_auc(labels, scores) == pytest.approx(expected)


def test_roc_auc_errors():
    with pytest.raises(ValueError, match="one class"):
        roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="one class"):
        roc_auc([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="binary"):
        roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="same shape"):
        roc_auc([0, 1], [0.1])


# --- SeenItems --------------------------------------------------------------------


def test_seen_items_csr_layout_and_mask():
    # Duplicate (0, 3) is stored once; user 1 has no items.
    seen = SeenItems([0, 2, 0, 0, 2], [3, 0, 1, 3, 4], num_users=3, num_items=5)
    np.testing.assert_array_equal(seen.offsets, [0, 2, 2, 4])
    np.testing.assert_array_equal(seen.items, [1, 3, 0, 4])
    np.testing.assert_array_equal(seen.items_of(2), [0, 4])
    assert seen.items_of(1).size == 0
    expected = np.array(
        [
            [0, 0, 0, 0, 0],  # user 1
            [1, 0, 0, 0, 1],  # user 2
            [0, 1, 0, 1, 0],  # user 0
            [0, 0, 0, 0, 0],  # user 1 again
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(seen.mask([1, 2, 0, 1]), expected)


def test_seen_items_validation():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        SeenItems([0, 3], [0, 0], num_users=3, num_items=2)
    with pytest.raises(ValueError, match="num_items"):
        SeenItems([0], [0], num_users=1, num_items=0)
    seen = SeenItems([0], [0], num_users=1, num_items=2)
    with pytest.raises(ValueError, match="user_index"):
        seen.mask([1])


# --- hit_rates --------------------------------------------------------------------


def test_hit_rates_by_hand():
    # Ranks 3, 5, 2, 1.
    result = hit_rates(
        score_rows, TEST_USERS, TEST_ITEMS, num_items=5, seen=None, ks=(1, 2, 3, 5)
    )
    assert result == {
        "hit_rate_at_1": 0.25,
        "hit_rate_at_2": 0.5,
        "hit_rate_at_3": 0.75,
        "hit_rate_at_5": 1.0,
    }


def test_hit_rates_default_keys():
    result = hit_rates(score_rows, TEST_USERS, TEST_ITEMS, num_items=5, seen=None)
    assert result == {"hit_rate_at_10": 1.0, "hit_rate_at_100": 1.0}


def test_seen_exclusion_lifts_blocked_item_to_top1():
    # User 0's best item 0 was seen in training; it blocks test item 1 from top-1
    # unless excluded.
    seen = SeenItems([0], [0], num_users=3, num_items=5)
    kwargs = {"num_items": 5, "ks": (1,)}
    assert hit_rates(score_rows, [0], [1], seen=None, **kwargs) == {
        "hit_rate_at_1": 0.0
    }
    assert hit_rates(score_rows, [0], [1], seen=seen, **kwargs) == {
        "hit_rate_at_1": 1.0
    }


def test_hit_rates_with_seen_by_hand():
    # Seen: user 0 items {0, 1}, user 1 item {4}. Ranks become (0, 2) -> 1,
    # (1, 0) -> 4, (2, 4) -> 2, (2, 2) -> 1.
    seen = SeenItems([0, 0, 1], [0, 1, 4], num_users=3, num_items=5)
    result = hit_rates(
        score_rows, TEST_USERS, TEST_ITEMS, num_items=5, seen=seen, ks=(1, 2, 4)
    )
    assert result == {"hit_rate_at_1": 0.5, "hit_rate_at_2": 0.75, "hit_rate_at_4": 1.0}


def test_test_item_that_was_seen_is_still_ranked():
    # User 0 saw items 0 and 2; test item 2 competes with the unseen items 1, 3, 4
    # (scores 4, 2, 1 vs its 3): rank 2, not pushed to -inf.
    seen = SeenItems([0, 0], [0, 2], num_users=3, num_items=5)
    result = hit_rates(score_rows, [0], [2], num_items=5, seen=seen, ks=(1, 2))
    assert result == {"hit_rate_at_1": 0.0, "hit_rate_at_2": 1.0}


def test_ties_optimistic_and_average():
    scores = np.array([[1.0, 1.0, 1.0, 0.0, 0.0]])

    def fn(users):
        return scores[users]

    common = {"num_items": 5, "ks": (1, 2, 3)}
    # Items 0, 1, 2 tie; optimistic puts test item 1 first.
    assert hit_rates(fn, [0], [1], seen=None, **common) == {
        "hit_rate_at_1": 1.0,
        "hit_rate_at_2": 1.0,
        "hit_rate_at_3": 1.0,
    }
    # Average: uniformly random rank among 3 tied items.
    result = hit_rates(fn, [0], [1], seen=None, ties="average", **common)
    assert result == pytest.approx(
        {"hit_rate_at_1": 1 / 3, "hit_rate_at_2": 2 / 3, "hit_rate_at_3": 1.0}
    )
    # Excluding item 0 leaves 2 tied items; excluding the test item itself too does
    # not drop it from its own tie group.
    for seen_items in ([0], [0, 1]):
        seen = SeenItems([0] * len(seen_items), seen_items, num_users=1, num_items=5)
        result = hit_rates(fn, [0], [1], seen=seen, ties="average", **common)
        assert result == pytest.approx(
            {"hit_rate_at_1": 0.5, "hit_rate_at_2": 1.0, "hit_rate_at_3": 1.0}
        )


def test_each_user_scored_once_in_batches():
    calls = []

    def fn(users):
        calls.append(users.tolist())
        return SCORES[users]

    hit_rates(fn, TEST_USERS, TEST_ITEMS, num_items=5, seen=None, batch_size=2)
    assert calls == [[0, 1], [2]]


def _naive_hits(scores, users, items, seen_pairs, ks, ties):
    """One test row at a time, straight from the definition."""
    hits = np.zeros((len(users), len(ks)))
    for row, (u, i) in enumerate(zip(users, items, strict=True)):
        candidates = [
            j for j in range(scores.shape[1]) if j == i or (u, j) not in seen_pairs
        ]
        above = sum(scores[u, j] > scores[u, i] for j in candidates)
        tied = sum(scores[u, j] == scores[u, i] for j in candidates)
        for col, k in enumerate(ks):
            if ties == "optimistic":
                hits[row, col] = above + 1 <= k
            else:
                hits[row, col] = min(max((k - above) / tied, 0.0), 1.0)
    return {f"hit_rate_at_{k}": hits[:, col].mean() for col, k in enumerate(ks)}


@pytest.mark.parametrize("ties", ["optimistic", "average"])
@pytest.mark.parametrize("use_seen", [False, True])
def test_hit_rates_match_naive_loop(monkeypatch, ties, use_seen):
    rng = np.random.default_rng(7)
    num_users, num_items = 50, 200
    # Integer-valued scores so that ties are frequent.
    scores = rng.integers(0, 30, (num_users, num_items)).astype(np.float32)
    test_users = rng.integers(0, num_users, 400)
    test_items = rng.integers(0, num_items, 400)
    # Random seen pairs, some of which overlap test rows (the "dirty split" case).
    seen_users = rng.integers(0, num_users, 2000)
    seen_items = rng.integers(0, num_items, 2000)
    seen = SeenItems(seen_users, seen_items, num_users=num_users, num_items=num_items)
    seen_pairs = set(zip(seen_users.tolist(), seen_items.tolist(), strict=True))
    ks = (1, 5, 10, 50, 200)
    # Small comparison blocks exercise the chunked path (3 rows per block).
    monkeypatch.setattr(evaluation, "_BLOCK_ELEMENTS", 3 * num_items)
    result = hit_rates(
        lambda u: scores[u],
        test_users,
        test_items,
        num_items=num_items,
        seen=seen if use_seen else None,
        ks=ks,
        batch_size=7,
        ties=ties,
    )
    expected = _naive_hits(
        scores, test_users, test_items, seen_pairs if use_seen else set(), ks, ties
    )
    assert result == pytest.approx(expected)


def test_hit_rates_validation():
    common = {"num_items": 5, "seen": None}
    with pytest.raises(ValueError, match="shape"):
        hit_rates(lambda u: SCORES[u][:, :4], [0], [0], **common)
    with pytest.raises(ValueError, match="NaN"):
        hit_rates(lambda u: np.full((len(u), 5), np.nan), [0], [0], **common)
    with pytest.raises(ValueError, match="ks"):
        hit_rates(score_rows, [0], [0], ks=(0,), **common)
    with pytest.raises(ValueError, match="ties"):
        hit_rates(score_rows, [0], [0], ties="pessimistic", **common)
    with pytest.raises(ValueError, match="test_items"):
        hit_rates(score_rows, [0], [5], **common)
    with pytest.raises(ValueError, match="same shape"):
        hit_rates(score_rows, [0, 1], [0], **common)
    with pytest.raises(ValueError, match="empty"):
        hit_rates(score_rows, [], [], **common)
    seen = SeenItems([0], [0], num_users=1, num_items=4)
    with pytest.raises(ValueError, match="seen.num_items"):
        hit_rates(score_rows, [0], [0], num_items=5, seen=seen)


# --- format_table -----------------------------------------------------------------


def test_format_table():
    rows = [
        {"model": "popularity", "hit_rate_at_10": 0.08912, "n": 20000},
        {"model": "bias", "rmse": 0.950634, "n": 1234567},
    ]
    table = format_table(rows, ["model", "hit_rate_at_10", "rmse", "n"])
    assert table == (
        "model       hit_rate_at_10    rmse          n\n"
        "----------  --------------  ------  ---------\n"
        "popularity          0.0891       -     20,000\n"
        "bias                     -  0.9506  1,234,567"
    )


def test_format_table_numpy_scalars_and_text():
    table = format_table(
        [{"a": np.float32(0.5), "b": np.int64(1500), "c": True}], ["a", "b", "c"]
    )
    assert table.splitlines()[-1] == "0.5000  1,500  True"


# --- group_auc and calibration -----------------------------------------------------


def test_group_auc_matches_a_loop_over_users():
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 40, 2000).astype(str)
    labels = rng.random(2000) < 0.3
    scores = np.round(rng.random(2000) + 0.5 * labels, 1)  # rounded: ties too
    total = weight = used = 0
    for group in np.unique(groups):
        rows = groups == group
        if labels[rows].all() or not labels[rows].any():
            continue
        total += roc_auc(labels[rows], scores[rows]) * rows.sum()
        weight += rows.sum()
        used += 1
    assert group_auc(groups, labels, scores) == (pytest.approx(total / weight), used)


def test_group_auc_gives_no_credit_for_knowing_who_clicks():
    # Each user's score is their click rate: a global AUC rewards it, GAUC not.
    rng = np.random.default_rng(0)
    rate = rng.uniform(0.05, 0.6, 200)
    groups = np.repeat(np.arange(200), 50)
    labels = rng.random(groups.size) < rate[groups]
    scores = rate[groups]
    assert roc_auc(labels, scores) > 0.65
    assert group_auc(groups, labels, scores)[0] == pytest.approx(0.5)


def test_group_auc_skips_single_class_groups_and_checks_inputs():
    assert group_auc(["a", "a", "b"], [0, 1, 1], [0.1, 0.2, 0.3]) == (1.0, 1)
    gauc, groups = group_auc(["a", "b"], [0, 1], [0.1, 0.2])
    assert np.isnan(gauc) and groups == 0
    with pytest.raises(ValueError, match="same shape"):
        group_auc(["a"], [0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="binary"):
        group_auc(["a", "a"], [0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        group_auc(["a", "a"], [0, 1], [0.1, np.nan])


def test_calibration_is_mean_predicted_over_observed():
    assert calibration([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 1.0
    assert calibration([0, 0, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 2.0
    with pytest.raises(ValueError, match="no positive"):
        calibration([0, 0], [0.1, 0.2])
