"""Writing the record: the study's parent run and its trial runs, as DESIGN.md, "MLflow record", specifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipstudy.config import flatten
from clipstudy.engine import run_trial
from clipstudy.tracking import read, runs
from clipstudy.tracking.schema import (
    ARM,
    GIT_COMMIT,
    GPU_IDS,
    METHOD,
    PARENT,
    REASON,
    ROLE,
    RUNTIME,
    STATUS,
    TRIAL_ID,
    TRIAL_ID_COLUMN,
)

# MLflow 3.17's SQLAlchemy store uses a loader strategy SQLAlchemy deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def _record_trial(uri, parent, arm, trial_id, config):
    """What the runner does for one trial: child run, per-epoch metrics, result, status."""
    result = run_trial(config)
    run_id = runs.trial_run(uri, "demo", parent, arm, config.method, trial_id, config)
    for row in result.history:
        runs.log_epoch(uri, run_id, row, row["epoch"])
    runs.log_result(uri, run_id, result)
    runs.set_status(uri, run_id, "completed")
    return run_id, result


def test_study_with_two_trials_is_recorded_as_specified(uri, client, study_file, tiny_config, tmp_path):
    parent = runs.start_study_run(uri, "demo", study_file, resume=False, extra_tags={"clipstudy.note": "x"})
    configs = {"t1": tiny_config("lora", train__epochs=2, lora__r=4), "t2": tiny_config("linear_probe")}
    recorded = {tid: _record_trial(uri, parent, cfg.method, tid, cfg) for tid, cfg in configs.items()}
    runs.finish_study_run(uri, parent)

    parent_run = client.get_run(parent)
    experiment = client.get_experiment_by_name("demo")
    assert parent_run.info.experiment_id == experiment.experiment_id
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.tags[ROLE] == "study"
    assert parent_run.data.tags["clipstudy.note"] == "x"
    assert GIT_COMMIT in parent_run.data.tags
    study_artifacts = [f.path for f in client.list_artifacts(parent, "study")]
    assert study_artifacts == ["study/study.yaml"]
    # Artifacts of the embedded store live next to the database, not in the working directory.
    assert Path(experiment.artifact_location.removeprefix("file://")) == tmp_path / "mlruns"

    for trial_id, (run_id, result) in recorded.items():
        config = configs[trial_id]
        run = client.get_run(run_id)
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"{config.method}/{trial_id}"
        assert tags[PARENT] == parent
        assert (tags[ROLE], tags[ARM], tags[METHOD], tags[TRIAL_ID], tags[STATUS]) == (
            "trial",
            config.method,
            config.method,
            trial_id,
            "completed",
        )
        assert REASON not in tags
        expected_params = {k: str(v) for k, v in flatten(config.model_dump(mode="json")).items()}
        assert params == expected_params
        assert params["method"] == config.method
        assert params["train.lr"] == str(config.train.lr)
        assert params["lora.targets"] == str(config.lora.targets)

        epochs = config.train.epochs
        for key in ("val/loss", "val/acc"):
            history = client.get_metric_history(run_id, key)
            assert sorted(m.step for m in history) == list(range(epochs + 1))
            by_step = {m.step: m.value for m in history}
            assert by_step == pytest.approx({row["epoch"]: row[key] for row in result.history})
        assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == list(range(1, epochs + 1))
        assert "epoch" not in metrics
        for key in ("test/acc", "test/acc5", "test/macro_f1", "trainable_params", "total_params"):
            assert metrics[key] == pytest.approx(result.metrics[key])
        assert metrics["trainable_params"] > 0

        artifacts = {f.path: f.file_size for f in client.list_artifacts(run_id)}
        for name in ("per_class.csv", "confusion_matrix.csv", "weights.safetensors", "config.yaml"):
            assert artifacts.get(name, 0) > 0, (name, artifacts)
    assert recorded["t1"][0] != recorded["t2"][0]
    assert client.get_run(recorded["t1"][0]).data.params["lora.r"] == "4"


def test_resume_reuses_the_parent_and_the_trial_runs(uri, client, study_file, tiny_config):
    config = tiny_config("lora")
    parent = runs.start_study_run(uri, "demo", study_file, resume=False)
    first = runs.trial_run(uri, "demo", parent, "lora", "lora", "t1", config)
    assert runs.trial_run(uri, "demo", parent, "lora", "lora", "t1", config) == first
    runs.finish_study_run(uri, parent, "KILLED")

    resumed = runs.start_study_run(uri, "demo", study_file, resume=True)
    assert resumed == parent
    assert client.get_run(parent).info.status == "RUNNING"
    assert runs.trial_run(uri, "demo", parent, "lora", "lora", "t1", config) == first
    assert runs.trial_run(uri, "demo", parent, "lora", "lora", "t2", config) != first
    trial_ids = sorted(read.trial_runs(uri, "demo")[TRIAL_ID_COLUMN])
    assert trial_ids == ["t1", "t2"]

    fresh = runs.start_study_run(uri, "demo", None, resume=False)
    assert fresh != parent
    assert runs.start_study_run(uri, "demo", None, resume=True) == fresh  # the most recent one
    parents = client.search_runs([client.get_experiment_by_name("demo").experiment_id], f"tags.`{ROLE}` = 'study'")
    assert len(parents) == 2


def test_resume_without_a_parent_creates_one(uri, client):
    run_id = runs.start_study_run(uri, "new-study", None, resume=True)
    assert client.get_run(run_id).data.tags[ROLE] == "study"


def test_a_retried_trial_is_running_again_and_loses_its_old_failure_reason(uri, client, tiny_config):
    config = tiny_config("lora")
    parent = runs.start_study_run(uri, "demo", None, resume=False)
    run_id = runs.trial_run(uri, "demo", parent, "lora", "lora", "t1", config)
    runs.set_status(uri, run_id, "failed", "worker died")
    assert runs.trial_run(uri, "demo", parent, "lora", "lora", "t1", config) == run_id
    run = client.get_run(run_id)
    assert (run.info.status, run.data.tags[STATUS]) == ("RUNNING", "running")
    runs.set_status(uri, run_id, "completed")
    run = client.get_run(run_id)
    assert (run.info.status, run.data.tags[STATUS]) == ("FINISHED", "completed")
    assert REASON not in run.data.tags


@pytest.mark.parametrize(
    ("status", "reason", "mlflow_status"),
    [("completed", None, "FINISHED"), ("pruned", None, "FINISHED"), ("failed", "non-finite loss at epoch 3", "FAILED")],
)
def test_set_status(uri, client, tiny_config, status, reason, mlflow_status):
    parent = runs.start_study_run(uri, "demo", None, resume=False)
    run_id = runs.trial_run(uri, "demo", parent, "arm", "lora", "t1", tiny_config("lora"))
    assert client.get_run(run_id).data.tags[STATUS] == "running"
    runs.set_status(uri, run_id, status, reason)
    run = client.get_run(run_id)
    assert run.info.status == mlflow_status
    assert run.data.tags[STATUS] == status
    assert run.data.tags.get(REASON) == reason
    assert run.info.end_time is not None


def test_set_status_rejects_unknown_statuses(uri, tiny_config):
    parent = runs.start_study_run(uri, "demo", None, resume=False)
    run_id = runs.trial_run(uri, "demo", parent, "arm", "lora", "t1", tiny_config("lora"))
    for bad in ("running", "FINISHED", "done"):
        with pytest.raises(ValueError, match="completed, pruned, failed"):
            runs.set_status(uri, run_id, bad)


def test_log_epoch_skips_epoch_and_non_numeric_values(uri, client):
    parent = runs.start_study_run(uri, "demo", None, resume=False)
    runs.log_epoch(uri, parent, {"epoch": 3, "train/loss": 0.5, "lr": 1e-3, "note": "x", "ok": True}, 3)
    metrics = client.get_run(parent).data.metrics
    assert metrics == {"train/loss": 0.5, "lr": 1e-3}
    assert [m.step for m in client.get_metric_history(parent, "train/loss")] == [3]


@pytest.mark.parametrize(
    ("per_worker", "tag"),
    [([["0"]], "0"), ([["0"], ["0"]], "0;0"), ([["2", "3"], ["0", "1"]], "2,3;0,1"), ([[]], None)],
)
def test_log_gpu_ids_tags_each_workers_gpus_in_rank_order(uri, client, per_worker, tag):
    run_id = runs.start_study_run(uri, "demo", None, resume=False)
    runs.log_gpu_ids(uri, run_id, per_worker)
    assert client.get_run(run_id).data.tags.get(GPU_IDS) == tag


def test_log_runtime_tags_device_and_precision(uri, client):
    run_id = runs.start_study_run(uri, "demo", None, resume=False)
    runs.log_runtime(uri, run_id, {"device": "cuda (NVIDIA H100 80GB HBM3)", "precision": "bf16"})
    tags = client.get_run(run_id).data.tags
    assert tags[f"{RUNTIME}.device"] == "cuda (NVIDIA H100 80GB HBM3)"
    assert tags[f"{RUNTIME}.precision"] == "bf16"


def test_base_to_new_and_retention_metrics_are_recorded(uri, client, tiny_config):
    """The protocol metrics are part of the trial's final metrics, so they reach MLflow with the rest."""
    config = tiny_config("zero_shot", data__classes="base", eval__retention=["digits"], eval__retention_per_class=4)
    parent = runs.start_study_run(uri, "demo", None, resume=False)
    run_id, result = _record_trial(uri, parent, "zs", "t1", config)
    recorded = client.get_run(run_id).data.metrics
    keys = ["test/base_acc", "test/new_acc", "test/hm"]
    keys += [f"retention/digits/{name}" for name in ("acc", "zs_acc", "delta")]
    for key in keys:
        assert recorded[key] == pytest.approx(result.metrics[key]), key
    assert recorded["retention/digits/delta"] == 0.0  # zero-shot changes nothing
    params = client.get_run(run_id).data.params
    assert params["data.classes"] == "base" and params["eval.retention"] == "['digits']"


def test_the_wise_ft_alpha_curve_is_recorded_with_its_steps(uri, client, tiny_config):
    config = tiny_config("full_ft", head__kind="text", wise__enabled=True, wise__alphas=[0.0, 0.25, 1.0])
    parent = runs.start_study_run(uri, "demo", None, resume=False)
    run_id, result = _record_trial(uri, parent, "wise", "t1", config)
    for key in ("wise/val_acc", "wise/val_loss", "wise/test_acc"):
        history = {m.step: m.value for m in client.get_metric_history(run_id, key)}
        assert history == pytest.approx(dict(result.curves[key])), key
        assert sorted(history) == [0, 25, 100]
    recorded = client.get_run(run_id).data.metrics
    for key in ("wise/best_alpha", "wise/val_acc_at_best", "wise/test_acc_at_best"):
        assert recorded[key] == pytest.approx(result.metrics[key]), key
    assert recorded["wise/best_alpha"] in (0.0, 0.25, 1.0)
