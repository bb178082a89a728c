"""Which retrieval candidates a query may treat as negatives.

A user's history items are their own positives: the served protocol never
recommends an item already seen, so a training step that pushes them down as
negatives of another of the user's rows only spends capacity on a ranking that
is never shown. `history_score_mask` leaves them out of the softmax (the
`score_mask` of `tfrs.tasks.Retrieval`), as seen items are left out of the
ranking at serving time.
"""

from __future__ import annotations

import tensorflow as tf


def history_score_mask(history_rows: tf.Tensor, candidate_rows: tf.Tensor
                       ) -> tf.Tensor:
    """True where candidate j may score against query i: False where j's
    catalog row is in query i's history, except for query i's own positive
    (candidate i, the diagonal), which always stays.

    The cost grows with queries x history length x log(candidates), plus
    one gather of queries x candidates, not with the catalog: the distinct
    candidate rows are sorted once, each history item finds its row among
    them, and each candidate reads its distinct row's column.

    Example:
        >>> history_score_mask(tf.constant([[2, 0], [1, 3]], tf.int64),
        ...                    tf.constant([5, 1, 2], tf.int64)).numpy()
        array([[ True,  True, False],
               [ True,  True,  True]])

    Args:
        history_rows: [queries, length] int64 catalog rows of each query's
            history; 0 (the unknown-item row, and padding) is never masked.
        candidate_rows: [candidates] int64 catalog rows; candidate i is query
            i's positive.

    Returns:
        A [queries, candidates] boolean mask.
    """
    history_rows = tf.cast(history_rows, tf.int64)
    candidate_rows = tf.cast(candidate_rows, tf.int64)
    queries = tf.shape(history_rows, out_type=tf.int64)[0]
    candidates = tf.shape(candidate_rows, out_type=tf.int64)[0]
    distinct = tf.sort(tf.unique(candidate_rows).y)
    # Candidate j's column among the distinct rows.
    column = tf.searchsorted(distinct, candidate_rows, out_type=tf.int64)
    # Each history item's column, if its row is a candidate at all.
    position = tf.reshape(tf.searchsorted(distinct, tf.reshape(history_rows, [-1]),
                                          out_type=tf.int64), tf.shape(history_rows))
    found = tf.gather(tf.concat([distinct, [-1]], 0), position)
    hit = tf.equal(found, history_rows) & (history_rows > 0)
    query = tf.broadcast_to(tf.range(queries)[:, None], tf.shape(history_rows))
    pairs = tf.stack([tf.boolean_mask(position, hit), tf.boolean_mask(query, hit)], 1)
    # Distinct rows x queries, so each candidate gathers a whole row (a
    # gather along the last axis costs several times more).
    in_history = tf.scatter_nd(
        pairs, tf.ones(tf.shape(pairs)[:1], tf.int32),
        tf.stack([tf.size(distinct, out_type=tf.int64), queries])) > 0
    in_history = tf.transpose(tf.gather(in_history, column))
    own_positive = tf.cast(tf.eye(queries, candidates), tf.bool)
    return ~in_history | own_positive


__all__ = ["history_score_mask"]
