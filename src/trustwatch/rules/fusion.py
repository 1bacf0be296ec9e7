"""Filter rules over one table evaluated together: one scan answers all of them.

Almost every converted Sigma rule (pySigma's Kusto backend) is a *filter*: one table reference
followed by ``where`` stages, nothing else (:func:`filter_table`). Such a query is row-local
(``rules.locality``), and its result in a run is the table's rows in that run's window for which
its predicate - the ``and`` of its ``where`` predicates - is true. So the rules over one table
can share one evaluation over the whole span:

    T | extend __tw_r0 = (P0), __tw_r1 = (P1), ...

compiled as usual, then rewritten (:func:`filter_flags`) to keep only the rows some ``P`` holds
for, the ``or`` of the predicates evaluated as a filter (DuckDB evaluates a filter's ``and`` and
``or`` on the rows still undecided, a projection's on every row), each column's case folds computed
once per row for every predicate that folds it (``semantics.unfold``, and the ASCII-only fold
of non-ASCII needles), below an optimisation barrier. A rule's rows
are then those whose flag is true (a NULL predicate, as in ``where``, keeps no row), in the
order of the scan, the flag columns left out: the rows its own evaluation returns.

A filter may also compute columns for its predicates and drop them again -
``T | extend C = E | where P | project-away C``, as converted Sigma registry rules compute
Sysmon's ``TargetObject`` (``sigma.pipeline``): its rows are the table's rows for which ``P``
holds with each ``C`` replaced by its ``E``. When the rules of one fused query define each such
column alike (:func:`shared_columns`), the flagged query computes it once for them all
(``T | extend C = E | extend __tw_r0 = (P0), ... | project-away C``), and its case fold is
shared like a column's; otherwise each predicate takes ``E`` in ``C``'s place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import TypeVar, cast

from sqlglot import exp

from trustwatch.kql import ast, deep
from trustwatch.kql.semantics import fold_column_sql, fold_sql, unfold

FLAG = "__tw_r"  # rule i's predicate: column __tw_r<i>
FOLD = "__tw_rfold"  # a column's case fold, shared by the predicates: __tw_rfold<j>
_FLAGGED = "__tw_flagged"  # the SELECT computing the flags, filtered on them
_RESERVED = "__tw_"  # names trustwatch's rewrites add; a query naming one is not fused
_E = TypeVar("_E", bound=ast.Node)


def filter_table(query: ast.Query) -> str | None:
    """The table of a filter query ``T | where P1 [| where P2 ...]``; None for anything else.

    No ``let``, one tabular statement, a plain table reference as its source, only ``where``
    stages, and no name that trustwatch's hidden columns use. The ``where`` stages may follow
    ``extend`` stages of named scalar columns, then only when a last ``project-away`` drops
    exactly those columns and no predicate holds a subquery or a lambda (:func:`predicate`
    puts each column's expression in its place).
    """
    if query.lets or len(query.body) != 1:
        return None
    body = query.body[0]
    if not isinstance(body, ast.Pipeline) or not isinstance(body.source, ast.TableRef):
        return None
    if _parts(body.ops) is None:
        return None
    for node in query.walk():
        if isinstance(node, ast.Name) and node.name.lower().startswith(_RESERVED):
            return None
    return body.source.name


def _parts(
    ops: Sequence[ast.PipeOp],
) -> tuple[list[ast.Assignment], list[ast.Where]] | None:
    """A filter's computed columns (in order) and its ``where`` stages; None: not a filter."""
    columns: list[ast.Assignment] = []
    rest = list(ops)
    while rest and isinstance(rest[0], ast.Extend):
        extend = rest.pop(0)
        assert isinstance(extend, ast.Extend)
        columns += extend.items
    if columns:
        last = rest.pop() if rest else None
        names = [a.name or "" for a in columns]
        if not isinstance(last, ast.ProjectAway) or any(a.names or not a.name for a in columns):
            return None
        if sorted(p.pattern for p in last.patterns) != sorted(set(names)) or "*" in "".join(
            p.pattern for p in last.patterns
        ):
            return None
    wheres = [op for op in rest if isinstance(op, ast.Where)]
    if not wheres or len(wheres) != len(rest):
        return None
    if columns:
        for node in (n for op in [*columns, *wheres] for n in op.walk()):
            if isinstance(node, ast.TabularExpr | ast.Lambda):
                return None
    return columns, wheres


def predicate(query: ast.Query, *, inline: bool = True) -> ast.Expr:
    """The ``and`` of a filter query's ``where`` predicates (see :func:`filter_table`), each
    computed column replaced by its expression (``inline=False``: left as the column, for a
    flagged query that computes it: :func:`shared_columns`)."""
    body = query.body[0]
    assert isinstance(body, ast.Pipeline)
    parts = _parts(body.ops)
    assert parts is not None
    columns, wheres = parts
    combined = ast.logic_chain("and", [op.predicate for op in wheres])
    if not columns or not inline:
        return combined
    defined: dict[str, ast.Expr] = {}
    for column in columns:
        assert column.name is not None
        defined[column.name] = deep.call(_substitute, column.expr, dict(defined))
    substituted: ast.Expr = deep.call(_substitute, combined, defined)
    return substituted


def _substitute(node: _E, defined: dict[str, ast.Expr]) -> _E:
    """``node`` with each :class:`ast.Name` that ``defined`` names replaced by its expression."""
    if isinstance(node, ast.Name) and node.name in defined:
        return cast(_E, defined[node.name])
    changes: dict[str, object] = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, ast.Node):
            new: object = _substitute(value, defined)
        elif isinstance(value, tuple) and any(isinstance(v, ast.Node) for v in value):
            new = tuple(_substitute(v, defined) if isinstance(v, ast.Node) else v for v in value)
        else:
            continue
        if new is not value:
            changes[f.name] = new
    return dataclasses.replace(node, **changes) if changes else node  # type: ignore[arg-type]


def shared_columns(
    queries: Sequence[ast.Query], taken: Collection[str]
) -> list[ast.Assignment] | None:
    """The columns the filters compute, when one ``extend`` before all the flags can compute
    them for every rule: each name defined alike wherever it is defined, from the table's
    columns only, and none a column any of the rules returns (``taken``). None otherwise: the
    predicates then take each column's expression in its place (:func:`predicate`)."""
    defined: dict[str, ast.Assignment] = {}
    for query in queries:
        body = query.body[0]
        assert isinstance(body, ast.Pipeline)
        parts = _parts(body.ops)
        assert parts is not None
        for column in parts[0]:
            assert column.name is not None
            if column.name in taken:
                return None
            if defined.setdefault(column.name, column).expr != column.expr:
                return None
    names = set(defined)
    for column in defined.values():
        if any(isinstance(n, ast.Name) and n.name in names for n in column.expr.walk()):
            return None
    return list(defined.values())


def flags(count: int) -> list[str]:
    """The flag column of each of ``count`` fused rules."""
    return [f"{FLAG}{i}" for i in range(count)]


def flagged_query(
    table: str, predicates: Sequence[ast.Expr], columns: Sequence[ast.Assignment] = ()
) -> ast.Query:
    """``table | extend __tw_r0 = P0, ...``: every row, with each rule's predicate as a flag;
    with ``columns`` (:func:`shared_columns`), ``table | extend C = E, ... | extend __tw_r0 =
    P0, ... | project-away C, ...``: the columns computed once for every predicate."""
    items = tuple(
        ast.Assignment(name=name, expr=pred)
        for name, pred in zip(flags(len(predicates)), predicates, strict=True)
    )
    ops: list[ast.PipeOp] = [ast.Extend(items=items)]
    if columns:
        away = tuple(ast.ColumnPattern(pattern=c.name or "") for c in columns)
        ops = [ast.Extend(items=tuple(columns)), *ops, ast.ProjectAway(patterns=away)]
    pipeline = ast.Pipeline(source=ast.TableRef(name=table), ops=tuple(ops))
    return ast.Query(lets=(), body=(pipeline,))


class NotFusable(Exception):
    """The compiled flagged query does not have the shape :func:`filter_flags` rewrites."""


def filter_flags(query: exp.Query, names: Sequence[str]) -> exp.Query:
    """The compiled :func:`flagged_query` keeping only rows that some flag is true for.

    The SELECT that computes the flags is wrapped in ``SELECT * FROM (...) WHERE flag0 OR
    flag1 ...``, which DuckDB pushes below the projection (each flag's expression in its
    place), so the flags are computed only on matching rows; each case fold of a column that
    the flags share is computed once per row, below the filter. Rewrites ``query`` in place
    and returns it (or the new root, when the flags' SELECT was the root).

    Raises:
        NotFusable: no single SELECT computes the flags from one source.
    """
    wanted = set(names)
    selects = [
        s
        for s in query.find_all(exp.Select)
        if any(isinstance(e, exp.Alias) and e.alias in wanted for e in s.expressions)
    ]
    if len(selects) != 1:
        raise NotFusable(f"{len(selects)} SELECTs compute the flags")
    (select,) = selects
    source = select.args.get("from_")
    if not isinstance(source, exp.From) or not isinstance(source.this, exp.Subquery):
        raise NotFusable("the flags are not computed over a subquery")
    if select.args.get("where") is not None or select.args.get("joins"):
        raise NotFusable("the flags' SELECT already filters or joins")
    shared: dict[str, tuple[str, exp.Expr]] = {}  # key -> (column name, what it computes)

    def column_of(kind: str, column: exp.Column, value: exp.Expr) -> exp.Column:
        name, _ = shared.setdefault(f"{kind} {column.sql()}", (f"{FOLD}{len(shared)}", value))
        return exp.column(name, quoted=True)

    def share(node: exp.Expr) -> exp.Expr:
        if node.find_ancestor(exp.Query) is not None:
            return node  # a subquery's columns are not the flags' source's
        found = unfold(node) if isinstance(node, exp.Paren) else None
        if found is None:
            return node
        column, build = found
        fold = column_of("fold", column, fold_column_sql(column))
        lowered = exp.Anonymous(this="lower", expressions=[column.copy()])
        rebuilt = build.copy().transform(lambda n: fold.copy() if n == lowered else n)
        not_null = exp.or_(
            exp.Not(this=exp.Is(this=column.copy(), expression=exp.null())), exp.null()
        )
        return exp.paren(exp.and_(exp.paren(rebuilt), exp.paren(not_null)))

    def share_ascii(node: exp.Expr) -> exp.Expr:
        # the ASCII-only fold that non-ASCII needles use runs on every row, once per needle
        # (SigmaHQ's emoji rules: 1,000 needles, a minute over 50k rows): once per row here
        if not isinstance(node, exp.Anonymous) or node.find_ancestor(exp.Query) is not None:
            return node
        column = node.expressions[0] if node.expressions else None
        if not isinstance(column, exp.Column) or node != fold_sql(column):
            return node
        return column_of("ascii", column, fold_sql(column))

    for i, item in enumerate(select.expressions):
        if isinstance(item, exp.Alias) and item.alias in wanted:
            rewritten = item.transform(share).transform(share_ascii)
            assert isinstance(rewritten, exp.Alias)
            select.expressions[i] = rewritten
    if shared:
        inner = exp.select(
            exp.Star(),
            *(exp.alias_(value, name, quoted=True) for name, value in shared.values()),
        ).from_(source.this.copy())
        # OFFSET 0 keeps DuckDB from pushing the filter below this projection, which would
        # put each shared expression back into every predicate (measured: 100 times slower)
        inner = inner.offset(0)
        select.set("from_", exp.From(this=inner.subquery(source.this.alias or "tw_folds")))
    # the filter names the flags over the SELECT computing them: DuckDB pushes it below that
    # projection, each flag's expression in its place (so the flags are still computed only
    # on rows that match), and the SQL holds each predicate once - repeating them in a WHERE
    # doubled the text DuckDB parses, binds and plans (measured: planning time halved)
    outer = exp.select(exp.Star())
    select.replace(outer)
    alias = exp.TableAlias(this=exp.to_identifier(_FLAGGED))
    outer.set("from_", exp.From(this=exp.Subquery(this=select, alias=alias)))
    flagged: list[exp.Expr] = [exp.column(name, quoted=True) for name in names]
    outer.set("where", exp.Where(this=_any(flagged)))
    return outer if select is query else query


def _any(items: list[exp.Expr]) -> exp.Expr:
    """``OR`` of the items as a balanced tree (hundreds of rules nest a few levels deep)."""
    if len(items) == 1:
        return items[0]
    mid = len(items) // 2
    return exp.Or(this=_any(items[:mid]), expression=_any(items[mid:]))
