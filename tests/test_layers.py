import subprocess
import sys


def test_library_layers_import_without_ray_or_mlflow():
    code = (
        "import sys, clipstudy, clipstudy.engine, clipstudy.methods, clipstudy.models.build, clipstudy.data, "
        "clipstudy.cli, clipstudy.studyfile, clipstudy.tracking.artifacts, clipstudy.api, clipstudy.analysis.selection\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow', 'optuna'))\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
