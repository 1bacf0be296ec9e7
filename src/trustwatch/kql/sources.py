"""Tabular sources that are not tables: datatable, range, print, union and search at the start."""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from trustwatch.errors import KqlSemanticError, UnsupportedKql
from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.functions import convert
from trustwatch.kql.operators import col, union_relations
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import Typed, sql_type

SourceHandler = Callable[[Compiler, ast.Node, Scope], Relation]
SOURCES: dict[type, SourceHandler] = {}


def register(node_type: type) -> Callable[[SourceHandler], SourceHandler]:
    def deco(fn: SourceHandler) -> SourceHandler:
        SOURCES[node_type] = fn
        return fn

    return deco


@register(ast.Datatable)
def compile_datatable(c: Compiler, node: ast.Node, scope: Scope) -> Relation:
    assert isinstance(node, ast.Datatable)
    columns = node.columns
    if not node.values:
        return c.empty_relation(columns)
    rows = []
    width = len(columns)
    for r in range(0, len(node.values), width):
        cells = []
        for (name, ktype), value in zip(columns, node.values[r : r + width], strict=True):
            t = c.expr(value, scope, None)
            if t.type != ktype:
                if (
                    not (t.is_constant and t.constant is None)
                    and not {t.type, ktype} <= {"int", "long", "real"}
                    and not (ktype == "dynamic")
                ):
                    raise KqlSemanticError(
                        f"datatable column '{name}' is {ktype}, but the value is {t.type}",
                        span=value.span,
                        code="KQL205",
                    )
                t = convert(t, ktype)
            cells.append(exp.Cast(this=t.sql, to=sql_type(ktype)))
        rows.append(exp.Tuple(expressions=cells))
    values = exp.Values(
        expressions=rows,
        alias=exp.TableAlias(
            this=exp.to_identifier(c.fresh()),
            columns=[exp.to_identifier(n, quoted=True) for n, _ in columns],
        ),
    )
    return Relation(exp.Select(expressions=[col(n) for n, _ in columns]).from_(values), columns)


@register(ast.RangeSource)
def compile_range(c: Compiler, node: ast.Node, scope: Scope) -> Relation:
    assert isinstance(node, ast.RangeSource)
    start = c.expr(node.start, scope, None)
    stop = c.expr(node.stop, scope, None)
    step = c.expr(node.step, scope, None)
    ktype = start.type if start.type != "int" else "long"
    # the table function streams its rows (UNNEST of a list would build them all in memory)
    series = exp.Table(
        this=exp.Anonymous(this="generate_series", expressions=[start.sql, stop.sql, step.sql]),
        alias=exp.TableAlias(
            this=exp.to_identifier(c.fresh()), columns=[exp.to_identifier(node.column, quoted=True)]
        ),
    )
    order = c.fresh("__tw_order")
    window = exp.Window(this=exp.RowNumber())
    select = exp.Select(expressions=[col(node.column), alias(window, order)]).from_(series)
    return Relation(select, ((node.column, ktype),), order)


@register(ast.PrintSource)
def compile_print(c: Compiler, node: ast.Node, scope: Scope) -> Relation:
    assert isinstance(node, ast.PrintSource)
    overlay: dict[str, Typed] = {}
    out: list[tuple[str, Typed]] = []
    for item in node.items:
        # unnamed print items are print_0, print_1, ... https://learn.microsoft.com/kusto/query/print-operator
        name = item.name or f"print_{len(out)}"
        t = c.expr(item.expr, scope, None, overlay=overlay)
        overlay[name] = t
        out.append((name, t))
    return Relation(
        exp.Select(expressions=[alias(t.sql, n) for n, t in out]),
        tuple((n, t.type) for n, t in out),
    )


@register(ast.UnionSource)
def compile_union_source(c: Compiler, node: ast.Node, scope: Scope) -> Relation:
    assert isinstance(node, ast.UnionSource)
    return union_relations(c, node.union, None, scope)


@register(ast.SearchSource)
def compile_search_source(c: Compiler, node: ast.Node, scope: Scope) -> Relation:
    """``search [in (T, ...)] predicate``: rows of the named tables (default: every table with
    data loaded, but a workspace's own ``_quarantine`` and ``_files``) that match, with the
    table's name in ``$table``.

    https://learn.microsoft.com/kusto/query/search-operator
    """
    assert isinstance(node, ast.SearchSource)
    from trustwatch.kql.operators import compile_where, search_predicate

    search = node.search
    # not a workspace's own account (_quarantine, _files): search looks through the telemetry
    names = list(search.tables) or sorted(
        n for n, t in c.catalog.items() if t.sql_name is not None and not n.startswith("_")
    )
    if not names:
        return c.empty_relation((("$table", "string"),))
    union = ast.Union(
        tables=tuple(ast.TableRef(name=n, span=search.span) for n in names),
        withsource="$table",
        span=search.span,
    )
    rel = union_relations(c, union, None, scope)
    where = ast.Where(predicate=search_predicate(search), span=search.span)
    return compile_where(c, where, rel, scope)


@register(ast.ExternalData)
def compile_externaldata(c: Compiler, node: ast.Node, scope: Scope) -> Relation:
    raise UnsupportedKql(
        "externaldata reads from URLs, and trustwatch queries never reach the network",
        span=node.span,
        hint="download the file and bind it with --table NAME=PATH",
    )


@register(ast.QualifiedTable)
def compile_qualified(c: Compiler, node: ast.Node, scope: Scope) -> Relation:
    raise UnsupportedKql(
        "tables of other databases, clusters or services (database(), cluster(), arg()) "
        "are not available locally",
        span=node.span,
        hint="export the table and bind it with --table NAME=PATH",
    )
