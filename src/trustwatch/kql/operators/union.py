"""union and search: several tables by column name, and term search across columns."""

from __future__ import annotations

import fnmatch

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
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
