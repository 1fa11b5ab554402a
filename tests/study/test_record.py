"""The MLflow and Optuna record of a finished study (contract in DESIGN.md)."""

import math
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow import MlflowClient

from clipstudy.study.runner import OPTUNA_DB
from clipstudy.tracking.schema import (
    ARM,
    ARM_COLUMN,
    GIT_COMMIT,
    METHOD,
    PARENT,
    REASON,
    ROLE,
    RUNTIME,
    STATUS,
    STATUS_COLUMN,
    TRIAL_ID,
    TRIAL_ID_COLUMN,
    VERSION,
)
from tests.study.conftest import PROGRESS_LOG

pytestmark = pytest.mark.slow


def client_for(workdir):
    return MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")


def trial_runs(workdir):
    client = client_for(workdir)
    experiment = client.get_experiment_by_name("runner_test")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(ROLE) == "study"]
    children = [r for r in runs if r.data.tags.get(ROLE) == "trial"]
    return client, parents, children


def test_one_parent_and_one_child_per_trial(finished_study):
    workdir, _, trials = finished_study
    client, parents, children = trial_runs(workdir)
    assert len(parents) == 1
    assert len(children) == 1 + 4 + 1 == len(trials)
    parent = parents[0]
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "study")} == {"study/runner_test.yaml"}
    assert GIT_COMMIT in parent.data.tags and f"{VERSION}.torch" in parent.data.tags
    trial_ids = [c.data.tags[TRIAL_ID] for c in children]
    assert len(set(trial_ids)) == len(trial_ids)
    for child in children:
        tags = child.data.tags
        assert tags[PARENT] == parent.info.run_id
        assert tags[ARM] in {"zero_shot", "lora", "diverges"}
        assert tags[STATUS] in {"completed", "pruned", "failed"}
        assert child.data.params["method"] == tags[METHOD]
        assert "train.lr" in child.data.params and "lora.r" in child.data.params


def test_completed_trials_have_epoch_metrics_final_metrics_and_artifacts(finished_study):
    workdir, _, _ = finished_study
    client, _, children = trial_runs(workdir)
    completed = [c for c in children if c.data.tags[STATUS] == "completed"]
    assert {c.data.tags[ARM] for c in completed} >= {"zero_shot", "lora"}
    for child in completed:
        run_id = child.info.run_id
        epochs = 0 if child.data.tags[ARM] == "zero_shot" else 3
        steps = [m.step for m in client.get_metric_history(run_id, "val/acc")]
        assert sorted(steps) == list(range(epochs + 1))
        for key in ("test/acc", "test/acc5", "test/macro_f1", "trainable_params", "total_params"):
            assert math.isfinite(child.data.metrics[key]), key
        if epochs:
            for key in ("train/loss", "train/acc", "val/loss", "lr", "epoch_time_s", "throughput_img_s", "peak_mem_mb"):
                assert len(client.get_metric_history(run_id, key)) >= epochs, key
        assert (child.data.tags[f"{RUNTIME}.device"], child.data.tags[f"{RUNTIME}.precision"]) == (
            "cpu",
            "fp32",
        )
        names = {a.path for a in client.list_artifacts(run_id)}
        assert {"per_class.csv", "confusion_matrix.csv", "weights.safetensors", "config.yaml"} <= names


def test_asha_pruned_trials_are_pruned_in_mlflow_and_optuna(finished_study):
    workdir, _, _ = finished_study
    _, _, children = trial_runs(workdir)
    lora = [c for c in children if c.data.tags[ARM] == "lora"]
    pruned = [c for c in lora if c.data.tags[STATUS] == "pruned"]
    assert pruned, "ASHA (grace 1, factor 2, one trial at a time) should stop at least one of four trials"
    for child in pruned:
        assert "test/acc" not in child.data.metrics
        assert child.info.status == "FINISHED"
    names = optuna.get_all_study_names(f"sqlite:///{workdir / OPTUNA_DB}")
    lora_study = optuna.load_study(
        study_name=next(n for n in names if ".lora." in n), storage=f"sqlite:///{workdir / OPTUNA_DB}"
    )
    states = [t.state for t in lora_study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == len(pruned)
    assert states.count(optuna.trial.TrialState.COMPLETE) == len(lora) - len(pruned)
    for trial in lora_study.trials:
        assert trial.intermediate_values, "every epoch's val/acc is reported to Optuna"
    assert lora_study.best_trial.state == optuna.trial.TrialState.COMPLETE


def test_diverging_trial_is_failed_with_its_reason_and_the_study_goes_on(finished_study):
    workdir, _, trials = finished_study
    _, _, children = trial_runs(workdir)
    failed = [c for c in children if c.data.tags[ARM] == "diverges"]
    assert len(failed) == 1
    assert failed[0].data.tags[STATUS] == "failed"
    assert "non-finite training loss" in failed[0].data.tags[REASON]
    assert failed[0].info.status == "FAILED"
    details = client_for(workdir).download_artifacts(failed[0].info.run_id, "failure.txt", str(workdir))
    text = Path(details).read_text()
    assert text.startswith("Traceback") and "TrialFailed: non-finite training loss" in text
    assert set(trials[ARM_COLUMN]) == {"zero_shot", "lora", "diverges"}


def test_results_frame_and_summary(finished_study):
    from clipstudy.analysis.selection import best_trials, status_counts

    _, _, trials = finished_study
    assert (trials.attrs["metric"], trials.attrs["mode"]) == ("val/acc", "max")
    best = best_trials(trials)
    assert set(best.index) == {"zero_shot", "lora"}
    lora = trials[(trials[ARM_COLUMN] == "lora") & (trials[STATUS_COLUMN] == "completed")]
    assert best.loc["lora", "selection"] == lora["metrics.best_val/acc"].max()
    counts = status_counts(trials)
    assert counts.loc["diverges", "failed"] == 1
    assert counts.loc["lora"].sum() == 4
    assert mlflow.get_tracking_uri()  # the API left MLflow usable


def test_live_progress_names_each_trials_outcome_and_the_arms_best(finished_study):
    workdir, _, trials = finished_study
    printed = (workdir / PROGRESS_LOG).read_text().splitlines()
    assert not [line for line in printed if line.startswith("Trial status:")], "Ray's own status table is off"
    ray_chatter = ("Configuration for experiment", "View detailed results here", "tensorboard --logdir")
    assert not [line for line in printed if any(text in line for text in ray_chatter)], "Tune's start table is off"
    lora = trials[trials[ARM_COLUMN] == "lora"]
    for _, trial in trials.iterrows():
        arm, trial_id, status = (trial[column] for column in (ARM_COLUMN, TRIAL_ID_COLUMN, STATUS_COLUMN))
        mine = [line for line in printed if line.startswith(f"{arm} {trial_id}  ")]
        assert any("  started" in line for line in mine), (arm, trial_id)
        ending = {"completed": "  completed  epochs ", "pruned": "  pruned after epoch ", "failed": "  failed "}[status]
        assert sum(ending in line for line in mine) == 1, (arm, trial_id, mine)
    best = lora[lora[STATUS_COLUMN] == "completed"]["metrics.best_val/acc"].max()
    last_lora = [line for line in printed if line.startswith("lora ")][-1]
    assert f"| best val/acc {best:.4f} (" in last_lora and "4/4 done, 0 running" in last_lora
