"""The sidecar's packages import downwards only: a frame's path reads top to bottom.

Every import counts, including those inside functions and under `if TYPE_CHECKING:`: a
type-only import still ties the two packages together, so it obeys the same order.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "gpu_server"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

# Top to bottom. A unit (a sub-package or a top-level module of gpu_server) may import units of
# the layers below its own, never one of its own layer or above. "__init__" is gpu_server itself.
ORDER: tuple[tuple[str, ...], ...] = (
    ("__main__", "healthcheck", "addon"),
    ("server",),
    ("announce", "tls"),
    ("grpc_api",),
    ("events",),
    ("risk",),
    ("enrich",),
    ("ingest",),
    ("context",),
    ("feedback",),
    ("llm",),
    ("monitor", "models"),
    ("config",),
    ("identity", "token_file", "extras"),
    ("core", "vocabulary", "errors", "files", "_generated", "__init__"),
)

LAYER = {unit: index for index, layer in enumerate(ORDER) for unit in layer}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted
    where: str  # file:line

    @property
    def source_unit(self) -> str:
        return unit_of(self.source)

    @property
    def target_unit(self) -> str:
        return unit_of(self.target)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(name: str, root: Path) -> str:
    """The deepest module or package that `name` (maybe module.attribute) denotes."""
    parts = name.split(".")
    while len(parts) > 1:
        path = root.parent.joinpath(*parts)
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return parts[0]


def imports_of(path: Path, root: Path) -> list[Import]:
    source = module_name(path, root)
    is_package = path.name == "__init__.py"
    where = f"{path.relative_to(root.parent)}"
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = source.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                item = Import(source, resolve(name, root), f"{where}:{node.lineno}")
                if item not in found:
                    found.append(item)
    return found


def all_imports(root: Path = ROOT) -> list[Import]:
    found: list[Import] = []
    for path in sorted(root.rglob("*.py")):
        if "_generated" not in path.relative_to(root).parts:
            found.extend(imports_of(path, root))
    return found


def order_violations(imports: list[Import]) -> list[str]:
    problems = []
    for item in imports:
        source, target = item.source_unit, item.target_unit
        if source == target:
            continue
        if source not in LAYER or target not in LAYER:
            unknown = source if source not in LAYER else target
            problems.append(f"{item.where}: {unknown} is not in ORDER: place it there")
        elif LAYER[target] <= LAYER[source]:
            direction = "its own layer" if LAYER[target] == LAYER[source] else "a higher layer"
            problems.append(f"{item.where}: {source} imports {item.target}, in {direction}")
    return problems


def module_cycles(imports: list[Import]) -> list[str]:
    """Cycles between modules (a package's __init__ that gathers its modules excepted)."""
    graph: dict[str, dict[str, str]] = defaultdict(dict)
    for item in imports:
        if item.source != item.target and not item.target.startswith(item.source + "."):
            graph[item.source].setdefault(item.target, item.where)
    cycles: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target, where in sorted(graph.get(module, {}).items()):
            if state.get(target) == 1:
                loop = path[path.index(target) :]
                cycles.append(" -> ".join([*loop, target]) + f" (closed at {where})")
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_every_unit_is_placed_once() -> None:
    units = [unit for layer in ORDER for unit in layer]
    assert len(units) == len(set(units))
    present = {p.stem for p in ROOT.glob("*.py")} | {
        p.parent.name for p in ROOT.glob("*/__init__.py")
    }
    assert present - set(units) == set(), "place every sidecar unit in ORDER"


def test_packages_import_downwards_only() -> None:
    problems = order_violations(all_imports())
    assert problems == [], "imports against the order:\n" + "\n".join(problems)


def test_no_module_imports_itself_back() -> None:
    cycles = module_cycles(all_imports())
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_the_check_finds_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    root = tmp_path / PACKAGE
    (root / "events").mkdir(parents=True)
    (root / "ingest").mkdir()
    for package in (root, root / "events", root / "ingest"):
        (package / "__init__.py").write_text("")
    (root / "events" / "a.py").write_text("from gpu_server.ingest.b import B\n")
    (root / "ingest" / "b.py").write_text("import os\n\n\nfrom gpu_server.events import a\n")
    imports = all_imports(root)
    assert order_violations(imports) == [
        "gpu_server/ingest/b.py:4: ingest imports gpu_server.events.a, in a higher layer"
    ]
    assert module_cycles(imports) == [
        "gpu_server.events.a -> gpu_server.ingest.b -> gpu_server.events.a"
        " (closed at gpu_server/ingest/b.py:4)"
    ]
