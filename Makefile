# Two commands matter: `make demo` and `make test`. Both install everything first, from nothing.
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif
RUN := $(UV) run --frozen --all-extras
export MLFLOW_DISABLE_TELEMETRY := true
# Ray 2.60 re-runs a driver's `uv run` command to start its workers, in a copy of the working dir;
# workers must use this environment's python instead (it has the study extra: ray, mlflow, optuna).
export RAY_ENABLE_UV_RUN_RUNTIME_ENV := 0
# Install compiled bytecode. Where PYTHONDONTWRITEBYTECODE is set (this machine, CI, most Docker images) Python
# never writes .pyc files, so without this every process (each Ray trial actor, each CLI call) compiles torch,
# sympy, MLflow, ... from source: about 30 s of CPU instead of 10 (docs/benchmarks.md, the test suite's wall time).
export UV_COMPILE_BYTECODE := 1

.PHONY: install uv browser demo test test-fast lint bench gpu-check device-preflight

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

install: uv
	$(UV) sync --frozen --all-extras
	$(RUN) python -m compileall -q clipstudy

demo: install
	$(RUN) clipstudy run studies/quickstart.yaml --local

# The UI test drives Debian's chromium headless (no Python browser package).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends chromium)

# Three pytest-xdist workers, a test module per worker at a time, the longest modules first (tests/conftest.py).
# The suite is CPU-bound (Ray daemons, trial actors importing torch); a third worker still fills the gaps
# where a study waits: 13 min 56 s against 14 min 43 s with two, at the same commit (docs/benchmarks.md).
PARALLEL := -n 3 --dist loadfile --no-loadscope-reorder --durations=15

test: install browser
	$(RUN) ruff check clipstudy tests bench tools
	$(RUN) pytest $(PARALLEL)

# The inner loop: everything but the tests marked slow (the Ray studies, multi-process and learning runs).
test-fast: install
	$(RUN) ruff check clipstudy tests bench tools
	$(RUN) pytest -m "not slow" -n 2

lint: install
	$(RUN) ruff check clipstudy tests bench tools

bench: install
	$(RUN) python bench/train_throughput.py
	$(RUN) python bench/augment_throughput.py
	$(RUN) python bench/feature_cache.py

# The one GPU check (bench/gpu_check.py): on a GPU machine see its docstring; here it runs in smoke mode.
gpu-check: install
	$(RUN) python bench/gpu_check.py --out gpu_check

# Before a GPU session: the check's CUDA test command, the engine's tests and the smoke check, run here in the
# GPU machine's software (Python 3.12, torch 2.11, no Ray or MLflow, the wheels of bench/gpu_wheels.sh).
device-preflight: uv
	UV="$(UV)" bash bench/device_preflight.sh
