"""Tests for mtl_tf.data.cleaning: label checks, duplicates, unknown references."""

import numpy as np
import pandas as pd
import pytest

from mtl_tf.data.dataset import CleaningReport
from mtl_tf.data.movielens_cleaning import clean_interactions, drop_unknown_references


def _rows(ratings, users=None, items=None, times=None, lines=True):
    n = len(ratings)
    frame = pd.DataFrame({
        "user_id": users or [str(i) for i in range(n)],
        "movie_id": items or ["10"] * n,
        "user_rating": np.asarray(ratings, np.float64),
        "timestamp": times or list(range(100, 100 + n)),
    })
    if lines:
        frame["_line"] = np.arange(1, n + 1) * 2  # Not positions: real line numbers.
        frame["_file"] = "data/u.data"
    return frame


def test_nan_rating_raises_with_file_line_field_and_fix():
    with pytest.raises(ValueError) as info:
        clean_interactions(_rows([4.0, np.nan, 3.0]), CleaningReport())
    message = str(info.value)
    assert "data/u.data, line 4" in message
    assert "'user_rating'" in message and "NaN" in message
    assert "lenient=True / --set data.lenient=true" in message


def test_out_of_range_raises_with_received_value():
    with pytest.raises(ValueError) as info:
        clean_interactions(_rows([4.0, 3.0, 0.5]), CleaningReport())
    message = str(info.value)
    assert "data/u.data, line 6" in message
    assert "out of range" in message and "received 0.5" in message
    assert "[1.0, 5.0]" in message


def test_first_bad_row_is_reported_whatever_the_problem():
    with pytest.raises(ValueError, match=r"line 2: field 'user_rating' is out of"):
        clean_interactions(_rows([9.0, np.nan]), CleaningReport())


def test_without_helper_columns_message_names_source_and_row():
    with pytest.raises(ValueError, match=r"^my-source, row 2: field 'user_rating'"):
        clean_interactions(_rows([4.0, 7.0], lines=False), CleaningReport(),
                           source="my-source")


def test_custom_rating_range_and_invalid_range():
    out = clean_interactions(_rows([0.0, 10.0]), CleaningReport(),
                             rating_range=(0.0, 10.0))
    assert out["user_rating"].tolist() == [0.0, 10.0]
    with pytest.raises(ValueError, match=r"rating_range=\(5\.0, 1\.0\)"):
        clean_interactions(_rows([3.0]), CleaningReport(), rating_range=(5.0, 1.0))


def test_lenient_drops_and_counts_bad_labels():
    report = CleaningReport()
    out = clean_interactions(_rows([4.0, np.nan, 6.0, np.nan, 2.0, 0.0]), report,
                             lenient=True)
    assert out["user_rating"].tolist() == [4.0, 2.0]
    assert (report.nan_labels, report.out_of_range_labels) == (2, 2)
    assert report.rows_kept == 2


def test_duplicates_keep_latest_event_in_input_order():
    rows = _rows([1.0, 2.0, 3.0, 4.0, 5.0],
                 users=["a", "a", "b", "a", "b"], items=["x", "x", "y", "y", "y"],
                 times=[50, 10, 7, 1, 7])
    report = CleaningReport()
    out = clean_interactions(rows, report)
    # (a, x): time 50 beats 10; (b, y): a tie at 7 goes to the later row.
    assert out[["user_id", "movie_id", "user_rating"]].values.tolist() == [
        ["a", "x", 1.0], ["a", "y", 4.0], ["b", "y", 5.0]]
    assert report.duplicate_rows == 2
    assert report.rows_kept == 3


def test_duplicates_are_counted_in_lenient_mode_too():
    rows = _rows([1.0, 2.0], users=["a", "a"], items=["x", "x"], times=[1, 2])
    report = CleaningReport()
    out = clean_interactions(rows, report, lenient=True)
    assert out["user_rating"].tolist() == [2.0]
    assert report.duplicate_rows == 1


def test_output_drops_helpers_resets_index_and_sets_dtypes():
    rows = _rows([4.0, 3.0]).set_index(pd.Index([7, 9]))
    rows["user_id"] = [1, 2]  # Not strings yet.
    rows["extra"] = [0.5, 0.25]
    out = clean_interactions(rows, CleaningReport())
    assert list(out.columns) == [
        "user_id", "movie_id", "user_rating", "timestamp", "extra"]
    assert out.index.tolist() == [0, 1]
    assert out["user_id"].tolist() == ["1", "2"]
    assert out["user_rating"].dtype == np.float32
    assert out["timestamp"].dtype == np.int64
    assert pd.api.types.is_string_dtype(out["movie_id"])


def test_missing_column_raises():
    with pytest.raises(ValueError, match=r"missing columns \['timestamp'\]"):
        clean_interactions(_rows([4.0]).drop(columns="timestamp"), CleaningReport())


def _tables():
    items = pd.DataFrame({"movie_id": ["10", "11"]})
    users = pd.DataFrame({"user_id": ["0", "1", "2"]})
    return items, users


def test_unknown_item_strict_names_file_line_field_and_value():
    items, users = _tables()
    rows = _rows([4.0, 3.0], items=["10", "99"])
    with pytest.raises(ValueError) as info:
        drop_unknown_references(rows, items, users, CleaningReport())
    message = str(info.value)
    assert "data/u.data, line 4: field 'movie_id'" in message
    assert "'99'" in message and "lenient=True" in message


def test_unknown_user_strict_names_user_id():
    items, users = _tables()
    rows = _rows([4.0], users=["7"])
    with pytest.raises(ValueError, match=r"line 2: field 'user_id'.*received '7'"):
        drop_unknown_references(rows, items, users, CleaningReport())


def test_unknown_references_lenient_counts_each_row_once():
    items, users = _tables()
    rows = _rows([1.0, 2.0, 3.0, 4.0], users=["0", "8", "9", "1"],
                 items=["10", "10", "99", "11"])
    report = CleaningReport()
    out = drop_unknown_references(rows, items, users, report, lenient=True)
    assert out["user_rating"].tolist() == [1.0, 4.0]
    # Row 3 has both an unknown user and an unknown item: counted as an item.
    assert (report.unknown_item_rows, report.unknown_user_rows) == (1, 1)
    assert report.rows_kept == 2
    assert out["_line"].tolist() == [2, 8]  # Helpers survive for later messages.
