"""Fixtures shared by the tests; the helpers they import live in ``tests/helpers.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.helpers  # noqa: F401  (quiet TensorFlow, the ${project_root:} resolver, before any test imports)


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh SQLite MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
