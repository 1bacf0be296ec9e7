"""Pipe operators: each takes the input relation and returns the output relation.

https://learn.microsoft.com/kusto/query/tabular-expression-statements
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.aggregates import column_name_of
from trustwatch.kql.compiler import Compiler, OperatorHandler, alias
from trustwatch.kql.expressions import ExprCompiler
from trustwatch.kql.functions import DEFENDER_CLOUD_FUNCTIONS, convert
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import TEXTUAL, Typed, func, lit_string, not_null_string, sql_type
from trustwatch.schema.model import suggest

OPERATORS: dict[type, OperatorHandler] = {}

# How each operator is spelt in KQL, for messages about operators that are not compiled.
KQL_NAMES: dict[type, str] = {
    ast.MvApply: "mv-apply",
    ast.MakeSeries: "make-series",
    ast.Evaluate: "evaluate",
    ast.Search: "search",
    ast.Sample: "sample",
}

# Functions whose result keeps the name of their first argument column.
_NAME_THROUGH = frozenset(
    {
        "tostring",
        "toint",
        "tolong",
        "todouble",
        "toreal",
        "tobool",
        "todatetime",
        "totimespan",
        "todynamic",
        "parse_json",
        "bin",
        "floor",
        "todecimal",
        "toguid",
        "bin_at",
    }
)


def register(node_type: type) -> Callable[[Callable[..., Relation]], Callable[..., Relation]]:
    def deco(fn: Callable[..., Relation]) -> Callable[..., Relation]:
        OPERATORS[node_type] = fn
        return fn

    return deco


def col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def inferred_name(expr: ast.Node) -> str | None:
    """The name Kusto gives an unnamed expression column, or None for ``ColumnN``."""
    name = column_name_of(expr)
    if name is not None:
        return name
    if isinstance(expr, ast.Call) and expr.name in _NAME_THROUGH and expr.args:
        return inferred_name(expr.args[0])
    return None


class ColumnNamer:
    """Hands out ``Column1``, ``Column2``... avoiding names already present."""

    def __init__(self, taken: Iterable[str]) -> None:
        self.taken = set(taken)
        self.n = 0

    def next(self) -> str:
        while True:
            self.n += 1
            name = f"Column{self.n}"
            if name not in self.taken:
                self.taken.add(name)
                return name


def _assignment_names(a: ast.Assignment, namer: ColumnNamer) -> str:
    if a.names:
        raise KqlSemanticError(
            "a tuple assignment '(A, B) = ...' is only valid for multi-column functions",
            span=a.span,
            code="KQL205",
        )
    return a.name or inferred_name(a.expr) or namer.next()


# --- where / extend / project ----------------------------------------------------------------


@register(ast.Where)
def compile_where(c: Compiler, op: ast.Where, rel: Relation, scope: Scope) -> Relation:
    pred = c.expr(op.predicate, scope, rel)
    ec = ExprCompiler(c, scope, rel, {}, None)
    cond = ec.boolean(pred, op.predicate.span)
    source, hoisted = hoist_folds(c, rel, cond)
    # hoisted folds are extra columns of the source: name the relation's own columns
    columns = c.column_projection(rel) if hoisted else c.star_projection(rel)
    select = exp.Select(expressions=columns).from_(source, copy=False)
    return Relation(select.where(cond, copy=False), rel.columns, rel.order)


def hoist_folds(c: Compiler, rel: Relation, cond: exp.Expr) -> tuple[exp.Expr, bool]:
    """Lower-case each column once per row, not once per needle.

    Rewrites ``cond`` in place. A ``has_any`` of four needles folds its column in four places,
    and DuckDB evaluates each.
    Computing every distinct ``lower(col)`` once in a projection below the filter halves the
    time of the specification's query. (The rare exact ``translate()`` path stays inline, where
    its guard keeps it off most rows.)
    """
    folds: dict[str, tuple[str, exp.Expr]] = {}
    for node in list(cond.find_all(exp.Anonymous)):
        if str(node.this).lower() != "lower":
            continue  # translate() runs only on rare rows: computing it for all would cost more
        if node.find_ancestor(exp.Query) is not None:
            continue  # inside a subquery: its columns are not this relation's
        names = {col.name for col in node.find_all(exp.Column)}
        if len(names) != 1 or rel.type_of(names.pop()) is None:
            continue  # fold of one column of this relation: one value per row
        key = node.sql(dialect="duckdb")  # identity of the fold, not SQL that is run
        name, _ = folds.setdefault(key, (f"__tw_fold{len(folds)}", node.copy()))
        node.replace(exp.column(name, quoted=True))
    if not folds:
        return c.source(rel), False
    projections = c.star_projection(rel)
    projections += [alias(fold, name) for name, fold in folds.values()]
    inner = exp.Select(expressions=projections).from_(c.source(rel), copy=False)
    return exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(c.fresh()))), True


def _compute_items(
    c: Compiler, items: tuple[ast.Assignment, ...], rel: Relation, scope: Scope
) -> list[tuple[str, Typed]]:
    """Compile extend/project items in order; a later item may use an earlier one's name."""
    namer = ColumnNamer(rel.names())
    overlay: dict[str, Typed] = {}
    out: list[tuple[str, Typed]] = []
    for item in items:
        name = _assignment_names(item, namer)
        typed = c.expr(item.expr, scope, rel, overlay=overlay)
        overlay[name] = typed
        out = [(n, t) for n, t in out if n != name]
        out.append((name, typed))
    return out


@register(ast.Extend)
def compile_extend(c: Compiler, op: ast.Extend, rel: Relation, scope: Scope) -> Relation:
    computed = dict(_compute_items(c, op.items, rel, scope))
    if not any(rel.type_of(name) for name in computed):  # only new columns: * and the new ones
        added = [alias(t.sql, name) for name, t in computed.items()]
        new_columns = rel.columns + tuple((name, t.type) for name, t in computed.items())
        return Relation(c.select(rel, [exp.Star(), *added]), new_columns, rel.order)
    projections: list[exp.Expr] = []
    columns: list[tuple[str, str]] = []
    for name, ktype in rel.columns:
        if name in computed:  # extend with an existing name replaces the column in place
            t = computed.pop(name)
            projections.append(alias(t.sql, name))
            columns.append((name, t.type))
        else:
            projections.append(col(name))
            columns.append((name, ktype))
    for name, t in computed.items():
        projections.append(alias(t.sql, name))
        columns.append((name, t.type))
    if rel.order:
        projections.append(col(rel.order))
    return Relation(c.select(rel, projections), tuple(columns), rel.order)


@register(ast.Project)
def compile_project(c: Compiler, op: ast.Project, rel: Relation, scope: Scope) -> Relation:
    computed = _compute_items(c, op.items, rel, scope)
    seen: set[str] = set()
    for item, (name, _) in zip(op.items, computed, strict=False):
        if name in seen:
            raise KqlSemanticError(
                f"column '{name}' is projected twice", span=item.span, code="KQL205"
            )
        seen.add(name)
    projections: list[exp.Expr] = [alias(t.sql, n) for n, t in computed]
    if rel.order:
        projections.append(col(rel.order))
    return Relation(c.select(rel, projections), tuple((n, t.type) for n, t in computed), rel.order)


def match_patterns(rel: Relation, patterns: tuple[ast.ColumnPattern, ...]) -> list[str]:
    """Columns matched by names or wildcards, in pattern order; unmatched plain names fail."""
    names = rel.names()
    out: list[str] = []
    for p in patterns:
        if "*" in p.pattern:
            hits = [n for n in names if fnmatch.fnmatchcase(n, p.pattern)]
        elif p.pattern in names:
            hits = [p.pattern]
        else:
            raise KqlSemanticError(
                f"unknown column '{p.pattern}' in the input of this operator",
                span=p.span,
                hint=suggest(p.pattern, names),
                code="KQL202",
            )
        out.extend(h for h in hits if h not in out)
    return out


def _keep(c: Compiler, rel: Relation, keep: list[str]) -> Relation:
    projections: list[exp.Expr] = [col(n) for n in keep]
    if rel.order:
        projections.append(col(rel.order))
    return Relation(
        c.select(rel, projections), tuple((n, rel.type_of(n) or "string") for n in keep), rel.order
    )


@register(ast.ProjectAway)
def compile_project_away(c: Compiler, op: ast.ProjectAway, rel: Relation, scope: Scope) -> Relation:
    drop = set(match_patterns(rel, op.patterns))
    return _keep(c, rel, [n for n in rel.names() if n not in drop])


@register(ast.ProjectKeep)
def compile_project_keep(c: Compiler, op: ast.ProjectKeep, rel: Relation, scope: Scope) -> Relation:
    keep = set(match_patterns(rel, op.patterns))
    return _keep(c, rel, [n for n in rel.names() if n in keep])


@register(ast.ProjectReorder)
def compile_project_reorder(
    c: Compiler, op: ast.ProjectReorder, rel: Relation, scope: Scope
) -> Relation:
    first: list[str] = []
    for pattern, order in zip(op.patterns, op.orders or (None,) * len(op.patterns), strict=False):
        hits = [h for h in match_patterns(rel, (pattern,)) if h not in first]
        if order in ("asc", "granny-asc"):
            hits.sort(key=str.lower if order == "granny-asc" else None)
        elif order in ("desc", "granny-desc"):
            hits.sort(key=str.lower if order == "granny-desc" else None, reverse=True)
        first.extend(hits)
    return _keep(c, rel, first + [n for n in rel.names() if n not in first])


@register(ast.ProjectRename)
def compile_project_rename(
    c: Compiler, op: ast.ProjectRename, rel: Relation, scope: Scope
) -> Relation:
    renames: dict[str, str] = {}
    for i, (new, old) in enumerate(op.pairs):
        if rel.type_of(old) is None:
            raise KqlSemanticError(
                f"unknown column '{old}' in the input of project-rename",
                span=op.old_spans[i] if i < len(op.old_spans) else op.span,
                hint=suggest(old, rel.names()),
                code="KQL202",
            )
        renames[old] = new
    projections: list[exp.Expr] = []
    columns = []
    for name, ktype in rel.columns:
        new_name = renames.get(name, name)
        if name not in renames and name in renames.values():
            continue  # an existing column of the new name is replaced
        projections.append(alias(col(name), new_name))
        columns.append((new_name, ktype))
    if rel.order:
        projections.append(col(rel.order))
    return Relation(c.select(rel, projections), tuple(columns), rel.order)


# --- ordering --------------------------------------------------------------------------------


def sort_keys(
    c: Compiler, keys: tuple[ast.SortKey, ...], rel: Relation, scope: Scope
) -> list[exp.Ordered]:
    """ORDER BY terms with Kusto's defaults: desc, nulls last for desc and first for asc.

    https://learn.microsoft.com/kusto/query/sort-operator
    """
    out = []
    for key in keys:
        t = c.expr(key.expr, scope, rel)
        nulls_first = key.nulls_first if key.nulls_first is not None else not key.descending
        out.append(exp.Ordered(this=t.sql, desc=key.descending, nulls_first=nulls_first))
    return out


def _ordered(
    c: Compiler, rel: Relation, order_by: list[exp.Ordered], limit: exp.Expr | None = None
) -> Relation:
    """Materialise an order as a hidden row-number column carried by later stages."""
    order_col = c.fresh("__tw_order")
    window = exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=order_by))
    projections: list[exp.Expr] = [col(n) for n in rel.names()]
    projections.append(alias(window, order_col))
    select = c.select(rel, projections)
    if limit is not None:
        select = select.order_by(*[o.copy() for o in order_by]).limit(limit)
    return Relation(select, rel.columns, order_col)


@register(ast.Sort)
def compile_sort(c: Compiler, op: ast.Sort, rel: Relation, scope: Scope) -> Relation:
    return _ordered(c, rel, sort_keys(c, op.keys, rel, scope))


@register(ast.Top)
def compile_top(c: Compiler, op: ast.Top, rel: Relation, scope: Scope) -> Relation:
    count = row_count(c, op.count, scope)
    return _ordered(c, rel, sort_keys(c, (op.key,), rel, scope), limit=count)


def row_count(c: Compiler, node: ast.Expr, scope: Scope) -> exp.Expr:
    """The N of take/top: a non-negative whole number."""
    count = c.expr(node, scope, None)
    if count.type not in ("int", "long"):
        raise KqlSemanticError(
            f"the number of rows must be a whole number, not {count.type}",
            span=node.span,
            code="KQL205",
        )
    if count.is_constant and isinstance(count.constant, int) and count.constant < 0:
        raise KqlSemanticError(
            "the number of rows cannot be negative", span=node.span, code="KQL205"
        )
    return count.sql


@register(ast.Take)
def compile_take(c: Compiler, op: ast.Take, rel: Relation, scope: Scope) -> Relation:
    count = Typed(row_count(c, op.count, scope), "long")
    select = c.select(rel, c.star_projection(rel))
    if rel.order:
        select = select.order_by(exp.Ordered(this=col(rel.order)))
    return Relation(select.limit(count.sql), rel.columns, rel.order)


@register(ast.Sample)
def compile_sample(c: Compiler, op: ast.Sample, rel: Relation, scope: Scope) -> Relation:
    return compile_take(c, ast.Take(count=op.count, span=op.span), rel, scope)


@register(ast.Serialize)
def compile_serialize(c: Compiler, op: ast.Serialize, rel: Relation, scope: Scope) -> Relation:
    if rel.order is None:
        order_col = c.fresh("__tw_order")
        window = exp.Window(this=exp.RowNumber())
        projections: list[exp.Expr] = [col(n) for n in rel.names()] + [alias(window, order_col)]
        rel = Relation(c.select(rel, projections), rel.columns, order_col)
    if op.items:
        return compile_extend(c, ast.Extend(items=op.items, span=op.span), rel, scope)
    return rel


# --- distinct / count / summarize ------------------------------------------------------------


@register(ast.Distinct)
def compile_distinct(c: Compiler, op: ast.Distinct, rel: Relation, scope: Scope) -> Relation:
    if op.star:
        return Relation(c.select(rel, [col(n) for n in rel.names()]).distinct(), rel.columns)
    computed = _compute_items(c, op.items, rel, scope)
    projections = [alias(t.sql, n) for n, t in computed]
    return Relation(c.select(rel, projections).distinct(), tuple((n, t.type) for n, t in computed))


@register(ast.Count)
def compile_count(c: Compiler, op: ast.Count, rel: Relation, scope: Scope) -> Relation:
    select = c.select(rel, [alias(exp.Count(this=exp.Star()), op.name)])
    return Relation(select, ((op.name, "long"),))


@register(ast.Summarize)
def compile_summarize(c: Compiler, op: ast.Summarize, rel: Relation, scope: Scope) -> Relation:
    from trustwatch.kql.summarize import summarize

    return summarize(c, op, rel, scope)


# --- getschema / render ----------------------------------------------------------------------


@register(ast.Getschema)
def compile_getschema(c: Compiler, op: ast.Getschema, rel: Relation, scope: Scope) -> Relation:
    rows = []
    for i, (name, ktype) in enumerate(rel.columns):
        dotnet = {
            "string": "System.String",
            "long": "System.Int64",
            "int": "System.Int32",
            "real": "System.Double",
            "bool": "System.SByte",
            "datetime": "System.DateTime",
            "timespan": "System.TimeSpan",
            "dynamic": "System.Object",
            "guid": "System.Guid",
        }[ktype]
        rows.append(
            exp.Tuple(
                expressions=[
                    lit_string(name),
                    exp.Literal.number(i),
                    lit_string(dotnet),
                    lit_string(ktype),
                ]
            )
        )
    columns = (
        ("ColumnName", "string"),
        ("ColumnOrdinal", "int"),
        ("DataType", "string"),
        ("ColumnType", "string"),
    )
    if not rows:
        return c.empty_relation(columns)
    values = exp.Values(
        expressions=rows,
        alias=exp.TableAlias(
            this=exp.to_identifier(c.fresh()),
            columns=[exp.to_identifier(n, quoted=True) for n, _ in columns],
        ),
    )
    select = exp.Select(
        expressions=[
            col(n) if t != "int" else alias(exp.Cast(this=col(n), to=sql_type("int")), n)
            for n, t in columns
        ]
    ).from_(values)
    return Relation(select, columns)


@register(ast.Render)
def compile_render(c: Compiler, op: ast.Render, rel: Relation, scope: Scope) -> Relation:
    c.notices.append(
        f"render {op.visualization}: charts are not drawn here; the rows are returned as a table"
    )
    return rel


@register(ast.Invoke)
def compile_invoke(c: Compiler, op: ast.Invoke, rel: Relation, scope: Scope) -> Relation:
    from trustwatch.kql.scope import LambdaBinding

    binding = scope.lookup(op.call.name)
    if binding is None and op.call.name in DEFENDER_CLOUD_FUNCTIONS:
        raise c.unsupported(
            f"Defender's '{op.call.name}()' (it answers from Microsoft's cloud)", op.call.name_span
        )
    if not isinstance(binding, LambdaBinding):
        raise KqlSemanticError(
            f"unknown function '{op.call.name}'", span=op.call.name_span, code="KQL203"
        )
    body_scope = c.lambda_scope(binding, list(op.call.args), op.call.span, scope, implicit=rel)
    return c.compile_tabular(binding.fn.body, body_scope)


# --- parse -----------------------------------------------------------------------------------


def _parse_regex(op: ast.Parse) -> tuple[str, list[ast.ParseColumn]]:
    """Build the regular expression of a ``parse`` pattern and the columns it captures.

    https://learn.microsoft.com/kusto/query/parse-operator
    """
    import re

    columns: list[ast.ParseColumn] = []
    pieces: list[str] = []
    parts = list(op.parts)
    for i, part in enumerate(parts):
        if isinstance(part, str):
            pieces.append(part if op.kind == "regex" else re.escape(part))
            continue
        if part.name == "*":
            pieces.append(".*?")
            continue
        columns.append(part)
        is_last = all(isinstance(p, ast.ParseColumn) and p.name == "*" for p in parts[i + 1 :])
        if op.kind == "regex":
            pieces.append("(.*?)" if not is_last else "(.*)")
        elif op.kind == "relaxed":
            pieces.append("(.*)" if is_last else "(.*?)")
        elif part.type in ("long", "int"):
            pieces.append(r"(-?\d+)")
        elif part.type == "real":
            pieces.append(r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")
        else:
            pieces.append("(.*)" if is_last and op.kind != "regex" else "(.*?)")
    pattern = "".join(pieces)
    flags = op.flags.replace("U", "")
    if flags:
        pattern = f"(?{flags}){pattern}"
    return pattern, columns


@register(ast.Parse)
def compile_parse(c: Compiler, op: ast.Parse, rel: Relation, scope: Scope) -> Relation:
    source = convert(c.expr(op.source, scope, rel), "string")
    pattern, columns = _parse_regex(op)
    match = func("regexp_matches", source.sql, lit_string(pattern))
    computed: dict[str, Typed] = {}
    for i, pc in enumerate(columns, start=1):
        text = func("regexp_extract", source.sql.copy(), lit_string(pattern), exp.Literal.number(i))
        if pc.type in TEXTUAL:
            value = Typed(exp.If(this=match.copy(), true=text, false=lit_string("")), "string")
        else:
            converted = convert(
                Typed(exp.Nullif(this=text, expression=lit_string("")), "string"), pc.type
            )
            value = Typed(
                exp.If(
                    this=match.copy(),
                    true=converted.sql,
                    false=exp.Cast(this=exp.null(), to=sql_type(pc.type)),
                ),
                pc.type,
            )
        computed[pc.name] = value
    items = tuple(computed.items())
    projections: list[exp.Expr] = []
    columns_out: list[tuple[str, str]] = []
    for name, ktype in rel.columns:
        if name in computed:
            continue
        projections.append(col(name))
        columns_out.append((name, ktype))
    for name, t in items:
        projections.append(alias(t.sql, name))
        columns_out.append((name, t.type))
    if rel.order:
        projections.append(col(rel.order))
    return Relation(c.select(rel, projections), tuple(columns_out), rel.order)


# --- mv-expand -------------------------------------------------------------------------------


@register(ast.MvExpand)
def compile_mv_expand(c: Compiler, op: ast.MvExpand, rel: Relation, scope: Scope) -> Relation:
    """Expand dynamic arrays (and property bags) into one row per element, zipping several columns.

    https://learn.microsoft.com/kusto/query/mv-expand-operator
    """
    expanded: dict[str, tuple[exp.Expr, str | None]] = {}
    namer = ColumnNamer(rel.names())
    for item in op.items:
        name = item.name or inferred_name(item.expr) or namer.next()
        t = c.expr(item.expr, scope, rel)
        if t.type != "dynamic":
            t = convert(t, "dynamic")
        d = t.sql
        is_object = exp.EQ(this=func("json_type", d), expression=lit_string("OBJECT"))
        value_of_k = func(
            "json_extract",
            d.copy(),
            func("concat", lit_string('$."'), exp.column("k"), lit_string('"')),
        )
        pair = (
            func("json_array", exp.column("k"), value_of_k)
            if op.bagexpansion == "array"
            else func("json_object", exp.column("k"), value_of_k)
        )
        bag_items = func(
            "list_transform",
            func("json_keys", d.copy()),
            exp.Lambda(this=pair, expressions=[exp.to_identifier("k")]),
        )
        elements = exp.Case(
            ifs=[
                exp.If(this=is_object, true=bag_items),
                exp.If(
                    this=exp.EQ(this=func("json_type", d.copy()), expression=lit_string("ARRAY")),
                    true=func("json_extract", d.copy(), lit_string("$[*]")),
                ),
            ],
            default=func("list_value", d.copy()),
        )
        expanded[name] = (elements, item.to_type)
    projections: list[exp.Expr] = []
    columns: list[tuple[str, str]] = []
    inner_cols: list[exp.Expr] = [col(n) for n in rel.names() if n not in expanded]
    if rel.order:
        inner_cols.append(col(rel.order))
    # Zip several arrays: unnest each in the same SELECT (DuckDB pads the shorter ones with NULL).
    unnests = [
        alias(exp.Unnest(expressions=[elements]), f"__tw_x_{name}")
        for name, (elements, _) in expanded.items()
    ]
    if op.with_itemindex:
        lengths = [func("len", elements.copy()) for elements, _ in expanded.values()]
        longest = func("greatest", *lengths) if len(lengths) > 1 else lengths[0]
        index_list = func("range", exp.Cast(this=longest, to=sql_type("long")))
        unnests.append(alias(exp.Unnest(expressions=[index_list]), op.with_itemindex))
    inner = c.select(rel, inner_cols + unnests)
    inner_rel = Relation(inner, ())
    for name, ktype in rel.columns:
        if name in expanded:
            _, to_type = expanded[name]
            value = _expanded_value(col(f"__tw_x_{name}"), to_type)
            projections.append(alias(value.sql, name))
            columns.append((name, value.type))
        else:
            projections.append(col(name))
            columns.append((name, ktype))
    for name, (_elements, to_type) in expanded.items():
        if rel.type_of(name) is None:
            value = _expanded_value(col(f"__tw_x_{name}"), to_type)
            projections.append(alias(value.sql, name))
            columns.append((name, value.type))
    if op.with_itemindex:
        projections.append(col(op.with_itemindex))
        columns.append((op.with_itemindex, "long"))
    if rel.order:
        projections.append(col(rel.order))
    select = c.select(inner_rel, projections)
    if op.limit is not None:
        raise c.unsupported("mv-expand ... limit", op.limit.span)
    return Relation(select, tuple(columns), rel.order)


def _expanded_value(element: exp.Expr, to_type: str | None) -> Typed:
    typed = Typed(exp.Cast(this=element, to=sql_type("dynamic")), "dynamic")
    if to_type is None or to_type == "dynamic":
        return typed
    return convert(typed, to_type)


# --- join / lookup ---------------------------------------------------------------------------


def _check_keys(rel: Relation, conds: tuple[ast.JoinCondition, ...], side: str) -> None:
    for cond in conds:
        k = cond.left if side == "left" else cond.right
        if rel.type_of(k) is None:
            raise KqlSemanticError(
                f"unknown column '{k}' on the {side} side of the join",
                span=cond.span,
                hint=suggest(k, rel.names()),
                code="KQL202",
            )


def _dedupe_left(c: Compiler, rel: Relation, keys: list[str]) -> Relation:
    """innerunique: keep one (arbitrary) left row per key before joining.

    https://learn.microsoft.com/kusto/query/join-innerunique
    """
    window = exp.Window(this=exp.RowNumber(), partition_by=[col(k) for k in keys])
    select = c.select(rel, [col(n) for n in rel.names()])
    select = select.qualify(exp.EQ(this=window, expression=exp.Literal.number(1)))
    return Relation(select, rel.columns)


@register(ast.Join)
def compile_join(c: Compiler, op: ast.Join, rel: Relation, scope: Scope) -> Relation:
    right = c.compile_tabular(op.right, scope)
    left_keys = [cond.left for cond in op.on]
    right_keys = [cond.right for cond in op.on]
    _check_keys(rel, op.on, "left")
    _check_keys(right, op.on, "right")
    kind = {"anti": "leftanti", "leftantisemi": "leftanti", "rightantisemi": "rightanti"}.get(
        op.kind, op.kind
    )
    left = Relation(rel.sql, rel.columns)
    if kind == "innerunique":
        left = _dedupe_left(c, left, left_keys)
    la, ra = c.fresh("_l"), c.fresh("_r")
    on = exp.and_(
        *[
            exp.EQ(
                this=exp.column(lk, table=la, quoted=True),
                expression=exp.column(rk, table=ra, quoted=True),
            )
            for lk, rk in zip(left_keys, right_keys, strict=True)
        ]
    )
    lsrc = exp.Subquery(this=left.sql, alias=exp.TableAlias(this=exp.to_identifier(la)))
    rsrc = exp.Subquery(
        this=Relation(right.sql, right.columns).sql,
        alias=exp.TableAlias(this=exp.to_identifier(ra)),
    )
    if kind in ("leftsemi", "leftanti", "rightsemi", "rightanti"):
        keep_left = kind.startswith("left")
        outer, other, oa, oalias = (left, right, lsrc, ra) if keep_left else (right, left, rsrc, la)
        osrc = rsrc if keep_left else lsrc
        keep_alias = la if keep_left else ra
        join_type = "SEMI" if kind.endswith("semi") else "ANTI"
        select = exp.Select(
            expressions=[exp.column(n, table=keep_alias, quoted=True) for n in outer.names()]
        ).from_(oa)
        select = select.join(osrc, on=on, join_type=join_type)
        return Relation(select, outer.columns)
    side = {
        "inner": "",
        "innerunique": "",
        "leftouter": "LEFT",
        "rightouter": "RIGHT",
        "fullouter": "FULL",
    }[kind]
    projections: list[exp.Expr] = []
    columns: list[tuple[str, str]] = []
    names = set(left.names())
    for n, t in left.columns:
        ref: exp.Expr = exp.column(n, table=la, quoted=True)
        if side in ("RIGHT", "FULL") and t in TEXTUAL:
            ref = not_null_string(ref)
        projections.append(alias(ref, n))
        columns.append((n, t))
    for n, t in right.columns:
        out_name = n
        suffix = 1
        while out_name in names:
            out_name = f"{n}{suffix}"
            suffix += 1
        names.add(out_name)
        ref = exp.column(n, table=ra, quoted=True)
        if side in ("LEFT", "FULL") and t in TEXTUAL:
            ref = not_null_string(ref)
        projections.append(alias(ref, out_name))
        columns.append((out_name, t))
    select = (
        exp.Select(expressions=projections).from_(lsrc).join(rsrc, on=on, join_type=side or "INNER")
    )
    return Relation(select, tuple(columns))


@register(ast.Lookup)
def compile_lookup(c: Compiler, op: ast.Lookup, rel: Relation, scope: Scope) -> Relation:
    """Like a leftouter (or inner) join, but the key columns appear once.

    https://learn.microsoft.com/kusto/query/lookup-operator
    """
    right = c.compile_tabular(op.right, scope)
    left_keys = [cond.left for cond in op.on]
    right_keys = [cond.right for cond in op.on]
    _check_keys(rel, op.on, "left")
    _check_keys(right, op.on, "right")
    la, ra = c.fresh("_l"), c.fresh("_r")
    on = exp.and_(
        *[
            exp.EQ(
                this=exp.column(lk, table=la, quoted=True),
                expression=exp.column(rk, table=ra, quoted=True),
            )
            for lk, rk in zip(left_keys, right_keys, strict=True)
        ]
    )
    projections: list[exp.Expr] = [
        alias(exp.column(n, table=la, quoted=True), n) for n in rel.names()
    ]
    columns = list(rel.columns)
    names = set(rel.names())
    for n, t in right.columns:
        if n in right_keys:
            continue
        out_name, suffix = n, 1
        while out_name in names:
            out_name = f"{n}{suffix}"
            suffix += 1
        names.add(out_name)
        ref: exp.Expr = exp.column(n, table=ra, quoted=True)
        if op.kind == "leftouter" and t in TEXTUAL:
            ref = not_null_string(ref)
        projections.append(alias(ref, out_name))
        columns.append((out_name, t))
    lsrc = exp.Subquery(this=rel.sql, alias=exp.TableAlias(this=exp.to_identifier(la)))
    rsrc = exp.Subquery(this=right.sql, alias=exp.TableAlias(this=exp.to_identifier(ra)))
    select = (
        exp.Select(expressions=projections)
        .from_(lsrc)
        .join(rsrc, on=on, join_type="LEFT" if op.kind == "leftouter" else "INNER")
    )
    return Relation(select, tuple(columns))


# --- union -----------------------------------------------------------------------------------


def union_relations(c: Compiler, op: ast.Union, first: Relation | None, scope: Scope) -> Relation:
    """``union``: columns by name; outer keeps all (missing ones empty), inner only common ones.

    https://learn.microsoft.com/kusto/query/union-operator
    """
    inputs: list[tuple[str, Relation]] = []
    # Tables with no data loaded add their columns but no rows, so they need no SELECT of their
    # own; `union *` over ~80 empty schemas stays one small query.
    empty: list[Relation] = []
    if first is not None:
        inputs.append(("", first))
    for source in op.tables:
        if isinstance(source, ast.TableRef) and "*" in source.name:
            matched = sorted(n for n in c.catalog if fnmatch.fnmatchcase(n, source.name))
            if not matched and not op.isfuzzy:
                raise KqlSemanticError(
                    f"no table matches '{source.name}'", span=source.span, code="KQL201"
                )
            for name in matched:
                target = empty if c.catalog[name].sql_name is None else None
                rel = c.table_ref(name, source.span, scope)
                if target is None:
                    inputs.append((name, rel))
                else:
                    target.append(rel)
        else:
            label = source.name if isinstance(source, ast.TableRef) else ""
            if (
                isinstance(source, ast.Pipeline)
                and source.ops
                and isinstance(source.ops[-1], ast.As)
            ):
                label = source.ops[-1].name
            inputs.append((label, c.compile_tabular(source, scope)))
    if not inputs and empty:
        inputs.append(("", empty.pop(0)))
    # Same name, different types: Kusto keeps both as name_type.
    everything = [r for _, r in inputs] + empty
    types: dict[str, set[str]] = {}
    for r in everything:
        for n, t in r.columns:
            types.setdefault(n, set()).add(t)
    order: list[tuple[str, str]] = []
    for r in everything:
        for n, t in r.columns:
            out = n if len(types[n]) == 1 else f"{n}_{t}"
            if (out, t) not in order:
                order.append((out, t))
    if op.kind == "inner":
        common = set.intersection(
            *[{(n if len(types[n]) == 1 else f"{n}_{t}") for n, t in r.columns} for r in everything]
        )
        order = [(n, t) for n, t in order if n in common]
    selects = []
    for label, r in inputs:
        present = {(n if len(types[n]) == 1 else f"{n}_{t}"): n for n, t in r.columns}
        projections: list[exp.Expr] = []
        if op.withsource:
            projections.append(alias(lit_string(label), op.withsource))
        for out, t in order:
            if out in present:
                projections.append(alias(col(present[out]), out))
            elif t in TEXTUAL:
                projections.append(alias(lit_string(""), out))
            else:
                projections.append(alias(exp.Cast(this=exp.null(), to=sql_type(t)), out))
        selects.append(c.select(Relation(r.sql, r.columns), projections))
    query: exp.Query = selects[0]
    for s in selects[1:]:
        query = exp.Union(this=query, expression=s, distinct=False)
    columns = ([(op.withsource, "string")] if op.withsource else []) + order
    wrapped = exp.Select(expressions=[col(n) for n, _ in columns]).from_(
        exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier(c.fresh())))
    )
    return Relation(wrapped, tuple(columns))


@register(ast.Union)
def compile_union(c: Compiler, op: ast.Union, rel: Relation, scope: Scope) -> Relation:
    return union_relations(c, op, Relation(rel.sql, rel.columns), scope)


def search_predicate(op: ast.Search) -> ast.Expr:
    """A bare string term in a search predicate means ``* has "term"``, under and/or/not too."""
    return _search_terms(op.predicate)


def _search_terms(pred: ast.Expr) -> ast.Expr:
    if isinstance(pred, ast.Literal) and pred.type == "string":
        return ast.BinaryOp(op="has", left=ast.Star(span=pred.span), right=pred, span=pred.span)
    if isinstance(pred, ast.BinaryOp) and pred.op in ("and", "or"):
        return ast.BinaryOp(
            op=pred.op,
            left=_search_terms(pred.left),
            right=_search_terms(pred.right),
            span=pred.span,
        )
    if isinstance(pred, ast.Call) and pred.name == "not" and len(pred.args) == 1:
        arg = pred.args[0]
        if isinstance(arg, ast.Expr):
            return ast.Call(
                name="not", args=(_search_terms(arg),), span=pred.span, name_span=pred.name_span
            )
    return pred


@register(ast.Search)
def compile_search(c: Compiler, op: ast.Search, rel: Relation, scope: Scope) -> Relation:
    """https://learn.microsoft.com/kusto/query/search-operator"""
    if op.tables:
        raise c.unsupported("'search in (...)' after a pipe", op.span)
    return compile_where(c, ast.Where(predicate=search_predicate(op), span=op.span), rel, scope)


# --- mv-apply ------------------------------------------------------------------------------------


@register(ast.MvApply)
def compile_mv_apply(c: Compiler, op: ast.MvApply, rel: Relation, scope: Scope) -> Relation:
    """Run a subquery on each row's expanded arrays; add back the row's other columns.

    Each input row gets a hidden number; the subquery's operators run partitioned by it (a
    ``summarize`` groups by it too, ``top``/``take`` count within it), and the result is joined
    back to the row. https://learn.microsoft.com/kusto/query/mv-apply-operator
    """
    if op.limit is not None:
        raise c.unsupported("mv-apply ... limit", op.limit.span)
    rowid = c.fresh("__tw_row")
    numbered = Relation(
        c.select(rel, [exp.Star(), alias(exp.Window(this=exp.RowNumber()), rowid)]),
        (*rel.columns, (rowid, "long")),
    )
    expand = ast.MvExpand(
        items=op.items, bagexpansion=op.bagexpansion, with_itemindex=op.with_itemindex, span=op.span
    )
    expanded = compile_mv_expand(c, expand, numbered, scope)
    namer = ColumnNamer(rel.names())
    item_names = [i.name or inferred_name(i.expr) or namer.next() for i in op.items]
    # the subquery sees the expanded values and the row's other columns (queries use both)
    sub_columns = tuple((n, t) for n, t in expanded.columns if n != rowid)
    visible: list[exp.Expr] = [col(n) for n, _ in sub_columns]
    sub = Relation(c.select(expanded, [*visible, col(rowid)]), sub_columns, rowid)
    for sub_op in op.subquery.ops:
        sub = _partitioned(c, sub_op, sub, scope, rowid)
    kept = [(n, t) for n, t in rel.columns if n not in item_names]
    added = [(n, t) for n, t in sub.columns if n not in {k for k, _ in kept}]
    la, ra = c.fresh("_l"), c.fresh("_r")
    projections: list[exp.Expr] = [alias(exp.column(n, table=la, quoted=True), n) for n, _ in kept]
    projections += [alias(exp.column(n, table=ra, quoted=True), n) for n, _ in added]
    on = exp.EQ(
        this=exp.column(rowid, table=la, quoted=True),
        expression=exp.column(rowid, table=ra, quoted=True),
    )
    select = (
        exp.Select(expressions=projections)
        .from_(exp.Subquery(this=numbered.sql, alias=exp.TableAlias(this=exp.to_identifier(la))))
        .join(exp.Subquery(this=sub.sql, alias=exp.TableAlias(this=exp.to_identifier(ra))), on=on)
    )
    return Relation(select, tuple(kept + added))


_ROW_WISE = (
    ast.Where,
    ast.Extend,
    ast.Project,
    ast.ProjectAway,
    ast.ProjectKeep,
    ast.ProjectRename,
    ast.ProjectReorder,
    ast.Parse,
    ast.MvExpand,
)


def _partitioned(c: Compiler, op: ast.PipeOp, sub: Relation, scope: Scope, rowid: str) -> Relation:
    """One subquery operator of mv-apply, run separately for every input row."""
    if isinstance(op, _ROW_WISE):
        out, _ = c.compile_op(op, sub, scope)  # row-wise operators carry the hidden row number
        return out
    if isinstance(op, ast.Sort):
        return sub  # order within a row's subtable only matters to top, which sorts itself
    visible = Relation(sub.sql, (*sub.columns, (rowid, "long")))
    if isinstance(op, ast.Summarize | ast.Distinct | ast.Count):
        key = ast.Assignment(name=rowid, expr=ast.Name(name=rowid, span=op.span), span=op.span)
        grouped: ast.PipeOp
        if isinstance(op, ast.Summarize):
            grouped = ast.Summarize(aggregates=op.aggregates, by=(*op.by, key), span=op.span)
        elif isinstance(op, ast.Count):
            counter = ast.Call(name="count", span=op.span)
            grouped = ast.Summarize(
                aggregates=(ast.Assignment(name=op.name, expr=counter, span=op.span),),
                by=(key,),
                span=op.span,
            )
        else:
            grouped = ast.Distinct(items=(*op.items, key), star=op.star, span=op.span)
        out, _ = c.compile_op(grouped, visible, scope)
        return Relation(out.sql, tuple((n, t) for n, t in out.columns if n != rowid), rowid)
    if isinstance(op, ast.Top | ast.Take):
        count = row_count(c, op.count, scope)
        order = sort_keys(c, (op.key,), visible, scope) if isinstance(op, ast.Top) else None
        window = exp.Window(
            this=exp.RowNumber(),
            partition_by=[col(rowid)],
            order=exp.Order(expressions=order) if order else None,
        )
        rank = c.fresh("__tw_rank")
        ranked = Relation(c.select(visible, [exp.Star(), alias(window, rank)]), visible.columns)
        select = c.select(ranked, [col(n) for n in visible.names()]).where(
            exp.LTE(this=col(rank), expression=count)
        )
        return Relation(select, sub.columns, rowid)
    raise c.unsupported(
        f"the '{KQL_NAMES.get(type(op), type(op).__name__.lower())}' operator inside mv-apply",
        op.span,
    )
