"""SavedModel export: versioning, atomic writes and the serving signatures."""

import json  # noqa: I001  (mtl_tf must be imported before tensorflow)

import numpy as np
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf

from mtl_tf import export as export_lib
from mtl_tf.data import movielens_schema as F
from mtl_tf.export import export_saved_model


@pytest.fixture(scope="module")
def served(trained_tiny):
    return tf.saved_model.load(str(trained_tiny["export"]))


@pytest.fixture(scope="module")
def catalog_ids(trained_tiny) -> list[str]:
    return trained_tiny["prepared"].data.items[F.ITEM_ID].astype(str).tolist()


def _users(prepared, n=4, unknown=False) -> dict[str, tf.Tensor]:
    users = prepared.data.users.iloc[:n]
    ids = users[F.USER_ID].astype(str).tolist()
    seen = prepared.seen
    histories = [seen.loc[seen[F.USER_ID] == u, F.ITEM_ID].astype(str).tolist()[-5:]
                 for u in ids]
    if unknown:
        ids[0] = "no-such-user"
        histories[0] = ["no-such-item"]
    histories = [h + [""] * (5 - len(h)) for h in histories]
    return {F.USER_ID: tf.constant(ids), F.HISTORY: tf.constant(histories),
            F.USER_AGE: tf.constant(users[F.USER_AGE].to_numpy(np.float32)),
            F.USER_GENDER: tf.constant(users[F.USER_GENDER].to_numpy(bool)),
            F.USER_OCCUPATION: tf.constant(users[F.USER_OCCUPATION].to_numpy(np.int64))}


def _ids(tensor) -> np.ndarray:
    return np.char.decode(tensor.numpy().astype(bytes), "utf-8")


def _contents(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_versions_increment_and_failures_leave_nothing(tmp_path, monkeypatch,
                                                       trained_tiny):
    model = trained_tiny["model"]
    first = export_saved_model(model, tmp_path, "m", assets={"note": {"a": 1}})
    second = export_saved_model(model, tmp_path, "m")
    assert (first.name, second.name) == ("1", "2")
    for version, path in ((1, first), (2, second)):
        assert (path / "saved_model.pb").is_file()
        document = json.loads((path / "assets.extra" / "export.json").read_text())
        assert document["version"] == version and document["model_name"] == "m"
        assert set(document["signatures"]) == {"serving_default", "recommend",
                                               "recommend_excluding"}
    assert json.loads((first / "assets.extra" / "note.json").read_text()) == {"a": 1}
    assert _contents(tmp_path / "m") == ["1", "2"]

    with pytest.raises(ValueError, match="already exists"):
        export_saved_model(model, tmp_path, "m", version=2)

    # A crash inside tf.saved_model.save: no version 3, no staging directory.
    def failing_save(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_lib.tf.saved_model, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, tmp_path, "m")
    monkeypatch.undo()
    assert _contents(tmp_path / "m") == ["1", "2"]

    # A failure after the SavedModel was written (an unserialisable asset).
    with pytest.raises(TypeError):
        export_saved_model(model, tmp_path, "m", assets={"bad": {"x": object()}})
    assert _contents(tmp_path / "m") == ["1", "2"]
    # The next export still gets the next free version.
    assert export_saved_model(model, tmp_path, "m").name == "3"


def test_export_carries_config_and_metrics(trained_tiny):
    extra = trained_tiny["export"] / "assets.extra"
    config = json.loads((extra / "config.json").read_text())
    assert config == json.loads(trained_tiny["config"].to_json())
    metrics = json.loads((extra / "metrics.json").read_text())
    assert metrics["metrics"] == pytest.approx(trained_tiny["metrics"])
    model_name = trained_tiny["config"].export.model_name
    assert trained_tiny["export"].parent.name == model_name


def test_serving_default_unknown_ids(served, trained_tiny, catalog_ids):
    users = _users(trained_tiny["prepared"], n=4, unknown=True)
    items = tf.constant(["no-such-item", "also-unknown", catalog_ids[0],
                         catalog_ids[1]])
    outputs = served.signatures["serving_default"](**users, movie_id=items)
    assert sorted(outputs) == ["like", "rating", "retrieval"]
    for name, value in outputs.items():
        assert value.shape == (4,) and np.isfinite(value.numpy()).all(), name
    assert ((outputs["like"] >= 0) & (outputs["like"] <= 1)).numpy().all()
    # Two unknown items look the same to the model: same user, same outputs.
    same_user = {k: tf.stack([v[0], v[0]]) for k, v in users.items()}
    pair = served.signatures["serving_default"](
        **same_user, movie_id=tf.constant(["unknown-a", "unknown-b"]))
    for name, value in pair.items():
        assert value[0].numpy() == pytest.approx(value[1].numpy()), name


def test_recommend_unknown_user(served, trained_tiny, catalog_ids):
    users = _users(trained_tiny["prepared"], n=3, unknown=True)
    out = served.signatures["recommend"](**users, k=tf.constant(7))
    ids = _ids(out["item_ids"])
    assert ids.shape == (3, 7) and out["scores"].shape == (3, 7)
    assert set(ids.ravel()) <= set(catalog_ids)
    scores = out["scores"].numpy()
    assert np.isfinite(scores).all()
    assert (np.diff(scores, axis=1) <= 0).all()
    for row in ids:
        assert len(set(row)) == 7


def test_recommend_excluding_never_returns_excluded(served, trained_tiny,
                                                    catalog_ids):
    prepared = trained_tiny["prepared"]
    users = _users(prepared, n=5)
    ranking = _ids(served.signatures["recommend"](
        **users, k=tf.constant(len(catalog_ids)))["item_ids"])
    seen = prepared.seen
    excluded = []
    for row, user in enumerate(users[F.USER_ID].numpy().astype(str)):
        # Every other item of the user's top 40, plus what the user already rated.
        own = set(seen.loc[seen[F.USER_ID] == user, F.ITEM_ID].astype(str))
        excluded.append(sorted(set(ranking[row][:40:2]) | own))
    width = max(map(len, excluded))
    padded = tf.constant([e + [""] * (width - len(e)) for e in excluded])
    out = served.signatures["recommend_excluding"](**users, k=tf.constant(10),
                                                    exclude_item_ids=padded)
    ids = _ids(out["item_ids"])
    assert ids.shape == (5, 10)
    for row in range(5):
        assert not set(ids[row]) & set(excluded[row])
        # What remains is the unexcluded part of the plain ranking, in order.
        expected = [i for i in ranking[row] if i not in set(excluded[row])][:10]
        assert ids[row].tolist() == expected
    assert (out["scores"].numpy() > -1e8).all()


def test_k_larger_than_catalog_is_clipped(served, trained_tiny, catalog_ids):
    users = _users(trained_tiny["prepared"], n=2, unknown=True)
    out = served.signatures["recommend"](**users, k=tf.constant(10_000))
    ids = _ids(out["item_ids"])
    assert ids.shape == (2, len(catalog_ids))
    for row in ids:
        assert sorted(row) == sorted(catalog_ids)
    excluding = served.signatures["recommend_excluding"](
        **users, k=tf.constant(10_000), exclude_item_ids=tf.constant([[""], [""]]))
    assert excluding["item_ids"].shape == (2, len(catalog_ids))
