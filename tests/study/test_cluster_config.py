"""cluster.yaml is a valid Ray cluster-launcher config and keeps clipstudy's cluster contract.

Validation uses Ray's own schema (ray/autoscaler/ray-schema.json) and helpers, exactly as `ray up` does
before it talks to the cloud: `prepare_config` merges the provider defaults, `validate_config` checks the
schema and the cross-field rules. Nothing here touches the network or AWS.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray")
jsonschema = pytest.importorskip("jsonschema")
autoscaler_util = pytest.importorskip("ray.autoscaler._private.util")

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"

# GPUs per instance for types a worker may name without an explicit GPU resource.
GPU_INSTANCE_TYPES = {
    "g4dn.xlarge": 1,
    "g5.xlarge": 1,
    "g5.2xlarge": 1,
    "g6.xlarge": 1,
    "g6.2xlarge": 1,
    "g6e.xlarge": 1,
    "p3.2xlarge": 1,
    "p4d.24xlarge": 8,
    "p5.48xlarge": 8,
}


def _load(path: Path = CLUSTER_YAML) -> dict:
    return yaml.safe_load(path.read_text())


def _validate(config: dict) -> dict:
    """What `ray up` does before any cloud call: merge the AWS defaults, then validate."""
    prepared = autoscaler_util.prepare_config(copy.deepcopy(config))
    autoscaler_util.validate_config(prepared)
    return prepared


@pytest.fixture(scope="module")
def config() -> dict:
    return _load()


def _node_types(config: dict) -> dict:
    return config["available_node_types"]


def _worker_types(config: dict) -> dict:
    return {name: t for name, t in _node_types(config).items() if name != config["head_node_type"]}


def _gpus(node_type: dict) -> int:
    resources = node_type.get("resources") or {}
    if "GPU" in resources:
        return resources["GPU"]
    return GPU_INSTANCE_TYPES.get(node_type["node_config"].get("InstanceType"), 0)


def _commands(config: dict, *keys: str) -> list[str]:
    return [cmd for key in keys for cmd in config.get(key) or []]


def test_raw_file_matches_ray_schema(config):
    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(config, schema)


def test_validates_like_ray_up(config):
    prepared = _validate(config)
    assert prepared["provider"]["type"] == "aws"
    assert prepared["cluster_name"] == "clipstudy"
    # Our commands replace the AWS defaults (which pip-install a nightly Ray wheel), not add to them.
    assert not any("ray-wheels" in cmd for cmd in prepared["setup_commands"])


def test_validation_rejects_a_broken_file(config):
    """The checks above have teeth: a typo'd key and a bad type both fail."""
    typo = copy.deepcopy(config)
    typo["idle_timeout_minute"] = typo.pop("idle_timeout_minutes")
    with pytest.raises(jsonschema.ValidationError):
        _validate(typo)

    bad_type = copy.deepcopy(config)
    bad_type["available_node_types"]["gpu_a10g"]["min_workers"] = "zero"
    with pytest.raises(jsonschema.ValidationError):
        _validate(bad_type)

    no_head = copy.deepcopy(config)
    no_head["head_node_type"] = "nonexistent"
    with pytest.raises(ValueError, match="head_node_type"):
        _validate(no_head)


def test_docker_image_matches_installed_ray(config):
    image = config["docker"]["image"]
    match = re.fullmatch(r"rayproject/ray:(?P<version>[^-]+)(?P<suffix>-.+)", image)
    assert match, f"unexpected image {image!r}"
    assert match["version"] == ray.__version__
    assert match["suffix"].endswith("-py311-gpu")
    assert config["docker"]["container_name"]


def test_head_has_no_gpu_and_workers_do(config):
    head = _node_types(config)[config["head_node_type"]]
    assert _gpus(head) == 0, "training must never be scheduled on the head"
    gpu_workers = [name for name, t in _worker_types(config).items() if _gpus(t) >= 1]
    assert gpu_workers, "no worker type provides a GPU"
    instance_types = {t["node_config"]["InstanceType"] for t in _worker_types(config).values()}
    assert {"g5.xlarge", "g6.xlarge"} <= instance_types


def test_worker_bounds_and_autoscaling(config):
    assert config["idle_timeout_minutes"] > 0
    assert config["upscaling_speed"] > 0
    for name, node_type in _worker_types(config).items():
        low, high = node_type.get("min_workers", 0), node_type.get("max_workers", 0)
        assert 0 <= low <= high, f"{name}: min_workers {low} > max_workers {high}"
        assert high <= config["max_workers"], f"{name}: max_workers above the cluster's"
    assert sum(t.get("min_workers", 0) for t in _worker_types(config).values()) <= config["max_workers"]


def test_setup_installs_clipstudy_with_study_extra(config):
    commands = _commands(config, "setup_commands")
    assert any(re.search(r"pip install .*clipstudy\[[^\]]*\bstudy\b[^\]]*\]", cmd) for cmd in commands), commands
    # Installed from the synced checkout, which file_mounts must provide.
    assert "/home/ray/clipstudy" in config["file_mounts"]


def test_head_starts_mlflow_server(config):
    commands = _commands(config, "head_setup_commands", "head_start_ray_commands")
    servers = [cmd for cmd in commands if "mlflow server" in cmd]
    assert servers, "no MLflow tracking server is started on the head"
    server = servers[0]
    assert "--host 0.0.0.0" in server and "--port 5000" in server
    assert "--backend-store-uri" in server and "--artifacts-destination s3://" in server
    assert "nohup" in server and server.rstrip().endswith("&"), "the server must outlive the setup shell"
    # Workers must be pointed at it (not at localhost).
    worker_env = " ".join(_commands(config, "worker_setup_commands", "worker_start_ray_commands"))
    assert "MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:5000" in worker_env


def test_ray_start_commands(config):
    head = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head and "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    worker = " ".join(config["worker_start_ray_commands"])
    assert "--address=$RAY_HEAD_IP:6379" in worker


def test_iam_instance_profiles_everywhere(config):
    for name, node_type in _node_types(config).items():
        assert "Arn" in node_type["node_config"].get("IamInstanceProfile", {}), f"{name}: no instance profile"
