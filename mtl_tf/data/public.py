"""The public multi-task benchmark data sets as data sources and presets.

Each one is a built-in schema, its tasks, a loader of the files as published
(in `data.data_dir`) and the published train / validation / test protocol:

- `census_income` (`mtl_tf.data.census_income`): income and marital status,
  itemless;
- `ali_ccp` (`mtl_tf.data.ali_ccp`): click, and purchase chained on click (ESMM);
- `aliexpress` (`mtl_tf.data.aliexpress`): click, and purchase chained on click,
  itemless;
- `kuairand` (`mtl_tf.data.kuairand`): retrieval on clicks, click, long view and
  like.

Each module names its pieces after the source: `<NAME>_SCHEMA`, `<NAME>_TASKS`,
`load_<name>_source(data_dir, schema, labels, *, lenient)` and
`<name>_protocol(data, seed) -> Splits`.

`python -m mtl_tf.train --preset <source> --data-dir DIR` trains on one with
`data.split=published`; `benchmarks/<source>.py` runs the architecture grid.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path
from typing import Mapping, Sequence

from mtl_tf.data.dataset import RecDataset
from mtl_tf.data.splits import Splits
from mtl_tf.schema import Schema
from mtl_tf.task_config import TaskConfig

PUBLIC_SOURCES = ("census_income", "ali_ccp", "aliexpress", "kuairand")


@dataclasses.dataclass(frozen=True)
class PublicSource:
    """One public data set: its built-in schema and tasks, and its module."""

    name: str
    schema: Schema
    tasks: tuple[TaskConfig, ...]

    @property
    def module(self):
        """The data set's module, `mtl_tf.data.<name>`."""
        return importlib.import_module(f"mtl_tf.data.{self.name}")

    def load(self, data_dir: str | os.PathLike | None, schema: Schema,
             labels: Mapping[str, str], *, lenient: bool = False) -> RecDataset:
        """Reads the files in `data_dir` (both train and test) with `schema`."""
        loader = getattr(self.module, f"load_{self.name}_source")
        return loader(data_dir, schema, labels, lenient=lenient)

    def split(self, data: RecDataset, seed: int) -> Splits:
        """The published protocol's splits of `data` (as `load` returned it)."""
        splitter = getattr(self.module, f"{self.name}_protocol")
        return splitter(data, seed=seed)


def locate_files(names: Mapping[str, str], folders: Sequence[Path]
                 ) -> tuple[dict[str, Path], list[str]]:
    """Finds each published file name, or its `.gz`, in the first of `folders`
    that holds it.

    Returns:
        ({key: path} of the files found, the names not found as "name[.gz]").
    """
    paths, missing = {}, []
    for key, name in names.items():
        match = next((folder / n for folder in folders for n in (name, name + ".gz")
                      if (folder / n).is_file()), None)
        if match is None:
            missing.append(f"{name}[.gz]")
        else:
            paths[key] = match
    return paths, missing


def missing_files_error(dataset: str, root: Path, missing: Sequence[str],
                        download: str) -> ValueError:
    """The error for a data folder without some published files: what is
    missing, what the folder holds (subfolders marked "/") and `download`."""
    if not root.is_dir():
        return ValueError(f"{dataset}: data directory not found: {root}. {download}")
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    return ValueError(f"{dataset}: {root} is missing {list(missing)}; it holds "
                      f"{found[:30]}. {download}")


def public_source(name: str) -> PublicSource:
    """The public data set `name`; raises ValueError listing them."""
    if name not in PUBLIC_SOURCES:
        raise ValueError(f"Unknown public data set {name!r}; available: "
                         f"{list(PUBLIC_SOURCES)}.")
    module = importlib.import_module(f"mtl_tf.data.{name}")
    prefix = name.upper()
    return PublicSource(name, getattr(module, f"{prefix}_SCHEMA"),
                        tuple(getattr(module, f"{prefix}_TASKS")))


__all__ = ["PUBLIC_SOURCES", "PublicSource", "locate_files", "missing_files_error",
           "public_source"]
