"""The record's names, and the writer of result files, import without MLflow (`clipstudy train` needs neither)."""

from __future__ import annotations

import subprocess
import sys


def test_schema_and_artifacts_import_without_mlflow():
    code = (
        "import sys, clipstudy.tracking.schema, clipstudy.tracking.artifacts\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow')\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
