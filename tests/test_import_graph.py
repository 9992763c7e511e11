"""The layers hold: app -> pipeline -> (scoring -> labeling -> clustering -> data) -> runtime, and no cycle.

Read from the source with ``ast``, not by importing: every ``import`` counts, at the top of a module or
inside a function (a lazy import is still a dependency, and the cycle it hides still breaks when the
order of first use changes), and so does a string that names a first-party module exactly (``python -m
waflens...`` or ``import_module("waflens...")``). The packages are the ones the two pyproject.toml files
map, so a new package fails here until it is given a place in :data:`ALLOWED`.
"""

from __future__ import annotations

import ast
import functools
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECTS = (REPO / "pyproject.toml", REPO / "runtime" / "pyproject.toml")

# Which first-party packages each package may import. A layer sees only the layers below it: the data
# flows data -> clustering -> labeling -> scoring; pipeline runs them in turn (retrain, its Prometheus
# output, the schema bootstrap); app is the CLI and the workbench on top; runtime, what WAF workers
# embed, sees nothing of the rest.
ALLOWED = {
    "waflens.runtime": set(),
    "waflens.data": {"waflens.runtime"},
    "waflens.clustering": {"waflens.data", "waflens.runtime"},
    "waflens.labeling": {"waflens.clustering", "waflens.data", "waflens.runtime"},
    "waflens.scoring": {"waflens.labeling", "waflens.data", "waflens.runtime"},
    "waflens.pipeline": {"waflens.scoring", "waflens.labeling", "waflens.clustering", "waflens.data",
                         "waflens.runtime"},
    "waflens.app": {"waflens.pipeline", "waflens.scoring", "waflens.labeling", "waflens.clustering",
                    "waflens.data", "waflens.runtime"},
}
# What the runtime's own modules may import besides the standard library and themselves.
RUNTIME_THIRD_PARTY = {"numpy", "numba"}


def _modules() -> dict[str, Path]:
    """Every first-party module name -> its source file, from the package-dir mapping of both projects."""
    modules = {}
    for pyproject in PYPROJECTS:
        for package, folder in tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-dir"].items():
            top = (pyproject.parent / folder).resolve()
            for source in sorted(top.rglob("*.py")):
                parts = source.relative_to(top).with_suffix("").parts
                if any(p in ("build", "__pycache__") or p.endswith(".egg-info") for p in parts):
                    continue
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join((package, *parts))] = source
    return modules


MODULES = _modules()


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _imported_names(module: str, source: Path):
    """Every module name ``module`` imports (absolute, as written or resolved from a relative import)."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    here = module.split(".") if source.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)   # `from package import module`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in MODULES:
            yield node.value


def _first_party(name: str) -> str | None:
    """The first-party module ``name`` is, or lies in (``waflens.data.db.connect`` -> ``waflens.data.db``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


@functools.cache
def module_graph() -> dict[str, frozenset[str]]:
    graph = {}
    for module, source in MODULES.items():
        targets = {_first_party(name) for name in _imported_names(module, source)}
        graph[module] = frozenset(t for t in targets if t and t != module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def _edges_between_packages(graph):
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if _package(module) != _package(target):
                yield module, target


def test_the_scan_sees_every_package_and_its_imports():
    # the test is only as good as its scan: every mapped package is found, and known imports (a top-level
    # one, a lazy one inside a function, a relative-free `from waflens.x import y`) are seen
    assert {_package(m) for m in MODULES} == set(ALLOWED)
    graph = module_graph()
    assert "waflens.data.errors" in graph["waflens.clustering.run"]             # top of the module
    assert "waflens.app.serve" in graph["waflens.app.cli"]                      # inside the `app` command
    assert "waflens.runtime.errors" in graph["waflens.data.errors"]
    assert len(MODULES) > 100 and sum(map(len, graph.values())) > 300


def test_the_allowed_layers_form_no_cycle():
    assert not _cycles(ALLOWED)


def test_no_module_import_cycle():
    cycles = _cycles(module_graph())
    assert not cycles, "import cycles (top-level or inside functions): " + "; ".join(
        " <-> ".join(cycle) for cycle in cycles)


def test_each_package_imports_only_the_layers_below_it():
    wrong = [f"{module} imports {target}" for module, target in _edges_between_packages(module_graph())
             if _package(target) not in ALLOWED[_package(module)]]
    assert not wrong, "imports across the layers (see ALLOWED): " + "; ".join(wrong)


def test_the_runtime_imports_only_numpy_numba_the_standard_library_and_itself():
    """A WAF worker installs waflens-runtime alone: any other import there fails on the worker, perhaps only
    on the code path that imports it late. (tests/runtime checks the import closure by importing it.)"""
    allowed = set(sys.stdlib_module_names) | RUNTIME_THIRD_PARTY | {"__future__"}
    wrong = []
    for module, source in MODULES.items():
        if _package(module) != "waflens.runtime":
            continue
        for name in _imported_names(module, source):
            top = name.split(".")[0]
            if name.startswith("waflens.") and not (name + ".").startswith("waflens.runtime."):
                wrong.append(f"{module} imports {name}")
            elif top != "waflens" and top not in allowed:
                wrong.append(f"{module} imports {name}")
    assert not wrong, "the runtime may import only numpy, numba, the standard library and waflens.runtime: " \
                      + "; ".join(sorted(set(wrong)))


@pytest.mark.parametrize("source", [
    "import waflens.app.cli\n",
    "def late():\n    from waflens.app import cli\n",
    "def late():\n    from ..app.cli import main\n",
])
def test_a_forbidden_import_is_caught_wherever_it_is_written(source, tmp_path):
    """The scan of one module (data importing app, the top layer) at the top, lazily and relatively."""
    module = tmp_path / "probe.py"
    module.write_text(source)
    targets = {_first_party(name) for name in _imported_names("waflens.data.probe", module)}
    assert "waflens.app.cli" in targets
