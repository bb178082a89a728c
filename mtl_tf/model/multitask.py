"""The multi-task recommender: two towers, a TFRS retrieval task and ranking tasks."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs

from mtl_tf.data.pipeline import task_weight_key
from mtl_tf.model.catalog import ItemCatalog
from mtl_tf.model.encoders import as_string
from mtl_tf.model.history import TargetAttention
from mtl_tf.model.negatives import history_score_mask
from mtl_tf.model.ranking import (
    BODY_LAYER,
    HISTORY_INPUT,
    INTERACTION_LAYER,
    ITEM_INPUT,
    PAIR_TASK_TYPES,
    USER_INPUT,
)
from mtl_tf.model.text_encoder import TextEncoderAdapter, backbone_optimizer
from mtl_tf.model.towers import CandidateTower, QueryTower
from mtl_tf.model.weighting import (
    FixedWeighting,
    GradNorm,
    LossWeighting,
    clip_gradients,
    pcgrad,
)
from mtl_tf.schema import Schema
from mtl_tf.task_config import TaskConfig

_LOSSES = {"mse": tf.keras.losses.MeanSquaredError,
           "huber": tf.keras.losses.Huber,
           "bce": tf.keras.losses.BinaryCrossentropy}


class _BatchMean:
    """A Keras loss averaged over the batch, as SUM_OVER_BATCH_SIZE does.

    Keras refuses that reduction inside a `tf.distribute` replica, so the loss
    runs unreduced and is averaged here. With several replicas, a replica's
    value is its sum over the global row count, times the replica count: the
    mean over replicas (what metrics report, and what `train_step`'s
    gradients follow once divided by the replica count) is then the mean over
    the global batch, however unevenly a task's rows fall on the replicas.
    """

    def __init__(self, loss_class, **kwargs):
        self.loss = loss_class(reduction=tf.keras.losses.Reduction.NONE, **kwargs)

    def __call__(self, y_true, y_pred, sample_weight=None):
        losses = self.loss(y_true, y_pred, sample_weight=sample_weight)
        count = tf.cast(tf.size(losses), losses.dtype)
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        if replicas > 1:
            count = context.all_reduce("sum", count) / replicas
        return tf.reduce_sum(losses) / tf.maximum(count, 1.0)
_METRICS = {
    "rmse": lambda task: tf.keras.metrics.RootMeanSquaredError(name=f"{task}_rmse"),
    "mae": lambda task: tf.keras.metrics.MeanAbsoluteError(name=f"{task}_mae"),
    # Multilabel tasks: one AUC over all (example, label) pairs (micro average).
    "auc": lambda task: tf.keras.metrics.AUC(name=f"{task}_auc"),
    "accuracy": lambda task: tf.keras.metrics.BinaryAccuracy(name=f"{task}_accuracy"),
}


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

    With a fine-tuned pretrained text encoder in the candidate tower, `compile`
    also creates `backbone_optimizer`, a copy of the optimizer at the learning
    rate times the adapter's `learning_rate_multiplier`, and `train_step` applies
    the backbone's gradients with it (Adam-type optimizers ignore gradient
    scale, so scaling the gradients would not slow the backbone down). It is an
    attribute of the model, so checkpoints of the model hold its slots.

    Each task trains on the rows of a batch whose weight (`task_weight_key`,
    its `where` mask times its `sample_weight`) is positive; retrieval
    positives are the rows its `where` selects.

    Args:
        schema: the data's schema (the id features' names).
        query_tower, candidate_tower: the towers; no candidate tower (and no
            catalog) for data without items.
        ranking_network: functional model with inputs "user" (and "item", and
            "target_attention" with a `target_attention`) and one output per
            non-retrieval task.
        tasks: the task configs (name, type, label, weight, where).
        catalog: the item catalog (for extra negatives and evaluation metrics).
        temperature: retrieval softmax temperature.
        extra_negatives: training items sampled uniformly as extra negatives per
            step (0: none).
        logq_correction: correct in-batch logits by the log of each candidate's
            sampling probability (Yi et al., RecSys 2019).
        item_probabilities: per catalog row (row 0 = unknown), the share of training
            interactions; used by `logq_correction`.
        mask_history_negatives: a retrieval candidate in the row's history (the
            schema's sequence feature) is no negative of that row: it is one of
            the user's own positives (`mtl_tf.model.negatives`).
        weighting: a `mtl_tf.model.weighting.LossWeighting`; default: the tasks'
            fixed weights.
        pcgrad: apply PCGrad to the per-task gradients.
        clip_norm: clip gradients to this global norm (0: no clipping).
        target_attention: the candidate's attention over the schema's history
            for the ranking network (`model.target_attention`), or None.
    """

    def __init__(self, schema: Schema, query_tower: QueryTower,
                 candidate_tower: CandidateTower | None,
                 ranking_network: tf.keras.Model, tasks: Sequence[TaskConfig],
                 catalog: ItemCatalog | None, temperature: float = 0.1,
                 extra_negatives: int = 0, logq_correction: bool = False,
                 item_probabilities: Sequence[float] | None = None,
                 weighting: LossWeighting | None = None, pcgrad: bool = False,
                 clip_norm: float = 0.0,
                 target_attention: TargetAttention | None = None,
                 mask_history_negatives: bool = False):
        super().__init__()
        if (target_attention is not None) != (
                HISTORY_INPUT in ranking_network.input_names):
            raise ValueError("MultiTaskRecommender: pass a target_attention "
                             "exactly when the ranking network has its input "
                             f"{HISTORY_INPUT!r}.")
        if target_attention is not None and schema.sequence is None:
            raise ValueError("MultiTaskRecommender: target attention needs a "
                             "sequence feature (the history) in the schema.")
        if candidate_tower is None and any(t.type == "retrieval" for t in tasks):
            raise ValueError("MultiTaskRecommender: a retrieval task needs a "
                             "candidate tower (an item id in the schema).")
        self.schema = schema
        self.item_key = schema.item_id.name if schema.item_id else ""
        self.weighting = weighting or FixedWeighting(
            {t.name: t.weight for t in tasks})
        self.pcgrad = pcgrad
        self.clip_norm = clip_norm
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.ranking_network = ranking_network
        self.target_attention = target_attention
        self.catalog = catalog
        self.task_configs = tuple(tasks)
        self.extra_negatives = int(extra_negatives)
        self.logq_correction = logq_correction
        # Without a history there is nothing to mask.
        self.masked_history = (schema.sequence.name if mask_history_negatives
                               and schema.sequence is not None else "")
        size = catalog.size if catalog is not None else 0
        probabilities = item_probabilities or [0.0] + [1.0] * size
        self._log_item_probability = tf.math.log(
            tf.maximum(tf.constant(probabilities, tf.float32), 1e-9))
        # Extra negatives come from items with training interactions only: sampling
        # held-out (cold) items as negatives would teach the model to bury them.
        self._negative_rows = tf.constant(
            [row for row, p in enumerate(probabilities) if row > 0 and p > 0],
            tf.int64)
        self.backbone_optimizer = None
        self.retrieval_task = None
        self.ranking_tasks = {}
        for task in self.task_configs:
            loss_metric = tf.keras.metrics.Mean(name=f"{task.name}_loss")
            if task.type == "retrieval":
                top_k = min(100, catalog.size)
                self.retrieval_task = tfrs.tasks.Retrieval(
                    loss=_BatchMean(tf.keras.losses.CategoricalCrossentropy,
                                    from_logits=True),
                    metrics=tfrs.metrics.FactorizedTopK(
                        CatalogTopK(self.item_embeddings, catalog.catalog_ids,
                                    k=top_k),
                        ks=[k for k in (10, 100) if k <= top_k] or [top_k]),
                    loss_metrics=[loss_metric], temperature=temperature,
                    remove_accidental_hits=True, name=task.name)
            else:
                self.ranking_tasks[task.name] = tfrs.tasks.Ranking(
                    loss=_BatchMean(_LOSSES[task.loss]),
                    metrics=[_METRICS[m](task.name) for m in task.metrics],
                    loss_metrics=[loss_metric], name=task.name)

    @property
    def text_encoder_adapter(self) -> TextEncoderAdapter | None:
        """The candidate tower's fine-tuned text encoder, if it has one."""
        if self.candidate_tower is None:
            return None
        title_encoder = self.candidate_tower.title_encoder
        return None if title_encoder is None else title_encoder.adapter

    def compile(self, optimizer="rmsprop", **kwargs):
        """Keras `compile`; also makes `backbone_optimizer` (see the class doc)."""
        super().compile(optimizer=optimizer, **kwargs)
        adapter = self.text_encoder_adapter
        self.backbone_optimizer = None
        if adapter is not None and adapter.trainable_weights:
            self.backbone_optimizer = backbone_optimizer(
                self.optimizer, adapter.learning_rate_multiplier)

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
        user = self.query_tower(features, training=training)
        item = (None if self.candidate_tower is None else
                self.candidate_tower(features[self.item_key], training=training))
        return self._outputs(user, item, features, training)

    def _network_inputs(self, user: tf.Tensor, item: tf.Tensor | None,
                        features: dict[str, tf.Tensor], training: bool = False
                        ) -> dict:
        inputs = {USER_INPUT: user}
        if item is not None:
            inputs[ITEM_INPUT] = item
            if self.target_attention is not None:
                attention = self.target_attention
                inputs[HISTORY_INPUT] = attention(
                    {n: features[n] for n in attention.input_names}, item,
                    training=training)
        return inputs

    def _outputs(self, user: tf.Tensor, item: tf.Tensor | None,
                 features: dict[str, tf.Tensor], training: bool):
        outputs = dict(self.ranking_network(
            self._network_inputs(user, item, features, training),
            training=training))
        if self.retrieval_task is not None:
            outputs[self.retrieval_task.name] = tf.reduce_sum(
                tf.math.l2_normalize(user, -1) * tf.math.l2_normalize(item, -1), -1)
        return outputs

    def task_losses(self, features: dict[str, tf.Tensor], training: bool = False
                    ) -> dict[str, tf.Tensor]:
        """Unweighted loss of every task on a batch (updates the task metrics).

        Each task sees only the rows with a positive weight (`task_weight_key`):
        dropping the other rows, rather than weighting them 0, keeps each loss
        a mean over the task's own rows, whatever their share of the batch.
        """
        item_ids = as_string(features[self.item_key]) if self.item_key else None
        user = self.query_tower(features, training=training)
        negative_rows = negatives = item = None
        if (training and self.extra_negatives > 0
                and self.retrieval_task is not None):
            negative_rows = tf.gather(self._negative_rows, tf.random.uniform(
                [self.extra_negatives], 0, tf.size(self._negative_rows, tf.int64),
                dtype=tf.int64))
            negative_ids = tf.gather(self.catalog.catalog_ids, negative_rows - 1)
            # One tower pass over the batch's items and the negatives, so each
            # distinct item is encoded once (a fine-tuned text encoder is costly).
            both = self.candidate_tower(tf.concat([item_ids, negative_ids], 0),
                                        training=training)
            item, negatives = both[:tf.size(item_ids)], both[tf.size(item_ids):]
        elif self.candidate_tower is not None:
            item = self.candidate_tower(item_ids, training=training)
        outputs = self.ranking_network(
            self._network_inputs(user, item, features, training), training=training)
        losses = {}
        for task in self.task_configs:
            weight = tf.cast(features[task_weight_key(task)], tf.float32)
            keep = weight > 0
            if task.type == "retrieval":
                user_r, item_r, ids_r = (tf.boolean_mask(t, keep)
                                         for t in (user, item, item_ids))
                history = (tf.boolean_mask(as_string(features[self.masked_history]),
                                           keep) if self.masked_history else None)
                losses[task.name] = self._retrieval_loss(
                    user_r, item_r, ids_r, training, negative_rows, negatives,
                    history)
                continue
            if task.type == "multilabel":
                label = tf.cast(features[task.label], tf.float32)
                prediction = outputs[task.name]
            else:
                label = tf.cast(features[task.label], tf.float32)[:, None]
                prediction = outputs[task.name][:, None]
            losses[task.name] = self.ranking_tasks[task.name](
                labels=tf.boolean_mask(label, keep),
                predictions=tf.boolean_mask(prediction, keep),
                sample_weight=tf.boolean_mask(weight, keep)[:, None])
        return losses

    @property
    def has_gates(self) -> bool:
        """Whether the ranking network's architecture has gates (MMoE, PLE)."""
        try:
            body = self.ranking_network.get_layer(BODY_LAYER)
        except ValueError:  # No ranking task, so no architecture layer.
            return False
        return hasattr(body, "gate_weights")

    def gate_weights(self, features: dict[str, tf.Tensor]
                     ) -> dict[str, tf.Tensor] | None:
        """Per ranking task, the [batch, experts] gate weights on a batch.

        None for architectures without gates (shared_bottom, single_task, esmm).
        Tasks appear in the order the architecture serves them (regression and
        binary tasks, in config order). For PLE these are the last level's gates:
        a task's own experts first, then the shared ones.
        """
        if not self.has_gates:
            return None
        body = self.ranking_network.get_layer(BODY_LAYER)
        interaction = tf.keras.Model(
            self.ranking_network.input,
            self.ranking_network.get_layer(INTERACTION_LAYER).output)
        item = (None if self.candidate_tower is None
                else self.candidate_tower(features[self.item_key]))
        x = interaction(self._network_inputs(self.query_tower(features), item,
                                             features))
        names = [t.name for t in self.task_configs if t.type in PAIR_TASK_TYPES]
        return dict(zip(names, body.gate_weights(x)))

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False):
        total, _ = self.weighting.combine(self.task_losses(features, training))
        return total

    def shared_variables(self) -> list[tf.Variable]:
        """The last layers every task depends on: the towers' output projections."""
        towers = [self.query_tower, self.candidate_tower]
        return [t.projection.kernel for t in towers if t is not None]

    def train_step(self, features):
        needs_task_gradients = self.pcgrad or isinstance(self.weighting, GradNorm)
        # Each replica's loss is the mean over its own batch; the replicas'
        # gradients are summed, so each counts 1 / replicas.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape(persistent=needs_task_gradients) as tape:
            losses = self.task_losses(features, training=True)
            loss, weights = self.weighting.combine(losses)
            regularization = tf.add_n(self.losses) if self.losses else 0.0
            total = loss + regularization
            weighted = [weights[n] * losses[n] / replicas for n in losses]
            # What the weighting adds beyond w_k * L_k (e.g. uncertainty's log-variance
            # terms) and regularization: not projected by PCGrad.
            scaled = total / replicas
            rest = scaled - tf.add_n(weighted)
        variables = self.trainable_variables
        if self.pcgrad:
            grads = pcgrad([tape.gradient(w, variables) for w in weighted])
            extra = tape.gradient(rest, variables,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            grads = [e if g is None else g + e for g, e in zip(grads, extra)]
        else:
            grads = tape.gradient(scaled, variables)
        if isinstance(self.weighting, GradNorm):
            self.weighting.step(losses, self.shared_variables(), tape)
        del tape
        grads = clip_gradients(grads, self.clip_norm)
        if self.backbone_optimizer is not None:
            backbone, others = self.text_encoder_adapter.split_gradients(
                grads, variables)
            if backbone:
                self.backbone_optimizer.apply_gradients(backbone)
        else:
            others = [(g, v) for g, v in zip(grads, variables) if g is not None]
        self.optimizer.apply_gradients(others)
        metrics = {metric.name: metric.result() for metric in self.metrics}
        metrics.update({f"{name}_weight": w for name, w in weights.items()})
        metrics.update(loss=loss, regularization_loss=regularization, total_loss=total)
        return metrics

    def _retrieval_loss(self, user, item, item_ids, training, negative_rows=None,
                        negatives=None, history=None):
        """In-batch softmax loss, plus the sampled `negatives` (tower outputs of
        catalog rows `negative_rows`) when given; candidates in a row's
        `history` (item ids, [rows, length]) are left out of its softmax. Under
        a `tf.distribute` strategy with several replicas, the in-batch
        candidates are those of the global batch (all-gathered), so each query
        still meets every in-batch negative."""
        queries = tf.math.l2_normalize(user, axis=-1)
        candidates = tf.math.l2_normalize(item, axis=-1)
        # Integer catalog rows identify candidates: comparing them to remove
        # accidental hits is far cheaper than comparing string ids.
        candidate_ids = self.catalog.rows(item_ids)
        sampling = None
        if self.logq_correction:
            sampling = tf.exp(tf.gather(self._log_item_probability, candidate_ids))
        if training:
            candidates, candidate_ids, sampling = _gather_from_replicas(
                candidates, candidate_ids, sampling)
        if negatives is not None:
            candidates = tf.concat(
                [candidates, tf.math.l2_normalize(negatives, axis=-1)], 0)
            candidate_ids = tf.concat([candidate_ids, negative_rows], 0)
            if sampling is not None:
                pool = tf.cast(tf.size(self._negative_rows), tf.float32)
                uniform = tf.fill([self.extra_negatives], 1.0 / pool)
                sampling = tf.concat([sampling, uniform], 0)
        score_mask = None
        if history is not None:
            score_mask = history_score_mask(self.catalog.rows(history),
                                            candidate_ids)
        return self.retrieval_task(
            queries, candidates, candidate_ids=candidate_ids,
            candidate_sampling_probability=sampling,
            compute_metrics=not training, compute_batch_metrics=False,
            score_mask=score_mask)


def _gather_from_replicas(*tensors):
    """`tensors` (None passes through) concatenated over every replica's
    batch, this replica's rows first: TFRS's `Retrieval` takes candidate i as
    query i's positive. Gradients flow back to each replica's own rows."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensors
    present = [t for t in tensors if t is not None]
    sizes = context.all_gather(tf.shape(present[0])[:1], axis=0)
    offset = tf.reduce_sum(sizes[:context.replica_id_in_sync_group])
    gathered = iter([tf.roll(context.all_gather(t, axis=0), -offset, axis=0)
                     for t in present])
    return tuple(None if t is None else next(gathered) for t in tensors)
