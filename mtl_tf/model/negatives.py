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

    The cost grows with queries x candidates x log(queries x history length),
    not with the catalog: each (query, history row) pair becomes one integer
    key, and every (query, candidate) pair is looked up among the sorted keys.

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
    # Distinct keys per (query, row): rows are < stride.
    stride = tf.reduce_max(tf.concat(
        [tf.reshape(history_rows, [-1]), candidate_rows, [0]], 0)) + 1
    query_index = tf.range(queries, dtype=tf.int64)[:, None]
    keys = tf.boolean_mask(query_index * stride + history_rows, history_rows > 0)
    keys = tf.sort(keys)
    wanted = tf.reshape(query_index * stride + candidate_rows[None], [-1])
    # A key past the last one finds the sentinel -1, which matches nothing.
    found = tf.gather(tf.concat([keys, [-1]], 0), tf.searchsorted(keys, wanted))
    in_history = tf.reshape(tf.equal(found, wanted), [queries, candidates])
    own_positive = tf.cast(tf.eye(queries, candidates), tf.bool)
    return ~in_history | own_positive


__all__ = ["history_score_mask"]
