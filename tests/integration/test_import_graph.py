"""The integration's imports form no cycle: not between its sub-packages and top-level modules,
not between any two of its modules. Type-only imports count too; the failure names the imports
that close the cycle."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "custom_components.home_security_ai"
ROOT = Path(__file__).parents[2] / "custom_components" / "home_security_ai"
# Packages whose insides belong to others (the gRPC client) or are generated: only their
# imports of the rest of the integration count, as imports of the package as a whole.
OPAQUE = ("client",)


@dataclass(frozen=True)
class Import:
    """One import of one integration module by another."""

    source: str  # dotted module name below the integration, e.g. "delivery.spool"
    target: str
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.where}: {self.source} imports {self.target}"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Return the integration modules a `from ... import ...` names (empty for other code)."""
    if node.level == 0:
        name = node.module or ""
        if not name.startswith(PACKAGE):
            return []
        base = name.removeprefix(PACKAGE).lstrip(".")
    else:
        here = module.split(".") if module else []
        if not is_package:
            here = here[:-1]
        up = node.level - 1
        if up > len(here):
            return []
        here = here[: len(here) - up]
        base = ".".join([*here, *([node.module] if node.module else [])])
    # `from pkg import name` imports the module pkg.name when there is one.
    return [f"{base}.{alias.name}".lstrip(".") for alias in node.names] + [base]


def imports(root: Path) -> list[Import]:
    """Every import, wherever it stands (type-only and in functions too), between modules."""
    modules = {_module_name(root, path): path for path in root.rglob("*.py")}
    found: list[Import] = []
    for module, path in sorted(modules.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                names = _resolve(module, is_package, node)
            elif isinstance(node, ast.Import):
                names = [
                    alias.name.removeprefix(PACKAGE).lstrip(".")
                    for alias in node.names
                    if alias.name.startswith(PACKAGE + ".")
                ]
            # The longest name that is a module: `from .x import y` is x.y or else x.
            targets = {name for name in names if name in modules}
            for target in sorted(targets):
                if not any(other.startswith(target + ".") for other in targets):
                    where = f"{path.relative_to(root.parent.parent)}:{node.lineno}"
                    found.append(Import(module, target, where))
    return found


def _unit(module: str) -> str:
    """The top-level module, or the sub-package, a module belongs to ("" is the package)."""
    return module.split(".", 1)[0]


def find_cycle(edges: list[Import], node_of: dict[str, str] | None = None) -> list[Import]:
    """Return the imports of one cycle between the nodes (a module's node: itself, or what
    `node_of` maps it to), or an empty list when there is none."""

    def node(module: str) -> str:
        return node_of.get(module, module) if node_of is not None else module

    graph: dict[str, list[Import]] = {}
    for edge in edges:
        if node(edge.source) != node(edge.target):
            graph.setdefault(node(edge.source), []).append(edge)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[Import] = []

    def visit(current: str) -> list[Import]:
        state[current] = 1
        for edge in graph.get(current, []):
            target = node(edge.target)
            if state.get(target) == 1:
                start = next(i for i, step in enumerate(path) if node(step.source) == target)
                return [*path[start:], edge] if path else [edge]
            if target not in state:
                path.append(edge)
                if cycle := visit(target):
                    return cycle
                path.pop()
        state[current] = 2
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def _inside_opaque(module: str) -> bool:
    return _unit(module) in OPAQUE


def _describe(cycle: list[Import]) -> str:
    return "import cycle:\n" + "\n".join(f"  {step}" for step in cycle)


def test_no_cycle_between_subpackages_and_top_level_modules() -> None:
    """Each sub-package and each top-level module is one node; no two depend on each other."""
    edges = imports(ROOT)
    units = {edge.source: _unit(edge.source) for edge in edges}
    units |= {edge.target: _unit(edge.target) for edge in edges}
    # The package's own __init__ sets everything up; nothing imports it back (checked below).
    cycle = find_cycle(edges, units)
    assert not cycle, _describe(cycle)


def test_no_cycle_between_modules() -> None:
    """Inside the sub-packages as well (the client's insides are its own)."""
    edges = [edge for edge in imports(ROOT) if not _inside_opaque(edge.source)]
    cycle = find_cycle(edges)
    assert not cycle, _describe(cycle)


def test_nothing_imports_the_package_itself() -> None:
    """The package's __init__ wires the parts together; a part importing it would close a
    cycle through set-up."""
    back = [str(edge) for edge in imports(ROOT) if edge.target == ""]
    assert not back


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small package whose sub-packages import each other in a circle."""
    root = tmp_path / "home_security_ai"
    _write(
        root,
        {
            "__init__.py": "",
            "const.py": "",
            "a/__init__.py": "",
            "a/one.py": "from ..b.two import X\nfrom ..const import DOMAIN\n",
            "b/__init__.py": "",
            "b/two.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from ..a import one\n"
            ),
        },
    )
    return root


def test_a_cycle_is_found_and_named(tree: Path) -> None:
    """The checks above can fail: a type-only import back from b to a is a cycle, named with
    both imports."""
    edges = imports(tree)
    units = {edge.source: _unit(edge.source) for edge in edges}
    units |= {edge.target: _unit(edge.target) for edge in edges}
    cycle = find_cycle(edges, units)
    steps = [(step.source, step.target) for step in cycle]
    assert steps == [("a.one", "b.two"), ("b.two", "a.one")]
    assert "home_security_ai/b/two.py:3: b.two imports a.one" in _describe(cycle)
    assert not find_cycle([edge for edge in edges if edge.source != "b.two"], units)
