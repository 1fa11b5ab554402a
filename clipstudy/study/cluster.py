"""The node types of the Ray cluster a study runs on, for the check before any trial starts.

A connected driver learns them from the first of these that answers:

1. the autoscaler's cluster config in GCS (`ray._private.state.state.get_cluster_config()`): node groups
   with their resources and max count. Ray Train checks a worker group against it. Ray 2.60 itself never
   writes it (nothing in its Python calls `GcsClient.report_cluster_config`); platforms that manage the
   autoscaler may.
2. the launcher config that `ray up` copies to the head, `~/ray_bootstrap_config.yaml` (the head's
   autoscaler runs with it; `ray job submit` runs the driver on the head; Ray Tune tests for this file to
   tell a launcher cluster).
3. the live nodes. With `--local` they are all there is. On a cluster that may autoscale they only tell
   what fits now, so a study that fits none of them gets a warning, not an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray

from clipstudy.config import load_yaml
from clipstudy.errors import ConfigError
from clipstudy.study.feasibility import Cluster, NodeType, check, launcher_cluster, load_launcher_cluster, problems
from clipstudy.study.progress import say
from clipstudy.studyfile import Arm, Study

BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


def live_nodes() -> tuple[NodeType, ...]:
    return tuple(
        NodeType(
            f"node {node.get('NodeManagerAddress') or node['NodeID'][:8]}",
            node.get("Resources", {}).get("CPU", 0.0),
            node.get("Resources", {}).get("GPU", 0.0),
        )
        for node in ray.nodes()
        if node.get("Alive")
    )


def autoscaler_config() -> Any:
    """The autoscaler's cluster config in GCS (an autoscaler_pb2.ClusterConfig), or None."""
    from ray._private.state import state

    return state.get_cluster_config()


def from_autoscaler_config(config: Any, live: tuple[NodeType, ...]) -> Cluster | None:
    """The cluster as its autoscaler config describes it; None without node groups.

    The live nodes count besides the groups' max counts (the config does not say which group the head is):
    an overestimate, which only makes the check more lenient.
    """
    groups = [group for group in (config.node_group_configs if config else ()) if group.resources]
    if not groups:
        return None
    scalable = tuple(
        NodeType(
            f"node type {group.name or index}",
            group.resources.get("CPU", 0.0),
            group.resources.get("GPU", 0.0),
            None if group.max_count < 0 else group.max_count,
        )
        for index, group in enumerate(groups)
    )
    caps = {key: float(config.max_resources[key]) for key in ("CPU", "GPU") if key in config.max_resources}
    return Cluster("the Ray cluster (its autoscaler's node types)", live, scalable, max_resources=caps)


def from_bootstrap_config(path: str = BOOTSTRAP_CONFIG) -> Cluster | None:
    """The cluster as the launcher config on its head describes it; None where there is none (or it is unclear)."""
    file = Path(path).expanduser()
    if not file.is_file():
        return None
    try:
        return launcher_cluster(load_yaml(file), path, filled=True)
    except ConfigError:
        return None  # e.g. a provider that leaves resources to Ray's detection: fall back to the live nodes


def check_feasible(
    study: Study, arms: list[Arm], local: bool, cluster_config: str | None = None, where: str = ""
) -> None:
    """Raise ConfigError for the arms' resources that no node of the cluster could ever host.

    `cluster_config`: a launcher config to check against instead of what the connected cluster says.
    """
    if cluster_config:
        cluster = load_launcher_cluster(cluster_config)
    elif local:
        cluster = Cluster("this Ray instance", live_nodes())
    else:
        live = live_nodes()
        cluster = from_autoscaler_config(autoscaler_config(), live) or from_bootstrap_config()
        if cluster is None:
            warn_unknown_cluster(study, arms, Cluster("the Ray cluster", live))
            return
    check(study, arms, cluster, where)


def warn_unknown_cluster(study: Study, arms: list[Arm], live: Cluster) -> None:
    """One line when no live node fits: the autoscaler may still start one that does."""
    found = problems(study, arms, live)
    if found:
        paths = ", ".join(problem.split(": ", 1)[0] for problem in found)
        say(
            f"warning: {paths}: no live node of the Ray cluster can host these trials yet; they will wait for the "
            "autoscaler to start nodes that can (with --cluster CLUSTER.yaml, clipstudy checks its node types first)",
            style="yellow",
        )
