"""Data sources, cleaning, splits and `tf.data` pipelines."""

from __future__ import annotations

from mtl_tf.config import DataConfig, SyntheticConfig
from mtl_tf.data.dataset import CleaningReport, RecDataset


def load_data(data: DataConfig, synthetic: SyntheticConfig = SyntheticConfig()
              ) -> RecDataset:
    """Loads the source named by `data.source` into a cleaned `RecDataset`.

    Raises:
        ValueError: for a missing or unrecognised data directory, malformed rows or
            bad labels (unless `data.lenient`), with the file, line and field named.
    """
    if data.source == "synthetic":
        from mtl_tf.data.synthetic import make_synthetic
        return make_synthetic(synthetic)
    if data.source == "movielens":
        if not data.data_dir:
            raise ValueError("data.source='movielens' needs a directory: pass "
                             "--data-dir path/to/ml-100k (or ml-1m).")
        from mtl_tf.data.movielens import load_movielens_dir
        return load_movielens_dir(data.data_dir, lenient=data.lenient)
    if data.source == "tfds":
        from mtl_tf.data.tfds_source import load_tfds
        return load_tfds(data.tfds_name, data_dir=data.data_dir, lenient=data.lenient)
    raise ValueError(f"data.source must be one of synthetic, movielens, tfds. "
                     f"Received: {data.source!r}.")


__all__ = ["CleaningReport", "RecDataset", "load_data"]
