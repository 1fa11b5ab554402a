"""Refuse, before any trial starts, study resources that no node of a cluster could ever host.

A cluster is described by node shapes: the nodes that are always there (a launcher config's head, or
every live node of a Ray instance) and the node types an autoscaler may start, each up to a count and all
together up to the launcher's `max_workers`. One worker of a trial must fit on one node. A trial's workers,
plus its driver's token CPU share, must fit in the cluster at its largest. Without this check, Tune would
wait forever for such a trial. The checks give the study the benefit of the doubt: they refuse only what
can never run.

Pure logic, no Ray: `clipstudy validate --cluster` uses it as well as `clipstudy run`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipstudy.config import load_yaml
from clipstudy.errors import ConfigError
from clipstudy.studyfile import Arm, Resources, Study

DRIVER_CPUS = 0.01
"""CPU share of a trial whose workers run in their own actors: its driver only waits on them (Tune refuses
a trial with no resources at all)."""

SLACK = 1e-6  # float rounding: three workers of 1/3 CPU fit on one CPU


@dataclass(frozen=True)
class NodeType:
    name: str
    cpus: float
    gpus: float
    count: int | None = 1
    """For a scalable type: how many such nodes there can be at most; None: no limit of its own, only the
    cluster's. A fixed node counts once."""


@dataclass(frozen=True)
class Cluster:
    """What a cluster has or can start, named as messages show it (e.g. "the cluster of cluster.yaml")."""

    name: str
    fixed: tuple[NodeType, ...] = ()
    """Nodes that are there whatever happens, each once: a launcher's head, or the live nodes of a Ray instance."""
    scalable: tuple[NodeType, ...] = ()
    """Node types the autoscaler may start, up to each one's count."""
    max_workers: int | None = None
    """Most scalable nodes at once, over all types (a launcher config's top-level max_workers)."""
    max_resources: Mapping[str, float] = field(default_factory=dict)
    """Caps on the cluster's total "CPU"/"GPU" (an autoscaler's cluster config may set them)."""

    @property
    def possible(self) -> tuple[NodeType, ...]:
        """The node types of which at least one node can exist."""
        if self.max_workers == 0:
            return self.fixed
        return self.fixed + tuple(node for node in self.scalable if node.count != 0)

    @property
    def described(self) -> str:
        return f"{self.name} at its largest" if self.scalable else self.name


def holds_driver(resources: Resources) -> bool:
    """A trial's driver holds DRIVER_CPUS besides its workers, unless its one worker runs in its process."""
    return not (resources.workers == 1 and resources.in_process)


def workers_per_node(node: NodeType, need: Resources) -> int:
    fit = math.floor(node.cpus / need.cpus + SLACK)
    if need.gpus:
        fit = min(fit, math.floor(node.gpus / need.gpus + SLACK))
    return fit


def most(cluster: Cluster, value: Callable[[NodeType], float]) -> float:
    """The largest sum of `value` over the nodes the cluster can have at once (math.inf: no limit).

    The fixed nodes, then the scalable types with the most of it first, up to each type's count and the
    cluster's max_workers: the best choice, since each node adds its value independently of the others.
    """
    total = sum(value(node) for node in cluster.fixed)
    room = math.inf if cluster.max_workers is None else cluster.max_workers
    for node in sorted(cluster.scalable, key=value, reverse=True):
        if value(node) <= 0 or room <= 0:
            break
        nodes = min(room, math.inf if node.count is None else node.count)
        if nodes == math.inf:
            return math.inf
        total += value(node) * nodes
        room -= nodes
    return total


def most_resources(cluster: Cluster) -> tuple[float, float]:
    """The most CPUs and the most GPUs the cluster can have at once (each on its own: an upper bound)."""
    cpus = min(most(cluster, lambda node: node.cpus), cluster.max_resources.get("CPU", math.inf))
    gpus = min(most(cluster, lambda node: node.gpus), cluster.max_resources.get("GPU", math.inf))
    return cpus, gpus


def resources_problem(need: Resources, cluster: Cluster) -> str | None:
    """Why no trial with these per-worker resources could ever run on the cluster, with the fix; None if one could."""
    nodes = cluster.possible
    if not nodes:
        return f"{cluster.name} has no node that could host a trial; add a node type (or raise max_workers)"
    if not any(workers_per_node(node, need) >= 1 for node in nodes):
        largest = max(nodes, key=lambda n: (n.gpus, n.cpus) if need.gpus else (n.cpus, n.gpus))
        return (
            f"a worker needs {need.cpus:g} CPU and {need.gpus:g} GPU, but the largest node of {cluster.name} "
            f"({largest.name}) has {largest.cpus:g} CPU and {largest.gpus:g} GPU; lower the per-worker request to "
            "what one node has (more workers spread a trial over nodes) or add a node type that has them"
        )
    fit = most(cluster, lambda node: workers_per_node(node, need))
    if fit < need.workers:
        return (
            f"a trial needs its {need.workers} workers ({need.cpus:g} CPU and {need.gpus:g} GPU each) at once, "
            f"but at most {fit:g} of them fit on {cluster.described}; lower workers to {fit:g} or the per-worker "
            "cpus/gpus, or let the cluster have more nodes"
        )
    driver = DRIVER_CPUS if holds_driver(need) else 0.0
    cpus, gpus = need.workers * need.cpus + driver, need.workers * need.gpus
    most_cpus, most_gpus = most_resources(cluster)
    if cpus <= most_cpus + SLACK and gpus <= most_gpus + SLACK:
        return None
    share = f" + its driver's {DRIVER_CPUS:g}" if driver else ""
    example = f" (e.g. cpus: {(most_cpus - driver) / need.workers:.2f})" if gpus <= most_gpus + SLACK else ""
    return (
        f"a trial needs {cpus:g} CPU ({need.workers} workers x {need.cpus:g}{share}) and {gpus:g} GPU at once, "
        f"but {cluster.described} has {most_cpus:g} CPU and {most_gpus:g} GPU; lower workers or the "
        f"per-worker cpus/gpus{example}"
    )


def resources_path(study: Study, arm: Arm) -> str:
    """Where an arm's resources come from: its own `resources`, or the study's."""
    return f"arms[{study.arms.index(arm)}] ({arm.name}).resources" if arm.resources else "resources"


def problems(study: Study, arms: list[Arm], cluster: Cluster, where: str = "") -> list[str]:
    """One message per resources entry of these arms that no trial could run with, prefixed by `where`."""
    found: dict[str, None] = {}  # arms sharing the study's resources share one message
    for arm in arms:
        problem = resources_problem(study.arm_resources(arm), cluster)
        if problem:
            found[f"{where}{resources_path(study, arm)}: {problem}"] = None
    return list(found)


def check(study: Study, arms: list[Arm], cluster: Cluster, where: str = "") -> None:
    found = problems(study, arms, cluster, where)
    if found:
        raise ConfigError("\n".join(found))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _amount(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def launcher_cluster(config: Any, source: str, filled: bool = False) -> Cluster:
    """The node types of a Ray cluster-launcher config (what `ray up` reads), every problem listed.

    The head node counts once, plus as many more nodes of its type as its max_workers (default 0). A worker
    type's max_workers defaults to the top-level max_workers, which caps all worker nodes together, as in
    Ray. `filled`: the config as `ray up` prepared it for the head (~/ray_bootstrap_config.yaml), where the
    provider has filled in the resources of each instance type and a missing GPU means none. In a user's
    file a missing CPU or GPU would be looked up from the cloud, which clipstudy does not do, so both must
    be given.
    """
    if not isinstance(config, dict):
        raise ConfigError(
            f"{source}: a cluster launcher config is a mapping with available_node_types, head_node_type and "
            "max_workers"
        )
    found = []
    cap = config.get("max_workers")
    if not _count(cap):
        what = "missing" if cap is None else f"{cap!r} is not a whole number >= 0"
        found.append(f"{source}: max_workers: {what}; give the most worker nodes at once (head not counted)")
    types = config.get("available_node_types")
    if not isinstance(types, dict) or not types:
        found.append(
            f"{source}: available_node_types: missing or empty; list the node types, e.g. "
            "gpu: {resources: {CPU: 4, GPU: 1}, max_workers: 4, node_config: {...}}"
        )
        types = {}
    head = config.get("head_node_type")
    if types and (not isinstance(head, str) or head not in types):
        what = "missing" if head is None else f"'{head}' is not one of available_node_types"
        found.append(f"{source}: head_node_type: {what} ({', '.join(map(str, types))})")
    shapes: dict[str, tuple[float, float, Any]] = {}
    for name, spec in types.items():
        where = f"{source}: available_node_types.{name}"
        if not isinstance(spec, dict):
            found.append(f"{where}: a node type is a mapping with resources, max_workers and node_config")
            continue
        resources = spec.get("resources")
        if not isinstance(resources, dict):
            found.append(
                f"{where}.resources: missing; give what one node offers Ray, e.g. resources: {{CPU: 4, GPU: 1}} "
                "(clipstudy does not look instance types up)"
            )
            continue
        amounts = {}
        for key in ("CPU", "GPU"):
            value = resources.get(key, 0 if filled and key == "GPU" else None)
            if value is None:
                found.append(f"{where}.resources.{key}: missing; give it explicitly ({key}: 0 for none)")
            elif not _amount(value):
                found.append(f"{where}.resources.{key}: {value!r} is not a number >= 0")
            else:
                amounts[key] = float(value)
        count = spec.get("max_workers", 0 if name == head else cap)
        if "max_workers" in spec and not _count(count):
            found.append(f"{where}.max_workers: {count!r} is not a whole number >= 0")
        elif len(amounts) == 2:
            shapes[name] = (amounts["CPU"], amounts["GPU"], count)
    if found:
        raise ConfigError("\n".join(found))
    head_cpus, head_gpus, _ = shapes[head]
    return Cluster(
        name=f"the cluster of {source}",
        fixed=(NodeType(f"node type {head}", head_cpus, head_gpus),),
        scalable=tuple(
            NodeType(f"node type {name}", cpus, gpus, count) for name, (cpus, gpus, count) in shapes.items()
        ),
        max_workers=cap,
    )


def load_launcher_cluster(path: str | Path, filled: bool = False) -> Cluster:
    return launcher_cluster(load_yaml(path), str(path), filled)
