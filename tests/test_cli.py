import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from clipstudy.cli import app

runner = CliRunner()
QUICKSTART = str(Path(__file__).parents[1] / "studies" / "quickstart.yaml")


def test_ls_lists_registries():
    methods = runner.invoke(app, ["ls", "methods"])
    assert methods.exit_code == 0
    for name in ("zero_shot", "linear_probe", "full_ft", "lora", "flyp", "clip_cite"):
        assert name in methods.output
    datasets = runner.invoke(app, ["ls", "datasets"])
    assert {"cifar100", "cifar10", "imagefolder", "digits", "synthetic"} <= set(datasets.output.split())
    models = runner.invoke(app, ["ls", "models"])
    assert {"ViT-B-32", "clipstudy-tiny", "clipstudy-tiny-siglip", "torchvision/resnet50"} <= set(models.output.split())
    lines = {line.split()[0]: line.split()[1:] for line in models.output.splitlines()}
    assert lines["ViT-B-16-SigLIP"] == ["siglip", "webli"]
    assert lines["clipstudy-micro"] == ["clip", "synthetic"]  # pretrained offline, shipped with the package
    assert lines["torchvision/resnet50"] == ["image-only", "imagenet,", "IMAGENET1K_V1,", "IMAGENET1K_V2"]


def test_dry_run_prints_config_and_trainable_params(tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            QUICKSTART,
            "--arm",
            "lora",
            "--dry-run",
            "--set",
            "lora.r=4",
            "--set",
            "lora.targets=[q,v]",
            "--set",
            f"data.cache_dir={tmp_path}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trainable_params: " in result.output
    trainable = int(result.output.split("trainable_params: ")[1].split()[0])
    # clipstudy-micro: 4 vision blocks x (q, v) x r(96 + 96) + linear head 64*10 + 10
    assert trainable == 4 * 2 * 4 * 192 + 650
    assert "r: 4" in result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") == 5}
    assert "yes" in rows["image tower"] and "no (not used)" in rows["text tower"]  # a linear head: text unused


def test_train_runs_a_trial_and_writes_results(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "train",
            QUICKSTART,
            "--arm",
            "linear_probe",
            "--set",
            "train.epochs=2",
            "--set",
            f"data.cache_dir={tmp_path}",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "test/acc" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test/acc"] <= 1
    for name in ("per_class.csv", "confusion_matrix.csv", "weights.safetensors", "history.csv"):
        assert (out / name).stat().st_size > 0
    assert yaml.safe_load((out / "config.yaml").read_text())["method"] == "linear_probe"


def test_bad_input_exits_2_with_a_clear_message(tmp_path):
    result = runner.invoke(app, ["train", QUICKSTART])
    assert result.exit_code == 2
    assert "choose one with --arm" in result.output
    result = runner.invoke(app, ["train", QUICKSTART, "--arm", "lora", "--set", "lora.r=0", "--dry-run"])
    assert result.exit_code == 2 and "lora.r" in result.output
    result = runner.invoke(app, ["train", QUICKSTART, "--arm", "lorra"])
    assert result.exit_code == 2 and "did you mean 'lora'" in result.output
    result = runner.invoke(app, ["train", QUICKSTART, "--arm", "lora", "--set", "model.arch=ViT-B-33"])
    output = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2 and "unknown architecture 'ViT-B-33' (did you mean 'ViT-B-32'?)" in output
    assert "`clipstudy ls models` lists them all" in output


def test_validate_checks_every_shipped_study_and_rejects_bad_ones(tmp_path):
    result = runner.invoke(app, ["validate", str(Path(QUICKSTART).parent)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok: ") == len(list(Path(QUICKSTART).parent.glob("*.yaml")))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\narms:\n  - {name: a, method: lora, search: {lora.r: {choice: [0]}}}\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "lora.r" in result.output and str(bad) in result.output


def test_run_without_a_cluster_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", QUICKSTART])
    assert result.exit_code == 2
    assert "--local" in result.output and "RAY_ADDRESS" in result.output


def test_a_local_run_with_missing_data_stops_before_ray_starts(tmp_path, monkeypatch):
    import ray

    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "my photos"
    result = runner.invoke(
        app, ["run", QUICKSTART, "--local", "--set", f"data.root={missing}", "--set", "data.name=imagefolder"]
    )
    assert result.exit_code == 2, result.output
    assert f"error: arm 'zero_shot': imagefolder: data.root {missing} is not a folder" in " ".join(
        result.output.split()
    )
    assert not ray.is_initialized()
    assert not (tmp_path / "runs").exists()  # no trial, no search state


def test_a_run_whose_every_trial_failed_exits_1_with_the_reasons(tmp_path, monkeypatch):
    import pandas as pd

    from clipstudy.study import runner as study_runner
    from clipstudy.tracking.schema import ARM_COLUMN, METHOD_COLUMN, REASON_COLUMN, STATUS_COLUMN

    def run_study(study_file, options):
        reason = "weights 'openai' for 'ViT-B-32' are not cached ([no network])"
        trials = pd.DataFrame(
            {ARM_COLUMN: ["zs", "lora"], METHOD_COLUMN: ["zero_shot", "lora"], STATUS_COLUMN: ["failed", statuses[1]]}
        )
        trials[REASON_COLUMN] = [reason, reason if statuses[1] == "failed" else None]
        trials["metrics.best_val/acc"] = [float("nan"), 0.5]
        trials.attrs.update(tracking_uri="sqlite:///mlflow.db", metric="val/acc", mode="max")
        return trials

    monkeypatch.setattr(study_runner, "run_study", run_study)
    statuses = ["failed", "failed"]
    result = runner.invoke(app, ["run", QUICKSTART, "--local"])
    assert result.exit_code == 1, result.output
    assert "error: every trial failed (2):" in result.output
    assert "zs, lora: weights 'openai' for 'ViT-B-32' are not cached ([no network])" in result.output
    statuses[1] = "completed"
    result = runner.invoke(app, ["run", QUICKSTART, "--local"])
    assert result.exit_code == 0, result.output
    assert "warning: 1 of 2 trials failed (1):" in result.output and "  zs: weights 'openai'" in result.output


def test_validate_checks_resources_against_a_cluster_launcher_config(tmp_path):
    cluster = str(Path(QUICKSTART).parents[1] / "cluster.yaml")
    shipped = Path(QUICKSTART).parent
    result = runner.invoke(app, ["validate", str(shipped), "--cluster", cluster])
    assert result.exit_code == 0, result.output  # every shipped study fits the shipped cluster
    assert result.output.count(f"fits {cluster})") == len(list(shipped.glob("*.yaml")))
    big = tmp_path / "big.yaml"
    big.write_text("name: big\nresources: {cpus: 1, gpus: 2}\narms:\n  - {name: a, method: zero_shot}\n")
    result = runner.invoke(app, ["validate", str(big), QUICKSTART, "--cluster", cluster])
    assert result.exit_code == 2
    assert (
        f"invalid: {big}: resources: a worker needs 1 CPU and 2 GPU, but the largest node of the cluster of "
        f"{cluster} (node type gpu_a10g) has 4 CPU and 1 GPU; lower the per-worker request"
    ) in result.output
    assert f"ok: {QUICKSTART}" in result.output
    broken = tmp_path / "cluster.yaml"
    broken.write_text("max_workers: 2\nhead_node_type: head\navailable_node_types: {head: {resources: {CPU: 4}}}\n")
    result = runner.invoke(app, ["validate", QUICKSTART, "--cluster", str(broken)])
    assert result.exit_code == 2
    assert f"{broken}: available_node_types.head.resources.GPU: missing" in result.output
