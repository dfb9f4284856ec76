"""The import graph of the rooms: no cycle, and no arrow from the core into a room.

Static imports only, parsed with ``ast`` (function-level imports count too):
``vigil/`` is the shared core every room may use and which uses no room; the
rooms may use the core and the rooms ``docs/architecture.md`` allows. Tests,
benchmarks and Alembic migrations are not part of the graph.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = "vigil"
ROOMS = ("billing", "nsca", "checks", "monitor", "redundancy", "radcheck")
SKIP_PARTS = {"tests", "bench", "migrations", "__pycache__"}

# What each room may import besides the core (docs/architecture.md says why).
ALLOWED: dict[str, set[str]] = {
    "billing": set(),
    "nsca": set(),
    "radcheck": set(),
    "checks": {"billing", "nsca", "redundancy"},
    "monitor": {"checks", "nsca"},
    "redundancy": {"billing", "radcheck"},
}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in (CORE, *ROOMS):
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if SKIP_PARTS & set(rel.parts):
                continue
            name = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` counts as a.b if a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            # "import billing.server" also runs billing/__init__: count the nearest module
            while n and n not in known:
                n = n.rpartition(".")[0]
            if n:
                out.add(n)
    return out


@functools.cache
def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports_of(p, known) - {m} for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def room(module: str) -> str:
    return module.split(".")[0]


def test_the_graph_is_read() -> None:
    # a parser that found nothing would pass every rule below
    edges = graph()
    assert "vigil.config" in edges and "radcheck.loop" in edges
    assert "vigil.config" in edges["radcheck.loop"]
    assert "vigil.datatypes" in edges["vigil.options"]


def test_no_import_cycle() -> None:
    found = cycles(graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_core_imports_no_room() -> None:
    bad = sorted(f"{m} -> {t}" for m, ts in graph().items() if room(m) == CORE
                 for t in ts if room(t) != CORE)
    assert bad == [], "the core imports a room: " + ", ".join(bad)


@pytest.mark.parametrize("name", ROOMS)
def test_rooms_import_only_what_architecture_md_allows(name: str) -> None:
    bad = sorted(f"{m} -> {t}" for m, ts in graph().items() if room(m) == name
                 for t in ts if room(t) not in {CORE, name, *ALLOWED[name]})
    assert bad == [], f"{name} imports a room it may not: " + ", ".join(bad)


def test_datatypes_is_a_leaf() -> None:
    assert graph()["vigil.datatypes"] == set()


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_radcheck_package_is_not_shadowed_by_its_tests_folder() -> None:
    import radcheck

    assert Path(radcheck.__file__).resolve() == ROOT / "radcheck" / "__init__.py"
