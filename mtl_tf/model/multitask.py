"""The multi-task recommender: two towers, a TFRS retrieval task and ranking tasks."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs

from mtl_tf import features as F
from mtl_tf.config import TaskConfig
from mtl_tf.model.catalog import ItemCatalog
from mtl_tf.model.towers import CandidateTower, QueryTower
from mtl_tf.model.weighting import (
    FixedWeighting,
    GradNorm,
    LossWeighting,
    clip_gradients,
    pcgrad,
)


class CatalogTopK(tfrs.layers.factorized_top_k.TopK):
    """Exact top-k over the whole catalog, embedded with the live candidate tower.

    Used by `FactorizedTopK` at evaluation time: it re-embeds the catalog on every
    call, so metrics always reflect the current weights without re-indexing.
    """

    def __init__(self, embed_items, catalog_ids: tf.Tensor, k: int = 100, **kwargs):
        super().__init__(k=k, **kwargs)
        self._embed_items = embed_items
        self._catalog_ids = catalog_ids

    def index(self, candidates, identifiers=None):
        raise NotImplementedError("CatalogTopK embeds the catalog itself.")

    def index_from_dataset(self, candidates):
        raise NotImplementedError("CatalogTopK embeds the catalog itself.")

    def call(self, queries: tf.Tensor, k: int | None = None):
        scores = tf.matmul(queries, self._embed_items(self._catalog_ids),
                           transpose_b=True)
        values, indices = tf.math.top_k(scores, k=k or self._k)
        # Identified by catalog row (1-based; row 0 is the unknown item).
        return values, tf.cast(indices, tf.int64) + 1

    def is_exact(self) -> bool:
        return True


class MultiTaskRecommender(tfrs.models.Model):
    """Jointly trains two-tower retrieval and named ranking tasks.

    The query and candidate towers form the shared representation. Retrieval scores
    a user-item pair by the cosine of the tower outputs over a temperature, trained
    with a TFRS `Retrieval` task (softmax over in-batch candidates, optionally plus
    `extra_negatives` uniformly sampled catalog items, i.e. mixed negative sampling,
    Yang et al., WWW 2020 companion). The ranking network maps the pair of tower
    outputs to one named output per ranking task; each is trained by a TFRS
    `Ranking` task. A `LossWeighting` combines the task losses (by default the
    tasks' fixed weights); every task's loss is reported as `<task>_loss` and its
    current weight as `<task>_weight`. With `pcgrad`, conflicting task gradients are
    projected (Yu et al., NeurIPS 2020); `clip_norm` clips the global gradient norm.

    Args:
        query_tower, candidate_tower: the towers.
        ranking_network: functional model with inputs "user"/"item" and one output
            per non-retrieval task.
        tasks: the task configs (name, type, label, weight).
        catalog: the item catalog (for extra negatives and evaluation metrics).
        temperature: retrieval softmax temperature.
        extra_negatives: training items sampled uniformly as extra negatives per
            step (0: none).
        logq_correction: correct in-batch logits by the log of each candidate's
            sampling probability (Yi et al., RecSys 2019).
        item_probabilities: per catalog row (row 0 = unknown), the share of training
            interactions; used by `logq_correction`.
        weighting: a `mtl_tf.model.weighting.LossWeighting`; default: the tasks'
            fixed weights.
        pcgrad: apply PCGrad to the per-task gradients.
        clip_norm: clip gradients to this global norm (0: no clipping).
    """

    def __init__(self, query_tower: QueryTower, candidate_tower: CandidateTower,
                 ranking_network: tf.keras.Model, tasks: Sequence[TaskConfig],
                 catalog: ItemCatalog, temperature: float = 0.1,
                 extra_negatives: int = 0, logq_correction: bool = False,
                 item_probabilities: Sequence[float] | None = None,
                 weighting: LossWeighting | None = None, pcgrad: bool = False,
                 clip_norm: float = 0.0):
        super().__init__()
        self.weighting = weighting or FixedWeighting(
            {t.name: t.weight for t in tasks})
        self.pcgrad = pcgrad
        self.clip_norm = clip_norm
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.ranking_network = ranking_network
        self.catalog = catalog
        self.task_configs = tuple(tasks)
        self.extra_negatives = int(extra_negatives)
        self.logq_correction = logq_correction
        probabilities = item_probabilities or [0.0] + [1.0] * catalog.size
        self._log_item_probability = tf.math.log(
            tf.maximum(tf.constant(probabilities, tf.float32), 1e-9))
        # Extra negatives come from items with training interactions only: sampling
        # held-out (cold) items as negatives would teach the model to bury them.
        self._negative_rows = tf.constant(
            [row for row, p in enumerate(probabilities) if row > 0 and p > 0],
            tf.int64)
        self.retrieval_task = None
        self.ranking_tasks = {}
        for task in self.task_configs:
            loss_metric = tf.keras.metrics.Mean(name=f"{task.name}_loss")
            if task.type == "retrieval":
                top_k = min(100, catalog.size)
                self.retrieval_task = tfrs.tasks.Retrieval(
                    loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True),
                    metrics=tfrs.metrics.FactorizedTopK(
                        CatalogTopK(self.item_embeddings, catalog.catalog_ids,
                                    k=top_k),
                        ks=[k for k in (10, 100) if k <= top_k] or [top_k]),
                    loss_metrics=[loss_metric], temperature=temperature,
                    remove_accidental_hits=True, name=task.name)
            elif task.type == "regression":
                self.ranking_tasks[task.name] = tfrs.tasks.Ranking(
                    loss=tf.keras.losses.MeanSquaredError(),
                    metrics=[tf.keras.metrics.RootMeanSquaredError(
                        name=f"{task.name}_rmse")],
                    loss_metrics=[loss_metric], name=task.name)
            else:
                self.ranking_tasks[task.name] = tfrs.tasks.Ranking(
                    loss=tf.keras.losses.BinaryCrossentropy(),
                    metrics=[tf.keras.metrics.AUC(name=f"{task.name}_auc")],
                    loss_metrics=[loss_metric], name=task.name)

    def user_embeddings(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """Unit-norm retrieval embeddings of users."""
        return self._retrieval_embedding(self.query_tower(features))

    def item_embeddings(self, item_ids: tf.Tensor,
                        training: bool = False) -> tf.Tensor:
        """Unit-norm retrieval embeddings of items."""
        return tf.math.l2_normalize(self.candidate_tower(item_ids, training=training),
                                    axis=-1)

    def _retrieval_embedding(self, user_repr: tf.Tensor) -> tf.Tensor:
        return tf.math.l2_normalize(user_repr, axis=-1)

    def call(self, features: dict[str, tf.Tensor], training: bool = False):
        """Ranking outputs (one per ranking task) plus the retrieval score."""
        user = self.query_tower(features)
        item = self.candidate_tower(features[F.ITEM_ID], training=training)
        return self._outputs(user, item, training)

    def _outputs(self, user: tf.Tensor, item: tf.Tensor, training: bool):
        outputs = dict(self.ranking_network({"user": user, "item": item},
                                            training=training))
        if self.retrieval_task is not None:
            outputs[self.retrieval_task.name] = tf.reduce_sum(
                tf.math.l2_normalize(user, -1) * tf.math.l2_normalize(item, -1), -1)
        return outputs

    def task_losses(self, features: dict[str, tf.Tensor], training: bool = False
                    ) -> dict[str, tf.Tensor]:
        """Unweighted loss of every task on a batch (updates the task metrics)."""
        item_ids = features[F.ITEM_ID]
        # Training examples are in their user's history: leave them out of it.
        user = self.query_tower(features,
                                target_item_ids=item_ids if training else None)
        item = self.candidate_tower(item_ids, training=training)
        outputs = self.ranking_network({"user": user, "item": item}, training=training)
        losses = {}
        for task in self.task_configs:
            if task.type == "retrieval":
                losses[task.name] = self._retrieval_loss(user, item, item_ids, training)
            else:
                label = tf.cast(features[task.label], tf.float32)
                losses[task.name] = self.ranking_tasks[task.name](
                    labels=label[:, None], predictions=outputs[task.name][:, None])
        return losses

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False):
        total, _ = self.weighting.combine(self.task_losses(features, training))
        return total

    def shared_variables(self) -> list[tf.Variable]:
        """The last layers every task depends on: the towers' output projections."""
        return [self.query_tower.projection.kernel,
                self.candidate_tower.projection.kernel]

    def train_step(self, features):
        needs_task_gradients = self.pcgrad or isinstance(self.weighting, GradNorm)
        with tf.GradientTape(persistent=needs_task_gradients) as tape:
            losses = self.task_losses(features, training=True)
            loss, weights = self.weighting.combine(losses)
            regularization = tf.add_n(self.losses) if self.losses else 0.0
            total = loss + regularization
            weighted = [weights[n] * losses[n] for n in losses]
            # What the weighting adds beyond w_k * L_k (e.g. uncertainty's log-variance
            # terms) and regularization: not projected by PCGrad.
            rest = total - tf.add_n(weighted)
        variables = self.trainable_variables
        if self.pcgrad:
            grads = pcgrad([tape.gradient(w, variables) for w in weighted])
            extra = tape.gradient(rest, variables,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            grads = [e if g is None else g + e for g, e in zip(grads, extra)]
        else:
            grads = tape.gradient(total, variables)
        if isinstance(self.weighting, GradNorm):
            self.weighting.step(losses, self.shared_variables(), tape)
        del tape
        grads = clip_gradients(grads, self.clip_norm)
        self.optimizer.apply_gradients(
            (g, v) for g, v in zip(grads, variables) if g is not None)
        metrics = {metric.name: metric.result() for metric in self.metrics}
        metrics.update({f"{name}_weight": w for name, w in weights.items()})
        metrics.update(loss=loss, regularization_loss=regularization, total_loss=total)
        return metrics

    def _retrieval_loss(self, user, item, item_ids, training):
        queries = tf.math.l2_normalize(user, axis=-1)
        candidates = tf.math.l2_normalize(item, axis=-1)
        # Integer catalog rows identify candidates: comparing them to remove
        # accidental hits is far cheaper than comparing string ids.
        candidate_ids = self.catalog.rows(item_ids)
        sampling = None
        if self.logq_correction:
            sampling = tf.exp(tf.gather(self._log_item_probability, candidate_ids))
        if self.extra_negatives > 0 and training:
            rows = tf.gather(self._negative_rows, tf.random.uniform(
                [self.extra_negatives], 0, tf.size(self._negative_rows, tf.int64),
                dtype=tf.int64))
            extra_ids = tf.gather(self.catalog.catalog_ids, rows - 1)
            candidates = tf.concat(
                [candidates, self.item_embeddings(extra_ids, training=True)], 0)
            candidate_ids = tf.concat([candidate_ids, rows], 0)
            if sampling is not None:
                pool = tf.cast(tf.size(self._negative_rows), tf.float32)
                uniform = tf.fill([self.extra_negatives], 1.0 / pool)
                sampling = tf.concat([sampling, uniform], 0)
        return self.retrieval_task(
            queries, candidates, candidate_ids=candidate_ids,
            candidate_sampling_probability=sampling,
            compute_metrics=not training, compute_batch_metrics=False)
