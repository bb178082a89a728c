"""Data sources, cleaning, splits and `tf.data` pipelines.

Every source yields a `RecDataset` shaped by a `Schema`: the built-in MovieLens
schema for `synthetic`, `movielens` and `tfds`, the config's `schema` for
`files` (and for pandas frames through `RecDataset.from_frames`) and for the
public benchmark data sets (`mtl_tf.data.public`; their presets carry their
built-in schemas).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mtl_tf.data.dataset import CleaningReport, RecDataset
from mtl_tf.data.public import PUBLIC_SOURCES, public_source

if TYPE_CHECKING:  # config imports the built-in schemas of this package.
    from mtl_tf.config import Config


def load_data(config: "Config") -> RecDataset:
    """Loads the source named by `config.data.source` into a cleaned `RecDataset`.

    Raises:
        ValueError: for a missing or unrecognised data directory or file, a
            schema column missing from a file, malformed rows or bad labels
            (unless `data.lenient`), with the file, line and column named.
    """
    from mtl_tf.task_config import label_columns

    data = config.data
    if data.source == "files":
        from mtl_tf.data.files import load_files
        if not data.path:
            raise ValueError("data.source='files' needs the interactions file: set "
                             "data.path (a CSV / TSV / Parquet / JSON Lines file or "
                             "a glob of shards; see README 'Your own data').")
        return load_files(config.schema, data.path, data.items_path,
                          data.users_path, labels=label_columns(config.tasks),
                          separator=data.separator, lenient=data.lenient)
    if data.source in PUBLIC_SOURCES:
        return public_source(data.source).load(
            data.data_dir, config.schema, label_columns(config.tasks),
            lenient=data.lenient)
    if data.source == "synthetic":
        from mtl_tf.data.synthetic import make_synthetic
        dataset = make_synthetic(config.synthetic, data.like_threshold)
    elif data.source == "movielens":
        if not data.data_dir:
            raise ValueError("data.source='movielens' needs a directory: pass "
                             "--data-dir path/to/ml-100k (or ml-1m).")
        from mtl_tf.data.movielens import load_movielens_dir
        dataset = load_movielens_dir(data.data_dir, lenient=data.lenient,
                                     like_threshold=data.like_threshold)
    elif data.source == "tfds":
        from mtl_tf.data.tfds_source import load_tfds
        dataset = load_tfds(data.tfds_name, data_dir=data.data_dir,
                            lenient=data.lenient, like_threshold=data.like_threshold)
    else:
        raise ValueError(f"data.source must be one of synthetic, movielens, tfds, "
                         f"files, {', '.join(PUBLIC_SOURCES)}. Received: "
                         f"{data.source!r}.")
    # The built-in sources hold every MovieLens column; the config's schema
    # picks which of them the model reads.
    return dataclasses.replace(dataset, schema=config.schema)


__all__ = ["CleaningReport", "RecDataset", "load_data"]
