"""Scores a trained `MultiTaskRecommender` on a split: task metrics and hit rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from mtl_tf import evaluation
from mtl_tf import features as F
from mtl_tf.data.dataset import RecDataset
from mtl_tf.data.pipeline import MODEL_FEATURES, make_dataset
from mtl_tf.model.multitask import MultiTaskRecommender
from mtl_tf.task_config import conditional_output_name


def user_feature_arrays(data: RecDataset) -> dict[str, np.ndarray]:
    """Query-tower inputs for every user of `data.users`, in table order."""
    users = data.users
    return {F.USER_ID: users[F.USER_ID].astype(str).to_numpy(),
            F.USER_AGE: users[F.USER_AGE].to_numpy(np.float32),
            F.USER_GENDER: users[F.USER_GENDER].to_numpy(bool),
            F.USER_OCCUPATION: users[F.USER_OCCUPATION].to_numpy(np.int64)}


def embed_users(model: MultiTaskRecommender, data: RecDataset,
                batch_size: int = 8192) -> np.ndarray:
    """Retrieval embeddings of all users of `data.users`, [num_users, dim]."""
    dataset = tf.data.Dataset.from_tensor_slices(user_feature_arrays(data))
    return np.concatenate([_embed_users(model, b).numpy()
                           for b in dataset.batch(batch_size)])


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
    inputs = {k: v for k, v in arrays.items() if k in MODEL_FEATURES}
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
                      ks: tuple[int, ...] = (10, 100)) -> dict[str, float]:
    """Hit rate@k over the whole catalog, seen items excluded and not excluded.

    Keys: `hit_rate_at_<k>` (the user's `seen_interactions` items are excluded from
    the ranking, the main protocol) and `hit_rate_at_<k>_seen_included` (TFRS
    `FactorizedTopK`'s protocol).
    """
    user_vectors = embed_users(model, data)
    item_vectors = embed_items(model, data.items[F.ITEM_ID].astype(str).to_numpy())
    return hit_rate_metrics(lambda users: user_vectors[users] @ item_vectors.T,
                            data, seen_interactions, test, ks)


def hit_rate_metrics(score_fn, data: RecDataset, seen_interactions: pd.DataFrame,
                     test: pd.DataFrame, ks: tuple[int, ...] = (10, 100)
                     ) -> dict[str, float]:
    """Hit rates of any scorer (users x catalog) under both protocols.

    Ties count as a uniformly random order among the tied items (`ties="average"`),
    so a model that gives many items one score (e.g. the shared OOV vector of
    cold items) gets no credit for the tie.
    """
    test_users = index_of(test[F.USER_ID], data.users[F.USER_ID])
    test_items = index_of(test[F.ITEM_ID], data.items[F.ITEM_ID])
    keep = (test_users >= 0) & (test_items >= 0)
    seen = evaluation.SeenItems(
        index_of(seen_interactions[F.USER_ID], data.users[F.USER_ID]),
        index_of(seen_interactions[F.ITEM_ID], data.items[F.ITEM_ID]),
        num_users=data.num_users, num_items=data.num_items)
    excluded = evaluation.hit_rates(score_fn, test_users[keep], test_items[keep],
                                    num_items=data.num_items, seen=seen, ks=ks,
                                    ties="average")
    included = evaluation.hit_rates(score_fn, test_users[keep], test_items[keep],
                                    num_items=data.num_items, seen=None, ks=ks,
                                    ties="average")
    out = dict(excluded)
    out.update({f"{k}_seen_included": v for k, v in included.items()})
    return out


def task_metrics(model: MultiTaskRecommender, arrays: dict[str, np.ndarray]
                 ) -> dict[str, float]:
    """Each ranking task's metrics on example arrays.

    Keys `<task>_<metric>` (RMSE / MAE of regression tasks, AUC / accuracy of
    binary ones, micro-averaged AUC over all labels of multilabel ones). Tasks on
    the "interactions" space are scored on rows with `watch` = 1 only; an ESMM
    task also reports its conditional probability's AUC on those rows
    (`<task>_given_<parent>_auc`, the paper's CVR AUC).
    """
    outputs = predict(model, arrays)
    watched = arrays.get(F.WATCH, np.ones(len(arrays[F.ITEM_ID]), np.float32)) > 0
    metrics: dict[str, float] = {}
    for task in model.task_configs:
        if task.type == "retrieval":
            continue
        rows = watched if task.space == "interactions" else slice(None)
        if task.type == "multilabel":
            labels = model.catalog(tf.constant(arrays[F.ITEM_ID][rows]))["genres"]
            labels = labels.numpy().ravel()
            predictions = outputs[task.name][rows].ravel()
        else:
            labels, predictions = arrays[task.label][rows], outputs[task.name][rows]
        for metric in task.metrics:
            metrics[f"{task.name}_{metric}"] = _METRICS[metric](labels, predictions)
        if task.depends_on:
            name = conditional_output_name(task)
            metrics[f"{name}_auc"] = evaluation.roc_auc(arrays[task.label][watched],
                                                        outputs[name][watched])
    return metrics



_METRICS = {"rmse": evaluation.rmse, "mae": evaluation.mae,
            "auc": evaluation.roc_auc, "accuracy": evaluation.accuracy}
