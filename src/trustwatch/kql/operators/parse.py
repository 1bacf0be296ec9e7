"""The parse operator: a pattern of literals and typed columns turned into a regular expression."""

from __future__ import annotations

from sqlglot import exp

from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.functions import convert
from trustwatch.kql.operators.common import (
    col,
    register,
)
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import TEXTUAL, Typed, func, lit_string, sql_type


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
    # parse-where keeps only the rows the pattern matches whose typed columns all convert
    # https://learn.microsoft.com/kusto/query/parse-where-operator
    keep: list[exp.Expr] = [match.copy()]
    for i, pc in enumerate(columns, start=1):
        text = func("regexp_extract", source.sql.copy(), lit_string(pattern), exp.Literal.number(i))
        if pc.type in TEXTUAL:
            value = Typed(exp.If(this=match.copy(), true=text, false=lit_string("")), "string")
        else:
            converted = convert(
                Typed(exp.Nullif(this=text, expression=lit_string("")), "string"), pc.type
            )
            keep.append(exp.Not(this=exp.Is(this=converted.sql.copy(), expression=exp.null())))
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
    select = c.select(rel, projections)
    if op.filter_rows:
        select = select.where(exp.and_(*keep), copy=False)
    return Relation(select, tuple(columns_out), rel.order)
