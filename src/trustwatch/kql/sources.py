"""Tabular sources that are not tables: datatable, range, print, union and search at the start."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from sqlglot import exp

from trustwatch.errors import KqlSemanticError, UnsupportedKql
from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.functions import convert
from trustwatch.kql.operators import col, union_relations
from trustwatch.kql.operators.project import compile_project
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


_TO_TYPE = {
    "string": "tostring",
    "long": "tolong",
    "int": "toint",
    "real": "toreal",
    "bool": "tobool",
    "datetime": "todatetime",
    "timespan": "totimespan",
    "dynamic": "todynamic",
    "guid": "toguid",
}


@register(ast.FindSource)
def compile_find_source(c: Compiler, node: ast.Node, scope: Scope) -> Relation:
    """``find``: the rows of the tables (default: every table with data) that match, with the
    table's name in ``source_``. Tables holding none of the columns the predicate names are left
    out; in the others a column the table lacks reads as empty (strings) or null. Output:
    ``project`` lists the columns (typed when a type is given; ``pack_all()`` adds ``pack_``
    with each row's own columns); project-smart (the default) gives the predicate's columns,
    then the columns every table has, then ``pack_`` with the row's other columns.

    https://learn.microsoft.com/kusto/query/find-operator
    """
    assert isinstance(node, ast.FindSource)
    from trustwatch.kql.operators import compile_where, search_predicate

    span = node.span
    names: list[str] = []
    for pattern in node.tables:
        if "*" in pattern:
            matched = sorted(n for n in c.catalog if fnmatch.fnmatchcase(n, pattern))
            if not matched:
                raise c.semantic_error(f"no table matches '{pattern}'", span, code="KQL201")
            names += [n for n in matched if n not in names]
        elif pattern not in names:
            names.append(pattern)
    if not node.tables:
        names = sorted(
            n for n, t in c.catalog.items() if t.sql_name is not None and not n.startswith("_")
        )
    predicate = search_predicate(ast.Search(predicate=node.predicate, span=span))
    used: list[str] = []
    for part in predicate.walk():
        if isinstance(part, ast.Name) and part.name not in used:
            used.append(part.name)
    star = any(isinstance(part, ast.Star) for part in predicate.walk())
    tables = [(name, c.table_ref(name, span, scope)) for name in names]
    columns_of = {name: rel.names() for name, rel in tables}
    every = {col_name for cols in columns_of.values() for col_name in cols}
    referenced = [n for n in used if n in every]
    if referenced and not star:
        tables = [(n, r) for n, r in tables if set(referenced) & set(r.names())]
    if not tables:
        return c.empty_relation(((node.withsource, "string"),))
    types: dict[str, set[str]] = {}
    for _, rel in tables:
        for n, t in rel.columns:
            types.setdefault(n, set()).add(t)

    def out_name(n: str, t: str) -> str:
        return n if len(types[n]) == 1 else f"{n}_{t}"

    union = ast.Union(
        tables=tuple(ast.TableRef(name=n, span=span) for n, _ in tables),
        withsource=node.withsource,
        span=span,
    )
    rel = union_relations(c, union, None, scope)
    rel = compile_where(c, ast.Where(predicate=predicate, span=span), rel, scope)

    def name(n: str) -> ast.Name:
        return ast.Name(name=n, span=span)

    def item(n: str, expr: ast.Expr) -> ast.Assignment:
        return ast.Assignment(name=n, expr=expr, span=span)

    def pack(of: dict[str, list[str]]) -> ast.Expr:
        """``pack_``: for each row, a bag of the given columns of its own table."""
        args: list[ast.Node] = []
        for table, cols in of.items():
            pairs: list[ast.Node] = []
            for n in cols:
                pairs += [ast.Literal(value=n, type="string", span=span), name(n)]
            bag: ast.Expr = (
                ast.Call(name="bag_pack", args=tuple(pairs), span=span, name_span=span)
                if pairs
                else ast.Literal(value={}, type="dynamic", span=span)
            )
            test = ast.BinaryOp(
                op="==",
                left=name(node.withsource),
                right=ast.Literal(value=table, type="string", span=span),
                span=span,
            )
            args += [test, bag]
        args.append(ast.Literal(value=None, type="dynamic", span=span))
        return ast.Call(name="case", args=tuple(args), span=span, name_span=span)

    own = {t: [out_name(n, ty) for n, ty in r.columns] for t, r in tables}
    items = [item(node.withsource, name(node.withsource))]
    packed: ast.Expr | None = None
    if node.project is not None:
        for n, ktype in node.project:
            if rel.type_of(n) is not None:
                expr: ast.Expr = name(n)
                if ktype is not None:
                    expr = ast.Call(name=_TO_TYPE[ktype], args=(expr,), span=span, name_span=span)
            elif ktype is not None:
                expr = ast.Literal(value=None, type=ktype, span=span)
            else:
                raise c.semantic_error(
                    f"find: the column '{n}' is in none of the tables searched",
                    span,
                    hint="give its type (Name:type) to have it null",
                    code="KQL202",
                )
            items.append(item(n, expr))
        if node.pack_all:
            packed = pack(own)
    else:
        shown = [n for n in referenced if rel.type_of(n) is not None]
        common = set.intersection(*(set(cols) for cols in own.values()))
        shown += [n for n in own[tables[0][0]] if n in common and n not in shown]
        rest = {t: [n for n in cols if n not in shown] for t, cols in own.items()}
        items += [item(n, name(n)) for n in shown]
        if any(rest.values()):
            packed = pack(rest)
    if packed is not None:
        # computed before the projection, which may retype a column the bag holds
        extend = ast.Extend(items=(item("__tw_pack", packed),), span=span)
        rel, _ = c.compile_op(extend, rel, scope)
        items.append(item("pack_", name("__tw_pack")))
    return compile_project(c, ast.Project(items=tuple(items), span=span), rel, scope)
