"""SavedModel export laid out for TF Serving: `<base>/<model_name>/<version>/`.

Signatures (inputs use the TFDS feature names and dtypes):
- `serving_default`: user features + `movie_id` -> one output per task
  (`rating`, `like`, ..., and `retrieval`, the two-tower cosine score).
- `recommend`: user features + `k` -> `item_ids` [batch, k] and `scores`.
- `recommend_excluding`: as `recommend`, plus `exclude_item_ids` [batch, n]
  (pad with "") never to recommend, e.g. what the user already rated. When fewer
  than k items remain, the empty slots have id "" and score `EXCLUDED_SCORE`.

Item representations of the whole catalog are computed at export time and baked in
as constants, so serving needs only stock TensorFlow ops and runs no item tower: no
tensorflow-text op and no transformer pass, even when the model fine-tuned a
pretrained text encoder. Unknown user ids use OOV embedding rows; unknown item ids
use the representation of an unknown item. The export is written to a temporary
directory and renamed into place, so a crash never leaves a half-written version.

`export_item_encoder` writes a separate, optional SavedModel for cold-start items
(a model with a fine-tuned text encoder only): raw title text and genres in, item
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

import tensorflow as tf

from mtl_tf import features as F
from mtl_tf.model.multitask import MultiTaskRecommender
from mtl_tf.model.towers import UNKNOWN_ITEM_ID

# Score of excluded items; finite so TF Serving's JSON responses stay valid.
EXCLUDED_SCORE = -1e9

_USER_SPECS = {
    F.USER_ID: tf.TensorSpec([None], tf.string, name=F.USER_ID),
    F.USER_AGE: tf.TensorSpec([None], tf.float32, name=F.USER_AGE),
    F.USER_GENDER: tf.TensorSpec([None], tf.bool, name=F.USER_GENDER),
    F.USER_OCCUPATION: tf.TensorSpec([None], tf.int64, name=F.USER_OCCUPATION),
}


class ServingModule(tf.Module):
    """The exported object: the model's variables plus the baked item catalog."""

    def __init__(self, model: MultiTaskRecommender, default_k: int = 10):
        super().__init__()
        # Track only what serving runs (not the TFRS tasks and their metrics).
        self.query_tower = model.query_tower
        self.ranking_network = model.ranking_network
        self._outputs = model._outputs
        catalog = model.catalog
        # Row 0 is the unknown item, rows 1.. the catalog in order.
        unknown = model.candidate_tower(tf.constant([UNKNOWN_ITEM_ID]))
        known = model.candidate_tower(catalog.catalog_ids)
        self.item_representations = tf.constant(tf.concat([unknown, known], 0))
        self.item_embeddings = tf.math.l2_normalize(self.item_representations, -1)
        self.catalog_ids = catalog.catalog_ids
        self.catalog_rows = catalog._table
        self.default_k = default_k

    def _user(self, features):
        return self.query_tower(features, training=False)

    def serve(self, features):
        user = self._user(features)
        rows = self.catalog_rows.lookup(features[F.ITEM_ID])
        item = tf.gather(self.item_representations, rows)
        return self._outputs(user, item, training=False)

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

    def recommend_excluding(self, features, k, exclude_item_ids):
        return self._top_k(features, k, exclude_item_ids)


def next_version(model_dir: Path) -> int:
    """1 + the largest integer version directory under `model_dir` (1 if none)."""
    versions = [int(p.name) for p in model_dir.glob("*") if p.name.isdigit()]
    return max(versions, default=0) + 1


def export_saved_model(model: MultiTaskRecommender, export_dir: str | Path,
                       model_name: str, *, version: int | None = None,
                       default_k: int = 10, assets: dict[str, dict] | None = None
                       ) -> Path:
    """Exports `model` to `<export_dir>/<model_name>/<version>/` atomically.

    Args:
        model: a trained model.
        export_dir: the TF Serving model base path's parent.
        model_name: the TF Serving model name.
        version: integer version; default: one above the largest existing one.
        default_k: recorded in the export's `assets.extra/export.json`.
        assets: JSON documents (e.g. the resolved config and test metrics) written
            to `assets.extra/<name>.json` inside the export.

    Returns:
        The final version directory.
    """
    module = ServingModule(model, default_k)
    signatures = {
        "serving_default": _named_inputs(module.serve, with_item=True),
        "recommend": _named_inputs(module.recommend, with_k=True),
        "recommend_excluding": _named_inputs(module.recommend_excluding, with_k=True,
                                             with_exclude=True),
    }
    return _save_atomically(module, signatures, Path(export_dir) / model_name,
                            version, assets, {"default_k": default_k})


class ItemEncoderModule(tf.Module):
    """The cold-start item encoder: the candidate tower on raw titles and genres.

    New items get the unknown-item id row, as in the main model, plus their own
    title (tokenized in-graph by the keras-hub tokenizer) and genres.
    """

    def __init__(self, model: MultiTaskRecommender):
        super().__init__()
        tower = model.candidate_tower
        title_encoder = tower.title_encoder
        if title_encoder is None or title_encoder.tokenizer is None:
            raise ValueError(
                "export_item_encoder needs a model whose candidate tower runs its "
                "text encoder (model.text_encoder_mode='finetune' or "
                "'finetune_top_n' with a pretrained model.text_encoder); a frozen "
                "encoder's titles are a cache of the known catalog only.")
        self.candidate_tower = tower
        # Tracked so its vocabulary resources are saved with the graph.
        self.tokenizer = title_encoder.tokenizer

    def encode(self, titles: tf.Tensor, genres: tf.Tensor) -> dict[str, tf.Tensor]:
        tower = self.candidate_tower
        tokens = tower.title_encoder.tokenize(titles)
        count = tf.shape(titles)[0]
        genres = tf.cast(genres, tf.int64)
        valid = (genres >= 0) & (genres < F.NUM_GENRES)
        # one_hot of -1 is all zeros: padding and unknown genre ids drop out.
        multi_hot = tf.minimum(tf.reduce_sum(tf.one_hot(
            tf.where(valid, genres, -1), F.NUM_GENRES), axis=1), 1.0)
        side = {"rows": tf.ones([count], tf.int64), "genres": multi_hot,
                "text_token_ids": tokens["token_ids"],
                "text_padding_mask": tokens["padding_mask"]}
        id_rows = tower.id_lookup(tf.fill([count], UNKNOWN_ITEM_ID))
        representation = tower.encode(id_rows, side, training=False)
        return {"representation": representation,
                "embedding": tf.math.l2_normalize(representation, -1)}


def export_item_encoder(model: MultiTaskRecommender, export_dir: str | Path,
                        model_name: str, *, version: int | None = None,
                        assets: dict[str, dict] | None = None) -> Path:
    """Exports the cold-start item encoder to `<export_dir>/<model_name>/<version>/`.

    One signature, `encode_items` (also `serving_default`):
    - `movie_title`: string [n], raw titles;
    - `movie_genres`: int64 [n, m] genre ids (`features.GENRES` indices), padded
      with -1; pass shape [n, 0] when genres are unknown.
    Outputs `representation` [n, dim] (the candidate tower's output, what the
    ranking heads take) and `embedding` (its unit-norm retrieval embedding, the
    item side of the main export's `retrieval` cosine score). Every item is
    treated as new (the unknown-item id row), so a known item's embedding here
    equals the main model's only if the item was cold in training.

    Needs a model with a fine-tuned text encoder (`model.text_encoder_mode`
    "finetune" or "finetune_top_n"). The graph holds the keras-hub tokenizer's
    tensorflow-text ops: load it where `tensorflow_text` is importable
    (`import tensorflow_text` before `tf.saved_model.load`), not in stock TF
    Serving. Written atomically like `export_saved_model`.

    Returns:
        The final version directory.
    """
    module = ItemEncoderModule(model)

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name=F.ITEM_TITLE),
        tf.TensorSpec([None, None], tf.int64, name=F.ITEM_GENRES)])
    def encode_items(movie_title, movie_genres):
        return module.encode(movie_title, movie_genres)

    function = encode_items.get_concrete_function()
    signatures = {"serving_default": function, "encode_items": function}
    return _save_atomically(module, signatures, Path(export_dir) / model_name,
                            version, assets, {"needs": ["tensorflow_text"]})


def _save_atomically(module: tf.Module, signatures: dict, model_dir: Path,
                     version: int | None, assets: dict[str, dict] | None,
                     export_info: dict) -> Path:
    """Saves to a temporary directory in `model_dir`, then renames it to the
    version directory; assets go to `assets.extra/<name>.json`."""
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
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _named_inputs(method, *, with_item=False, with_k=False, with_exclude=False):
    """A concrete function whose inputs are flat named tensors (no nested dict)."""
    specs = dict(_USER_SPECS)
    if with_item:
        specs[F.ITEM_ID] = tf.TensorSpec([None], tf.string, name=F.ITEM_ID)
    if with_k:
        specs["k"] = tf.TensorSpec([], tf.int32, name="k")
    if with_exclude:
        specs["exclude_item_ids"] = tf.TensorSpec([None, None], tf.string,
                                                  name="exclude_item_ids")

    @tf.function(input_signature=[specs])
    def call(inputs):
        features = {k: v for k, v in inputs.items() if k in _USER_SPECS}
        if with_item:
            features[F.ITEM_ID] = inputs[F.ITEM_ID]
            return method(features)
        if with_exclude:
            return method(features, inputs["k"], inputs["exclude_item_ids"])
        return method(features, inputs["k"])

    return call.get_concrete_function()
