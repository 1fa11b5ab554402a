"""A fresh SQLite tracking store per test, copied from one migrated once per session."""

from __future__ import annotations

import shutil

import mlflow
import pytest


@pytest.fixture(scope="session")
def template_store(tmp_path_factory):
    """A migrated, empty SQLite store: creating one costs seconds (MLflow's migrations), copying it does not."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def uri(tmp_path, template_store):
    shutil.copyfile(template_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture
def client(uri):
    return mlflow.MlflowClient(tracking_uri=uri)


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("name: demo\narms:\n  lora: {method: lora}\n")
    return path
