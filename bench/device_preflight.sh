#!/usr/bin/env bash
# Rehearse the GPU check here, in the GPU machine's software, before spending its scarce time.
#
#     bash bench/device_preflight.sh [VENV]        # make device-preflight; 3-5 minutes, no GPU needed
#
# The GPU machine has Python 3.12 with torch 2.11, torchvision, timm, peft, pandas, scikit-learn, typer, rich
# and pytest, no Ray or MLflow, and no registry: the rest comes from bench/gpu_wheels.sh's wheels, installed
# with `pip install --no-index --no-deps --target`. This builds that environment in VENV (default
# /tmp/clipstudy-device) from the registry, installs the wheels the same way, and runs there what the device
# runs: the CUDA test command of bench/gpu_check.py (collection included: a test module that imports a
# package the device lacks fails it there), the engine, model and method tests that are not slow (the same
# code under the older torch), and the check itself in smoke mode. Any failure here would have failed there.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-/tmp/clipstudy-device}"
DEVICE_TORCH="${DEVICE_TORCH:-torch==2.11.0 torchvision==0.26.0}"
read -r -a UV <<< "${UV:-uv}"  # the Makefile passes its own (`python3 -m uv` where pip installed it)
"${UV[@]}" --version >/dev/null 2>&1 || { echo "device_preflight.sh: needs uv (make uv installs it)" >&2; exit 1; }
python312() {  # DEVICE_PYTHON, else a Python 3.12 uv finds, else pyenv's (uv cannot download one offline)
    if [ -n "${DEVICE_PYTHON:-}" ]; then echo "$DEVICE_PYTHON"; return; fi
    "${UV[@]}" python find --no-python-downloads 3.12 2>/dev/null && return
    local candidate
    for candidate in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.12*/bin/python3.12; do
        if [ -x "$candidate" ]; then echo "$candidate"; return; fi
    done
    echo "device_preflight.sh: no Python 3.12 found; set DEVICE_PYTHON=/path/to/python3.12" >&2
    exit 1
}
DEVICE_PYTHON="$(python312)"

echo "device_preflight.sh: Python $DEVICE_PYTHON, $DEVICE_TORCH, in $venv"
"${UV[@]}" venv --quiet --seed --clear --no-python-downloads --python "$DEVICE_PYTHON" "$venv"
# shellcheck disable=SC2086  # DEVICE_TORCH holds two requirements
VIRTUAL_ENV="$venv" "${UV[@]}" pip install --quiet $DEVICE_TORCH timm peft pandas scikit-learn typer rich pytest
bash bench/gpu_wheels.sh .whl
site="$venv/device-site"
rm -rf "$site"
"$venv/bin/python" -m pip install --quiet --no-index --no-deps --target "$site" .whl/*.whl
run() { PYTHONPATH="$site:." "$venv/bin/python" "$@"; }

for absent in ray mlflow optuna; do
    if run -c "import $absent" 2>/dev/null; then
        echo "device_preflight.sh: $absent imports in $venv, but the GPU machine has none" >&2
        exit 1
    fi
done
run -c "import torch; print('device_preflight.sh: torch', torch.__version__)"

echo "device_preflight.sh: the check's CUDA test command (its GPU tests skip here; collection must pass)"
run -m pytest -m gpu -q -p no:cacheprovider tests/engine tests/data tests/models
echo "device_preflight.sh: engine, model and method tests under the device's torch"
run -m pytest -m "not slow" -q -p no:cacheprovider tests/engine tests/models tests/methods
echo "device_preflight.sh: the GPU check in smoke mode"
out=$(mktemp -d)
run bench/gpu_check.py --smoke --out "$out" >/dev/null
run -c "import json, sys; r = json.load(open(sys.argv[1])); print('device_preflight.sh: smoke check wrote', \
', '.join(sorted(r)))" "$out/gpu_check.json"
echo "device_preflight.sh: passed; the GPU check should run there as it did here"
