"""The floors: `chain` <- `node` <- `devnet` <- `uocd`, and no import cycle between the project's modules.

Every import statement of every module counts, wherever it stands: at the top, inside a function (a
lazy import), under `if TYPE_CHECKING:`. An arrow may point down a floor or stay on one, never up.
The graph is module to module (`from node.config import load_key` is an arrow to `node.config`;
`from node import codec` one to `node.codec`); a package's `__init__` is a module like any other."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"chain": 0, "node": 1, "devnet": 2, "uocd": 3}


def module_name(path: Path) -> str:
    """The dotted name of a project file (a package's `__init__.py` is the package)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    """Every module of the four packages, by dotted name."""
    return {module_name(p): p for top in FLOORS for p in sorted((ROOT / top).rglob("*.py"))}


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """(absolute dotted name, line) of everything the tree imports, anywhere in it; `from X import a`
    yields `X.a`, which `resolve` maps to the module X.a if there is one, else to X."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                yield f"{source}.{alias.name}", node.lineno


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that an imported dotted name is, or lies in; None outside the project."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {imported project module: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        arrows: dict[str, int] = {}
        for name, line in imported_names(tree, module, path.name == "__init__.py"):
            target = resolve(name, modules)
            if target and target != module:
                arrows[target] = min(arrows.get(target, line), line)
        graph[module] = arrows
    return graph


def floor(module: str) -> int:
    """The floor of a module: its top-level package's."""
    return FLOORS[module.split(".")[0]]


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
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


def cycle_path(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """One cycle through the component's first module, as a path that returns to it (breadth first)."""
    members, start = set(component), component[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if target in members and target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"{component} is not a cycle")


def describe(graph: dict[str, dict[str, int]], path: list[str], modules: dict[str, Path]) -> str:
    """A cycle as `a (a.py:12) -> b (b.py:40) -> a`."""
    steps = [f"{a} ({modules[a].relative_to(ROOT)}:{graph[a][b]})" for a, b in zip(path, path[1:])]
    return " -> ".join([*steps, path[-1]])


MODULES = project_modules()
GRAPH = import_graph(MODULES)
CYCLES = strongly_connected(GRAPH)


def test_the_walk_sees_lazy_relative_and_type_checking_imports():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import codec\n"
        "from .errors import NodeError\n"
        "if TYPE_CHECKING:\n"
        "    from devnet.devnet import up\n"
        "def f():\n"
        "    import uocd.main\n"
        "    from ..chain import tx\n"
    )
    names = [name for name, _ in imported_names(ast.parse(source), "node.cli", False)]
    assert sorted({resolve(name, MODULES) for name in names} - {None}) == [
        "chain.tx",
        "devnet.devnet",
        "node.codec",
        "node.errors",
        "uocd.main",
    ]
    assert resolve("numpy.linalg", MODULES) is None and resolve("node.NodeError", MODULES) == "node"


def test_the_walk_covers_the_four_packages():
    assert {"chain", "chain.app", "node", "node.config", "devnet.network", "uocd.main"} <= set(MODULES)
    assert "node.config" in GRAPH["uocd.options"] and "devnet.chaos" in GRAPH["uocd.devnet"]


def test_no_import_points_up_a_floor():
    upward = [
        f"{MODULES[a].relative_to(ROOT)}:{line}: {a} (floor {floor(a)}) imports {b} (floor {floor(b)})"
        for a, arrows in sorted(GRAPH.items())
        for b, line in sorted(arrows.items())
        if floor(b) > floor(a)
    ]
    assert upward == [], "imports pointing up a floor (chain <- node <- devnet <- uocd):\n" + "\n".join(upward)


def test_no_import_cycle():
    cycles = [describe(GRAPH, cycle_path(GRAPH, c), MODULES) for c in CYCLES]
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_node_does_not_import_devnet_or_uocd():
    offenders = [a for a in GRAPH if a.startswith("node") for b in GRAPH[a] if b.split(".")[0] in ("devnet", "uocd")]
    assert offenders == []
