"""End to end: the README's train command, and the export served by plain TensorFlow.

The SavedModel must load and run in a process that imports nothing but TensorFlow
(and numpy): no tf_keras, TensorFlow Recommenders, keras-nlp or tensorflow-text
(DESIGN.md section 2), and give the in-memory model's outputs.
"""

import json  # noqa: I001  (mtl_tf must be imported before tensorflow)
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf

from mtl_tf.data import movielens_schema as F
from mtl_tf import experiment, scoring
from mtl_tf.config import EvalConfig, apply_overrides, get_preset

SERVING_SCRIPT = textwrap.dedent('''
    import sys

    import numpy as np
    import tensorflow as tf

    inputs = dict(np.load(sys.argv[2]))
    model = tf.saved_model.load(sys.argv[1])
    user = {
        "user_id": tf.constant(inputs["user_id"]),
        "bucketized_user_age": tf.constant(inputs["bucketized_user_age"]),
        "user_gender": tf.constant(inputs["user_gender"]),
        "user_occupation_label": tf.constant(inputs["user_occupation_label"]),
        "history_item_ids": tf.constant(inputs["history_item_ids"]),
    }
    k = tf.constant(int(inputs["k"]), tf.int32)
    outputs = {}
    served = model.signatures["serving_default"](
        **user, movie_id=tf.constant(inputs["movie_id"]))
    for name, value in served.items():
        outputs["serving_default/" + name] = value.numpy()
    recommended = model.signatures["recommend"](**user, k=k)
    excluding = model.signatures["recommend_excluding"](
        **user, k=k, exclude_item_ids=tf.constant(inputs["exclude_item_ids"]))
    for prefix, result in (("recommend", recommended),
                           ("recommend_excluding", excluding)):
        outputs[prefix + "/scores"] = result["scores"].numpy()
        outputs[prefix + "/item_ids"] = np.char.decode(
            result["item_ids"].numpy().astype(bytes), "utf-8")
    np.savez(sys.argv[3], **outputs)

    forbidden = ("tf_keras", "tensorflow_recommenders", "keras_nlp",
                 "tensorflow_text", "keras_hub", "mtl_tf")
    loaded = [m for m in forbidden if m in sys.modules]
    assert not loaded, f"imported {loaded}"
    assert 'tf_keras' not in sys.modules
    assert 'tensorflow_recommenders' not in sys.modules
    assert 'keras_nlp' not in sys.modules
    assert 'tensorflow_text' not in sys.modules
    print("SERVED OK")
''')


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)  # Set in this process by `import mtl_tf`.
    env.pop("PYTHONPATH", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def test_readme_train_command(tmp_path, repo_root):
    command = [sys.executable, "-m", "mtl_tf.train", "--preset", "tiny",
               "--output-dir", str(tmp_path / "run"),
               "--export-dir", str(tmp_path / "saved_models")]
    process = subprocess.run(command, cwd=repo_root, env=_clean_env(),
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-4000:]
    run_dir = tmp_path / "run"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["export"]["model_name"] == "mtl_tiny"
    assert config["export"]["export_dir"] == str(tmp_path / "saved_models")
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    for key in ("rating_rmse", "like_auc", "hit_rate_at_10", "hit_rate_at_100",
                "hit_rate_at_10_seen_included", "hit_rate_at_100_seen_included",
                "like_gauc", "like_calibration"):
        assert np.isfinite(metrics[key]), key
        assert key in process.stdout  # The printed table.
    assert 0.5 < metrics["like_gauc"] < 1 and 0.5 < metrics["like_calibration"] < 2
    assert metrics["like_gauc_users"] >= 10
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    export = tmp_path / "saved_models" / "mtl_tiny" / "1"
    assert (export / "saved_model.pb").is_file()
    assert (export / "variables").is_dir()
    assert str(export) in process.stdout
    # Into a pipe, one line per epoch instead of a progress bar per step.
    assert "Epoch 1/" in process.stdout and "ETA:" not in process.stdout


def _serving_inputs(prepared, catalog_ids: list[str]) -> dict[str, np.ndarray]:
    users = prepared.data.users.iloc[:3]
    train_items = set(prepared.splits.train[F.ITEM_ID].astype(str))
    cold = [i for i in catalog_ids if i not in train_items][:1]  # if any
    items = (catalog_ids[:2] + cold + ["no-such-item"])
    n = len(items)
    user_ids = (users[F.USER_ID].astype(str).tolist() * 2)[: n - 1] + ["no-such-user"]
    rows = [users.iloc[i % 3] for i in range(n - 1)]
    ages = [float(r[F.USER_AGE]) for r in rows] + [25.0]
    genders = [bool(r[F.USER_GENDER]) for r in rows] + [False]
    occupations = [int(r[F.USER_OCCUPATION]) for r in rows] + [3]
    seen = prepared.seen
    excluded = [sorted(seen.loc[seen[F.USER_ID] == u, F.ITEM_ID].astype(str))
                for u in user_ids[:-1]] + [["no-such-item", catalog_ids[0]]]
    width = max(map(len, excluded))
    # Known users send their last seen items; the unknown one a 5-item session.
    histories = [e[-5:] for e in excluded[:-1]] + [catalog_ids[:5]]
    return {
        F.HISTORY: np.array([h + [""] * (5 - len(h)) for h in histories]),
        F.USER_ID: np.array(user_ids),
        F.USER_AGE: np.array(ages, np.float32),
        F.USER_GENDER: np.array(genders, bool),
        F.USER_OCCUPATION: np.array(occupations, np.int64),
        F.ITEM_ID: np.array(items),
        "exclude_item_ids": np.array([e + [""] * (width - len(e)) for e in excluded]),
        "k": np.array(10),
    }


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    return -np.sort(-scores, axis=1)[:, :k]


def serve_in_plain_tensorflow(export_dir, prepared, tmp) -> tuple[dict, dict, list]:
    """Runs the three signatures of `export_dir` in a TensorFlow-only subprocess.

    Returns (inputs, outputs, catalog ids); outputs are keyed `<signature>/<name>`.
    """
    catalog_ids = prepared.data.items[F.ITEM_ID].astype(str).tolist()
    inputs = _serving_inputs(prepared, catalog_ids)
    np.savez(tmp / "inputs.npz", **inputs)
    script = tmp / "serve.py"
    script.write_text(SERVING_SCRIPT)
    process = subprocess.run(
        [sys.executable, str(script), str(export_dir),
         str(tmp / "inputs.npz"), str(tmp / "outputs.npz")],
        cwd=tmp, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-4000:]
    assert "SERVED OK" in process.stdout
    return inputs, dict(np.load(tmp / "outputs.npz")), catalog_ids


@pytest.fixture(scope="module")
def plain_tf_outputs(tmp_path_factory, trained_tiny):
    return serve_in_plain_tensorflow(trained_tiny["export"], trained_tiny["prepared"],
                                     tmp_path_factory.mktemp("plain_tf"))


def test_serving_default_matches_in_memory_model(plain_tf_outputs, trained_tiny):
    inputs, outputs, _ = plain_tf_outputs
    model = trained_tiny["model"]
    features = {k: tf.constant(inputs[k]) for k in
                (F.USER_ID, F.USER_AGE, F.USER_GENDER, F.USER_OCCUPATION, F.HISTORY,
                 F.ITEM_ID)}
    expected = model(features, training=False)
    names = sorted(n.split("/")[1] for n in outputs if n.startswith("serving_default/"))
    assert names == sorted(expected) == ["like", "rating", "retrieval"]
    for name in names:
        np.testing.assert_allclose(outputs[f"serving_default/{name}"],
                                   expected[name].numpy(), atol=1e-4, err_msg=name)


@pytest.mark.parametrize("signature", ["recommend", "recommend_excluding"])
def test_recommend_matches_in_memory_model(plain_tf_outputs, trained_tiny, signature):
    inputs, outputs, catalog_ids = plain_tf_outputs
    model = trained_tiny["model"]
    k = int(inputs["k"])
    users = {name: tf.constant(inputs[name]) for name in
             (F.USER_ID, F.USER_AGE, F.USER_GENDER, F.USER_OCCUPATION, F.HISTORY)}
    user_vectors = model.user_embeddings(users).numpy()
    item_vectors = scoring.embed_items(model, np.array(catalog_ids))
    scores = user_vectors @ item_vectors.T
    if signature == "recommend_excluding":
        column = {item: j for j, item in enumerate(catalog_ids)}
        for row, excluded in enumerate(inputs["exclude_item_ids"]):
            for item in excluded:
                if item in column:
                    scores[row, column[item]] = -np.inf
    ids = outputs[f"{signature}/item_ids"]
    served_scores = outputs[f"{signature}/scores"]
    assert ids.shape == served_scores.shape == (len(inputs[F.USER_ID]), k)
    # The served scores are the in-memory top-k scores ...
    np.testing.assert_allclose(served_scores, _top_k(scores, k), atol=1e-4)
    # ... and each served id scores what the served list says (robust to ties).
    column = {item: j for j, item in enumerate(catalog_ids)}
    for row in range(len(ids)):
        in_memory = scores[row, [column[i] for i in ids[row]]]
        np.testing.assert_allclose(in_memory, served_scores[row], atol=1e-4)
        assert len(set(ids[row])) == k
    if signature == "recommend_excluding":
        for row, excluded in enumerate(inputs["exclude_item_ids"]):
            assert not set(ids[row]) & set(excluded)


def test_eval_max_users_scores_a_seeded_sample_of_test_users(trained_tiny):
    model, prepared = trained_tiny["model"], trained_tiny["prepared"]
    every = experiment.evaluate(model, prepared)
    users = prepared.positives(prepared.splits.test)["user_id"].nunique()
    assert every["hit_rate_users"] == users > 60
    sample = experiment.evaluate(model, prepared, EvalConfig(max_users=60, seed=1))
    again = experiment.evaluate(model, prepared, EvalConfig(max_users=60, seed=1))
    other = experiment.evaluate(model, prepared, EvalConfig(max_users=60, seed=2))
    assert sample["hit_rate_users"] == 60
    assert sample["hit_rate_at_10"] == again["hit_rate_at_10"]
    assert sample["hit_rate_at_100"] != other["hit_rate_at_100"]
    # The ranking tasks are still scored on every test row.
    assert sample["rating_rmse"] == every["rating_rmse"]
    with pytest.raises(ValueError, match="eval.max_users must be >= 0"):
        apply_overrides(get_preset("tiny"), ["eval.max_users=-1"])


def test_refit_trains_on_training_and_validation_rows_for_the_best_epochs(tmp_path):
    config = apply_overrides(get_preset("tiny"), [
        "train.refit=true", "train.learning_rate_schedule=linear",
        "train.epochs=4"])
    prepared = experiment.prepare_data(config)
    sizes = prepared.splits.sizes()
    result = experiment.run(config, tmp_path / "run", export=False, verbose=0,
                            prepared=prepared)
    selection = result["training"]["selection"]
    best = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert 1 <= best["best_epoch"] == selection["best_epoch"] <= 4
    # The kept model is the refit: as many epochs, on every non-test row.
    assert result["training"]["epochs"] == best["best_epoch"]
    assert (tmp_path / "run" / "refit" / "checkpoints").is_dir()
    merged = result["prepared"].splits
    assert len(merged.train) == sizes["train"] + sizes["validation"]
    assert len(merged.validation) == 0 and len(merged.test) == sizes["test"]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["training"]["selection"]["best_epoch"] == best["best_epoch"]
    # Re-running the finished run in the same process scores the same model.
    again = experiment.run(config, tmp_path / "run", export=False, verbose=0)
    assert again["training"]["resumed"]
    assert again["metrics"]["hit_rate_at_10"] == result["metrics"]["hit_rate_at_10"]
    assert again["metrics"]["rating_rmse"] == pytest.approx(
        result["metrics"]["rating_rmse"], abs=1e-6)
