"""join and lookup, with Kusto's kinds, key rules and column-name suffixes."""

from __future__ import annotations

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.operators.common import (
    col,
    free_name,
    register,
)
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import TEXTUAL, not_null_string
from trustwatch.schema.model import suggest


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


def _key_condition(conds: tuple[ast.JoinCondition, ...], la: str, ra: str) -> exp.Expr:
    """``$left.A == $right.B and ...`` over the two aliased sides."""
    return exp.and_(
        *[
            exp.EQ(
                this=exp.column(cond.left, table=la, quoted=True),
                expression=exp.column(cond.right, table=ra, quoted=True),
            )
            for cond in conds
        ]
    )


def _dedupe_left(c: Compiler, rel: Relation, keys: list[str]) -> Relation:
    """innerunique: keep one (arbitrary) left row per key before joining.

    https://learn.microsoft.com/kusto/query/join-innerunique
    """
    window = exp.Window(this=exp.RowNumber(), partition_by=[col(k) for k in keys])
    select = c.select(rel, [col(n) for n in rel.names()])
    select = select.qualify(exp.EQ(this=window, expression=exp.Literal.number(1)), copy=False)
    return Relation(select, rel.columns)


@register(ast.Join)
def compile_join(c: Compiler, op: ast.Join, rel: Relation, scope: Scope) -> Relation:
    right = c.compile_tabular(op.right, scope)
    _check_keys(rel, op.on, "left")
    _check_keys(right, op.on, "right")
    kind = {"anti": "leftanti", "leftantisemi": "leftanti", "rightantisemi": "rightanti"}.get(
        op.kind, op.kind
    )
    left = Relation(rel.sql, rel.columns)
    if kind == "innerunique":
        left = _dedupe_left(c, left, [cond.left for cond in op.on])
    la, ra = c.fresh("_l"), c.fresh("_r")
    on = _key_condition(op.on, la, ra)
    lsrc = exp.Subquery(this=left.sql, alias=exp.TableAlias(this=exp.to_identifier(la)))
    rsrc = exp.Subquery(this=right.sql, alias=exp.TableAlias(this=exp.to_identifier(ra)))
    if kind in ("leftsemi", "leftanti", "rightsemi", "rightanti"):
        keep_left = kind.startswith("left")
        outer, oa, osrc = (left, lsrc, rsrc) if keep_left else (right, rsrc, lsrc)
        keep_alias = la if keep_left else ra
        join_type = "SEMI" if kind.endswith("semi") else "ANTI"
        select = exp.Select(
            expressions=[exp.column(n, table=keep_alias, quoted=True) for n in outer.names()]
        ).from_(oa, copy=False)
        select = select.join(osrc, on=on, join_type=join_type, copy=False)
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
        out_name = free_name(n, names)  # a clashing right column gets 1: Host1
        names.add(out_name)
        ref = exp.column(n, table=ra, quoted=True)
        if side in ("LEFT", "FULL") and t in TEXTUAL:
            ref = not_null_string(ref)
        projections.append(alias(ref, out_name))
        columns.append((out_name, t))
    select = (
        exp.Select(expressions=projections)
        .from_(lsrc, copy=False)
        .join(rsrc, on=on, join_type=side or "INNER", copy=False)
    )
    return Relation(select, tuple(columns))


@register(ast.Lookup)
def compile_lookup(c: Compiler, op: ast.Lookup, rel: Relation, scope: Scope) -> Relation:
    """Like a leftouter (or inner) join, but the key columns appear once.

    https://learn.microsoft.com/kusto/query/lookup-operator
    """
    right = c.compile_tabular(op.right, scope)
    right_keys = [cond.right for cond in op.on]
    _check_keys(rel, op.on, "left")
    _check_keys(right, op.on, "right")
    la, ra = c.fresh("_l"), c.fresh("_r")
    on = _key_condition(op.on, la, ra)
    projections: list[exp.Expr] = [
        alias(exp.column(n, table=la, quoted=True), n) for n in rel.names()
    ]
    columns = list(rel.columns)
    names = set(rel.names())
    for n, t in right.columns:
        if n in right_keys:
            continue
        out_name = free_name(n, names)
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
        .from_(lsrc, copy=False)
        .join(rsrc, on=on, join_type="LEFT" if op.kind == "leftouter" else "INNER", copy=False)
    )
    return Relation(select, tuple(columns))
