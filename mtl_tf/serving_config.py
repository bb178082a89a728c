"""TF Serving's operations files: warmup requests, models.config, batching.

Every export gets, beside its SavedModel:
- `assets.extra/tf_serving_warmup_requests`: a TFRecord file of
  `PredictionLog` protos, one `PredictRequest` per signature built from real
  catalog ids. TF Serving replays them when it loads a version, before it
  serves traffic, so that the first user request does not pay for the lazy
  initialisation of the graph (TF Serving guide, "SavedModel Warmup": at most
  1000 records, in `assets.extra/`).

and the export base directory (`export.export_dir`) gets:
- `models.config`: a `ModelServerConfig` text proto naming every model under
  the base, each with `base_path` and a `latest { num_versions: 2 }` version
  policy (the newest two versions stay loaded, so a rollback is instant);
- `batching_parameters.txt`: a `BatchingParameters` text proto for
  `--enable_batching` (server-side batching of concurrent requests).

Serve them with (TF Serving's documented flags):

    tensorflow_model_server --port=8500 --rest_api_port=8501 \\
        --model_config_file=saved_models/models.config --enable_batching \\
        --batching_parameters_file=saved_models/batching_parameters.txt

The protos come from the `tensorflow-serving-api` package.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import tensorflow as tf

WARMUP_FILE = "tf_serving_warmup_requests"
MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
# Versions TF Serving keeps loaded per model: the newest and the one before.
NUM_VERSIONS = 2
# Defaults for a CPU server: batches of up to 64 requests, waiting at most 2 ms
# for a batch to fill.
BATCHING = {"max_batch_size": 64, "batch_timeout_micros": 2000,
            "max_enqueued_batches": 100, "num_batch_threads": 4}


def warmup_records(model_name: str,
                   requests: Mapping[str, Mapping[str, np.ndarray]]) -> list[bytes]:
    """Serialized `PredictionLog`s, one `PredictRequest` per signature.

    Args:
        model_name: the TF Serving model name.
        requests: signature name -> {input name: value}, values typed as the
            signature's inputs (e.g. `np.array(["1"], object)` for a string
            [batch] input, `np.int32(10)` for `k`).
    """
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    records = []
    for signature, inputs in requests.items():
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        log = prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())
    return records


def write_warmup(extra_dir: Path, model_name: str,
                 requests: Mapping[str, Mapping[str, np.ndarray]]) -> Path:
    """Writes `extra_dir/tf_serving_warmup_requests` (see `warmup_records`)."""
    path = Path(extra_dir) / WARMUP_FILE
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in warmup_records(model_name, requests):
            writer.write(record)
    return path


def read_warmup(path: str | os.PathLike
                ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Yields (signature name, {input name: numpy value}) of each warmup record,
    what TF Serving sends at load time."""
    from tensorflow_serving.apis import prediction_log_pb2

    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        yield request.model_spec.signature_name, {
            name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}


def write_server_config(export_base: str | os.PathLike) -> tuple[Path, Path]:
    """(Re)writes `models.config` and `batching_parameters.txt` in the export
    base: every subdirectory holding a numbered version is a model (but not
    one that needs ops stock TF Serving lacks).

    Returns:
        The two paths.
    """
    base = Path(export_base)
    models = sorted(d for d in base.iterdir() if _servable(d))
    entries = "".join(
        "  config {\n"
        f"    name: \"{model.name}\"\n"
        f"    base_path: \"{model.resolve()}\"\n"
        "    model_platform: \"tensorflow\"\n"
        f"    model_version_policy {{ latest {{ num_versions: {NUM_VERSIONS} }} }}\n"
        "  }\n" for model in models)
    config = _write_text(base / MODELS_CONFIG,
                         "model_config_list {\n" + entries + "}\n")
    batching = _write_text(base / BATCHING_PARAMETERS, "".join(
        f"{key} {{ value: {value} }}\n" for key, value in BATCHING.items()))
    return config, batching


def _servable(model_dir: Path) -> bool:
    """A model directory with a version stock TF Serving can load (the
    cold-start item encoder's export needs tensorflow-text ops: left out)."""
    if not model_dir.is_dir():
        return False
    versions = [v for v in model_dir.iterdir() if v.name.isdigit()]
    if not versions:
        return False
    info = max(versions, key=lambda v: int(v.name)) / "assets.extra" / "export.json"
    return not (info.is_file() and json.loads(info.read_text()).get("needs"))


def _write_text(path: Path, text: str) -> Path:
    """Writes beside `path`, then renames: a server never reads half a file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)
    return path


__all__ = ["BATCHING_PARAMETERS", "MODELS_CONFIG", "WARMUP_FILE", "read_warmup",
           "warmup_records", "write_server_config", "write_warmup"]
