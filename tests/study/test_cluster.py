"""Where `clipstudy run` learns a cluster's node types, and what it does with each answer."""

import json
from pathlib import Path

import pytest
from ray.core.generated import autoscaler_pb2

from clipstudy.errors import ConfigError
from clipstudy.study import cluster as node_types
from clipstudy.study.feasibility import NodeType
from clipstudy.studyfile import Study

CLUSTER_YAML = str(Path(__file__).parents[2] / "cluster.yaml")
HEAD = (NodeType("node 10.0.0.1", 6, 0),)


def study(**resources) -> Study:
    return Study.model_validate({"name": "s", "resources": resources, "arms": [{"name": "a", "method": "zero_shot"}]})


def group(name: str, max_count: int, **resources: float) -> autoscaler_pb2.NodeGroupConfig:
    return autoscaler_pb2.NodeGroupConfig(name=name, resources=resources, max_count=max_count)


@pytest.fixture
def cluster(monkeypatch, tmp_path):
    """A connected cluster with a CPU head only, no autoscaler config and no launcher config on this node."""
    monkeypatch.setattr(node_types, "live_nodes", lambda: HEAD)
    monkeypatch.setattr(node_types, "autoscaler_config", lambda: None)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_the_autoscalers_node_groups_come_first(cluster, monkeypatch):
    config = autoscaler_pb2.ClusterConfig(
        node_group_configs=[group("gpu", 2, CPU=8, GPU=1), group("spot", -1, CPU=4, GPU=1), group("off", 0, CPU=64)],
        max_resources={"GPU": 3},
    )
    monkeypatch.setattr(node_types, "autoscaler_config", lambda: config)
    (cluster / "ray_bootstrap_config.yaml").write_text("max_workers: 0\n")  # not read: the autoscaler answered
    node_types.check_feasible(study(cpus=4, gpus=1, workers=3), study().arms, local=False)
    with pytest.raises(ConfigError) as error:
        node_types.check_feasible(study(cpus=4, gpus=1, workers=4), study().arms, local=False, where="s.yaml: ")
    assert str(error.value) == (
        "s.yaml: resources: a trial needs 16.01 CPU (4 workers x 4 + its driver's 0.01) and 4 GPU at once, but "
        "the Ray cluster (its autoscaler's node types) at its largest has inf CPU and 3 GPU; lower workers or the "
        "per-worker cpus/gpus"
    )
    with pytest.raises(ConfigError, match=r"the largest node of .* \(node type gpu\) has 8 CPU and 1 GPU"):
        node_types.check_feasible(study(cpus=1, gpus=2), study().arms, local=False)


def test_then_the_launcher_config_on_the_head(cluster):
    launcher = {
        "max_workers": 2,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 6}, "max_workers": 0},  # as `ray up` fills it in: no GPU key
            "gpu": {"resources": {"CPU": 4, "GPU": 1}, "max_workers": 4},
        },
    }
    (cluster / "ray_bootstrap_config.yaml").write_text(json.dumps(launcher))
    node_types.check_feasible(study(cpus=4, gpus=1, workers=2), study().arms, local=False)
    with pytest.raises(ConfigError, match=r"at most 2 of them fit on the cluster of ~/ray_bootstrap_config.yaml"):
        node_types.check_feasible(study(cpus=4, gpus=1, workers=3), study().arms, local=False)


def test_then_the_live_nodes_with_a_warning_only(cluster, capsys):
    node_types.check_feasible(study(cpus=1), study().arms, local=False)
    assert capsys.readouterr().out == ""
    (cluster / "ray_bootstrap_config.yaml").write_text("{}")  # says nothing usable: the live nodes it is
    node_types.check_feasible(study(cpus=4, gpus=1), study().arms, local=False)
    assert capsys.readouterr().out == (
        "warning: resources: no live node of the Ray cluster can host these trials yet; they will wait for the "
        "autoscaler to start nodes that can (with --cluster CLUSTER.yaml, clipstudy checks its node types first)\n"
    )


def test_a_given_launcher_config_wins_and_live_nodes_are_final_with_local(cluster, monkeypatch):
    monkeypatch.setattr(node_types, "autoscaler_config", lambda: pytest.fail("the given config answers"))
    node_types.check_feasible(study(cpus=4, gpus=1, workers=8), study().arms, local=False, cluster_config=CLUSTER_YAML)
    with pytest.raises(ConfigError, match="at most 8 of them fit"):
        node_types.check_feasible(study(gpus=1, workers=9), study().arms, local=False, cluster_config=CLUSTER_YAML)
    with pytest.raises(ConfigError, match=r"largest node of this Ray instance \(node 10.0.0.1\) has 6 CPU and 0 GPU"):
        node_types.check_feasible(study(gpus=1), study().arms, local=True)


def test_run_options_refuse_a_cluster_config_with_local():
    from clipstudy.study.runner import RunOptions

    with pytest.raises(ConfigError, match=r"--cluster .* --local"):
        RunOptions(local=True, cluster_config=CLUSTER_YAML)


@pytest.mark.slow
def test_a_real_ray_instance_reports_its_live_nodes_and_no_autoscaler_config():
    import ray

    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, configure_logging=False)
    try:
        assert [(node.cpus, node.gpus) for node in node_types.live_nodes()] == [(2.0, 0.0)]
        assert node_types.autoscaler_config() is None
    finally:
        ray.shutdown()
