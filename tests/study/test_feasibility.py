import json
import math
from pathlib import Path

import pytest

from clipstudy.errors import ConfigError
from clipstudy.study.feasibility import (
    Cluster,
    NodeType,
    check,
    launcher_cluster,
    load_launcher_cluster,
    most,
    most_resources,
    problems,
    resources_problem,
)
from clipstudy.studyfile import Resources, Study

CLUSTER_YAML = Path(__file__).parents[2] / "cluster.yaml"
HEAD = NodeType("head", 6, 0)
GPU_NODE = NodeType("gpu", 4, 1, count=4)
LAUNCHED = Cluster("the cluster", fixed=(HEAD,), scalable=(GPU_NODE, NodeType("cpu", 16, 0, count=2)), max_workers=5)


def study(resources: dict | None = None, **arms: dict) -> Study:
    """A study whose arms (name -> own resources, or None for the study's) all run zero-shot."""
    return Study.model_validate(
        {
            "name": "s",
            "resources": resources or {},
            "arms": [{"name": name, "method": "zero_shot", "resources": own} for name, own in arms.items()],
        }
    )


def test_a_worker_that_fits_no_node_type_names_the_field_the_largest_node_and_a_fix():
    s = study({"cpus": 1, "gpus": 2}, zero_shot=None, big=None, small={"cpus": 1, "gpus": 1})
    found = problems(s, s.arms, LAUNCHED, where="x.yaml: ")
    assert found == [
        "x.yaml: resources: a worker needs 1 CPU and 2 GPU, but the largest node of the cluster (gpu) has 4 CPU "
        "and 1 GPU; lower the per-worker request to what one node has (more workers spread a trial over nodes) "
        "or add a node type that has them"
    ]  # one message for the two arms that share the study's resources; the third fits
    cpu_heavy = resources_problem(Resources(cpus=20), LAUNCHED)
    assert "a worker needs 20 CPU and 0 GPU, but the largest node of the cluster (cpu) has 16 CPU" in cpu_heavy


def test_an_arms_own_resources_are_named_by_its_index_and_name():
    s = study(None, a=None, lora={"cpus": 5, "gpus": 1})
    with pytest.raises(ConfigError, match=r"^arms\[1\] \(lora\)\.resources: a worker needs 5 CPU and 1 GPU"):
        check(s, s.arms, LAUNCHED)


def test_workers_per_node_and_the_cap_on_nodes_bound_a_worker_group():
    # 3-CPU workers: 2 on the head, 1 per GPU node, 5 per CPU node; max_workers 5 picks the 2 CPU nodes first
    need = Resources(cpus=3, workers=1)
    assert most(LAUNCHED, lambda node: node.cpus // need.cpus) == 2 + 2 * 5 + 3 * 1
    assert resources_problem(need.model_copy(update={"workers": 15}), LAUNCHED) is None
    problem = resources_problem(need.model_copy(update={"workers": 16}), LAUNCHED)
    assert problem.startswith(
        "a trial needs its 16 workers (3 CPU and 0 GPU each) at once, but at most 15 of them fit on the cluster at "
        "its largest; lower workers to 15"
    )
    # one GPU each: only the 4 GPU nodes can take them, whatever their summed CPUs
    assert resources_problem(Resources(cpus=1, gpus=1, workers=4), LAUNCHED) is None
    assert "at most 4 of them fit" in resources_problem(Resources(cpus=1, gpus=1, workers=5), LAUNCHED)


def test_the_driver_share_counts_unless_the_one_worker_runs_in_its_process():
    machine = Cluster("this Ray instance", fixed=(NodeType("node 127.0.0.1", 2, 0),))
    assert resources_problem(Resources(cpus=2), machine) is None  # in-process: the trial holds the worker's CPUs
    assert resources_problem(Resources(cpus=2, in_process=False), machine).startswith(
        "a trial needs 2.01 CPU (1 workers x 2 + its driver's 0.01) and 0 GPU at once, but this Ray instance has "
        "2 CPU and 0 GPU"
    )
    problem = resources_problem(Resources(cpus=1, workers=2), machine)
    assert problem.endswith("lower workers or the per-worker cpus/gpus (e.g. cpus: 0.99)")
    assert resources_problem(Resources(cpus=0.99, workers=2), machine) is None


def test_fractions_of_a_node_add_up_exactly():
    machine = Cluster("m", fixed=(NodeType("n", 1, 4),))
    assert resources_problem(Resources(cpus=0.33, workers=3), machine) is None  # 3 x 0.33 + 0.01 = 1 CPU
    assert resources_problem(Resources(cpus=0.33, gpus=1, workers=3), machine) is None
    assert resources_problem(Resources(cpus=0.1, gpus=1, workers=4), machine) is None
    assert "at most 4 of them fit" in resources_problem(Resources(cpus=0.1, gpus=1, workers=5), machine)


def test_unbounded_node_types_and_resource_caps():
    unbounded = Cluster("c", scalable=(NodeType("gpu", 8, 1, count=None),))
    assert most_resources(unbounded) == (math.inf, math.inf)
    assert resources_problem(Resources(cpus=8, gpus=1, workers=1000), unbounded) is None
    capped = Cluster("c", scalable=(NodeType("gpu", 8, 1, count=None),), max_resources={"GPU": 2})
    assert "but c at its largest has inf CPU and 2 GPU" in resources_problem(Resources(gpus=1, workers=3), capped)


def test_no_node_can_be_started_with_max_workers_0_or_a_count_of_0():
    head_only = Cluster("c", fixed=(HEAD,), scalable=(GPU_NODE,), max_workers=0)
    assert "largest node of c (head) has 6 CPU and 0 GPU" in resources_problem(Resources(gpus=1), head_only)
    none = Cluster("c", scalable=(NodeType("gpu", 4, 1, count=0),))
    assert resources_problem(Resources(), none).startswith("c has no node that could host a trial")


def test_the_shipped_cluster_yaml():
    cluster = load_launcher_cluster(CLUSTER_YAML)
    assert cluster.name == f"the cluster of {CLUSTER_YAML}"
    assert cluster.fixed == (NodeType("node type head", 6, 0),)
    assert cluster.scalable == (
        NodeType("node type head", 6, 0, count=0),
        NodeType("node type gpu_a10g", 4, 1, count=4),
        NodeType("node type gpu_l4", 4, 1, count=4),
    )
    assert cluster.max_workers == 8
    assert most_resources(cluster) == (6 + 8 * 4, 8)


def test_launcher_defaults_per_type_max_workers_like_ray():
    config = {
        "max_workers": 3,
        "head_node_type": "h",
        "available_node_types": {
            "h": {"resources": {"CPU": 2, "GPU": 0}, "max_workers": 1},
            "w": {"resources": {"CPU": 8, "GPU": 2}},
        },
    }
    cluster = launcher_cluster(config, "c.yaml")
    assert cluster.scalable == (NodeType("node type h", 2, 0, count=1), NodeType("node type w", 8, 2, count=3))
    assert most_resources(cluster) == (2 + 3 * 8, 6)


def test_a_prepared_bootstrap_config_may_leave_out_gpu_a_users_file_may_not(tmp_path):
    config = {
        "max_workers": 1,
        "head_node_type": "h",
        "available_node_types": {"h": {"resources": {"CPU": 8}, "max_workers": 0}},
    }
    path = tmp_path / "ray_bootstrap_config.yaml"
    path.write_text(json.dumps(config))  # `ray up` writes the head's copy as JSON
    assert load_launcher_cluster(path, filled=True).fixed == (NodeType("node type h", 8, 0),)
    with pytest.raises(ConfigError, match=r"available_node_types\.h\.resources\.GPU: missing; give it explicitly"):
        load_launcher_cluster(path)


def test_every_problem_of_a_launcher_config_is_listed_with_its_file_and_path():
    config = {
        "max_workers": -2,
        "head_node_type": "hd",
        "available_node_types": {
            "head": {"node_config": {}},
            "w": {"resources": {"CPU": 4, "GPU": "one"}, "max_workers": 1.5},
            "v": "gpu",
        },
    }
    with pytest.raises(ConfigError) as error:
        launcher_cluster(config, "c.yaml")
    assert str(error.value).splitlines() == [
        "c.yaml: max_workers: -2 is not a whole number >= 0; give the most worker nodes at once (head not counted)",
        "c.yaml: head_node_type: 'hd' is not one of available_node_types (head, w, v)",
        "c.yaml: available_node_types.head.resources: missing; give what one node offers Ray, e.g. resources: "
        "{CPU: 4, GPU: 1} (clipstudy does not look instance types up)",
        "c.yaml: available_node_types.w.resources.GPU: 'one' is not a number >= 0",
        "c.yaml: available_node_types.w.max_workers: 1.5 is not a whole number >= 0",
        "c.yaml: available_node_types.v: a node type is a mapping with resources, max_workers and node_config",
    ]
    with pytest.raises(ConfigError, match=r"c.yaml: a cluster launcher config is a mapping"):
        launcher_cluster(["head"], "c.yaml")
    with pytest.raises(ConfigError, match=r"max_workers: missing.*\n.*available_node_types: missing or empty"):
        launcher_cluster({"head_node_type": "h"}, "c.yaml")
