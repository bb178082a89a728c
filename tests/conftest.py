"""Shared fixtures: tiny configs, data and one trained + exported tiny model.

Training is the expensive part, so the one in-process run of the `tiny` preset is a
session fixture shared by the export, end-to-end and learning tests.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import mtl_tf  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from mtl_tf import experiment  # noqa: E402
from mtl_tf.config import Config, apply_overrides, get_preset  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_config() -> Config:
    return get_preset("tiny")


@pytest.fixture(scope="session")
def tiny_prepared(tiny_config) -> experiment.PreparedData:
    """The tiny preset's synthetic data and its splits (train / validation / test)."""
    return experiment.prepare_data(tiny_config)


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory, tiny_config, tiny_prepared) -> dict:
    """`experiment.run` of the tiny preset, exported to a temporary directory.

    The returned dict is `run`'s result plus `run_dir` and `config`.
    """
    base = tmp_path_factory.mktemp("trained_tiny")
    config = apply_overrides(tiny_config,
                             [f"export.export_dir={base / 'saved_models'}"])
    run_dir = base / "run"
    result = experiment.run(config, run_dir, verbose=0, prepared=tiny_prepared)
    return {**result, "run_dir": run_dir, "config": config}
