"""The trustwatch package's imports form no circle and point down (cli -> features -> schema).

The graph is read from the source with :mod:`ast`, not by importing: every ``import`` statement
counts wherever it is - at module level, inside a function, under ``if TYPE_CHECKING:`` (a
type-only import is still a dependency, and becomes a runtime one as soon as the name is needed
at run time).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "trustwatch"

# Imports that close a circle and stay until the design changes, each with its reason. All are
# in the KQL front end, one pattern: a core module looks up, in a deferred (function-level)
# import, the table its plug-ins fill, while the plug-ins import the core to call back into it or
# to type their arguments. Breaking them means handing the tables to the core from a module
# above both (dependency inversion across the whole compiler, some 25 modules): too large for the
# change that added this test. Each edge must still exist and still close a circle without its
# entry (`test_every_allowed_cycle_edge_still_exists`); delete an entry when that fails.
ALLOWED_CYCLE_EDGES: Mapping[tuple[str, str], str] = {
    ("trustwatch.kql.compiler", "trustwatch.kql.operators"): (
        "Compiler.compile_op looks up OPERATORS; every operator module imports Compiler, alias"
    ),
    ("trustwatch.kql.compiler", "trustwatch.kql.sources"): (
        "Compiler.compile_tabular looks up SOURCES; sources imports Compiler, alias"
    ),
    ("trustwatch.kql.compiler", "trustwatch.kql.expressions"): (
        "Compiler.expr builds an ExprCompiler, which types its Compiler (TYPE_CHECKING)"
    ),
    ("trustwatch.kql.expressions", "trustwatch.kql.functions"): (
        "calls dispatch to the function table; function modules type ExprCompiler"
    ),
    ("trustwatch.kql.expressions", "trustwatch.kql.functions.dynamic"): (
        "as_dynamic uses the dynamic functions' _dyn; they type ExprCompiler"
    ),
    ("trustwatch.kql.expressions", "trustwatch.kql.aggregates"): (
        "aggregate calls dispatch to the aggregate table; aggregates builds an ExprCompiler"
    ),
    ("trustwatch.kql.arithmetic", "trustwatch.kql.functions"): (
        "dynamic operands are converted with functions.convert; functions.time uses arithmetic"
    ),
    ("trustwatch.kql.parser", "trustwatch.kql.parse_operators"): (
        "Parser looks up PIPE_OPERATORS, whose parse functions type Parser (TYPE_CHECKING)"
    ),
}

# The bottom layer: these import nothing from trustwatch but each other and the YAML helpers
# (inert: how any text reaches a terminal; errors render through it).
BOTTOM = ("trustwatch.errors", "trustwatch.schema", "trustwatch.inert")
BOTTOM_MAY_IMPORT = (
    "trustwatch.errors",
    "trustwatch.schema",
    "trustwatch.yamlio",
    "trustwatch.inert",
)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__.py``)."""
    found: dict[str, Path] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported_modules(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[str]:
    """The trustwatch modules each import statement of a module names.

    ``from pkg import mod`` names the module pkg.mod, ``from mod import name`` the module mod;
    parent packages that Python runs on the way are not counted (no module could avoid them).
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                module = ".".join([*base, *([module] if module else [])])
            candidates = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            ]
        else:
            continue
        for candidate in candidates:
            # `import trustwatch.a.b` where b is a name, not a module: count trustwatch.a
            while candidate and candidate not in known and "." in candidate:
                candidate = candidate.rpartition(".")[0]
            if candidate in known:
                yield candidate


def import_graph() -> dict[str, set[str]]:
    """Module -> the trustwatch modules it imports."""
    known = modules()
    return {
        name: set(_imported_modules(name, path, known)) - {name} for name, path in known.items()
    }


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One concrete circle (first module repeated at the end) per strongly connected group."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(start: str) -> None:
        # iterative Tarjan: (node, iterator over its targets)
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
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_circle(graph, group) for group in groups]


def _circle(graph: Mapping[str, set[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph[node] & group):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no circle through {start} in {sorted(group)}")


def test_the_graph_sees_module_and_function_level_imports() -> None:
    graph = import_graph()
    assert {"trustwatch.cli.common", "trustwatch.errors"} <= graph["trustwatch.cli.hunt_cmd"]
    # `from trustwatch.kql import ast` is the module trustwatch.kql.ast
    assert "trustwatch.kql.ast" in graph["trustwatch.kql.parser"]
    # a function-level import
    assert "trustwatch.kql.parse_operators" in graph["trustwatch.kql.parser"]


def test_no_import_cycles() -> None:
    graph = import_graph()
    allowed = {m: ts - {t for (f, t) in ALLOWED_CYCLE_EDGES if f == m} for m, ts in graph.items()}
    found = [" -> ".join(circle) for circle in cycles(allowed)]
    assert not found, "import cycles:\n  " + "\n  ".join(found)


def test_every_allowed_cycle_edge_still_exists() -> None:
    graph = import_graph()
    stale = [f"{f} -> {t}" for f, t in ALLOWED_CYCLE_EDGES if t not in graph.get(f, set())]
    assert not stale, "remove from ALLOWED_CYCLE_EDGES (no longer imported): " + ", ".join(stale)
    # and each still closes a circle: without the allowance the graph would have one
    for edge in ALLOWED_CYCLE_EDGES:
        others = {
            m: ts - {t for (f, t) in ALLOWED_CYCLE_EDGES if f == m and (f, t) != edge}
            for m, ts in graph.items()
        }
        assert cycles(others), f"{edge[0]} -> {edge[1]} closes no circle: remove it"


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_only_the_cli_imports_the_cli() -> None:
    wrong = [
        f"{m} -> {t}"
        for m, ts in sorted(import_graph().items())
        if not _inside(m, "trustwatch.cli")
        for t in sorted(ts)
        if _inside(t, "trustwatch.cli")
    ]
    assert not wrong, "only trustwatch.cli may import trustwatch.cli:\n  " + "\n  ".join(wrong)


def test_errors_and_schemas_are_the_bottom_layer() -> None:
    wrong = [
        f"{m} -> {t}"
        for m, ts in sorted(import_graph().items())
        if any(_inside(m, b) for b in BOTTOM)
        for t in sorted(ts)
        if not any(_inside(t, ok) for ok in BOTTOM_MAY_IMPORT)
    ]
    assert not wrong, (
        "trustwatch.errors and trustwatch.schema import only errors, schema and yamlio:\n  "
        + "\n  ".join(wrong)
    )


def test_cycles_are_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
