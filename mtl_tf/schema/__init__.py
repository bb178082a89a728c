"""The feature schema: the contract between data, model, tasks and export.

`Schema` / `Feature` declare the columns; `fitted.Preprocessing` holds what is
learned from the training split (vocabularies, statistics, bucket boundaries);
`infer` drafts a schema from a file (``python -m mtl_tf.schema infer FILE``).
"""

from mtl_tf.schema.condition import Condition, parse_condition
from mtl_tf.schema.feature import (
    DTYPES,
    KINDS,
    NUMERIC_TRANSFORMS,
    SIDES,
    Feature,
    Schema,
)

__all__ = ["DTYPES", "KINDS", "NUMERIC_TRANSFORMS", "SIDES", "Condition", "Feature",
           "Schema", "parse_condition"]
