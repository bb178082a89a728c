"""TF Serving's operations files: warmup records replayed as the server does at
load time, in a plain-TensorFlow subprocess, and the server config files."""

import dataclasses
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2
from test_census_income import write_census_income
from test_end_to_end import _clean_env

from mtl_tf import experiment
from mtl_tf.config import apply_overrides, get_preset
from mtl_tf.serving_config import (
    BATCHING,
    MODELS_CONFIG,
    WARMUP_FILE,
    read_warmup,
    write_server_config,
)

# Loads the SavedModel with TensorFlow alone (no mtl_tf), replays every warmup
# record through its signature, and prints each output's shape and values.
REPLAY = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    export = sys.argv[1]
    loaded = tf.saved_model.load(export)
    path = export + "/assets.extra/tf_serving_warmup_requests"
    out = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        result = {}
        for name, value in outputs.items():
            array = value.numpy()
            if array.dtype == object:
                result[name] = [v.decode() for v in array.ravel()]
            else:
                result[name] = {"shape": list(array.shape),
                                "finite": bool(np.isfinite(array).all())}
        out.append({"signature": request.model_spec.signature_name,
                    "model": request.model_spec.name, "outputs": result})
    print(json.dumps(out))
""")


def replay(export) -> list[dict]:
    process = subprocess.run([sys.executable, "-c", REPLAY, str(export)],
                             env=_clean_env(), capture_output=True, text=True,
                             timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_every_signature_replays_its_warmup_record(trained_tiny):
    export = trained_tiny["export"]
    signatures = json.loads((export / "assets.extra" / "export.json").read_text())[
        "signatures"]
    records = replay(export)
    assert sorted(r["signature"] for r in records) == sorted(signatures)
    assert {r["model"] for r in records} == {"mtl_tiny"}
    catalog = set(trained_tiny["prepared"].data.item_ids)
    by_name = {r["signature"]: r["outputs"] for r in records}
    for name in ("rating", "like", "retrieval"):
        assert by_name["serving_default"][name] == {"shape": [1], "finite": True}
    assert len(by_name["recommend"]["item_ids"]) == 10
    assert set(by_name["recommend"]["item_ids"]) <= catalog
    # The warmup's excluded id is a real catalog item, and it is excluded.
    requests = dict(read_warmup(export / "assets.extra" / WARMUP_FILE))
    excluded = requests["recommend_excluding"]["exclude_item_ids"][0, 0].decode()
    assert excluded in catalog
    assert excluded not in by_name["recommend_excluding"]["item_ids"]
    item = requests["serving_default"]["movie_id"][0].decode()
    assert item in catalog


def test_an_itemless_export_replays_its_warmup_record(tmp_path):
    directory = write_census_income(tmp_path / "census", 300, 200)
    config = apply_overrides(get_preset("census_income"), [
        f"data.data_dir={directory}", "train.epochs=1",
        f"export.export_dir={tmp_path / 'saved_models'}"])
    result = experiment.run(config, tmp_path / "run", verbose=0)
    (record,) = replay(result["export"])
    assert record["signature"] == "serving_default"
    assert record["outputs"]["income"] == {"shape": [1], "finite": True}
    assert record["outputs"]["marital"] == {"shape": [1], "finite": True}


def test_the_export_base_gets_models_config_and_batching(trained_tiny, tmp_path):
    base = trained_tiny["export"].parents[1]
    config = text_format.Parse((base / MODELS_CONFIG).read_text(),
                               model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    assert entry.name == "mtl_tiny" and entry.model_platform == "tensorflow"
    assert entry.base_path == str((base / "mtl_tiny").resolve())
    assert entry.model_version_policy.latest.num_versions == 2
    text = (base / "batching_parameters.txt").read_text()
    parsed = dict(re.findall(r"^(\w+) \{ value: (\d+) \}$", text, re.MULTILINE))
    assert {k: int(v) for k, v in parsed.items()} == BATCHING

    # Only directories with a version that stock TF Serving can load are models.
    for name, needs in (("a", None), ("b_item_encoder", ["tensorflow_text"])):
        extra = tmp_path / name / "3" / "assets.extra"
        extra.mkdir(parents=True)
        (extra / "export.json").write_text(json.dumps({"needs": needs} if needs
                                                      else {}))
    (tmp_path / "empty").mkdir()
    write_server_config(tmp_path)
    config = text_format.Parse((tmp_path / MODELS_CONFIG).read_text(),
                               model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in config.model_config_list.config] == ["a"]


@pytest.mark.parametrize("signature", ["serving_default", "recommend"])
def test_schema_json_examples_are_the_warmup_requests(trained_tiny, signature):
    extra = trained_tiny["export"] / "assets.extra"
    rest = json.loads((extra / "schema.json").read_text())["rest_examples"][signature]
    warm = dict(read_warmup(extra / WARMUP_FILE))[signature]
    assert sorted(rest["inputs"]) == sorted(warm)
    def decoded(value):
        if isinstance(value, list):
            return [decoded(v) for v in value]
        return value.decode() if isinstance(value, bytes) else value

    for name, values in rest["inputs"].items():
        assert decoded(warm[name].tolist()) == values, name


def test_the_catalog_is_saved_as_variables_not_graph_constants(trained_tiny):
    from tensorflow.core.protobuf import saved_model_pb2

    export = trained_tiny["export"]
    rows = trained_tiny["prepared"].data.num_items + 1  # + the unknown item
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((export / "saved_model.pb").read_bytes())
    shapes = []
    for graph in proto.meta_graphs:
        nodes = list(graph.graph_def.node)
        for function in graph.graph_def.library.function:
            nodes += list(function.node_def)
        shapes += [[d.size for d in node.attr["value"].tensor.tensor_shape.dim]
                   for node in nodes if node.op == "Const"
                   and node.attr["value"].tensor.dtype == tf.float32.as_datatype_enum]
    # No float matrix with a row per catalog item (+ the unknown) in the graph.
    assert not [s for s in shapes if len(s) == 2 and s[0] == rows], shapes
    variables = tf.train.list_variables(str(export / "variables" / "variables"))
    sizes = {tuple(shape) for _, shape in variables}
    dim = trained_tiny["config"].model.embedding_dim
    assert (rows, dim) in sizes and (rows - 1,) in sizes  # representations, ids



def test_item_embeddings_export_serves_an_external_index(trained_tiny, tmp_path):
    from mtl_tf.export import export_saved_model

    model = trained_tiny["model"]
    export = export_saved_model(model, tmp_path, "ann", item_embeddings=True)
    extra = export / "assets.extra"
    ids = (extra / "item_ids.txt").read_text().splitlines()
    matrix = np.load(extra / "item_embeddings.npy")
    assert ids == list(model.catalog.item_ids)
    assert matrix.dtype == np.float32 and matrix.shape[0] == len(ids)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    # Plain TensorFlow: the warmup replays the new signature too, and an index
    # over the matrix returns recommend's top 10 for the same request.
    records = {r["signature"]: r["outputs"] for r in replay(export)}
    assert records["user_embedding"]["embedding"]["finite"]
    requests = dict(read_warmup(extra / WARMUP_FILE))
    served = tf.saved_model.load(str(export))
    query = {k: tf.constant(v) for k, v in requests["user_embedding"].items()}
    embedding = served.signatures["user_embedding"](**query)["embedding"].numpy()
    top = np.argsort(-(embedding @ matrix.T)[0], kind="stable")[:10]
    assert [ids[i] for i in top] == records["recommend"]["item_ids"]
    with pytest.raises(ValueError, match="needs a retrieval task"):
        export_saved_model(_ranking_only(trained_tiny), tmp_path, "no",
                           item_embeddings=True)


def _ranking_only(trained_tiny):
    """A tiny model without a retrieval task."""
    from mtl_tf.model.builder import build_model

    config = trained_tiny["config"]
    config = dataclasses.replace(config, tasks=tuple(
        t for t in config.tasks if t.type != "retrieval"))
    prepared = trained_tiny["prepared"]
    return build_model(config, prepared.data, prepared.splits.train,
                       prepared.preprocessing)
