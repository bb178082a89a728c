"""Your own data: the examples/ shop configs on a generated impression log, the
pandas API, and a data set without items (census-income's setting).

Every export here is served in a process that imports nothing but TensorFlow,
with inputs named and typed from the export's `assets.extra/schema.json`, and
must give the in-memory model's outputs.
"""

import dataclasses  # noqa: I001  (mtl_tf must be imported before tensorflow)
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf
from test_end_to_end import _clean_env

from mtl_tf import experiment
from mtl_tf.evaluation import roc_auc
from mtl_tf.config import Config, TaskConfig, apply_overrides, load_config_file
from mtl_tf.data.dataset import RecDataset
from mtl_tf.data.shop_log import write_shop_log
from mtl_tf.schema import Feature, Schema

SERVE_SCRIPT = textwrap.dedent('''
    import json
    import sys
    from pathlib import Path

    import numpy as np
    import tensorflow as tf

    export = Path(sys.argv[1])
    inputs = dict(np.load(sys.argv[2]))
    model = tf.saved_model.load(str(export))
    request = json.loads((export / "assets.extra" / "schema.json").read_text())
    outputs = {}
    for signature, specs in request["signatures"].items():
        arguments = {s["name"]: tf.constant(inputs[s["name"]], s["dtype"])
                     for s in specs}
        for name, value in model.signatures[signature](**arguments).items():
            value = value.numpy()
            if value.dtype == object:
                value = np.char.decode(value.astype(bytes), "utf-8")
            outputs[signature + "/" + name] = value
    np.savez(sys.argv[3], **outputs)
    forbidden = ("tf_keras", "tensorflow_recommenders", "keras_nlp",
                 "tensorflow_text", "keras_hub", "mtl_tf")
    loaded = [m for m in forbidden if m in sys.modules]
    assert not loaded, f"imported {loaded}"
''')


def serve(export, inputs: dict, tmp_path) -> dict:
    """Every signature of `export` on `inputs`, in a TensorFlow-only process."""
    np.savez(tmp_path / "inputs.npz", **inputs)
    (tmp_path / "serve.py").write_text(SERVE_SCRIPT)
    process = subprocess.run(
        [sys.executable, str(tmp_path / "serve.py"), str(export),
         str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
        env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-4000:]
    return dict(np.load(tmp_path / "outputs.npz"))


def request_inputs(prepared, rows: int = 6) -> dict[str, np.ndarray]:
    """Test rows' request features, plus an unseen user, item and category and
    a missing number in the last row."""
    schema = prepared.data.schema
    test = prepared.arrays["test"]
    inputs = {}
    for feature in schema.query_features + ([schema.item_id] if schema.item_id
                                            else []):
        values = test[feature.name][:rows].copy()
        if feature.kind in ("id", "categorical") and values.dtype == object:
            values[-1] = "never-seen"
        elif feature.kind == "numeric":
            values[-1] = np.nan
        inputs[feature.name] = values.astype(str) if values.dtype == object else values
    inputs["k"] = np.array(5, np.int32)
    inputs["exclude_item_ids"] = np.array([[""]] * rows)
    return inputs


def check_against_memory(model, export, inputs, tmp_path) -> dict:
    outputs = serve(export, inputs, tmp_path)
    names = [n for n in inputs if n not in ("k", "exclude_item_ids")]
    features = {n: tf.constant(inputs[n]) for n in names}
    expected = model(features, training=False)
    served = sorted(n.split("/", 1)[1] for n in outputs
                    if n.startswith("serving_default/"))
    assert served == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[f"serving_default/{name}"], value.numpy(),
                                   atol=1e-4, err_msg=name)
        assert np.isfinite(outputs[f"serving_default/{name}"]).all(), name
    return outputs


# --- The examples/ shop configs on a generated log -------------------------------

@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shop") / "shop_data"
    # Large enough for tastes to be learnable from side features (15k rows).
    write_shop_log(out, num_users=250, num_items=150, impressions_per_user=60,
                   seed=3)
    return out


def _shop_config(repo_root, shop_dir, name, tmp) -> Config:
    config = load_config_file(repo_root / "examples" / name)
    return apply_overrides(config, [
        f"data.path={shop_dir / 'interactions.csv'}",
        f"data.items_path={shop_dir / 'items.csv'}",
        f"data.users_path={shop_dir / 'users.csv'}",
        "train.epochs=6", f"export.export_dir={tmp / 'saved_models'}"])


@pytest.fixture(scope="module")
def shop_runs(repo_root, shop_dir, tmp_path_factory):
    runs = {}
    for name in ("shop_mmoe.json", "shop_esmm.json"):
        tmp = tmp_path_factory.mktemp(name.split(".")[0])
        config = _shop_config(repo_root, shop_dir, name, tmp)
        runs[name] = experiment.run(config, tmp / "run", verbose=0)
        runs[name]["run_dir"] = tmp / "run"
    return runs


def test_shop_config_declares_every_feature_kind_and_a_label_mask(repo_root):
    config = load_config_file(repo_root / "examples" / "shop_mmoe.json")
    kinds = {f.kind for f in config.schema.features}
    assert kinds == {"id", "categorical", "multi_categorical", "numeric", "text"}
    assert {f.side for f in config.schema.features} == {"user", "item", "context"}
    assert config.task("purchase").where == "click == 1"
    assert config.task("retrieval").where == "click == 1"
    assert config.data.source == "files"


def test_shop_run_learns_click_and_purchase(shop_runs):
    result = shop_runs["shop_mmoe.json"]
    metrics = result["metrics"]
    # The planted log: clicks follow the user-item affinity (tastes by segment
    # and age, items by category), the brand and the page position. Position
    # alone, the strongest single feature, is the baseline to beat.
    test = result["prepared"].splits.test
    position_only = roc_auc(test["click"].to_numpy(), -test["position"].to_numpy())
    assert metrics["click_auc"] > position_only + 0.08
    assert metrics["purchase_auc"] > 0.6  # CVR, on clicked rows only
    assert 0 < metrics["hit_rate_at_100"] <= 1


def test_shop_run_writes_schema_and_preprocessing(shop_runs):
    result = shop_runs["shop_mmoe.json"]
    run_dir, export = result["run_dir"], result["export"]
    config = json.loads((run_dir / "config.json").read_text())
    assert [f["name"] for f in config["schema"]["features"]][:3] == [
        "user_id", "age", "segment"]
    fitted = json.loads((run_dir / "preprocessing.json").read_text())["features"]
    assert fitted["device"]["vocabulary"] == ["android", "ios", "web"]
    assert fitted["position"]["std"] > 0
    document = json.loads((export / "assets.extra" / "schema.json").read_text())
    assert sorted(document["signatures"]) == ["recommend", "recommend_excluding",
                                              "serving_default"]
    inputs = [s["name"] for s in document["signatures"]["serving_default"]]
    # User and context features plus the item key; item features are baked in.
    assert inputs == ["user_id", "age", "segment", "device", "position", "hour",
                      "item_id"]
    rest = document["rest_examples"]["recommend"]
    assert rest["signature_name"] == "recommend" and rest["inputs"]["k"] == 10


def test_shop_export_serves_every_signature_in_plain_tensorflow(shop_runs, tmp_path):
    result = shop_runs["shop_mmoe.json"]
    model, prepared = result["model"], result["prepared"]
    inputs = request_inputs(prepared)
    outputs = check_against_memory(model, result["export"], inputs, tmp_path)
    query = {f.name: tf.constant(inputs[f.name])
             for f in prepared.data.schema.query_features}
    users = model.user_embeddings(query).numpy()
    items = model.item_embeddings(tf.constant(prepared.data.item_ids)).numpy()
    top = -np.sort(-(users @ items.T), axis=1)[:, :5]
    for signature in ("recommend", "recommend_excluding"):
        np.testing.assert_allclose(outputs[f"{signature}/scores"], top, atol=1e-4)
        assert outputs[f"{signature}/item_ids"].shape == (len(users), 5)


def test_esmm_on_a_real_impression_log(shop_runs, tmp_path):
    result = shop_runs["shop_esmm.json"]
    metrics = result["metrics"]
    # purchase = p(click) p(purchase | click), on every impression (CTCVR);
    # its conditional is scored on the clicked rows (CVR).
    assert metrics["purchase_auc"] > 0.6
    assert metrics["purchase_given_click_auc"] > 0.5
    outputs = check_against_memory(result["model"], result["export"],
                                   request_inputs(result["prepared"]), tmp_path)
    assert np.all(outputs["serving_default/purchase"]
                  <= outputs["serving_default/click"] + 1e-6)


def test_readme_own_data_commands(repo_root, tmp_path):
    """The README's two commands: generate the log, train on it with the config."""
    env = _clean_env()
    make = subprocess.run(
        [sys.executable, "-m", "mtl_tf.data.shop_log", "shop_data", "--users", "80",
         "--items", "60", "--impressions-per-user", "20"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert make.returncode == 0, make.stderr[-2000:]
    train = subprocess.run(
        [sys.executable, "-m", "mtl_tf.train", "--config",
         str(repo_root / "examples" / "shop_mmoe.json"), "--output-dir", "runs/shop",
         "--set", "train.epochs=1", "--quiet"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-4000:]
    assert "click_auc" in train.stdout and "purchase_auc" in train.stdout
    assert (tmp_path / "saved_models" / "shop_mmoe" / "1" / "saved_model.pb").is_file()


# --- pandas frames, and a data set without items ---------------------------------

def _census_like(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """One row per person, two labels (the MMoE paper's census-income setting)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(17, 80, rows).astype(float)
    education = rng.choice(["hs", "college", "masters", "phd"], rows)
    hours = rng.normal(40, 10, rows)
    hours[rng.random(rows) < 0.1] = np.nan  # missing values get imputed
    skill = {"hs": 0.0, "college": 1.0, "masters": 1.6, "phd": 2.0}
    income_logit = (0.05 * (age - 40) + np.vectorize(skill.get)(education)
                    + 0.04 * np.nan_to_num(hours - 40) - 1.0)
    married_logit = 0.08 * (age - 35) - 0.3
    return pd.DataFrame({
        "age": age, "education": education, "hours": hours,
        "income": (rng.random(rows) < 1 / (1 + np.exp(-income_logit))).astype(int),
        "never_married": (rng.random(rows) < 1 / (1 + np.exp(married_logit))).astype(
            int)})


CENSUS_SCHEMA = Schema((Feature("age", "user", "numeric"),
                        Feature("education", "user", "categorical"),
                        Feature("hours", "user", "numeric")))
CENSUS_TASKS = (TaskConfig("income", "binary", label="income"),
                TaskConfig("marital", "binary", label="never_married"))


def test_a_table_without_items_trains_the_ranking_architectures(tmp_path):
    frame = _census_like()
    data = RecDataset.from_frames(CENSUS_SCHEMA, frame,
                                  labels={"income": "number",
                                          "never_married": "number"},
                                  name="census-like")
    assert data.items is None and data.users is None
    config = Config(schema=CENSUS_SCHEMA, tasks=CENSUS_TASKS)
    config = apply_overrides(config, [
        "model.mtl=mmoe", "model.embedding_dim=16", "model.expert_units=[16]",
        "model.history_encoder=none", "train.epochs=6", "train.batch_size=256",
        f"export.export_dir={tmp_path / 'saved_models'}",
        "export.model_name=census"])
    prepared = experiment.prepare_data(config, data)
    result = experiment.run(config, tmp_path / "run", verbose=0, prepared=prepared)
    metrics = result["metrics"]
    assert metrics["income_auc"] > 0.7 and metrics["marital_auc"] > 0.7
    assert not any(k.startswith("hit_rate") for k in metrics)
    document = json.loads((result["export"] / "assets.extra" / "schema.json")
                          .read_text())
    assert list(document["signatures"]) == ["serving_default"]
    assert [s["name"] for s in document["signatures"]["serving_default"]] == [
        "age", "education", "hours"]
    check_against_memory(result["model"], result["export"],
                         request_inputs(prepared), tmp_path)


def test_dataframes_with_side_tables_join_on_the_keys():
    tables = {"interactions": pd.DataFrame({"u": ["a", "b", "a"],
                                            "i": ["x", "y", "z"],
                                            "click": [1, 0, 1]}),
              "items": pd.DataFrame({"i": ["x", "y", "z", "cold"],
                                     "price": [1.0, 2.0, 3.0, 4.0]})}
    schema = Schema((Feature("u", "user", "id"), Feature("i", "item", "id"),
                     Feature("price", "item", "numeric")))
    data = RecDataset.from_frames(schema, tables["interactions"], tables["items"],
                                  labels={"click": "number"})
    assert data.num_items == 4  # "cold" is in the catalog without interactions
    joined = data.joined()
    assert joined["price"].tolist() == [1.0, 2.0, 3.0]
    unknown = tables["interactions"].assign(i=["x", "y", "nope"])
    with pytest.raises(ValueError, match=r"'i' 'nope' is not in the item table"):
        RecDataset.from_frames(schema, unknown, tables["items"],
                               labels={"click": "number"})
    lenient = RecDataset.from_frames(schema, unknown, tables["items"],
                                     labels={"click": "number"}, lenient=True)
    assert lenient.report.unknown_item_rows == 1 and len(lenient.interactions) == 2
    assert dataclasses.replace(lenient).num_users == 2
