"""The feature schema: validation, JSON round trip, conditions, fitted state,
the encoders of each kind, and the bad-input errors of schema-driven data."""

import json  # noqa: I001  (mtl_tf must be imported before tensorflow)

import numpy as np
import pandas as pd
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf

from mtl_tf.config import Config, TaskConfig, apply_overrides, from_dict
from mtl_tf.data.dataset import RecDataset
from mtl_tf.data.pipeline import check_labels
from mtl_tf.model.encoders import (
    BagOfWordsEncoder,
    CategoricalEncoder,
    MultiCategoricalEncoder,
    NumericEncoder,
)
from mtl_tf.schema import Feature, Schema, parse_condition
from mtl_tf.schema.fitted import (
    FeatureSummary,
    PreprocessingSummary,
    as_strings,
    fit_feature,
    fit_preprocessing,
    vocabulary,
)

SHOP = Schema((
    Feature("user", "user", "id"),
    Feature("item", "item", "id"),
    Feature("price", "item", "numeric", transform="log1p"),
    Feature("tags", "item", "multi_categorical"),
    Feature("device", "context", "categorical"),
), timestamp="ts")
SHOP_TASKS = (TaskConfig("click", "binary", label="click"),
              TaskConfig("purchase", "binary", label="purchase",
                         where="click == 1"))


def _log(**columns) -> pd.DataFrame:
    base = {"user": ["a", "b", "a", "c"], "item": ["x", "y", "y", "x"],
            "price": ["10", "2.5", "2.5", "10"], "tags": ["t1|t2", "t2", "t2", ""],
            "device": ["ios", "web", "ios", "tv"], "click": [1, 0, 1, 1],
            "purchase": [1, 0, 0, 0], "ts": [1, 2, 3, 4]}
    base.update(columns)
    return pd.DataFrame(base)


# --- Schema validation ----------------------------------------------------------

def test_schema_json_round_trip_keeps_every_field():
    again = Schema.from_dict(json.loads(SHOP.to_json()))
    assert again == SHOP
    assert again["price"].transform == "log1p" and again["price"].dtype == "float32"
    assert [f.name for f in again.query_features] == ["user", "device"]
    assert again.item_id.name == "item" and again.user_id.name == "user"


@pytest.mark.parametrize("feature, message", [
    ({"name": "x", "side": "user", "kind": "sentence"},
     "kind must be one of ['id', 'categorical', 'multi_categorical', 'numeric', "
     "'text', 'sequence']. Received: kind='sentence'"),
    ({"name": "x", "side": "store", "kind": "numeric"},
     "side must be one of ['user', 'item', 'context']. Received: side='store'"),
    ({"name": "x", "side": "context", "kind": "id"}, "side must be 'user' or 'item'"),
    ({"name": "x", "side": "user", "kind": "numeric", "dtype": "string"},
     "a numeric feature takes dtype ['float32']"),
    ({"name": "x", "side": "user", "kind": "numeric", "transform": "sqrt"},
     "transform must be one of"),
    ({"name": "x", "side": "user", "kind": "numeric", "colour": 1},
     "unknown keys ['colour']"),
    ({"name": "x", "kind": "numeric"}, "missing keys ['side']"),
])
def test_bad_feature_declarations_name_the_field(feature, message):
    with pytest.raises(ValueError) as info:
        Schema.from_dict({"features": [feature]})
    assert message in str(info.value)
    assert "'x'" in str(info.value) or "x" in str(info.value)


def test_a_feature_declared_twice_is_an_error():
    with pytest.raises(ValueError, match=r"features \['price'\] are declared more "
                                         "than once"):
        Schema((Feature("item", "item", "id"), Feature("price", "item", "numeric"),
                Feature("price", "item", "numeric")))


def test_item_features_need_an_item_key_and_one_key_per_side():
    with pytest.raises(ValueError, match="need an item key"):
        Schema((Feature("price", "item", "numeric"),))
    with pytest.raises(ValueError, match="the user side has 2 id features"):
        Schema((Feature("a", "user", "id"), Feature("b", "user", "id")))


def test_schema_overrides_change_one_feature():
    config = Config(schema=SHOP, tasks=SHOP_TASKS)
    changed = apply_overrides(config, ["schema.price.transform=buckets",
                                       "schema.price.num_buckets=4",
                                       "schema.timestamp=when"])
    assert changed.schema["price"].transform == "buckets"
    assert changed.schema["price"].num_buckets == 4
    assert changed.schema.timestamp == "when"
    with pytest.raises(ValueError, match="the schema has no feature 'colour'"):
        apply_overrides(config, ["schema.colour.kind=numeric"])


def test_a_task_whose_label_is_a_model_input_is_leakage():
    with pytest.raises(ValueError) as info:
        Config(schema=SHOP, tasks=(TaskConfig("device", "multilabel",
                                              label="device"),))
    assert ("tasks.device.label='device' is also a model input (schema feature, "
            "side 'context')") in str(info.value)
    with pytest.raises(ValueError, match="is also a model input"):
        from_dict({"schema": SHOP.to_dict(),
                   "tasks": [{"name": "p", "type": "regression", "label": "price"}]})


def test_retrieval_needs_both_keys():
    itemless = Schema((Feature("age", "user", "numeric"),))
    with pytest.raises(ValueError, match="a retrieval task needs a user key and an "
                                         "item key"):
        Config(schema=itemless, tasks=(TaskConfig("r", "retrieval"),))
    Config(schema=itemless, tasks=(TaskConfig("rich", "binary", label="rich"),))


def test_depends_on_chains_train_on_every_row():
    with pytest.raises(ValueError, match="tasks of a depends_on chain train on "
                                         "every row"):
        Config(schema=SHOP, tasks=(
            TaskConfig("click", "binary", label="click"),
            TaskConfig("purchase", "binary", label="purchase", where="click == 1",
                       depends_on="click")))


# --- Conditions -------------------------------------------------------------------

def test_conditions_parse_and_evaluate():
    condition = parse_condition("click == 1 and price >= 2.5")
    assert condition.columns == ["click", "price"]
    rows = condition.evaluate({"click": np.array([1, 1, 0, 1.0]),
                               "price": np.array([3, 2, 9, np.nan])}, 4)
    assert rows.tolist() == [True, False, False, False]
    assert parse_condition("").evaluate({}, 3).tolist() == [True] * 3
    with pytest.raises(ValueError, match=r"tasks.x.where='click is 1': cannot parse"):
        parse_condition("click is 1", "tasks.x.where")
    with pytest.raises(ValueError, match="cannot parse"):
        TaskConfig("x", "binary", label="y", where="click == yes")


# --- Fitted state -----------------------------------------------------------------

def test_vocabulary_min_count_and_cap():
    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 1 + ["d"] * 3 + [""]
    assert vocabulary(values) == ["a", "b", "c", "d"]
    assert vocabulary(values, min_count=2) == ["a", "b", "d"]
    # Capped: the most frequent, ties by value; then sorted.
    assert vocabulary(values, max_size=2) == ["a", "b"]


def test_as_strings_matches_the_graph():
    for values, dtype in ((np.array([25.0, 1.5], np.float32), tf.float32),
                          (np.array([3, -7]), tf.int64),
                          (np.array([True, False]), tf.bool)):
        name = {tf.float32: "float32", tf.int64: "int64", tf.bool: "bool"}[dtype]
        from mtl_tf.model.encoders import as_string
        graph = as_string(tf.constant(values, dtype)).numpy().astype(str)
        assert as_strings(values, name).tolist() == graph.tolist()


def test_numeric_statistics_come_from_the_transform():
    feature = Feature("price", "item", "numeric", transform="log1p")
    state = fit_feature(feature, np.array([0.0, np.e - 1, np.nan, -5.0]))
    # log1p(max(x, 0)) of the finite values: 0, 1, 0.
    assert state.mean == pytest.approx(1 / 3)
    assert state.std == pytest.approx(np.std([0, 1, 0]))
    buckets = fit_feature(Feature("p", "item", "numeric", transform="buckets",
                                  num_buckets=4), np.arange(101.0))
    assert buckets.boundaries == [25.0, 50.0, 75.0]


def _chunks(values, sizes):
    edges = np.cumsum([0] + list(sizes))
    return [values[a:b] for a, b in zip(edges[:-1], edges[1:])]


@pytest.mark.parametrize("seed", [0, 1])
def test_summaries_of_chunks_fit_what_all_values_fit(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    schema = Schema((
        Feature("user", "user", "id"),
        Feature("item", "item", "id"),
        Feature("segment", "user", "categorical", min_count=3, max_vocabulary=20),
        Feature("tags", "item", "multi_categorical", min_count=2),
        Feature("age", "user", "numeric"),
        Feature("price", "item", "numeric", transform="log1p"),
        Feature("views", "item", "numeric", transform="buckets", num_buckets=5),
        Feature("device", "context", "categorical", hash_buckets=8)))
    values = {
        "user": rng.integers(0, 500, n).astype(str).astype(object),
        "item": rng.integers(0, 80, n).astype(str).astype(object),
        "segment": rng.zipf(1.6, n).astype(str).astype(object),
        "tags": np.array([tuple(rng.choice(list("abcdefg"), rng.integers(0, 3)))
                          for _ in range(n)] + [()], dtype=object)[:n],
        "age": np.where(rng.random(n) < 0.1, np.nan, rng.normal(40, 12, n)),
        "price": rng.exponential(20.0, n),
        "views": rng.integers(0, 1000, n).astype(np.float64),
        "device": rng.choice(["ios", "web"], n).astype(object)}
    labels = {"topics": np.array([tuple(rng.choice(list("xyz"), 2)) for _ in range(n)],
                                 dtype=object)}
    whole = fit_preprocessing(schema, values, labels)
    summary = PreprocessingSummary(schema)
    sizes = [1, 999, 1234, n - 2234]
    for part in range(len(sizes)):
        summary.add({k: _chunks(v, sizes)[part] for k, v in values.items()},
                    {k: _chunks(v, sizes)[part] for k, v in labels.items()})
    chunked = summary.fit()
    for name in ("user", "item", "segment", "tags", "device"):
        assert chunked[name].vocabulary == whole[name].vocabulary, name
    assert 5 < len(whole["segment"].vocabulary) <= 20
    assert whole["device"].vocabulary == []
    for name in ("age", "price"):
        assert chunked[name].mean == pytest.approx(whole[name].mean, rel=1e-12)
        assert chunked[name].std == pytest.approx(whole[name].std, rel=1e-9)
    finite = values["age"][np.isfinite(values["age"])]
    assert whole["age"].std == pytest.approx(finite.std(), rel=1e-12)
    assert chunked["views"].boundaries == whole["views"].boundaries
    assert chunked.label_vocabularies == {"topics": ["x", "y", "z"]}


def test_a_bounded_sample_keeps_bucket_boundaries_near_the_true_quantiles():
    values = np.random.default_rng(3).exponential(10.0, 200_000)
    feature = Feature("views", "item", "numeric", transform="buckets",
                      num_buckets=4)
    summary = FeatureSummary(feature, max_sample=20_000, seed=5)
    for chunk in np.array_split(values, 37):
        summary.add(chunk)
    assert len(summary._sample) == 20_000  # Memory stays bounded.
    state = summary.state()
    assert state.mean == pytest.approx(values.mean(), rel=1e-12)
    true = np.quantile(values, [0.25, 0.5, 0.75])
    np.testing.assert_allclose(state.boundaries, true, rtol=0.05)
    with pytest.raises(ValueError, match="max_sample must be >= 0"):
        FeatureSummary(feature, max_sample=-1)


# --- Encoders ---------------------------------------------------------------------

def test_categorical_encoder_oov_and_hashing():
    encoder = CategoricalEncoder(["ios", "web"], 3)
    rows = encoder.prepare(tf.constant(["web", "tv", "ios", ""])).numpy()
    assert rows.tolist() == [2, 0, 1, 0]  # OOV first
    assert encoder(tf.constant(["web"])).shape == (1, 3)
    hashed = CategoricalEncoder([], 3, hash_buckets=16)
    rows = hashed.prepare(tf.constant(["a", "b", "a"])).numpy()
    assert rows[0] == rows[2] and ((rows >= 0) & (rows < 16)).all()
    ints = CategoricalEncoder(["3", "7"], 2)
    assert ints.prepare(tf.constant([7, 8], tf.int64)).numpy().tolist() == [2, 0]


def test_multi_categorical_encoder_mean_pools_known_values():
    encoder = MultiCategoricalEncoder(["a", "b"], 2)
    values = tf.constant([["a", "b"], ["b", ""], ["", ""], ["zz", ""]])
    rows = encoder.prepare(values)
    assert rows.numpy().tolist() == [[2, 3], [3, 0], [0, 0], [1, 0]]
    encoder.embed(rows)
    table = np.array([[9, 9], [5, 5], [1, 0], [0, 3]], np.float32)
    encoder.embedding.set_weights([table])
    np.testing.assert_allclose(encoder.embed(rows).numpy(),
                               [[0.5, 1.5], [0, 3], [0, 0], [5, 5]])


def test_numeric_encoder_imputes_and_flags_missing_values():
    standard = NumericEncoder("standardize", mean=2.0, std=4.0)
    out = standard(tf.constant([6.0, np.nan, 2.0])).numpy()
    np.testing.assert_allclose(out, [[1, 0], [0, 1], [0, 0]])
    log = NumericEncoder("log1p", mean=0.0, std=1.0)
    np.testing.assert_allclose(log(tf.constant([np.e - 1, -3.0])).numpy(),
                               [[1, 0], [0, 0]], atol=1e-6)
    buckets = NumericEncoder("buckets", boundaries=[1.0, 5.0], output_dim=2)
    rows = buckets.prepare(tf.constant([0.0, 3.0, 9.0, np.nan])).numpy()
    assert rows.tolist() == [1, 2, 3, 0]
    assert buckets(tf.constant([3.0])).shape == (1, 2)


def test_bag_of_words_vocabulary_comes_from_the_given_texts():
    encoder = BagOfWordsEncoder(["space robot", "war army"], 4, sequence_length=4)
    tokens = encoder.prepare(tf.constant(["space love", "robot war"])).numpy()
    assert tokens[0][1] == 1  # "love" is not in the training texts: OOV
    assert (tokens[1][:2] >= 2).all() and tokens[0][2:].tolist() == [0, 0]
    assert encoder(tf.constant(["space"])).shape == (1, 4)


# --- Bad input in schema-driven data ----------------------------------------------

LABELS = {"click": "number", "purchase": "number"}


def test_from_frames_splits_side_features_into_tables():
    data = RecDataset.from_frames(SHOP, _log(), labels=LABELS)
    assert sorted(data.items.columns) == ["item", "price", "tags"]
    assert data.items.set_index("item").loc["x", "tags"] == ()  # last row wins
    assert data.items.set_index("item").loc["y", "price"] == 2.5
    assert "device" in data.interactions and "price" not in data.interactions
    assert data.num_users == 3 and data.num_items == 2


def test_a_schema_column_missing_from_a_table_lists_the_columns_present():
    with pytest.raises(ValueError) as info:
        RecDataset.from_frames(SHOP, _log().drop(columns=["device"]), labels=LABELS,
                               sources={"interactions": "shop.csv"})
    message = str(info.value)
    assert "shop.csv: columns ['device']" in message
    assert "columns present: ['user', 'item', 'price', 'tags', 'click'" in message


def test_a_value_that_does_not_parse_names_the_row_and_column():
    with pytest.raises(ValueError) as info:
        RecDataset.from_frames(SHOP, _log(price=["10", "cheap", "2", "1"]),
                               labels=LABELS, sources={"interactions": "shop.csv"})
    assert "shop.csv, row 2: column 'price': cannot parse 'cheap'" in str(info.value)
    data = RecDataset.from_frames(SHOP, _log(price=["10", "cheap", "2", "1"]),
                                  labels=LABELS, lenient=True)
    assert data.report.malformed_rows == 1 and len(data.interactions) == 3


def test_a_binary_label_outside_0_1_and_an_empty_where_are_errors():
    data = RecDataset.from_frames(SHOP, _log(click=[1, 0, 2, 1]), labels=LABELS)
    with pytest.raises(ValueError) as info:
        check_labels(data.joined(), SHOP_TASKS, "shop")
    assert ("shop, row 3: column 'click' (tasks.click) is not 0 or 1: received "
            "2.0") in str(info.value)
    nothing_clicked = RecDataset.from_frames(SHOP, _log(click=[0, 0, 0, 0]),
                                             labels=LABELS)
    with pytest.raises(ValueError, match=r"tasks.purchase.where='click == 1' "
                                         "matches no row of shop"):
        check_labels(nothing_clicked.joined(), SHOP_TASKS, "shop",
                     require_rows=True)


def test_a_nan_label_counts_only_where_the_task_trains():
    # purchase is NaN on an unclicked row: outside its `where`, so fine.
    data = RecDataset.from_frames(SHOP, _log(purchase=[1, np.nan, 0, 0]),
                                  labels=LABELS)
    assert check_labels(data.joined(), SHOP_TASKS, "shop").all()
    data = RecDataset.from_frames(SHOP, _log(purchase=[np.nan, 0, 0, 0]),
                                  labels=LABELS)
    with pytest.raises(ValueError, match=r"column 'purchase' \(tasks.purchase\) is "
                                         r"missing \(NaN\)"):
        check_labels(data.joined(), SHOP_TASKS, "shop")
    keep = check_labels(data.joined(), SHOP_TASKS, "shop", lenient=True)
    assert keep.tolist() == [False, True, True, True]


def test_timestamps_read_numbers_and_dates_as_unix_seconds():
    dates = _log(ts=["2024-01-01", "2024-01-02T00:00:00", "2024-01-03", "2024-01-04"])
    data = RecDataset.from_frames(SHOP, dates, labels=LABELS)
    assert data.interactions["ts"].tolist() == [1704067200 + 86400 * i
                                                for i in range(4)]
    with pytest.raises(ValueError, match="row 2: column 'ts': cannot parse 'soon'; "
                                         "expected a number or a date"):
        RecDataset.from_frames(SHOP, _log(ts=[1, "soon", 3, 4]), labels=LABELS)


def test_a_list_label_may_live_in_the_item_table():
    items = pd.DataFrame({"item": ["x", "y"], "price": [1.0, 2.0],
                          "tags": ["a", "b"], "colours": ["red|blue", "red"]})
    data = RecDataset.from_frames(SHOP, _log().drop(columns=["price", "tags"]),
                                  items, labels={**LABELS, "colours": "list"})
    assert data.items.set_index("item").loc["x", "colours"] == ("red", "blue")
    assert data.joined()["colours"].tolist()[:2] == [("red", "blue"), ("red",)]
