"""A fresh SQLite tracking store per test, copied from one migrated once per session (tests/conftest.py)."""

from __future__ import annotations

import mlflow
import pytest

from tests.conftest import new_store


@pytest.fixture
def uri(tmp_path, template_store):
    return new_store(template_store, tmp_path)


@pytest.fixture
def client(uri):
    return mlflow.MlflowClient(tracking_uri=uri)


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("name: demo\narms:\n  lora: {method: lora}\n")
    return path
