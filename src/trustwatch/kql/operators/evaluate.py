"""The ``evaluate`` operator's plugins whose output columns come from the data.

``bag_unpack`` (one column per top-level slot of a dynamic column) and ``pivot`` (one column
per distinct value of a column). Without an output schema (``evaluate pivot(X) : (A:long)``)
their columns are only known once the data is read: the compiler takes a first pass over the
operator's input (:meth:`Compiler.rows_of`, a small query run through the engine before the
main one) that returns the slots and their types, or the distinct values, and then compiles
the operator with those columns. At most :data:`DATA_COLUMNS` columns are made from the data;
past that the query is refused with a located error. docs/kql-support.md states the rules.

https://learn.microsoft.com/kusto/query/evaluate-operator
https://learn.microsoft.com/kusto/query/bag-unpack-plugin
https://learn.microsoft.com/kusto/query/pivot-plugin
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlglot import exp

from trustwatch.errors import KqlSemanticError, Span, UnsupportedKql
from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.functions import convert
from trustwatch.kql.operators.common import col, distinct_first_pass, free_name, register
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import TEXTUAL, Typed, not_null_string

#: the most output columns one operator takes from the data (slots, or pivot values)
DATA_COLUMNS = 1_000

_CONFLICTS = ("error", "replace_source", "keep_source")
# a slot's column takes the slot's type when every non-null value has that one type
_SLOT_TYPES = {"string": "string", "long": "long", "real": "real", "bool": "bool"}
# pivot's aggregation functions (its page lists them) and the *if form each cell runs as
_PIVOT_AGGREGATES = {
    "min": "minif",
    "max": "maxif",
    "take_any": "take_anyif",
    "any": "anyif",
    "sum": "sumif",
    "dcount": "dcountif",
    "avg": "avgif",
    "stdev": "stdevif",
    "variance": "varianceif",
    "make_list": "make_list_if",
    "make_bag": "make_bag_if",
    "make_set": "make_set_if",
    "count": "countif",
}

Plugin = Callable[[Compiler, ast.Evaluate, Relation, Scope], Relation]
PLUGINS: dict[str, Plugin] = {}


def plugin(name: str) -> Callable[[Plugin], Plugin]:
    def deco(fn: Plugin) -> Plugin:
        PLUGINS[name] = fn
        return fn

    return deco


@register(ast.Evaluate)
def compile_evaluate(c: Compiler, op: ast.Evaluate, rel: Relation, scope: Scope) -> Relation:
    handler = PLUGINS.get(op.call.name)
    if handler is None:
        raise UnsupportedKql(
            f"the '{op.call.name}' plugin of 'evaluate' is not supported by trustwatch's KQL "
            "engine",
            span=op.call.name_span,
            hint=f"compiled plugins: {', '.join(sorted(PLUGINS))} (see docs/kql-support.md)",
        )
    return handler(c, op, rel, scope)


def _too_many(what: str, span: Span) -> UnsupportedKql:
    return UnsupportedKql(
        f"{what} gives more than {DATA_COLUMNS:,} columns from the data, trustwatch's limit",
        span=span,
        hint="filter the rows first, or give the output schema: `: (Name:type, ...)`",
    )


def _constant(c: Compiler, node: ast.Node, scope: Scope, what: str) -> object:
    if not isinstance(node, ast.Expr):
        raise KqlSemanticError(f"{what} must be a constant", span=node.span, code="KQL204")
    value = c.expr(node, scope, None)
    if not value.is_constant:
        raise KqlSemanticError(f"{what} must be a constant", span=node.span, code="KQL204")
    return value.constant


def _column_name(node: ast.Node, rel: Relation, what: str) -> str:
    if not isinstance(node, ast.Name) or rel.type_of(node.name) is None:
        raise KqlSemanticError(
            f"{what} must be a column of the input", span=node.span, code="KQL204"
        )
    return node.name


# --- bag_unpack -------------------------------------------------------------------------------


@plugin("bag_unpack")
def bag_unpack(c: Compiler, op: ast.Evaluate, rel: Relation, scope: Scope) -> Relation:
    """``bag_unpack(Column [, OutputColumnPrefix] [, columnsConflict] [, ignoredProperties])``.

    The input's columns but ``Column``, in order, then one column per distinct top-level slot
    of ``Column``'s property bags, sorted by name (ordinal), each named prefix + slot. A slot's
    column is typed string, long, real or bool when all its non-null values are of that one
    type, else dynamic. Values that are not property bags (and nulls) give no slots.
    """
    params = _bag_unpack_params(c, op, rel, scope)
    column, prefix, conflict, ignored = params
    if op.schema is not None:
        slots = [(name, ktype) for name, ktype in op.schema]
        named = [(name, name, ktype) for name, ktype in slots]  # the schema names the columns
        keep_input = op.schema_star
    else:
        found = _slots(c, op, rel, scope, column)
        named = [(prefix + slot, slot, ktype) for slot, ktype in found if slot not in ignored]
        keep_input = True
    inputs = [(n, t) for n, t in rel.columns if n != column] if keep_input else []
    taken = {n for n, _ in inputs}
    clashes = [name for name, _, _ in named if name in taken]
    if clashes and conflict == "error":
        raise KqlSemanticError(
            f"bag_unpack: the slot column '{clashes[0]}' is also a column of the input",
            span=op.span,
            hint="pass columnsConflict='replace_source' or 'keep_source', or a column prefix",
            code="KQL205",
        )
    if conflict == "replace_source":
        inputs = [(n, t) for n, t in inputs if n not in clashes]
    elif conflict == "keep_source":
        named = [item for item in named if item[0] not in clashes]
    projections: list[exp.Expr] = [col(n) for n, _ in inputs]
    columns: list[tuple[str, str]] = list(inputs)
    bag = ast.Name(name=column, span=op.span)
    for name, slot, ktype in named:
        value = c.expr(ast.Member(target=bag, name=slot, span=op.span), scope, rel)
        projections.append(alias(convert(value, ktype).sql, name))
        columns.append((name, ktype))
    if rel.order:
        projections.append(col(rel.order))
    return Relation(c.select(rel, projections), tuple(columns), rel.order)


def _bag_unpack_params(
    c: Compiler, op: ast.Evaluate, rel: Relation, scope: Scope
) -> tuple[str, str, str, frozenset[str]]:
    """The column, prefix, columnsConflict and ignoredProperties, positional or by name."""
    names = ("Column", "OutputColumnPrefix", "columnsConflict", "ignoredProperties")
    given: dict[str, ast.Node] = {}
    for i, arg in enumerate(op.call.args):
        if isinstance(arg, ast.Assignment) and arg.name is not None:
            key = next((n for n in names if n.lower() == arg.name.lower()), None)
            if key is None:
                raise KqlSemanticError(
                    f"bag_unpack has no parameter '{arg.name}'", span=arg.span, code="KQL204"
                )
            given[key] = arg.expr
        elif i < len(names):
            given[names[i]] = arg
        else:
            raise KqlSemanticError(
                "bag_unpack takes at most 4 arguments", span=arg.span, code="KQL204"
            )
    if "Column" not in given:
        raise KqlSemanticError(
            "bag_unpack needs the dynamic column to unpack", span=op.call.span, code="KQL204"
        )
    column = _column_name(given["Column"], rel, "bag_unpack's first argument")
    if rel.type_of(column) != "dynamic":
        raise KqlSemanticError(
            f"bag_unpack needs a dynamic column, not {rel.type_of(column)}",
            span=given["Column"].span,
            code="KQL205",
        )
    prefix = ""
    if "OutputColumnPrefix" in given:
        value = _constant(c, given["OutputColumnPrefix"], scope, "the column prefix")
        if not isinstance(value, str):
            raise KqlSemanticError(
                "the column prefix must be a string",
                span=given["OutputColumnPrefix"].span,
                code="KQL205",
            )
        prefix = value
    conflict = "error"
    if "columnsConflict" in given:
        value = _constant(c, given["columnsConflict"], scope, "columnsConflict")
        if value not in _CONFLICTS:
            raise KqlSemanticError(
                f"columnsConflict must be one of {', '.join(_CONFLICTS)}",
                span=given["columnsConflict"].span,
                code="KQL205",
            )
        conflict = str(value)
    ignored: frozenset[str] = frozenset()
    if "ignoredProperties" in given:
        value = _constant(c, given["ignoredProperties"], scope, "ignoredProperties")
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise KqlSemanticError(
                "ignoredProperties must be a dynamic array of slot names",
                span=given["ignoredProperties"].span,
                code="KQL205",
            )
        ignored = frozenset(value)
    return column, prefix, conflict, ignored


def _slots(
    c: Compiler, op: ast.Evaluate, rel: Relation, scope: Scope, column: str
) -> list[tuple[str, str]]:
    """The first pass: each distinct top-level slot of ``column`` and its column's type."""
    span = op.span
    key, bag, kind, kinds = "__tw_slot", "__tw_bag", "__tw_kind", "__tw_kinds"

    def name(n: str) -> ast.Name:
        return ast.Name(name=n, span=span)

    def call(fn: str, *args: ast.Expr) -> ast.Call:
        return ast.Call(name=fn, args=args, span=span, name_span=span)

    probe: list[ast.PipeOp] = [
        ast.Project(
            items=(
                ast.Assignment(name=key, expr=call("bag_keys", name(column)), span=span),
                ast.Assignment(name=bag, expr=name(column), span=span),
            ),
            span=span,
        ),
        ast.MvExpand(
            items=(ast.MvExpandItem(name=None, expr=name(key), to_type="string", span=span),),
            span=span,
        ),
        ast.Where(predicate=call("isnotempty", name(key)), span=span),
        ast.Extend(
            items=(
                ast.Assignment(
                    name=kind,
                    expr=call("gettype", ast.Index(target=name(bag), index=name(key), span=span)),
                    span=span,
                ),
            ),
            span=span,
        ),
        ast.Summarize(
            aggregates=(ast.Assignment(name=kinds, expr=call("make_set", name(kind)), span=span),),
            by=(ast.Assignment(name=key, expr=name(key), span=span),),
            span=span,
        ),
        ast.Take(count=ast.Literal(value=DATA_COLUMNS + 1, type="long", span=span), span=span),
    ]
    first = rel
    for probe_op in probe:
        first, _ = c.compile_op(probe_op, first, scope)
    rows = c.rows_of(
        first,
        span,
        "evaluate bag_unpack() without an output schema",
        "give the output schema: `evaluate bag_unpack(Column) : (*, Name:type, ...)`",
    )
    if len(rows) > DATA_COLUMNS:
        raise _too_many("evaluate bag_unpack()", span)
    slots = []
    for slot, found in rows:
        types = set(json.loads(found) if isinstance(found, str) else found or []) - {"null"}
        ktype = _SLOT_TYPES.get(types.pop(), "dynamic") if len(types) == 1 else "dynamic"
        slots.append((str(slot), ktype))
    return sorted(slots)


# --- pivot ------------------------------------------------------------------------------------


@plugin("pivot")
def pivot(c: Compiler, op: ast.Evaluate, rel: Relation, scope: Scope) -> Relation:
    """``pivot(pivotColumn [, aggregationFunction] [, column1, ...])``.

    Rows are grouped by ``column1, ...`` (default: every column but the pivot column and the
    columns the aggregation reads); one column per distinct value of the pivot column (as
    text, sorted ordinally) holds the aggregation (default ``count()``) over the group's rows
    with that value: it runs as the aggregation's ``*if`` form (``sum(x)`` as
    ``sumif(x, tostring(P) == "value")``), so an empty cell is what that gives (0 for count and
    sum, null for min).
    """
    args = list(op.call.args)
    if not args:
        raise KqlSemanticError("pivot needs the column to rotate", span=op.call.span, code="KQL204")
    pivot_name = _column_name(args[0], rel, "pivot's first argument")
    aggregate = ast.Call(name="count", args=(), span=op.span, name_span=op.span)
    rest = args[1:]
    if rest and isinstance(rest[0], ast.Call):
        aggregate = rest.pop(0)  # type: ignore[assignment]
        if aggregate.name not in _PIVOT_AGGREGATES:
            raise KqlSemanticError(
                f"pivot cannot aggregate with '{aggregate.name}()'",
                span=aggregate.name_span,
                hint=f"pivot's aggregations: {', '.join(sorted(_PIVOT_AGGREGATES))}",
                code="KQL204",
            )
    by = [_column_name(a, rel, "pivot's grouping columns") for a in rest]
    if not rest:
        read = {n.name for n in aggregate.walk() if isinstance(n, ast.Name)}
        by = [n for n in rel.names() if n != pivot_name and n not in read]
    span = op.span
    key = ast.Call(
        name="tostring", args=(ast.Name(name=pivot_name, span=span),), span=span, name_span=span
    )
    declared: dict[str, str] = {}
    if op.schema is not None:
        declared = dict(op.schema)
        values = [n for n, _ in op.schema if n not in by]
    else:
        values = _pivot_values(c, op, rel, scope, key)
    taken = {n.lower() for n in by}
    for value in values:
        if value == "":
            raise UnsupportedKql(
                f"evaluate pivot(): a row has an empty {pivot_name}, and Kusto does not "
                "document the name of its column",
                span=span,
                hint=f"filter those rows first: `where isnotempty({pivot_name})`",
            )
        if value.lower() in taken:
            raise KqlSemanticError(
                f"evaluate pivot(): the value '{value}' of {pivot_name} is also the name of a "
                "grouping column",
                span=span,
                code="KQL205",
            )
    cells = []
    for value in values:
        test = ast.BinaryOp(
            op="==", left=key, right=ast.Literal(value=value, type="string", span=span), span=span
        )
        original = aggregate.args
        cell_args = (*original[:1], test, *original[1:]) if original else (test,)
        cell = ast.Call(
            name=_PIVOT_AGGREGATES[aggregate.name],
            args=cell_args,
            span=aggregate.span,
            name_span=aggregate.name_span,
        )
        cells.append(ast.Assignment(name=value, expr=cell, span=span))
    groups = tuple(ast.Assignment(name=n, expr=ast.Name(name=n, span=span), span=span) for n in by)
    grouped, _ = c.compile_op(
        ast.Summarize(aggregates=tuple(cells), by=groups, span=span), rel, scope
    )
    if op.schema is None:
        return grouped
    projections: list[exp.Expr] = []
    columns: list[tuple[str, str]] = []
    for name, ktype in op.schema:
        found = grouped.type_of(name)
        if found is None:
            raise KqlSemanticError(
                f"the output schema's column '{name}' is neither a grouping column nor a pivot "
                "value",
                span=span,
                code="KQL202",
            )
        projections.append(alias(convert(Typed(col(name), found), declared[name]).sql, name))
        columns.append((name, ktype))
    return Relation(c.select(grouped, projections), tuple(columns))


def _pivot_values(
    c: Compiler, op: ast.Evaluate, rel: Relation, scope: Scope, key: ast.Call
) -> list[str]:
    """The first pass: the distinct values of the pivot column, as text, sorted ordinally."""
    span = op.span
    rows = distinct_first_pass(
        c,
        rel,
        scope,
        "__tw_value",
        key,
        DATA_COLUMNS,
        span,
        "evaluate pivot() without an output schema",
        "give the output schema: `evaluate pivot(Column) : (Group:type, Value1:long, ...)`",
    )
    if len(rows) > DATA_COLUMNS:
        raise _too_many("evaluate pivot()", span)
    return sorted(str(v) for (v,) in rows)


# --- ipv4_lookup ------------------------------------------------------------------------------


@plugin("ipv4_lookup")
def ipv4_lookup(c: Compiler, op: ast.Evaluate, rel: Relation, scope: Scope) -> Relation:
    """``ipv4_lookup(LookupTable, SourceIPv4Key, LookupKey [, return_unmatched])``: each row
    joined with every lookup row whose key matches its address as ``ipv4_is_match()`` does
    (an address in a ``a.b.c.d/n`` range, either side may carry a prefix); without a match the
    row is dropped, or kept with empty lookup columns when ``return_unmatched`` is true. The
    lookup table's columns follow the input's, a clashing name getting ``1`` as in ``lookup``.
    """
    positional: list[ast.Node] = []
    unmatched: ast.Node | None = None
    for arg in op.call.args:
        if isinstance(arg, ast.Assignment) and arg.name is not None:
            if arg.name.lower() != "return_unmatched":
                raise KqlSemanticError(
                    f"ipv4_lookup has no parameter '{arg.name}'", span=arg.span, code="KQL204"
                )
            unmatched = arg.expr
        else:
            positional.append(arg)
    if len(positional) == 4 and unmatched is None:
        unmatched = positional.pop()
    if len(positional) != 3:
        raise KqlSemanticError(
            "ipv4_lookup takes a lookup table, the input's address column and the lookup's "
            "key column (and return_unmatched)",
            span=op.call.span,
            code="KQL204",
        )
    table, source_key, lookup_key = positional
    keep = False
    if unmatched is not None:
        value = _constant(c, unmatched, scope, "return_unmatched")
        if not isinstance(value, bool):
            raise KqlSemanticError(
                "return_unmatched must be true or false", span=unmatched.span, code="KQL205"
            )
        keep = value
    source = _column_name(source_key, rel, "ipv4_lookup's address column")
    right = c.compile_tabular(table, scope)
    key = _column_name(lookup_key, right, "ipv4_lookup's key column")
    taken = set(rel.names())
    renamed: list[tuple[str, str, str]] = []  # lookup column, its name in the output, type
    for n, t in right.columns:
        out = free_name(n, taken)
        taken.add(out)
        renamed.append((n, out, t))
    out_key = next(out for n, out, _ in renamed if n == key)
    match = ast.Call(
        name="ipv4_is_match",
        args=(ast.Name(name=source, span=op.span), ast.Name(name=out_key, span=op.span)),
        span=op.span,
        name_span=op.span,
    )
    both = Relation(rel.sql, (*rel.columns, *((out, t) for _, out, t in renamed)))
    on = c.expr(match, scope, both).sql
    la, ra = c.fresh("_l"), c.fresh("_r")
    lookup_sql = c.select(right, [alias(col(n), out) for n, out, _ in renamed])
    projections: list[exp.Expr] = [
        alias(exp.column(n, table=la, quoted=True), n) for n in rel.names()
    ]
    columns = list(rel.columns)
    for _, out, t in renamed:
        ref: exp.Expr = exp.column(out, table=ra, quoted=True)
        if keep and t in TEXTUAL:
            ref = not_null_string(ref)
        projections.append(alias(ref, out))
        columns.append((out, t))
    select = (
        exp.Select(expressions=projections)
        .from_(exp.Subquery(this=rel.sql, alias=exp.TableAlias(this=exp.to_identifier(la))))
        .join(
            exp.Subquery(this=lookup_sql, alias=exp.TableAlias(this=exp.to_identifier(ra))),
            on=on,
            join_type="LEFT" if keep else "INNER",
        )
    )
    return Relation(select, tuple(columns))
