"""union and search: several tables by column name, and term search across columns."""

from __future__ import annotations

import fnmatch

from sqlglot import exp

from trustwatch import limits
from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.deep import limit_error
from trustwatch.kql.operators.common import (
    col,
    register,
)
from trustwatch.kql.operators.project import compile_where
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import TEXTUAL, lit_string, sql_type


def union_relations(c: Compiler, op: ast.Union, first: Relation | None, scope: Scope) -> Relation:
    """``union``: columns by name; outer keeps all (missing ones empty), inner only common ones.

    https://learn.microsoft.com/kusto/query/union-operator
    """
    inputs: list[tuple[str, Relation]] = []
    # Tables with no data loaded add their columns but no rows, so they need no SELECT of their
    # own; `union *` over ~80 empty schemas stays one small query.
    empty: list[Relation] = []
    # A table named again is read once: `union T, T, T` is T's rows three times (a join with
    # three rows), not three copies of its SELECT - generated queries name thousands.
    copies: dict[str, int] = {}
    named: dict[int, str] = {}  # input index -> the table it reads
    if first is not None:
        inputs.append(("", first))
    limit = limits.current().union_tables
    count = len(inputs)
    for source in op.tables:
        pattern = isinstance(source, ast.TableRef) and "*" in source.name
        if isinstance(source, ast.TableRef) and pattern:
            matched = sorted(n for n in c.catalog if fnmatch.fnmatchcase(n, source.name))
            if not matched and not op.isfuzzy:
                raise KqlSemanticError(
                    f"no table matches '{source.name}'", span=source.span, code="KQL201"
                )
        else:
            matched = [source.name] if isinstance(source, ast.TableRef) else []
        count += max(1, len(matched))
        if count > limit:
            raise limit_error("union_tables", limit, "the number of tables read here", source.span)
        for name in matched:
            if name in copies:
                copies[name] += 1
                continue
            copies[name] = 1
            rel = c.table_ref(name, source.span, scope)
            known = c.catalog.get(name)
            if pattern and known is not None and known.sql_name is None:
                empty.append(rel)
            else:
                named[len(inputs)] = name
                inputs.append((name, rel))
        if not matched:
            label = ""
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
        if not order and not op.withsource:
            raise c.semantic_error(
                "union kind=inner: the tables have no column in common",
                op.span,
                hint="use kind=outer (the default), or project a common column first",
                code="KQL205",
            )
    selects = []
    for i, (label, r) in enumerate(inputs):
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
        select = c.select(Relation(r.sql, r.columns), projections)
        times = copies[named[i]] if i in named else 1
        if times > 1:
            select = _repeated(c, select, times)
        selects.append(select)
    query: exp.Query = selects[0]
    for s in selects[1:]:
        query = exp.Union(this=query, expression=s, distinct=False)
    columns = ([(op.withsource, "string")] if op.withsource else []) + order
    wrapped = exp.Select(expressions=[col(n) for n, _ in columns]).from_(
        exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier(c.fresh())))
    )
    return Relation(wrapped, tuple(columns))


def _repeated(c: Compiler, select: exp.Select, times: int) -> exp.Select:
    """Each row of ``select`` ``times`` times: a cross join with that many one-column rows."""
    rows = exp.Values(
        expressions=[exp.Tuple(expressions=[exp.Literal.number(1)]) for _ in range(times)],
        alias=exp.TableAlias(
            this=exp.to_identifier(c.fresh()), columns=[exp.to_identifier("__tw_copy")]
        ),
    )
    return select.join(rows, join_type="cross", copy=False)


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
