"""What a serving request looks like: inputs per signature, and examples.

`request_format` describes each signature's inputs from the schema (what
`assets.extra/schema.json` lists); `request_examples` builds one request per
signature from a real row and catalog ids: the REST examples of `schema.json`
and, as tensors (`as_tensors`), the TF Serving warmup records.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from mtl_tf.schema import Feature, Schema

_DTYPES = {"string": tf.string, "int64": tf.int64, "float32": tf.float32,
           "bool": tf.bool}


def feature_spec(feature: Feature) -> tf.TensorSpec:
    """The serving input of one schema feature."""
    if feature.is_list:  # Padded with "" (time gaps: float32, with 0).
        return tf.TensorSpec([None, None], _DTYPES[feature.dtype],
                             name=feature.name)
    return tf.TensorSpec([None], _DTYPES[feature.dtype], name=feature.name)


def request_format(schema: Schema, with_retrieval: bool) -> dict:
    """The request format of each signature, as written to `schema.json`."""
    def describe(feature: Feature) -> dict:
        spec = feature_spec(feature)
        return {"name": feature.name, "side": feature.side, "kind": feature.kind,
                "dtype": spec.dtype.name, "shape": [None if d is None else d
                                                    for d in spec.shape.as_list()]}

    query = [describe(f) for f in schema.query_features]
    item = [describe(schema.item_id)] if schema.item_id is not None else []
    signatures = {"serving_default": query + item}
    if with_retrieval:
        k = {"name": "k", "dtype": "int32", "shape": []}
        exclude = {"name": "exclude_item_ids", "dtype": "string",
                   "shape": [None, None]}
        signatures["recommend"] = query + [k]
        signatures["recommend_excluding"] = query + [k, exclude]
    return signatures


def request_examples(schema: Schema, with_retrieval: bool, example: Mapping,
                     default_k: int, catalog_ids) -> dict[str, dict[str, list]]:
    """One request per signature, in the columnar "inputs" format (batch 1).

    Feature values come from `example` (a real row's), else a neutral value of
    the feature's type; the item id and the excluded id are real catalog ids.
    They are the REST examples of `schema.json` and the warmup requests.
    """
    catalog = [str(i) for i in catalog_ids[:1]] or [""]
    neutral = {"string": "", "int64": 0, "float32": 0.0, "bool": False}

    def value(feature: Feature) -> list:
        if feature.name in example:
            found = example[feature.name]
        elif schema.item_id is not None and feature.name == schema.item_id.name:
            found = catalog[0]
        else:
            found = [] if feature.is_list else neutral[feature.dtype]
        if feature.is_list:
            found = [str(v) for v in found] or [""]
        return [found]

    out = {}
    for signature, specs in request_format(schema, with_retrieval).items():
        inputs = {}
        for spec in specs:
            if spec["name"] == "k":
                inputs["k"] = default_k
            elif spec["name"] == "exclude_item_ids":
                inputs["exclude_item_ids"] = [catalog]
            else:
                inputs[spec["name"]] = value(schema[spec["name"]])
        out[signature] = inputs
    return out


def as_tensors(schema: Schema, requests: Mapping[str, Mapping[str, list]]
                ) -> dict[str, dict[str, np.ndarray]]:
    """`request_examples` as numpy arrays typed like the signatures' inputs."""
    def array(name: str, values) -> np.ndarray:
        if name == "k":
            return np.int32(values)
        if name == "exclude_item_ids":
            return np.asarray(values, object)
        dtype = feature_spec(schema[name]).dtype
        return np.asarray(values, object if dtype == tf.string else
                          dtype.as_numpy_dtype)

    return {signature: {name: array(name, values) for name, values in inputs.items()}
            for signature, inputs in requests.items()}


def schema_document(schema: Schema, model_name: str, with_retrieval: bool,
                     requests: Mapping[str, dict]) -> dict:
    """`assets.extra/schema.json`: the schema, each signature's inputs and REST
    request examples (the columnar "inputs" format)."""
    url = f"http://localhost:8501/v1/models/{model_name}:predict"
    return {"schema": schema.to_dict(),
            "signatures": request_format(schema, with_retrieval),
            "rest_url": url,
            "rest_examples": {name: {"signature_name": name, "inputs": inputs}
                              for name, inputs in requests.items()},
            "notes": ["Unknown categorical values and ids map to OOV rows; send "
                      "NaN for a missing number (TF Serving's JSON accepts the "
                      "NaN literal), it is imputed.",
                      "List features are [batch, n] strings padded with \"\".",
                      "The history (a sequence feature) lists the user's items, "
                      "oldest first; unknown ids are ignored, so a new user's "
                      "session personalises their results. Parallel lists "
                      "(sequence features with `values`) are aligned with it "
                      "event by event; time gaps are seconds, float32."]}


__all__ = ["as_tensors", "feature_spec", "request_examples", "request_format",
           "schema_document"]
