"""Scores a trained `MultiTaskRecommender` on a split: task metrics and hit rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from mtl_tf import evaluation
from mtl_tf.data.dataset import RecDataset
from mtl_tf.data.pipeline import (
    make_dataset,
    model_input_names,
    raw_arrays,
    task_weight_key,
)
from mtl_tf.model.multitask import MultiTaskRecommender
from mtl_tf.task_config import conditional_output_name


def query_arrays(data: RecDataset, interactions: pd.DataFrame,
                 arrays: dict[str, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The distinct users of `interactions` and each one's query features: the
    user, context and history features of the user's first row in `arrays`
    (the split's example arrays), or, for a schema without a history, of their
    first row in `interactions`.

    Raises:
        ValueError: a schema with a history and no `arrays` (a row's history
            depends on its split), or a user without a row in `arrays`.
    """
    user_key = data.schema.user_id.name
    users = pd.unique(interactions[user_key].astype(str))
    if arrays is None:
        if data.schema.sequence is not None and data.schema.sequence.is_derived:
            raise ValueError("query_arrays: the schema has a history feature, "
                             "which depends on the split; pass the split's "
                             "example arrays (PreparedData.arrays[split]).")
        first = interactions.drop_duplicates(user_key, keep="first")
        arrays = raw_arrays(data, first, ())
    first = pd.Series(arrays[user_key]).astype(str).drop_duplicates()
    rows = pd.Index(first.to_numpy()).get_indexer(users)
    if (rows < 0).any():
        raise ValueError("query_arrays: some users of `interactions` have no row "
                         "in `arrays`; pass the arrays of the same split.")
    rows = first.index.to_numpy()[rows]
    names = [f.name for f in data.schema.query_features]
    return users, {n: arrays[n][rows] for n in names}


def embed_queries(model: MultiTaskRecommender, arrays: dict[str, np.ndarray],
                  batch_size: int = 8192) -> np.ndarray:
    """Retrieval embeddings of query feature arrays, [rows, dim]."""
    return np.concatenate([_embed_users(model, b).numpy()
                           for b in make_dataset(arrays, batch_size)])


def embed_items(model: MultiTaskRecommender, item_ids: np.ndarray,
                batch_size: int = 8192) -> np.ndarray:
    """Retrieval embeddings of `item_ids`, [len(item_ids), dim]."""
    chunks = [_embed_items(model, tf.constant(item_ids[i:i + batch_size]))
              for i in range(0, len(item_ids), batch_size)]
    return np.concatenate([c.numpy() for c in chunks])


@tf.function(reduce_retracing=True)
def _embed_users(model, features):
    return model.user_embeddings(features)


@tf.function(reduce_retracing=True)
def _embed_items(model, item_ids):
    return model.item_embeddings(item_ids)


@tf.function(reduce_retracing=True)
def _predict(model, features):
    return model(features, training=False)


def predict(model: MultiTaskRecommender, arrays: dict[str, np.ndarray],
            batch_size: int = 8192) -> dict[str, np.ndarray]:
    """Every model output (one per task) for example arrays, as numpy."""
    names = model_input_names(model.schema)
    inputs = {k: v for k, v in arrays.items() if k in names}
    outputs: dict[str, list[np.ndarray]] = {}
    for batch in make_dataset(inputs, batch_size):
        for name, value in _predict(model, batch).items():
            outputs.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(values) for name, values in outputs.items()}


def index_of(values: pd.Series, table_ids: pd.Series) -> np.ndarray:
    """Positions of `values` in `table_ids` (both id columns); -1 if absent."""
    lookup = pd.Index(table_ids.astype(str))
    return lookup.get_indexer(values.astype(str))


def retrieval_metrics(model: MultiTaskRecommender, data: RecDataset,
                      seen_interactions: pd.DataFrame, test: pd.DataFrame,
                      test_arrays: dict[str, np.ndarray] | None = None,
                      ks: tuple[int, ...] = (10, 100)) -> dict[str, float]:
    """Hit rate@k over the whole catalog, seen items excluded and not excluded.

    `test` holds the test retrieval positives and `seen_interactions` the
    training and validation ones. Each test user is embedded once, with the
    user, context and history features of their first row in `test_arrays`
    (the test split's example arrays; see `query_arrays`). Keys: `hit_rate_at_<k>`
    (the user's seen items are excluded from the ranking, the main protocol)
    and `hit_rate_at_<k>_seen_included` (TFRS `FactorizedTopK`'s protocol).
    """
    users, arrays = query_arrays(data, test, test_arrays)
    user_vectors = embed_queries(model, arrays)
    item_vectors = embed_items(model, data.item_ids)
    return hit_rate_metrics(lambda rows: user_vectors[rows] @ item_vectors.T,
                            data, seen_interactions, test, ks, users=users)


def hit_rate_metrics(score_fn, data: RecDataset, seen_interactions: pd.DataFrame,
                     test: pd.DataFrame, ks: tuple[int, ...] = (10, 100), *,
                     users: np.ndarray | None = None) -> dict[str, float]:
    """Hit rates of any scorer (users x catalog) under both protocols.

    `score_fn` maps indices into `users` (default: the ids of `data.users`) to
    scores over `data.items`. Ties count as a uniformly random order among the
    tied items (`ties="average"`), so a model that gives many items one score
    (e.g. the shared OOV vector of cold items) gets no credit for the tie.
    """
    user_key, item_key = data.schema.user_id.name, data.schema.item_id.name
    users = pd.Series(data.users[user_key] if users is None else users)
    items = pd.Series(data.item_ids)
    test_users = index_of(test[user_key], users)
    test_items = index_of(test[item_key], items)
    keep = (test_users >= 0) & (test_items >= 0)
    seen_users = index_of(seen_interactions[user_key], users)
    seen_items = index_of(seen_interactions[item_key], items)
    known = (seen_users >= 0) & (seen_items >= 0)
    seen = evaluation.SeenItems(seen_users[known], seen_items[known],
                                num_users=len(users), num_items=len(items))
    excluded = evaluation.hit_rates(score_fn, test_users[keep], test_items[keep],
                                    num_items=len(items), seen=seen, ks=ks,
                                    ties="average")
    included = evaluation.hit_rates(score_fn, test_users[keep], test_items[keep],
                                    num_items=len(items), seen=None, ks=ks,
                                    ties="average")
    out = dict(excluded)
    out.update({f"{k}_seen_included": v for k, v in included.items()})
    return out


def task_metrics(model: MultiTaskRecommender, arrays: dict[str, np.ndarray]
                 ) -> dict[str, float]:
    """Each ranking task's metrics on example arrays, over the whole split.

    Keys `<task>_<metric>` (RMSE / MAE of regression tasks, AUC / accuracy of
    binary ones, micro-averaged AUC over all labels of multilabel ones), each on
    the rows the task's `where` selects. Every binary task also reports
    `<task>_calibration` (mean predicted / mean observed) and, when the schema
    has a user id, `<task>_gauc` (per-user AUC weighted by impressions) with
    `<task>_gauc_users` (the users with both classes it averages over). An ESMM
    task also reports its conditional probability's AUC on its parent's
    positive rows (`<task>_given_<parent>_auc`, the paper's CVR AUC; the task's
    own AUC is the CTCVR AUC, its parent's the CTR AUC).
    """
    outputs = predict(model, arrays)
    by_name = {t.name: t for t in model.task_configs}
    user_key = model.schema.user_id.name if model.schema.user_id else None
    metrics: dict[str, float] = {}
    for task in model.task_configs:
        if task.type == "retrieval":
            continue
        rows = arrays[task_weight_key(task)] > 0
        labels, predictions = arrays[task.label][rows], outputs[task.name][rows]
        if task.type == "multilabel":
            labels, predictions = labels.ravel(), predictions.ravel()
        for metric in task.metrics:
            metrics[f"{task.name}_{metric}"] = _METRICS[metric](labels, predictions)
        if task.type == "binary":
            metrics.update(_binary_extras(task.name, labels, predictions,
                                          arrays[user_key][rows] if user_key else None))
        if task.depends_on:
            parent = by_name[task.depends_on]
            clicked = arrays[parent.label] > 0
            name = conditional_output_name(task)
            metrics[f"{name}_auc"] = evaluation.roc_auc(arrays[task.label][clicked],
                                                        outputs[name][clicked])
    return metrics


def _binary_extras(name: str, labels: np.ndarray, probabilities: np.ndarray,
                   users: np.ndarray | None) -> dict[str, float]:
    """Calibration, and with a user key GAUC and the users it averages over; a
    split without positives (or without a user holding both classes) has none."""
    out = {}
    if labels.any():
        out[f"{name}_calibration"] = evaluation.calibration(labels, probabilities)
    if users is not None:
        gauc, groups = evaluation.group_auc(users, labels, probabilities)
        if groups:
            out[f"{name}_gauc"], out[f"{name}_gauc_users"] = gauc, float(groups)
    return out


_METRICS = {"rmse": evaluation.rmse, "mae": evaluation.mae,
            "auc": evaluation.roc_auc, "accuracy": evaluation.accuracy}
