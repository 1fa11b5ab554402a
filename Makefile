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

.PHONY: install uv browser demo test lint bench

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

install: uv
	$(UV) sync --frozen --all-extras

demo: install
	$(RUN) clipstudy run studies/quickstart.yaml --local

# The UI test drives Debian's chromium headless (no Python browser package).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends chromium)

test: install browser
	$(RUN) ruff check clipstudy tests bench
	$(RUN) pytest

lint: install
	$(RUN) ruff check clipstudy tests bench

bench: install
	$(RUN) python bench/train_throughput.py
	$(RUN) python bench/augment_throughput.py
	$(RUN) python bench/feature_cache.py
