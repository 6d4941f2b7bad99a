"""The floors of the house (ARCHITECTURE.md): no module imports one from a higher floor,
sibling channels never import each other, and no two modules import each other, even
through others. Read from the source with ast, so a new import is checked as it lands."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kernel", "routing", "connectors", "config", "gateway")

# Lowest first. A module may import modules of its own floor or of floors below.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("kernel",),
    ("routing", "connectors"),
    ("config",),
    ("gateway.store",),
    ("gateway.domain",),
    ("gateway.replicas",),
    (
        "gateway.stats",
        "gateway.metrics",
        "gateway.events",
        "gateway.attachments",
        "gateway.media",
        "gateway.queue_runner",
        "gateway.outbound",
        "gateway.pipeline",
        "gateway.channels",
        "gateway.webhooks",
        "gateway.keys",
        "gateway.retention",
        "gateway.bots",
        "gateway.windows",
        "gateway.surveys",
    ),
    ("gateway.commands",),
    ("gateway.api",),
    ("gateway.console",),
    ("gateway.app", "gateway.cli", "gateway.__main__"),
)
# Packages of one floor that must not import each other.
APART = (("routing", "connectors"),)
# The gateway package itself only names the version: any module of it may read that.
NEUTRAL = {"gateway"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found[module_name(path)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, name: str, known: set[str], *, runtime_only: bool) -> Iterator[str]:
    """Project modules this one imports (``runtime_only``: not those for type checkers).
    ``from package import module`` is an arrow to that module, not to the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> Iterator[str]:
        for node in nodes:
            if isinstance(node, ast.If) and _type_checking(node):
                if not runtime_only:
                    yield from visit(node.body)
                yield from visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    yield submodule if submodule in known else base
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from visit([child])

    for target in visit(tree.body):
        if target.split(".")[0] in PACKAGES:
            yield target


def graph(*, runtime_only: bool) -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        found = imports(path, name, set(known), runtime_only=runtime_only)
        targets = {t for t in found if t in known}
        edges[name] = targets - {name}
    return edges


def floor_of(name: str) -> int:
    best, found = -1, -1
    for level, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), level
    assert found >= 0, f"{name} is on no floor: add it to FLOORS in tests/test_layers.py"
    return found


def test_every_module_is_on_a_floor() -> None:
    for name in modules():
        if name not in NEUTRAL:
            floor_of(name)


def test_no_module_imports_from_a_higher_floor() -> None:
    wrong = []
    for name, targets in graph(runtime_only=False).items():
        if name in NEUTRAL:
            continue
        for target in targets - NEUTRAL:
            if floor_of(target) > floor_of(name):
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_packages_of_one_floor_stay_apart() -> None:
    wrong = []
    for name, targets in graph(runtime_only=False).items():
        for a, b in APART:
            for mine, other in ((a, b), (b, a)):
                if name.split(".")[0] == mine:
                    wrong += [f"{name} -> {t}" for t in targets if t.split(".")[0] == other]
    assert wrong == []


def test_channels_never_import_each_other() -> None:
    channels = {p.name for p in (ROOT / "connectors").iterdir() if (p / "__init__.py").exists()}
    wrong = []
    for name, targets in graph(runtime_only=False).items():
        parts = name.split(".")
        if parts[0] != "connectors" or len(parts) < 3 or parts[1] not in channels:
            continue
        for target in targets:
            other = target.split(".")
            if len(other) > 1 and other[0] == "connectors" and other[1] in channels - {parts[1]}:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_no_import_circles() -> None:
    edges = graph(runtime_only=True)
    cycles: list[list[str]] = []
    # Tarjan's strongly connected components: any component of two or more is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    assert cycles == []


def test_the_checks_see_what_they_check() -> None:
    # The graph is not empty, and a known arrow is in it: the checks above cannot pass by
    # reading nothing.
    edges = graph(runtime_only=False)
    assert "kernel.models" in edges["gateway.domain.inbox"]
    assert "connectors.base" in edges["gateway.pipeline"]
    assert floor_of("gateway.store.sqlite.database") < floor_of("gateway.domain.dispatch")
