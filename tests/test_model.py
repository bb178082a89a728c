"""Item catalog, towers, ranking network and the multi-task loss."""

import dataclasses  # noqa: I001  (mtl_tf must be imported before tensorflow)

import numpy as np
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf

from mtl_tf.data import movielens_schema as F
from mtl_tf.config import (Config, ModelConfig, SyntheticConfig, TaskConfig,
                           TrainConfig, apply_overrides)
from mtl_tf.data.pipeline import example_arrays, finish_arrays
from mtl_tf.data.splits import random_split
from mtl_tf.data import load_data
from mtl_tf.model.builder import build_model
from mtl_tf.model.catalog import ItemCatalog
from mtl_tf.model.encoders import (
    CategoricalEncoder,
    MultiCategoricalEncoder,
    NumericEncoder,
)
from mtl_tf.model.multitask import MultiTaskRecommender
from mtl_tf.model.negatives import history_score_mask
from mtl_tf.model.ranking import build_ranking_network
from mtl_tf.model.towers import CandidateTower, QueryTower
from mtl_tf.schema.fitted import as_strings

TEMPERATURE = 0.2
SMALL = Config(
    # num_items >= 100: evaluation-time FactorizedTopK uses k=100 (see report).
    synthetic=SyntheticConfig(num_users=60, num_items=120, interactions_per_user=12),
    model=ModelConfig(embedding_dim=8, bottom_units=(8,), head_units=(4,),
                      text_max_tokens=200, temperature=TEMPERATURE,
                      extra_negatives=0),
    train=TrainConfig(batch_size=64, epochs=1),
)


# --- ItemCatalog ------------------------------------------------------------------

def _price_encoder():
    return NumericEncoder("standardize", mean=2.0, std=2.0, name="price")


@pytest.fixture(scope="module")
def catalog() -> ItemCatalog:
    """Three items with a price (the third unknown) and tags."""
    price = _price_encoder().prepare(tf.constant([np.nan, 2.0, 6.0, np.nan])).numpy()
    tags = MultiCategoricalEncoder(["a", "b"], 2, name="tags")
    rows = tags.prepare(tf.constant([["", ""], ["a", "b"], ["b", ""], ["z", ""]]))
    return ItemCatalog(["10", "20", "30"], {"price": price, "tags": rows.numpy()})


def test_catalog_rows(catalog):
    rows = catalog.rows(tf.constant(["20", "10", "30", "nope", ""])).numpy()
    assert rows.tolist() == [2, 1, 3, 0, 0]
    assert catalog.size == 3


def test_catalog_gathers_prepared_features_and_the_unknown_row(catalog):
    side = catalog(tf.constant(["nope", "20", "30"]))
    assert side["rows"].numpy().tolist() == [0, 2, 3]
    # (z-score, missing): the unknown row and item 30 are missing, imputed z = 0.
    np.testing.assert_allclose(side["price"].numpy(), [[0, 1], [2, 0], [0, 1]])
    # Tags: padding 0, OOV 1, "a" 2, "b" 3.
    assert side["tags"].numpy().tolist() == [[0, 0], [3, 0], [1, 0]]


def test_catalog_misaligned_inputs_raise():
    with pytest.raises(ValueError, match="one row per item plus the unknown row"):
        ItemCatalog(["1", "2"], {"price": np.zeros((2, 2))})


# --- Towers -----------------------------------------------------------------------

def test_candidate_tower_unique_path_matches_per_item_encoding(catalog):
    encoders = {"price": _price_encoder(),
                "tags": MultiCategoricalEncoder(["a", "b"], 2, name="tags")}
    tower = CandidateTower(["10", "30"], catalog, encoders, dim=6)
    ids = ["30", "10", "30", "30", "unknown", "10", "20"]
    batch = tower(tf.constant(ids)).numpy()
    single = np.concatenate([tower(tf.constant([i])).numpy() for i in ids])
    assert batch.shape == (len(ids), 6)
    np.testing.assert_allclose(batch, single, atol=1e-6)
    # Distinct items get distinct vectors.
    assert not np.allclose(batch[0], batch[1])


def _identity_id_tower(catalog, unknown_item_embedding):
    """An id-only tower over ids "10", "30" whose output is its id vector:
    OOV row [9, 9], "10" -> [1, 0], "30" -> [0, 3]; identity projection."""
    tower = CandidateTower(["10", "30"], catalog, {}, dim=2,
                           unknown_item_embedding=unknown_item_embedding)
    tower(tf.constant(["10"]))
    tower.id_embedding.set_weights([np.array([[9, 9], [1, 0], [0, 3]], np.float32)])
    tower.projection.set_weights([np.eye(2, dtype=np.float32), np.zeros(2)])
    return tower


def test_unknown_items_get_the_mean_of_the_known_id_rows(catalog):
    ids = tf.constant(["unknown", "20", "10", "30"])  # "20": cold (in the catalog).
    mean = _identity_id_tower(catalog, "mean")
    np.testing.assert_allclose(mean(ids).numpy(),
                               [[0.5, 1.5], [0.5, 1.5], [1, 0], [0, 3]])
    oov = _identity_id_tower(catalog, "oov")
    np.testing.assert_allclose(oov(ids).numpy(), [[9, 9], [9, 9], [1, 0], [0, 3]])


def test_unknown_item_embedding_default_is_mean(catalog):
    assert CandidateTower(["10"], catalog, {}, dim=4).unknown_item_embedding == "mean"
    assert ModelConfig().unknown_item_embedding == "mean"


@pytest.mark.parametrize("unknown_item_embedding", ["mean", "oov"])
def test_item_id_dropout_embeds_items_as_unknown_only_in_training(
        unknown_item_embedding):
    n = 400
    ids = [str(i) for i in range(n)]
    # No item features: a dropped item's vector is exactly an unknown item's.
    same_content = ItemCatalog(ids, {})
    tower = CandidateTower(ids, same_content, {}, dim=4, id_dropout=0.5,
                           unknown_item_embedding=unknown_item_embedding)
    batch = tf.constant(ids + ids[:50])  # Repeats: an item is dropped as a whole.
    oov = tower(tf.constant(["not-an-item"])).numpy()[0]
    evaluation = tower(batch).numpy()
    np.testing.assert_allclose(tower(batch, training=False).numpy(), evaluation)
    assert not np.isclose(evaluation, oov).all(axis=1).any()
    tf.random.set_seed(0)
    training = tower(batch, training=True).numpy()
    dropped = np.isclose(training, oov).all(axis=1)
    assert 0.4 < dropped[:n].mean() < 0.6
    # Kept items keep their own vector; a repeated item is dropped as a whole.
    np.testing.assert_allclose(training[~dropped], evaluation[~dropped])
    np.testing.assert_array_equal(dropped[n:], dropped[:50])


def test_candidate_tower_invalid_arguments_raise(catalog):
    with pytest.raises(ValueError, match="unknown_item_embedding='zero'"):
        CandidateTower(["10"], catalog, {}, dim=4, unknown_item_embedding="zero")
    with pytest.raises(ValueError, match="id_dropout=1.0"):
        CandidateTower(["10"], catalog, {}, dim=4, id_dropout=1.0)
    with pytest.raises(ValueError, match="no prepared values of features"):
        CandidateTower(["10"], catalog, {"colour": _price_encoder()}, dim=4)
    with pytest.raises(ValueError, match="model.unknown_item_embedding"):
        apply_overrides(SMALL, ["model.unknown_item_embedding=zero"])
    with pytest.raises(ValueError, match="model.item_id_dropout"):
        apply_overrides(SMALL, ["model.item_id_dropout=1.5"])


def _user_features(ids, ages, genders, occupations):
    return {F.USER_ID: tf.constant(ids),
            F.USER_AGE: tf.constant(ages, tf.float32),
            F.USER_GENDER: tf.constant(genders),
            F.USER_OCCUPATION: tf.constant(occupations, tf.int64)}


def test_query_tower_unknown_ids_and_out_of_range_features():
    encoders = {
        F.USER_AGE: CategoricalEncoder(as_strings(np.array([18.0, 25.0]), "float32"),
                                       4, name="age"),
        F.USER_GENDER: CategoricalEncoder(["false", "true"], 4, name="gender"),
        F.USER_OCCUPATION: CategoricalEncoder([str(i) for i in range(22)], 4,
                                              name="occupation")}
    tower = QueryTower(encoders, dim=8, user_id=F.USER_ID, user_ids=["u1", "u2"])
    out = tower(_user_features(
        ["u1", "stranger", "other-stranger", "u1", "u1", "u1"],
        [25.0, 25.0, 25.0, 99.0, -3.0, 25.0],
        [True, True, True, True, True, True],
        [3, 3, 3, 3, 3, 1000])).numpy()
    assert out.shape == (6, 8) and np.isfinite(out).all()
    # Unknown ids share the OOV row: same features, same output.
    np.testing.assert_allclose(out[1], out[2], atol=1e-6)
    assert not np.allclose(out[0], out[1])
    # Out-of-range ages share the age OOV row.
    np.testing.assert_allclose(out[3], out[4], atol=1e-6)
    assert not np.allclose(out[0], out[3])
    # An out-of-range occupation does not fail and changes the output.
    assert not np.allclose(out[0], out[5])


def test_query_tower_needs_some_input():
    with pytest.raises(ValueError, match="needs a user id or at least one"):
        QueryTower({}, dim=4)


# --- Ranking network --------------------------------------------------------------

def test_ranking_network_outputs_are_the_ranking_tasks():
    tasks = [TaskConfig("retrieval", "retrieval"),
             TaskConfig("rating", "regression", label=F.RATING),
             TaskConfig("like", "binary", label=F.LIKE),
             TaskConfig("watch_long", "binary", label="watch_long")]
    net = build_ranking_network(4, tasks, architecture_args={"units": (8,)},
                                head_units=(4,),
                                initial_biases={"rating": 3.5})
    assert sorted(net.output_names) == ["like", "rating", "watch_long"]
    outputs = net({"user": tf.zeros([5, 4]), "item": tf.zeros([5, 4])})
    assert sorted(outputs) == ["like", "rating", "watch_long"]
    assert all(v.shape == (5,) for v in outputs.values())
    # Zero inputs: the regression output is its initial bias, binary a probability.
    np.testing.assert_allclose(outputs["rating"].numpy(), 3.5, atol=1e-6)
    assert ((outputs["like"] > 0) & (outputs["like"] < 1)).numpy().all()


def test_invalid_task_type_raises():
    with pytest.raises(ValueError) as info:
        TaskConfig("clicks", "ranking", label="click")
    assert "'ranking'" in str(info.value)
    with pytest.raises(ValueError, match="label"):
        TaskConfig("clicks", "binary")
    with pytest.raises(ValueError, match="tasks.like.type"):
        apply_overrides(SMALL, ["tasks.like.type=pairwise"])


# --- MultiTaskRecommender.compute_loss --------------------------------------------

@pytest.fixture(scope="module")
def small_model():
    data = load_data(SMALL)
    parts = random_split(data.interactions, 0.2, 0.1, seed=0)
    model = build_model(SMALL, data, parts.train)
    arrays = example_arrays(data, parts.train.iloc[:48], SMALL.tasks)
    # Repeat some items so in-batch accidental hits occur.
    arrays = {k: np.concatenate([v, v[:8]]) for k, v in arrays.items()}
    features = {k: tf.constant(v) for k, v in arrays.items()}
    model(features)  # Builds the variables.
    return model, features


def _with(model: MultiTaskRecommender, weights: dict, extra_negatives: int = 0):
    tasks = tuple(dataclasses.replace(t, weight=weights.get(t.name, 0.0))
                  for t in model.task_configs)
    return MultiTaskRecommender(
        model.schema, model.query_tower, model.candidate_tower,
        model.ranking_network, tasks, model.catalog, temperature=TEMPERATURE,
        extra_negatives=extra_negatives)


def _hand_losses(model, features) -> dict[str, float]:
    """Each task's loss worked out in numpy from the model's public outputs."""
    outputs = {k: v.numpy() for k, v in model(features, training=False).items()}
    rating = features[F.RATING].numpy()
    like = features[F.LIKE].numpy()
    p = np.clip(outputs["like"], 1e-7, 1 - 1e-7)
    queries = model.user_embeddings(features).numpy()
    candidates = model.item_embeddings(features[F.ITEM_ID]).numpy()
    logits = queries @ candidates.T / TEMPERATURE
    ids = features[F.ITEM_ID].numpy()
    return {"rating": float(np.mean((outputs["rating"] - rating) ** 2)),
            "like": float(np.mean(-like * np.log(p) - (1 - like) * np.log(1 - p))),
            "retrieval": _softmax_loss(logits, ids)}


def _softmax_loss(logits: np.ndarray, ids: np.ndarray) -> float:
    """In-batch softmax cross-entropy, the diagonal being the positives, with
    accidental hits (other rows of the positive's item) removed."""
    accidental = (ids[:, None] == ids[None, :]) & ~np.eye(len(ids), dtype=bool)
    logits = np.where(accidental, -np.inf, logits)
    top = logits.max(1, keepdims=True)
    log_softmax = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
    return float(-np.mean(np.diag(log_softmax)))


def test_compute_loss_is_weighted_sum_of_task_losses(small_model):
    model, features = small_model
    names = [t.name for t in model.task_configs]
    assert sorted(names) == ["like", "rating", "retrieval"]
    single = {name: float(_with(model, {name: 1.0}).compute_loss(features))
              for name in names}
    hand = _hand_losses(model, features)
    for name in names:
        assert single[name] == pytest.approx(hand[name], rel=1e-4), name
        assert single[name] > 0
    assert float(_with(model, {}).compute_loss(features)) == 0.0
    for weights in ({"retrieval": 1.0, "rating": 1.0, "like": 1.0},
                    {"retrieval": 0.0, "rating": 1.0, "like": 1.0},
                    {"retrieval": 1.0, "rating": 0.0, "like": 1.0},
                    {"retrieval": 2.0, "rating": 0.5, "like": 0.0}):
        total = float(_with(model, weights).compute_loss(features))
        expected = sum(weights[n] * single[n] for n in names)
        assert total == pytest.approx(expected, rel=1e-5), weights


def test_extra_negatives_apply_only_in_training(small_model):
    model, features = small_model
    retrieval_only = {"retrieval": 1.0}
    plain = _with(model, retrieval_only)
    extra = _with(model, retrieval_only, extra_negatives=32)
    # Not in evaluation ...
    assert float(extra.compute_loss(features, training=False)) == pytest.approx(
        float(plain.compute_loss(features, training=False)), rel=1e-6)
    # ... but in training: more candidates in the softmax raise the loss.
    plain_train = float(plain.compute_loss(features, training=True))
    assert float(plain.compute_loss(features, training=True)) == plain_train
    assert float(extra.compute_loss(features, training=True)) > plain_train + 1e-3


def test_item_id_dropout_reaches_the_candidate_tower_only_in_training(
        small_model, monkeypatch):
    model, features = small_model
    retrieval = _with(model, {"retrieval": 1.0})
    evaluation = float(retrieval.compute_loss(features, training=False))
    training = float(retrieval.compute_loss(features, training=True))
    monkeypatch.setattr(model.candidate_tower, "id_dropout", 0.9)
    assert float(retrieval.compute_loss(features, training=False)) == evaluation
    # Most items now get the unknown-item id vector: the retrieval loss changes.
    assert float(retrieval.compute_loss(features, training=True)) != pytest.approx(
        training, rel=1e-3)


def test_logq_correction_subtracts_log_sampling_probability(small_model):
    model, features = small_model
    rows = model.catalog.rows(features[F.ITEM_ID]).numpy()
    probabilities = np.linspace(0.5, 2.0, model.catalog.size + 1) / model.catalog.size
    tasks = tuple(dataclasses.replace(t, weight=float(t.name == "retrieval"))
                  for t in model.task_configs)
    corrected = MultiTaskRecommender(
        model.schema, model.query_tower, model.candidate_tower,
        model.ranking_network, tasks, model.catalog, temperature=TEMPERATURE,
        logq_correction=True,
        item_probabilities=probabilities.tolist())
    queries = model.user_embeddings(features).numpy()
    candidates = model.item_embeddings(features[F.ITEM_ID]).numpy()
    logits = queries @ candidates.T / TEMPERATURE - np.log(probabilities[rows])[None]
    loss = float(corrected.compute_loss(features))
    assert loss == pytest.approx(_softmax_loss(logits, rows), rel=1e-4)
    assert loss != pytest.approx(float(_with(model, {"retrieval": 1.0})
                                       .compute_loss(features)), rel=1e-3)


def test_history_items_are_no_negatives_of_their_row(small_model):
    """With mask_history_negatives, a candidate in a row's history leaves that
    row's softmax (by hand); the row's own positive always stays."""
    model, features = small_model
    tasks = tuple(dataclasses.replace(t, weight=float(t.name == "retrieval"))
                  for t in model.task_configs)
    masked = MultiTaskRecommender(
        model.schema, model.query_tower, model.candidate_tower,
        model.ranking_network, tasks, model.catalog, temperature=TEMPERATURE,
        mask_history_negatives=True)
    ids = features[F.ITEM_ID].numpy()
    history = features[F.HISTORY].numpy()
    in_history = np.array([[i != j and ids[j] in set(history[i]) for j in
                            range(len(ids))] for i in range(len(ids))])
    assert 0 < in_history.sum() < in_history.size  # the test can fail
    queries = model.user_embeddings(features).numpy()
    candidates = model.item_embeddings(features[F.ITEM_ID]).numpy()
    logits = queries @ candidates.T / TEMPERATURE
    expected = _softmax_loss(np.where(in_history, -np.inf, logits), ids)
    loss = float(masked.compute_loss(features))
    assert loss == pytest.approx(expected, rel=1e-4)
    assert loss < float(_with(model, {"retrieval": 1.0}).compute_loss(features))


def test_history_score_mask_matches_brute_force():
    """Repeated candidates, padding (0), empty histories and histories that
    hold the row's own positive, against a loop over every pair."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        queries, length = rng.integers(1, 12), rng.integers(0, 6)
        candidates, rows = rng.integers(queries, 30), rng.integers(2, 20)
        history = rng.integers(0, rows, (queries, length))
        candidate_rows = rng.integers(1, rows, candidates)
        expected = np.array([[i == j or candidate_rows[j] not in set(history[i]) - {0}
                              for j in range(candidates)] for i in range(queries)],
                            bool).reshape(queries, candidates)
        got = history_score_mask(tf.constant(history), tf.constant(candidate_rows))
        np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.parametrize("target_attention", [False, True])
def test_encoders_read_only_the_newest_history_window_items(target_attention):
    """`model.history_window` cuts what the query tower and the target
    attention read, while the list itself (and so the mask) stays whole."""
    data = load_data(SMALL)
    parts = random_split(data.interactions, 0.2, 0.1, seed=0)
    arrays = example_arrays(data, parts.train.iloc[:2], SMALL.tasks)
    items = data.items[F.ITEM_ID].astype(str).tolist()
    newest = items[1:4]

    def outputs(window: int, oldest: str) -> dict[str, np.ndarray]:
        config = dataclasses.replace(SMALL, model=dataclasses.replace(
            SMALL.model, history_window=window, target_attention=target_attention))
        tf.keras.utils.set_random_seed(0)
        model = build_model(config, data, parts.train)
        features = {k: tf.constant(v) for k, v in arrays.items()}
        features[F.HISTORY] = tf.constant([[oldest, *newest]] * 2)
        got = model(features, training=False)
        return {"query": model.user_embeddings(features).numpy(),
                "rating": got["rating"].numpy()}

    for name, values in outputs(3, items[5]).items():
        np.testing.assert_allclose(values, outputs(3, items[6])[name], atol=1e-6)
    wider = (outputs(4, items[5]), outputs(4, items[6]))
    assert np.abs(wider[0]["query"] - wider[1]["query"]).max() > 1e-4
    if target_attention:
        assert np.abs(wider[0]["rating"] - wider[1]["rating"]).max() > 1e-5


def test_task_weights_mask_rows_and_weigh_them(small_model):
    """A task's loss is the weighted mean over its rows: rows of weight 0 (outside
    its `where`) drop out; a `sample_weight` scales the rest, by hand."""
    model, features = small_model
    outputs = model(features, training=False)
    rating = features[F.RATING].numpy()
    squared = (outputs["rating"].numpy() - rating) ** 2
    weights = np.where(rating >= 3, 1.0 + (rating == 5), 0.0).astype(np.float32)
    weighted = dict(features, **{"rating/weight": tf.constant(weights)})
    loss = float(_with(model, {"rating": 1.0}).compute_loss(weighted))
    kept = weights > 0
    # Keras divides the weighted sum by the number of kept rows.
    assert loss == pytest.approx(float((weights[kept] * squared[kept]).sum()
                                       / kept.sum()), rel=1e-4)
    assert 0 < kept.sum() < len(kept)


def test_finish_arrays_builds_task_weights_and_multi_hot_labels():
    tasks = (TaskConfig("click", "binary", label="click"),
             TaskConfig("buy", "binary", label="buy", where="click == 1",
                        sample_weight="value"),
             TaskConfig("tags", "multilabel", label="tags"))
    tags = np.empty(3, dtype=object)
    tags[:] = [("a", "b"), (), ("zz",)]
    arrays = {"click": np.array([1, 0, 1], np.float32),
              "buy": np.array([1, np.nan, 0], np.float32),
              "value": np.array([2.0, 5.0, 0.5], np.float32), "tags": tags}
    out = finish_arrays(arrays, tasks, {"tags": ["a", "b"]})
    assert out["click/weight"].tolist() == [1, 1, 1]
    assert out["buy/weight"].tolist() == [2.0, 0.0, 0.5]
    assert out["buy"].tolist() == [1, 0, 0]  # NaN outside the task's rows -> 0
    assert out["tags"].tolist() == [[1, 1], [0, 0], [0, 0]]
