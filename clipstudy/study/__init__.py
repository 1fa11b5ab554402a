"""The study runner on Ray: the only package that imports Ray.

- `runner`: a Tuner per arm, resume, Ctrl-C, the end of a study (`run_study`, `RunOptions`).
- `search`: Optuna behind Tune (pruned trials told as PRUNED), ASHA.
- `driver`: one Tune trial, which launches a Ray Train `TorchTrainer` around `worker`.
- `worker`: `train_fn_per_worker`, THE engine inside Ray Train, reporting every epoch.
- `protocol`: the report keys and artifact names driver, worker and progress share.
- `progress`, `stopping`: the console lines of a study; Ctrl-C.
- `feasibility` (pure arithmetic, no Ray) and `cluster` (Ray's node types): can a cluster host the trials.

Nothing is imported here, so `clipstudy.study.feasibility` loads without Ray.
"""
