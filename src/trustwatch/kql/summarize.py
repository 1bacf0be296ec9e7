"""The ``summarize`` operator: group keys, aggregates, multi-column arg_max/arg_min/take_any.

https://learn.microsoft.com/kusto/query/summarize-operator
"""

from __future__ import annotations

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.aggregates import MULTI_COLUMN, column_name_of, default_name
from trustwatch.kql.compiler import AggregateContext, Compiler, alias
from trustwatch.kql.expressions import ExprCompiler
from trustwatch.kql.operators.common import ColumnNamer, col, free_name, inferred_name
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import TEXTUAL, Typed, func, not_null_string, sql_type


def summarize(c: Compiler, op: ast.Summarize, rel: Relation, scope: Scope) -> Relation:
    namer = ColumnNamer(rel.names())
    group_sql: list[exp.Expr] = []
    inner: list[exp.Expr] = []  # projections of the GROUP BY select
    outer: list[exp.Expr] = []  # projections of the unpacking select
    columns: list[tuple[str, str]] = []
    for item in op.by:
        name = item.name or inferred_name(item.expr) or namer.next()
        t = c.expr(item.expr, scope, rel)
        group_sql.append(t.sql)
        inner.append(alias(t.sql.copy(), name))
        outer.append(col(name))
        columns.append((name, t.type))
    by_names = {n for n, _ in columns}
    for item in op.aggregates:
        expr = item.expr
        if isinstance(expr, ast.Call) and expr.name in MULTI_COLUMN:
            _multi(c, expr, item, rel, scope, by_names, inner, outer, columns, namer, op.aggregates)
            continue
        ctx = AggregateContext()
        t = c.expr(expr, scope, rel, aggregate=ctx)
        if not ctx.calls:
            raise KqlSemanticError(
                "a summarize item needs an aggregation function such as count() or make_set(X)",
                span=item.span,
                code="KQL205",
            )
        name = item.name or _default_free(expr, columns) or namer.next()
        if item.names:
            raise KqlSemanticError(
                "tuple names are only valid for arg_max, arg_min and percentiles",
                span=item.span,
                code="KQL205",
            )
        inner.append(alias(t.sql, name))
        outer.append(col(name))
        columns.append((name, t.type))
    _check_unique(columns, op)
    select = exp.Select(expressions=inner).from_(c.source(rel), copy=False)
    if group_sql:
        select = select.group_by(*group_sql, copy=False)
    final = exp.Select(expressions=outer).from_(c.source(Relation(select, ())), copy=False)
    return Relation(final, tuple(columns))


def _default_free(expr: ast.Expr, columns: list[tuple[str, str]]) -> str | None:
    """The default name of an aggregate, suffixed if an earlier column has it (set_y, set_y1)."""
    name = default_name(expr) if isinstance(expr, ast.Call) else None
    return free_name(name, {n for n, _ in columns}) if name else None


def _check_unique(columns: list[tuple[str, str]], op: ast.Summarize) -> None:
    seen: set[str] = set()
    for name, _ in columns:
        if name in seen:
            raise KqlSemanticError(
                f"summarize produces the column '{name}' twice; name one of them (Name = ...)",
                span=op.span,
                code="KQL205",
            )
        seen.add(name)


def _multi(
    c: Compiler,
    call: ast.Call,
    item: ast.Assignment,
    rel: Relation,
    scope: Scope,
    by_names: set[str],
    inner: list[exp.Expr],
    outer: list[exp.Expr],
    columns: list[tuple[str, str]],
    namer: ColumnNamer,
    op_items: tuple[ast.Assignment, ...] = (),
) -> None:
    """arg_max/arg_min(by, cols...), take_any(cols...), percentiles(x, p...): several columns."""
    ec = ExprCompiler(c, scope, rel, {}, None)
    names = list(item.names) or ([item.name] if item.name else [])
    if call.name in ("percentiles", "percentiles_array"):
        if len(call.args) < 2:
            raise KqlSemanticError(
                "percentiles() takes a value and one or more percentiles",
                span=call.span,
                code="KQL204",
            )
        value = ec.compile(call.args[0])
        base = column_name_of(call.args[0]) or "expr"
        ps = [ec.compile(a) for a in call.args[1:]]
        if call.name == "percentiles_array":
            key = names[0] if names else f"percentiles_{base}"
            parts = [
                func("quantile_disc", value.sql.copy(), exp.Literal.number(_percent(p) / 100))
                for p in ps
            ]
            inner.append(alias(func("to_json", func("list_value", *parts)), key))
            outer.append(col(key))
            columns.append((key, "dynamic"))
            return
        for i, p in enumerate(ps):
            if not (p.is_constant and isinstance(p.constant, int | float)):
                raise KqlSemanticError(
                    "percentiles must be constant numbers",
                    span=call.args[i + 1].span,
                    code="KQL205",
                )
            text = (
                str(p.constant).replace(".", "_")
                if not float(p.constant).is_integer()
                else str(int(p.constant))
            )
            key = names[i] if i < len(names) else f"percentile_{base}_{text}"
            inner.append(
                alias(
                    func(
                        "quantile_disc",
                        value.sql.copy(),
                        exp.Literal.number(float(p.constant) / 100),
                    ),
                    key,
                )
            )
            outer.append(col(key))
            columns.append((key, value.type if value.type != "int" else "long"))
        return
    is_arg = call.name in ("arg_max", "arg_min", "argmax", "argmin")
    # argmax/argmin: the deprecated aliases; the maximised column keeps its name and each
    # returned column is named after it, <key>_<column> (Microsoft's analyzer, Aggregates.cs
    # in github.com/microsoft/Kusto-Query-Language)
    deprecated = call.name in ("argmax", "argmin")
    args = list(call.args)
    if is_arg and len(args) < 1:
        raise KqlSemanticError(
            f"{call.name}() needs the expression to maximise", span=call.span, code="KQL204"
        )
    key_node = args[0] if is_arg else None
    returns = args[1:] if is_arg else args
    picked: list[tuple[str, Typed]] = []
    key_t: Typed | None = None
    if key_node is not None:
        key_t = ec.compile(key_node)
        key_name = (names[0] if names else None) or inferred_name(key_node) or namer.next()
        picked.append((free_name(key_name, by_names | {n for n, _ in columns}), key_t))
    key_column = column_name_of(key_node) if key_node is not None else None
    for r in returns:
        if deprecated:
            _pick_deprecated(ec, r, rel, key_column, picked, names, by_names, columns)
        elif isinstance(r, ast.Star):
            # the by columns are not repeated; a name an earlier item or an explicitly named
            # item already has gets a numeric suffix (LastEvent=arg_max(T, *), arg_min(T, *))
            reserved = {a.name for a in op_items if a.name and a is not item}
            for n, t in rel.columns:
                if n in by_names or any(p[0] == n for p in picked):
                    continue
                taken = reserved | {m for m, _ in columns} | {p[0] for p in picked}
                picked.append((free_name(n, taken), Typed(col(n), t)))
        else:
            idx = len(picked)
            given = names[idx] if idx < len(names) else None
            prefix = "any_" if call.name == "any" else ""
            inferred = inferred_name(r)
            name = given or (prefix + inferred if inferred else namer.next())
            taken = by_names | {n for n, _ in columns} | {p[0] for p in picked}
            picked.append((free_name(name, taken), ec.compile(r)))
    struct_name = c.fresh("__tw_pick")
    struct = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(f"f{i}"), expression=t.sql.copy())
            for i, (_, t) in enumerate(picked)
        ]
    )
    agg: exp.Expr
    if key_t is not None:
        agg_name = "arg_max" if call.name in ("arg_max", "argmax") else "arg_min"
        # Rows that tie on the key: Kusto returns any one of them; the engines would return
        # the first they meet, which depends on how a plan's tasks were scheduled (a hunt's
        # one-evaluation and run-by-run replays gave different evidence rows). The tie goes to
        # the least (arg_min) or greatest (arg_max) of the returned values, so the same rows
        # give the same answer every time; rows with a null key are still skipped.
        order = exp.Case(
            ifs=[
                exp.If(this=exp.Is(this=key_t.sql.copy(), expression=exp.null()), true=exp.null())
            ],
            default=exp.Struct(
                expressions=[
                    exp.PropertyEQ(this=exp.to_identifier("k"), expression=key_t.sql.copy()),
                    exp.PropertyEQ(this=exp.to_identifier("t"), expression=struct.copy()),
                ]
            ),
        )
        # a group whose keys are all null still yields a row (with a null key)
        agg = exp.Coalesce(
            this=func(agg_name, struct, order),
            expressions=[func("any_value", struct.copy())],
        )
    elif len(picked) == 1 and picked[0][1].type in TEXTUAL:
        # take_any of one column prefers a non-empty value
        only = picked[0][1]
        agg = exp.Struct(
            expressions=[
                exp.PropertyEQ(
                    this=exp.to_identifier("f0"),
                    expression=func(
                        "any_value",
                        exp.Nullif(this=only.sql.copy(), expression=exp.Literal.string("")),
                    ),
                )
            ]
        )
    else:
        agg = func("any_value", struct)
    inner.append(alias(agg, struct_name))
    for i, (out_name, value_t) in enumerate(picked):
        field: exp.Expr = exp.Dot(this=col(struct_name), expression=exp.to_identifier(f"f{i}"))
        if value_t.type in TEXTUAL:
            field = not_null_string(field)
        elif value_t.type == "dynamic":
            field = exp.Cast(this=field, to=sql_type("dynamic"))
        outer.append(alias(field, out_name))
        columns.append((out_name, value_t.type))


def _pick_deprecated(
    ec: ExprCompiler,
    r: ast.Node,
    rel: Relation,
    key_column: str | None,
    picked: list[tuple[str, Typed]],
    names: list[str],
    by_names: set[str],
    columns: list[tuple[str, str]],
) -> None:
    """One returned argument of argmax/argmin: its columns named <key>_<name>."""
    prefix = f"{picked[0][0]}_"
    if isinstance(r, ast.Star):
        for n, t in rel.columns:
            if n == key_column or n in by_names or any(p[0] == prefix + n for p in picked):
                continue
            taken = {m for m, _ in columns} | {p[0] for p in picked}
            picked.append((free_name(prefix + n, taken), Typed(col(n), t)))
        return
    idx = len(picked)
    given = names[idx] if idx < len(names) else None
    inferred = inferred_name(r)
    name = given or prefix + (inferred if inferred else f"arg{idx}")
    taken = by_names | {n for n, _ in columns} | {p[0] for p in picked}
    picked.append((free_name(name, taken), ec.compile(r)))


def _percent(p: Typed) -> float:
    if not (p.is_constant and isinstance(p.constant, int | float)):
        raise KqlSemanticError("percentiles must be constant numbers", code="KQL205")
    return float(p.constant)
