"""SavedModel export laid out for TF Serving: `<base>/<model_name>/<version>/`.

Signatures are built from the schema: their inputs are the schema's user and
context features, named and typed as declared (categorical and id features in
their dtype, numeric float32, text strings, multi_categorical lists as string
[batch, n] padded with "").
- `serving_default`: those features + the item id -> one output per task
  (and `retrieval`, the two-tower cosine score, when there is a retrieval task).
  Without an item key in the schema it takes the query features alone.
- `recommend` (retrieval only): the query features + `k` -> `item_ids`
  [batch, k] and `scores`.
- `recommend_excluding`: as `recommend`, plus `exclude_item_ids` [batch, n]
  (pad with "") never to recommend, e.g. what the user already rated. When fewer
  than k items remain, the empty slots have id "" and score `EXCLUDED_SCORE`.
- `user_embedding` (with `item_embeddings=True`): the query features ->
  `embedding` [batch, dim], unit norm, for an external nearest-neighbour index
  over `assets.extra/item_embeddings.npy` (ids in `item_ids.txt`).

Item representations of the whole catalog are computed at export time and saved
as variables (not graph constants, so the GraphDef stays small), so serving
needs only stock TensorFlow ops and runs no item tower: no
tensorflow-text op and no transformer pass, even when the model fine-tuned a
pretrained text encoder. Unknown categorical values and ids use OOV rows, missing
numbers are imputed; unknown item ids use the representation of an unknown item.
`assets.extra/schema.json` documents the request format with a REST example
(`mtl_tf.request_format`), and
`assets.extra/tf_serving_warmup_requests` holds the same requests for TF Serving
to replay at load time; the export base gets `models.config` and
`batching_parameters.txt` (`mtl_tf.serving_config`). The export is written to a
temporary directory and renamed into place, so a crash never leaves a
half-written version.

`export_item_encoder` writes a separate, optional SavedModel for cold-start items
(a model with a fine-tuned text encoder only): raw item features in, item
embeddings out. It tokenizes in-graph, so the server that loads it needs the
tensorflow-text ops (`import tensorflow_text`; stock TF Serving does not have
recent ones, DESIGN.md section 2).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import tensorflow as tf

from mtl_tf.model.encoders import as_string
from mtl_tf.model.multitask import MultiTaskRecommender
from mtl_tf.model.towers import UNKNOWN_ITEM_ID
from mtl_tf.request_format import (
    as_tensors,
    feature_spec,
    request_examples,
    schema_document,
)
from mtl_tf.schema import Feature
from mtl_tf.serving_config import write_server_config, write_warmup

# Score of excluded items; finite so TF Serving's JSON responses stay valid.
EXCLUDED_SCORE = -1e9


class ServingModule(tf.Module):
    """The exported object: the model's variables plus the catalog's item
    representations, ids and embeddings as non-trainable variables."""

    def __init__(self, model: MultiTaskRecommender, default_k: int = 10):
        super().__init__()
        # Track only what serving runs (not the TFRS tasks and their metrics).
        self.query_tower = model.query_tower
        self.ranking_network = model.ranking_network
        self.target_attention = model.target_attention
        self._outputs = model._outputs
        self.item_key = model.item_key
        self.default_k = default_k
        self.item_representations = None
        if model.candidate_tower is not None:
            catalog = model.catalog
            # Row 0 is the unknown item, rows 1.. the catalog in order.
            unknown = model.candidate_tower(tf.constant([UNKNOWN_ITEM_ID]))
            known = model.candidate_tower(catalog.catalog_ids)
            # Variables, not graph constants: the GraphDef stays small whatever
            # the catalog size (protocol buffers stop at 2 GB).
            representations = tf.concat([unknown, known], 0)
            self.item_representations = tf.Variable(
                representations, trainable=False, name="item_representations")
            self.item_embeddings = tf.Variable(
                tf.math.l2_normalize(representations, -1), trainable=False,
                name="item_embeddings")
            self.catalog_ids = tf.Variable(catalog.catalog_ids, trainable=False,
                                           name="catalog_ids")
            self.catalog_rows = catalog._table

    def _user(self, features):
        return self.query_tower(features, training=False)

    def serve(self, features):
        user = self._user(features)
        item = None
        if self.item_representations is not None:
            rows = self.catalog_rows.lookup(as_string(features[self.item_key]))
            item = tf.gather(self.item_representations, rows)
        return self._outputs(user, item, features, training=False)

    def _top_k(self, features, k, exclude):
        queries = tf.math.l2_normalize(self._user(features), -1)
        scores = tf.matmul(queries, self.item_embeddings[1:], transpose_b=True)
        if exclude is not None:
            # Excluded ids -> catalog rows (0 = not in the catalog, ignored).
            rows = self.catalog_rows.lookup(exclude)
            batch = tf.broadcast_to(tf.range(tf.shape(rows, tf.int64)[0])[:, None],
                                    tf.shape(rows, tf.int64))
            hit = tf.scatter_nd(tf.stack([tf.reshape(batch, [-1]),
                                          tf.reshape(rows, [-1])], 1),
                                tf.ones_like(tf.reshape(rows, [-1]), tf.float32),
                                tf.stack([tf.shape(rows, tf.int64)[0],
                                          tf.cast(tf.shape(scores)[1] + 1, tf.int64)]))
            scores = tf.where(hit[:, 1:] > 0, tf.fill(tf.shape(scores), EXCLUDED_SCORE),
                              scores)
        k = tf.minimum(tf.maximum(k, 1), tf.shape(scores)[1])
        values, indices = tf.math.top_k(scores, k=k)
        # Fewer than k items left after exclusion: the empty slots get id "".
        ids = tf.where(values > EXCLUDED_SCORE, tf.gather(self.catalog_ids, indices),
                       "")
        return {"item_ids": ids, "scores": values}

    def recommend(self, features, k):
        return self._top_k(features, k, None)

    def user_embedding(self, features):
        """The query's unit-norm retrieval embedding (cosine with an item's
        row of `item_embeddings.npy` is `recommend`'s score)."""
        return {"embedding": tf.math.l2_normalize(self._user(features), -1)}

    def recommend_excluding(self, features, k, exclude_item_ids):
        return self._top_k(features, k, exclude_item_ids)


def next_version(model_dir: Path) -> int:
    """1 + the largest integer version directory under `model_dir` (1 if none)."""
    versions = [int(p.name) for p in model_dir.glob("*") if p.name.isdigit()]
    return max(versions, default=0) + 1


def export_saved_model(model: MultiTaskRecommender, export_dir: str | Path,
                       model_name: str, *, version: int | None = None,
                       default_k: int = 10, assets: dict[str, dict] | None = None,
                       example: dict | None = None,
                       item_embeddings: bool = False) -> Path:
    """Exports `model` to `<export_dir>/<model_name>/<version>/` atomically.

    Args:
        model: a trained model.
        export_dir: the TF Serving model base path's parent.
        model_name: the TF Serving model name.
        version: integer version; default: one above the largest existing one.
        default_k: recorded in the export's `assets.extra/export.json`.
        assets: JSON documents (e.g. the resolved config and test metrics) written
            to `assets.extra/<name>.json` inside the export.
        example: one request's feature values (name -> value), used for the
            REST example in `assets.extra/schema.json`.
        item_embeddings: add a `user_embedding` signature (query features ->
            `embedding` [batch, dim], unit norm) and write the catalog's unit-norm
            item embeddings to `assets.extra/item_embeddings.npy` (float32
            [items, dim]) with their ids, one per line, in
            `assets.extra/item_ids.txt`: the two sides of an external
            nearest-neighbour index. Needs a retrieval task.

    Raises:
        ValueError: `item_embeddings` without a retrieval task.

    Returns:
        The final version directory.
    """
    module = ServingModule(model, default_k)
    schema = model.schema
    query = schema.query_features
    with_retrieval = model.retrieval_task is not None
    signatures = {"serving_default": _named_inputs(
        module.serve, query, item=schema.item_id)}
    if with_retrieval:
        signatures["recommend"] = _named_inputs(module.recommend, query, with_k=True)
        signatures["recommend_excluding"] = _named_inputs(
            module.recommend_excluding, query, with_k=True, with_exclude=True)
    files = {}
    if item_embeddings:
        if not with_retrieval:
            raise ValueError("export.item_embeddings=true exports the retrieval "
                             "embeddings: the model needs a retrieval task.")
        signatures["user_embedding"] = _named_inputs(module.user_embedding, query)
        files = {"item_ids.txt": "".join(f"{i}\n" for i in model.catalog.item_ids),
                 "item_embeddings.npy": module.item_embeddings[1:].numpy()}
    requests = request_examples(schema, with_retrieval, example or {}, default_k,
                                model.catalog.item_ids if model.catalog else ())
    documents = dict(assets or {})
    documents["schema"] = schema_document(schema, model_name, with_retrieval,
                                           requests)
    warmup = as_tensors(schema, requests)
    if item_embeddings:
        warmup["user_embedding"] = warmup["recommend"].copy()
        del warmup["user_embedding"]["k"]
    return _save_atomically(module, signatures, Path(export_dir) / model_name,
                            version, documents, {"default_k": default_k},
                            warmup=warmup, files=files)


class ItemEncoderModule(tf.Module):
    """The cold-start item encoder: the candidate tower on raw item features.

    New items get the unknown-item id row, as in the main model, plus their own
    features, prepared in-graph (text tokenized by the keras-hub tokenizer).
    """

    def __init__(self, model: MultiTaskRecommender):
        super().__init__()
        tower = model.candidate_tower
        title_encoder = None if tower is None else tower.title_encoder
        if title_encoder is None or title_encoder.tokenizer is None:
            raise ValueError(
                "export_item_encoder needs a model whose candidate tower runs its "
                "text encoder (model.text_encoder_mode='finetune' or "
                "'finetune_top_n' with a pretrained model.text_encoder); a frozen "
                "encoder's texts are a cache of the known catalog only.")
        self.candidate_tower = tower
        # Tracked so its vocabulary resources are saved with the graph.
        self.tokenizer = title_encoder.tokenizer

    def encode(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        tower = self.candidate_tower
        count = tf.shape(next(iter(features.values())))[0]
        side = {name: encoder.prepare(features[name])
                for name, encoder in tower.encoders.items()}
        side["rows"] = tf.ones([count], tf.int64)
        id_rows = tower.id_lookup(tf.fill([count], UNKNOWN_ITEM_ID))
        representation = tower.encode(id_rows, side, training=False)
        return {"representation": representation,
                "embedding": tf.math.l2_normalize(representation, -1)}


def export_item_encoder(model: MultiTaskRecommender, export_dir: str | Path,
                        model_name: str, *, version: int | None = None,
                        assets: dict[str, dict] | None = None) -> Path:
    """Exports the cold-start item encoder to `<export_dir>/<model_name>/<version>/`.

    One signature, `encode_items` (also `serving_default`): every item feature
    the candidate tower reads, named and typed as in the schema (text: string
    [n]; multi_categorical: string [n, m] padded with ""; pass shape [n, 0] when
    a list is unknown). Outputs `representation` [n, dim] (the candidate
    tower's output, what the ranking heads take) and `embedding` (its unit-norm
    retrieval embedding, the item side of the main export's `retrieval` cosine
    score). Every item is treated as new (the unknown-item id row), so a known
    item's embedding here equals the main model's only if the item was cold in
    training.

    Needs a model with a fine-tuned text encoder (`model.text_encoder_mode`
    "finetune" or "finetune_top_n"). The graph holds the keras-hub tokenizer's
    tensorflow-text ops: load it where `tensorflow_text` is importable
    (`import tensorflow_text` before `tf.saved_model.load`), not in stock TF
    Serving. Written atomically like `export_saved_model`.

    Returns:
        The final version directory.
    """
    module = ItemEncoderModule(model)
    schema = model.schema
    specs = {name: feature_spec(schema[name])
             for name in module.candidate_tower.encoders}

    @tf.function(input_signature=[specs])
    def encode_items(inputs):
        return module.encode(inputs)

    function = encode_items.get_concrete_function()
    signatures = {"serving_default": function, "encode_items": function}
    return _save_atomically(module, signatures, Path(export_dir) / model_name,
                            version, assets, {"needs": ["tensorflow_text"]})


def _save_atomically(module: tf.Module, signatures: dict, model_dir: Path,
                     version: int | None, assets: dict[str, dict] | None,
                     export_info: dict,
                     warmup: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                     files: Mapping[str, str | np.ndarray] | None = None) -> Path:
    """Saves to a temporary directory in `model_dir`, then renames it to the
    version directory; assets go to `assets.extra/<name>.json`, `warmup`
    requests to `assets.extra/tf_serving_warmup_requests`, `files` (text or a
    numpy array, by name) to `assets.extra/`. Then rewrites the
    base's `models.config` and `batching_parameters.txt`."""
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir) if version is None else int(version)
    final = model_dir / str(version)
    if final.exists():
        raise ValueError(f"Export version {final} already exists; pick another "
                         "version or leave it unset to use the next free one.")
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir))
    try:
        tf.saved_model.save(module, str(staging), signatures=signatures)
        extra = staging / "assets.extra"
        extra.mkdir(exist_ok=True)
        documents = dict(assets or {})
        documents["export"] = {"model_name": model_dir.name, "version": version,
                               **export_info, "signatures": sorted(signatures)}
        for name, document in documents.items():
            (extra / f"{name}.json").write_text(json.dumps(document, indent=2))
        if warmup:
            write_warmup(extra, model_dir.name, warmup)
        for name, content in (files or {}).items():
            if isinstance(content, np.ndarray):
                np.save(extra / name, content)
            else:
                (extra / name).write_text(content)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    write_server_config(model_dir.parent)
    return final


def _named_inputs(method, query: list[Feature], *, item: Feature | None = None,
                  with_k: bool = False, with_exclude: bool = False):
    """A concrete function whose inputs are flat named tensors (no nested dict)."""
    specs = {f.name: feature_spec(f) for f in query}
    if item is not None:
        specs[item.name] = feature_spec(item)
    if with_k:
        specs["k"] = tf.TensorSpec([], tf.int32, name="k")
    if with_exclude:
        specs["exclude_item_ids"] = tf.TensorSpec([None, None], tf.string,
                                                  name="exclude_item_ids")
    names = [f.name for f in query]

    @tf.function(input_signature=[specs])
    def call(inputs):
        features = {name: inputs[name] for name in names}
        if with_exclude:
            return method(features, inputs["k"], inputs["exclude_item_ids"])
        if with_k:
            return method(features, inputs["k"])
        if item is not None:
            features[item.name] = inputs[item.name]
        return method(features)

    return call.get_concrete_function()
