"""The layer rules, kept by a test (README, Architecture).

The project's import graph is built from the source (every `import` and `from … import`,
including those inside functions and under `TYPE_CHECKING`), migrations and tests left out:

- `core` is the shared kernel: it imports no app;
- the flow engine (`flows/engine/`) imports only the standard library and its declared pure
  dependencies, and those are pure too;
- `flows` never imports `conversations.services` (the pipeline calls the flows, not the other
  way round);
- no import cycle runs through two apps (a cycle inside one app is that app's business).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("core", "tenants", "channels_app", "conversations", "flows", "integrations", "chatai")
ENGINE = "flows.engine"
# What the engine may import besides the standard library: third-party libraries without I/O,
# and modules of ours that the test proves pure (standard library only).
ENGINE_PURE_LIBRARIES = {"pydantic", "pydantic_core", "regex", "annotated_types"}
ENGINE_PURE_MODULES = {"core.storable"}


def _is_source(path: Path) -> bool:
    parts = path.relative_to(ROOT).parts
    return "migrations" not in parts and "tests" not in parts and not path.name.startswith("test")


@cache
def _modules() -> dict[str, Path]:
    """Every project module by dotted name (packages by their own name)."""
    found: dict[str, Path] = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if not _is_source(path):
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(module: str, package: str, node: ast.ImportFrom) -> list[str]:
    """The dotted names a `from` import reaches (a name that is a module counts as one)."""
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        module = ".".join([*base, *([node.module] if node.module else [])])
    elif not node.module:
        return []
    else:
        module = node.module
    names = [f"{module}.{alias.name}" for alias in node.names]
    return [name for name in names if name in _modules()] or [module]


@cache
def imports_of(module: str) -> frozenset[str]:
    """The modules `module` imports, anywhere in its file (dotted names, ours and others)."""
    path = _modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.update(_resolve(node.module or "", package, node))
    return frozenset(found)


def _ours(name: str) -> str | None:
    """The project module an imported name lands in (its longest known prefix), or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in _modules():
            return candidate
        parts.pop()
    return None


def _app(module: str) -> str:
    return module.split(".")[0]


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in _modules():
        targets = {_ours(name) for name in imports_of(module)}
        graph[module] = {target for target in targets if target and target != module}
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Tarjan's algorithm, iterative (the graph has hundreds of modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    yield sorted(component)


def _cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """The shortest cycle through the component's first module, for the failure message."""
    members = set(component)
    start = component[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    return component


def test_the_graph_sees_function_level_and_relative_imports() -> None:
    # A guard that the rules below look at something: known edges are found.
    assert "tenants.access" in {_ours(n) for n in imports_of("tenants.admin_base")}
    assert any(name.startswith("flows.engine") for name in imports_of("flows.selectors"))
    assert len(_modules()) > 100


def test_core_imports_no_app() -> None:
    offenders = {
        f"{module} imports {_ours(name)}"
        for module in _modules()
        if _app(module) == "core"
        for name in imports_of(module)
        if _ours(name) and _app(_ours(name) or "") != "core"
    }
    assert not offenders, sorted(offenders)


@pytest.mark.parametrize(
    "module", sorted(m for m in _modules() if m == ENGINE or m.startswith(ENGINE + "."))
)
def test_the_engine_imports_only_the_standard_library_and_pure_dependencies(module: str) -> None:
    for name in imports_of(module):
        top = name.split(".")[0]
        ours = _ours(name)
        if ours is not None:
            assert ours.startswith(ENGINE) or ours in ENGINE_PURE_MODULES, f"{module}: {name}"
        else:
            assert top in sys.stdlib_module_names or top in ENGINE_PURE_LIBRARIES, (
                f"{module}: {name}"
            )


@pytest.mark.parametrize("module", sorted(ENGINE_PURE_MODULES))
def test_the_engines_own_dependencies_are_pure(module: str) -> None:
    for name in imports_of(module):
        assert name.split(".")[0] in sys.stdlib_module_names, f"{module}: {name}"


def test_flows_never_imports_the_pipeline() -> None:
    offenders = {
        f"{module} imports {name}"
        for module in _modules()
        if _app(module) == "flows"
        for name in imports_of(module)
        if name == "conversations.services" or name.startswith("conversations.services.")
    }
    assert not offenders, sorted(offenders)


def test_no_import_cycle_runs_through_two_apps() -> None:
    graph = _graph()
    cycles = [
        " -> ".join(_cycle_path(graph, component))
        for component in _strongly_connected(graph)
        if len({_app(module) for module in component}) > 1
    ]
    assert not cycles, "\n".join(cycles)


# Modules kept only so that task names already in use (beat entries, queued messages) still
# import: each re-exports tasks of `conversations.tasks` and holds nothing else.
TASK_NAME_SHIMS = ("flows.tasks",)


@pytest.mark.parametrize("module", TASK_NAME_SHIMS)
def test_task_name_shims_hold_nothing_but_the_re_export(module: str) -> None:
    tree = ast.parse(_modules()[module].read_text(encoding="utf-8"))
    body = [node for node in tree.body if not isinstance(node, ast.Expr)]  # the docstring
    imports = [node for node in body if isinstance(node, ast.ImportFrom)]
    rest = [node for node in body if not isinstance(node, ast.ImportFrom)]
    assert [node.module for node in imports] == ["conversations.tasks"]
    assert [ast.unparse(node).split(" =")[0] for node in rest] == ["__all__"]
