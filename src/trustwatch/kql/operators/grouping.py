"""Operators that group or describe: distinct, count, summarize, getschema, render, invoke."""

from __future__ import annotations

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.functions import DEFENDER_CLOUD_FUNCTIONS
from trustwatch.kql.operators.common import (
    col,
    register,
)
from trustwatch.kql.operators.project import _compute_items
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import lit_string, sql_type


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
