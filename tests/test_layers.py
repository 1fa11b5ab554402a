"""The layer rule of DESIGN.md, checked on the import graph (AST: lazy and TYPE_CHECKING imports included).

- no import cycles among clipstudy's modules;
- each package imports only the packages below it (`ALLOWED`);
- Ray is imported only under clipstudy/study/, MLflow only under clipstudy/tracking/.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "clipstudy"

LOWER = {"errors", "registry"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "registry": {"errors"},
    "config": LOWER,
    "data": LOWER | {"config"},
    "models": LOWER | {"config", "data"},
    "methods": LOWER | {"config", "data", "models"},
    "engine": LOWER | {"config", "data", "models", "methods"},
    "studyfile": LOWER | {"config", "data", "models", "methods"},
    "tracking": LOWER | {"config", "engine"},
    "study": LOWER | {"config", "engine", "studyfile", "tracking"},
    "analysis": LOWER | {"config", "studyfile", "tracking"},
    "api": LOWER | {"studyfile", "study", "analysis"},
    "cli": LOWER | {"config", "data", "models", "methods", "engine", "studyfile", "tracking", "study", "analysis"},
}
"""Which top-level parts of clipstudy each part may import (the package itself is always allowed)."""

THIRD_PARTY_HOMES = {"ray": "study", "mlflow": "tracking"}
"""A third-party package and the only part of clipstudy that may import it."""


@dataclass(frozen=True)
class Import:
    module: str
    target: str
    line: int


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at `root`."""
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports(root: Path) -> list[Import]:
    """Every import statement of the package, anywhere in a file, resolved to the module it names."""
    found = []
    for module, path in module_names(root).items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [Import(module, alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                found += [Import(module, f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def internal_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports (a name inside a module resolves to that module)."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for item in imports(root):
        target = item.target
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != item.module:
            graph[item.module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def part(module: str) -> str:
    """clipstudy.engine.trainer -> engine; clipstudy.cli -> cli."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(root: Path) -> list[str]:
    """Imports that break `ALLOWED` or `THIRD_PARTY_HOMES`, as 'module:line imports target'."""
    package = root.name
    problems = []
    for item in imports(root):
        source = part(item.module)
        top = item.target.split(".")[0]
        if top == package:
            target = part(item.target)
            if target and target != source and target not in ALLOWED.get(source, set()):
                problems.append(f"{item.module}:{item.line} imports {item.target} ({source} may not import {target})")
        elif top in THIRD_PARTY_HOMES and source != THIRD_PARTY_HOMES[top]:
            problems.append(f"{item.module}:{item.line} imports {top} (only clipstudy/{THIRD_PARTY_HOMES[top]}/ may)")
    return problems


def test_every_part_of_the_package_has_a_layer():
    parts = {part(name) for name in module_names(PACKAGE)} - {""}
    assert parts <= set(ALLOWED), f"add {sorted(parts - set(ALLOWED))} to ALLOWED"


def test_no_import_cycles():
    assert cycles(internal_graph(PACKAGE)) == []


def test_no_part_imports_a_part_above_it_and_ray_and_mlflow_stay_home():
    assert layer_violations(PACKAGE) == []


def write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "clipstudy"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return package


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"engine/trainer.py": "def f():\n    from clipstudy.tracking import runs\n", "tracking/runs.py": ""},
            ["clipstudy.engine.trainer:2 imports clipstudy.tracking.runs (engine may not import tracking)"],
        ),
        (
            {"config/schema.py": "import typing\nif typing.TYPE_CHECKING:\n    from clipstudy import data\n"},
            ["clipstudy.config.schema:3 imports clipstudy.data (config may not import data)"],
        ),
        (
            {"engine/trainer.py": "import ray.tune\n", "analysis/load.py": "from mlflow import MlflowClient\n"},
            [
                "clipstudy.analysis.load:1 imports mlflow (only clipstudy/tracking/ may)",
                "clipstudy.engine.trainer:1 imports ray (only clipstudy/study/ may)",
            ],
        ),
        ({"study/runner.py": "import ray\nfrom clipstudy.engine import trainer\n", "engine/trainer.py": ""}, []),
    ],
)
def test_the_checker_finds_a_forbidden_import_wherever_it_hides(tmp_path, files, expected):
    assert sorted(layer_violations(write_package(tmp_path, files))) == expected


def test_the_checker_finds_a_cycle_through_a_lazy_import(tmp_path):
    package = write_package(
        tmp_path,
        {
            "engine/__init__.py": "",
            "engine/trainer.py": "from clipstudy.engine.transfer import metrics\n",
            "engine/transfer.py": "def metrics(trainer):\n    from clipstudy.engine import trainer\n",
        },
    )
    assert cycles(internal_graph(package)) == [["clipstudy.engine.trainer", "clipstudy.engine.transfer"]]


def test_library_layers_import_without_ray_or_mlflow():
    code = (
        "import sys, clipstudy, clipstudy.engine, clipstudy.methods, clipstudy.models.build, clipstudy.data\n"
        "import clipstudy.cli, clipstudy.studyfile, clipstudy.api, clipstudy.analysis.selection\n"
        "import clipstudy.tracking.artifacts, clipstudy.study.feasibility\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow', 'optuna'))\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
