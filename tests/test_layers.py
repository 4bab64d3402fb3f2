"""The package's layers hold: read every import of src/hmco (ast) and fail on a cycle or a forbidden edge.

Every import counts: module level, inside functions (lazy) and under ``TYPE_CHECKING``; a cycle through a
lazy import is still a cycle in the design. Nodes are hmco's top-level modules and subpackages
(``hmco.sources``, ``hmco.lake`` …); the facade ``hmco/__init__.py`` re-exports everything and is left out.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hmco"

#: Shared types and helpers every layer may use; they import nothing of hmco above them.
CORE = {
    "errors",
    "windows",
    "cron",
    "payload",
    "redaction",
    "config",
    "schemas",
    "names",
    "_logging",
    "_dependencies",
}
#: Heavy engines the core must never import (they are loaded lazily, by the layers that run them).
ENGINES = {"pyiceberg", "great_expectations", "chdb", "duckdb", "trino", "clickhouse_connect", "polars"}
#: (from, to) edges that break the architecture, with why.
FORBIDDEN = {
    ("sinks", "sources"): "sinks take payloads from hmco.payload, never from the sources",
    ("sources", "compose"): "sources are below the pipeline that composes them",
    ("sources", "sinks"): "a source never writes anywhere",
    ("sources", "quality"): "sources do not judge their data; the gate does",
    ("lake", "compose"): "the lake is below the pipeline",
    ("quality", "compose"): "the gate is below the pipeline",
}


def _node(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "hmco" or len(parts) < 2:
        return None
    return parts[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports (absolute, resolved), with the line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            # ``from hmco import lake`` imports the submodule hmco.lake
            if module == "hmco":
                found += [(f"hmco.{alias.name}", node.lineno) for alias in node.names]
    return found


def _graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], list[str]], dict[str, list[str]]]:
    edges: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], list[str]] = defaultdict(list)
    engines: dict[str, list[str]] = defaultdict(list)
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "__init__.py":
            continue
        src = _node(_module_name(path))
        assert src is not None
        for module, line in _imports(path):
            loc = f"{path.relative_to(SRC.parent)}:{line}"
            if module.split(".")[0] in ENGINES:
                engines[src].append(f"{loc} imports {module}")
            dst = _node(module)
            if dst is None or dst == src:
                continue
            edges[src].add(dst)
            where[(src, dst)].append(loc)
    return edges, where, engines


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_the_package_graph_has_no_cycles() -> None:
    edges, where, _ = _graph()
    cycles = _cycles(edges)
    detail = [
        f"{' <-> '.join(c)}: "
        + "; ".join(f"{a}->{b} at {where[(a, b)][0]}" for a in c for b in c if b in edges.get(a, ()))
        for c in cycles
    ]
    assert not cycles, "package cycles:\n" + "\n".join(detail)


@pytest.mark.parametrize(("edge", "why"), sorted(FORBIDDEN.items()))
def test_a_forbidden_edge_is_absent(edge: tuple[str, str], why: str) -> None:
    edges, where, _ = _graph()
    src, dst = edge
    assert dst not in edges.get(src, set()), f"{src} -> {dst} ({why}): {where[edge]}"


def test_the_core_imports_nothing_above_it() -> None:
    edges, where, _ = _graph()
    bad = {(c, d): where[(c, d)] for c in CORE for d in edges.get(c, set()) if d not in CORE}
    assert not bad, f"core modules import layers above them: {bad}"


def test_the_core_imports_no_engine() -> None:
    _, _, engines = _graph()
    bad = {c: engines[c] for c in CORE if engines.get(c)}
    assert not bad, f"core modules import heavy engines: {bad}"


def test_parsers_import_no_http_library() -> None:
    """A source split into client and parser keeps the parser pure: no HTTP client, no retry library."""
    parsers = sorted(SRC.glob("sources/*/parser.py"))
    assert parsers, "no source package with a parser module"
    for path in parsers:
        mods = {m for m, _ in _imports(path)}
        http = {
            m
            for m in mods
            if m.split(".")[0] in {"httpx", "tenacity", "requests"} or m == "hmco.sources.http"
        }
        assert not http, f"{path.relative_to(SRC.parent)} imports {sorted(http)}"


def test_the_guard_sees_a_cycle_and_a_forbidden_edge() -> None:
    """The checker itself: a made-up graph with a cycle and a sinks -> sources edge is caught."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "sinks": {"sources"}}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert "sources" in edges["sinks"] and ("sinks", "sources") in FORBIDDEN
