"""The quickstart as a Python script: the same study, run through the Python API.

    uv run python studies/quickstart.py                      # here, on a local Ray instance
    ray job submit --working-dir . -- python studies/quickstart.py   # on a cluster (RAY_ADDRESS is set)

behaves like `clipstudy run studies/quickstart.yaml [--local]`.
"""

import os
from pathlib import Path

from clipstudy.api import RunOptions, best_trials, load_study, run_study

study = load_study(Path(__file__).with_name("quickstart.yaml"))
study.arm("lora").trials = 2  # studies are plain objects: change them before running
trials = run_study(study, RunOptions(local="RAY_ADDRESS" not in os.environ))
print(best_trials(trials)[["tags.clipstudy.method", "selection", "metrics.test/acc", "metrics.trainable_params"]])
