"""mtl_tf: multi-task recommenders on TFRS with pretrained text encoders.

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads, so that
``tf.keras`` is Keras 2 (``tf_keras``), which TensorFlow Recommenders requires, while
keras-nlp / keras-hub (Keras 3) can still be imported in the same process.
"""

import os
import sys

__version__ = "0.1.0"


def _require_legacy_keras() -> None:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        return
    keras_module = getattr(getattr(tf, "keras", None), "__name__", "")
    if not keras_module.startswith("tf_keras"):
        raise ImportError(
            "mtl_tf needs tf.keras to be Keras 2 (tf_keras), but TensorFlow was "
            f"already imported with tf.keras = {keras_module or 'Keras 3'!r}. "
            "Import mtl_tf before "
            "tensorflow, or set the environment variable TF_USE_LEGACY_KERAS=1 before "
            "starting Python."
        )


_require_legacy_keras()
