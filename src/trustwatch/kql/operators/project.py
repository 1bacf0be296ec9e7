"""Operators that filter and shape columns: where, extend, project and its variants."""

from __future__ import annotations

import fnmatch

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.compiler import Compiler, alias
from trustwatch.kql.expressions import ExprCompiler
from trustwatch.kql.operators.common import (
    ColumnNamer,
    _assignment_names,
    col,
    register,
)
from trustwatch.kql.scope import Relation, Scope
from trustwatch.kql.semantics import Typed
from trustwatch.schema.model import suggest


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
