"""ESMM (`depends_on` tasks on all impressions, sampled for MovieLens) and the
genre multilabel task."""

import dataclasses

import numpy as np  # noqa: I001  (mtl_tf must be imported before tensorflow)
import pandas as pd
import pytest
import tensorflow as tf
from test_end_to_end import serve_in_plain_tensorflow

import mtl_tf  # noqa: F401
from mtl_tf import evaluation, experiment, scoring
from mtl_tf.config import Config, DataConfig, apply_overrides, get_preset
from mtl_tf.data import movielens_schema as F
from mtl_tf.data.pipeline import add_impression_negatives
from mtl_tf.model.ranking import build_ranking_network
from mtl_tf.task_config import TaskConfig, task_order


@pytest.fixture(scope="module")
def esmm_config(tiny_config, tmp_path_factory) -> Config:
    """The esmm preset at the tiny preset's size (same data, split and training)."""
    esmm = get_preset("esmm")
    config = dataclasses.replace(esmm, synthetic=tiny_config.synthetic,
                                 model=dataclasses.replace(tiny_config.model,
                                                           mtl="esmm"),
                                 train=tiny_config.train)
    out = tmp_path_factory.mktemp("esmm")
    return apply_overrides(config, [f"export.export_dir={out / 'saved_models'}"])


@pytest.fixture(scope="module")
def trained_esmm(esmm_config, tmp_path_factory) -> dict:
    prepared = experiment.prepare_data(esmm_config)
    return experiment.run(esmm_config, tmp_path_factory.mktemp("esmm_run"), verbose=0,
                          prepared=prepared)


# --- Configuration -------------------------------------------------------------

def test_esmm_preset_is_valid_and_chained():
    config = get_preset("esmm")
    like = config.task("like")
    assert like.depends_on == "watch" and not like.where
    assert config.task("rating").where == "watch == 1"
    assert config.data.impression_negatives > 0 and config.model.mtl == "esmm"
    assert [t.name for t in task_order(config.tasks)].index("watch") < \
        [t.name for t in task_order(config.tasks)].index("like")


@pytest.mark.parametrize("tasks, message", [
    ([TaskConfig("b", "binary", label="x", depends_on="a")],
     "depends_on='a' is not a task"),
    ([TaskConfig("a", "regression", label="y"),
      TaskConfig("b", "binary", label="x", depends_on="a")],
     "must be binary"),
    ([TaskConfig("a", "binary", label="y", where="y == 1"),
      TaskConfig("b", "binary", label="x", depends_on="a")],
     "tasks.a.where='y == 1': tasks of a depends_on chain train on every row"),
    ([TaskConfig("a", "binary", label="y", depends_on="b"),
      TaskConfig("b", "binary", label="x", depends_on="a")],
     "cycle"),
])
def test_bad_dependencies_name_the_field(tasks, message):
    with pytest.raises(ValueError, match=message):
        Config(tasks=tuple(tasks), data=DataConfig(impression_negatives=1))


def test_impression_tasks_need_sampled_negatives_and_esmm_needs_a_chain():
    # MovieLens has no impressions: without sampled ones there is no `watch`.
    without = dataclasses.replace(get_preset("esmm"), data=DataConfig(),
                                  synthetic=get_preset("tiny").synthetic)
    with pytest.raises(ValueError) as info:
        experiment.prepare_data(without)
    assert "columns ['watch'] read by the tasks" in str(info.value)
    assert "data.impression_negatives" in str(info.value)
    with pytest.raises(ValueError, match="model.mtl=esmm needs a task with"):
        apply_overrides(get_preset("default"), ["model.mtl=esmm"])


def test_task_fields_are_validated():
    with pytest.raises(ValueError, match="tasks.r.loss must be one of"):
        TaskConfig("r", "regression", label="y", loss="hinge")
    with pytest.raises(ValueError, match="tasks.r.metrics"):
        TaskConfig("r", "regression", label="y", metrics=("auc",))
    with pytest.raises(ValueError, match="only binary tasks can depend"):
        TaskConfig("r", "regression", label="y", depends_on="a")
    assert TaskConfig("r", "regression", label="y").loss == "mse"
    assert TaskConfig("r", "regression", label="y").metrics == ("rmse",)


def test_genre_task_with_genre_inputs_is_rejected():
    with pytest.raises(ValueError, match="tasks.genres.label='movie_genres' is also "
                                         "a model input"):
        dataclasses.replace(get_preset("default"),
                            tasks=get_preset("default").tasks + (F.GENRE_TASK,))


# --- Data and network mechanics ------------------------------------------------

def test_impression_negatives_are_unknown_pairs_with_zero_labels():
    arrays = {F.USER_ID: np.array(["u1", "u2"], object),
              F.ITEM_ID: np.array(["a", "b"], object),
              F.USER_AGE: np.array([18.0, 25.0], np.float32),
              F.RATING: np.array([5.0, 3.0], np.float32),
              F.LIKE: np.array([1.0, 0.0], np.float32),
              F.WATCH: np.array([1.0, 1.0], np.float32)}
    known = pd.DataFrame({F.USER_ID: ["u1", "u1", "u2"], F.ITEM_ID: ["a", "c", "b"]})
    items = np.array(["a", "b", "c", "d"], object)
    out = add_impression_negatives(arrays, items, known, per_example=3, seed=0,
                                   user_column=F.USER_ID, item_column=F.ITEM_ID,
                                   label_names=[F.RATING, F.LIKE, F.WATCH])
    assert len(out[F.USER_ID]) == 8
    # Each example is followed by its own sampled rows.
    np.testing.assert_array_equal(out[F.ITEM_ID][[0, 4]], ["a", "b"])
    np.testing.assert_array_equal(out[F.WATCH], [1, 0, 0, 0, 1, 0, 0, 0])
    sampled = out[F.WATCH] == 0
    np.testing.assert_array_equal(out[F.USER_ID][sampled], ["u1"] * 3 + ["u2"] * 3)
    np.testing.assert_array_equal(out[F.USER_AGE][sampled], [18.0] * 3 + [25.0] * 3)
    for user, item in zip(out[F.USER_ID][sampled], out[F.ITEM_ID][sampled]):
        assert item in ({"b", "d"} if user == "u1" else {"a", "c", "d"})
    for label in (F.LIKE, F.RATING):
        assert not out[label][sampled].any()


def test_dependent_output_is_the_product_of_conditional_and_parent():
    tasks = get_preset("esmm").tasks
    net = build_ranking_network(4, tasks, "esmm", {"units": (8,)}, head_units=(4,))
    assert set(net.output_names) == {"rating", "watch", "like", "like_given_watch"}
    rng = np.random.default_rng(0)
    out = net({"user": tf.constant(rng.normal(size=(5, 4)), tf.float32),
               "item": tf.constant(rng.normal(size=(5, 4)), tf.float32)})
    np.testing.assert_allclose(out["like"].numpy(),
                               (out["like_given_watch"] * out["watch"]).numpy(),
                               rtol=1e-6)
    assert np.all(out["like"].numpy() <= out["watch"].numpy() + 1e-7)


def test_interaction_tasks_ignore_impression_rows(esmm_config):
    from mtl_tf.model.builder import build_model

    prepared = experiment.prepare_data(esmm_config)
    model = build_model(esmm_config, prepared.data, prepared.splits.train)
    test = prepared.arrays["test"]
    rows = np.r_[np.flatnonzero(test[F.WATCH] > 0)[:8],
                 np.flatnonzero(test[F.WATCH] == 0)[:8]]
    assert (test["rating/weight"][rows] == test[F.WATCH][rows]).all()
    batch = {k: tf.constant(v[rows]) for k, v in test.items()}
    watched = {k: tf.constant(v[rows[:8]]) for k, v in test.items()}
    assert batch[F.WATCH].numpy().tolist() == [1.0] * 8 + [0.0] * 8
    with_impressions = model.task_losses(batch)
    only_watched = model.task_losses(watched)
    for name in ("rating", "retrieval"):  # Interaction space: the same loss.
        np.testing.assert_allclose(with_impressions[name], only_watched[name],
                                   rtol=1e-5, err_msg=name)
    # The watch task does see the impressions.
    assert abs(float(with_impressions["watch"]) - float(only_watched["watch"])) > 1e-3


# --- Training, quality, export ---------------------------------------------------

def test_esmm_ranks_impressions_better_than_a_model_trained_on_watched_rows(
        trained_esmm, trained_tiny):
    """ESMM's point (Ma et al., SIGIR 2018): trained on all impressions, its
    p(watch, like) ranks the impression space far better than a like head that only
    ever saw watched rows (sample selection bias), and beats item popularity."""
    arrays = trained_esmm["prepared"].arrays
    test = arrays["test"]
    esmm_like = scoring.predict(trained_esmm["model"], test)["like"]
    biased_like = scoring.predict(trained_tiny["model"], test)["like"]
    train = arrays["train"]
    counts = pd.Series(train[F.ITEM_ID][train[F.WATCH] > 0]).value_counts()
    popularity = pd.Series(test[F.ITEM_ID]).map(counts).fillna(0).to_numpy()
    esmm_auc = evaluation.roc_auc(test[F.LIKE], esmm_like)
    # 0.049 ahead with the history mask (model.mask_history_negatives), which
    # reshapes both models' shared towers; 0.05+ before it.
    assert esmm_auc > evaluation.roc_auc(test[F.LIKE], biased_like) + 0.04
    assert esmm_auc > evaluation.roc_auc(test[F.LIKE], popularity) + 0.03
    metrics = trained_esmm["metrics"]
    assert metrics["like_auc"] == pytest.approx(esmm_auc)
    assert metrics["like_given_watch_auc"] > 0.6  # CVR AUC on the watched rows.


def test_esmm_export_serves_every_output_in_plain_tensorflow(trained_esmm, tmp_path):
    prepared = trained_esmm["prepared"]
    inputs, outputs, _ = serve_in_plain_tensorflow(trained_esmm["export"], prepared,
                                                   tmp_path)
    features = {k: tf.constant(inputs[k]) for k in
                (F.USER_ID, F.USER_AGE, F.USER_GENDER, F.USER_OCCUPATION, F.HISTORY,
                 F.ITEM_ID)}
    expected = trained_esmm["model"](features, training=False)
    served = sorted(n.split("/")[1] for n in outputs
                    if n.startswith("serving_default/"))
    assert served == sorted(expected) == ["like", "like_given_watch", "rating",
                                          "retrieval", "watch"]
    for name in served:
        np.testing.assert_allclose(outputs[f"serving_default/{name}"],
                                   expected[name].numpy(), atol=1e-4, err_msg=name)


def test_genre_task_learns_genres_from_titles_and_serves(tiny_config, tiny_prepared,
                                                         tmp_path):
    """The auxiliary item task: genres predicted from the item representation (id
    and title words, no genre inputs) beat the genre prior by a wide margin."""
    config = dataclasses.replace(tiny_config, schema=F.GENRE_TASK_SCHEMA,
                                 tasks=tiny_config.tasks + (F.GENRE_TASK,))
    config = apply_overrides(config, [f"export.export_dir={tmp_path / 'saved_models'}"])
    prepared = experiment.prepare_data(config)
    result = experiment.run(config, tmp_path / "run", verbose=0, prepared=prepared)
    # The prior baseline on the same rows the metric uses (the test interactions):
    # the training share of each genre, for every test row.
    labels = prepared.arrays["test"][F.ITEM_GENRES]
    vocabulary = prepared.preprocessing.label_vocabularies[F.ITEM_GENRES]
    assert labels.shape[1] == len(vocabulary) >= 8  # the planted topics' genres
    train_labels = prepared.arrays["train"][F.ITEM_GENRES].sum(0)
    prior = np.tile(train_labels / train_labels.sum(), (len(labels), 1))
    prior_auc = evaluation.roc_auc(labels.ravel(), prior.ravel())
    assert result["metrics"]["genres_auc"] > prior_auc + 0.05
    assert np.isfinite(result["history"]["genres_loss"]).all()

    inputs, outputs, _ = serve_in_plain_tensorflow(result["export"], prepared,
                                                   tmp_path)
    served = outputs["serving_default/genres"]
    assert served.shape == (len(inputs[F.ITEM_ID]), len(vocabulary))
    features = {k: tf.constant(inputs[k]) for k in
                (F.USER_ID, F.USER_AGE, F.USER_GENDER, F.USER_OCCUPATION, F.HISTORY,
                 F.ITEM_ID)}
    np.testing.assert_allclose(served, result["model"](features)["genres"].numpy(),
                               atol=1e-4)
