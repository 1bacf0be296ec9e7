"""Which rule queries one evaluation can serve for many scheduled runs, and how to rewrite them.

A scheduled rule sees, in each run, the rows of a time window. Two kinds of query can be
evaluated once for every run of a replay, read from the syntax tree, conservatively:

* **row-local** (:attr:`Locality.ROW`): every result row comes from one input row through
  ``where``, ``extend``, ``project``, ``parse``, ``mv-expand`` and friends, over windowed tables
  or a ``union`` of them. A result row exists in a run exactly when its source row is in that
  run's window, so one evaluation over the whole span, with each row's source ``TimeGenerated``
  carried along in the hidden column :data:`HIDDEN_TIME`, tells every run's rows.
* **partitionable** (:attr:`Locality.BATCH`): the query also groups or matches rows
  (``summarize ... by``, ``join``, ``lookup``, ``distinct``) but only among rows of the same
  run. Each input row is read once per run whose window holds it, tagged with that run in the
  hidden column :data:`HIDDEN_RUN`, and every grouping and join key gains that column: one
  evaluation returns every run's rows, each tagged with its run.

Anything else - the clock (``now()``, ``ago()``), ``top``/``take``/``count``, ``summarize`` with
no ``by`` (it yields a row even for an empty run), window functions, ``toscalar`` and tabular
``in`` over a windowed table, sources with no time (``datatable``, watchlists) as the query's
rows, ``pack_all()`` (it would see the hidden column), operators not listed here - is
:attr:`Locality.PER_RUN`: evaluated run by run.

A ``let`` bound to a **constant table** - built from ``datatable`` only, reading neither the
clock nor randomness - is the same in every run: it is kept as it is, and a tabular ``in`` /
``!in`` over it is row-local (the SIP rule's lists of genuine providers).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from trustwatch.kql import ast
from trustwatch.kql.aggregates import AGGREGATES
from trustwatch.kql.functions.registry import FUNCTIONS
from trustwatch.kql.parser import TabularAsExpr

HIDDEN_TIME = "__tw_time"  # row-local: the source row's TimeGenerated, microseconds since 1970
HIDDEN_RUN = "__tw_run"  # partitioned: the scheduled run the row was read for


class Locality(StrEnum):
    """How a rule's replay can be evaluated."""

    ROW = "row"
    BATCH = "batch"
    PER_RUN = "per-run"


# functions that read other rows, the clock, randomness or every column of the row: see
# https://learn.microsoft.com/kusto/query/window-functions and .../pack-all-function
NOT_LOCAL_FUNCTIONS = frozenset(
    {
        "now",
        "ago",
        "row_number",
        "row_cumsum",
        "row_rank_dense",
        "row_rank_min",
        "row_window_session",
        "prev",
        "next",
        "toscalar",
        "rand",
        "new_guid",
        "pack_all",
        "bag_pack_all",
        "materialize",
        "table",
        "view",
        "_GetWatchlist",
    }
)
# join kinds whose output holds both sides' columns (the right key column comes back as Name1)
_BOTH_SIDES = frozenset({"inner", "innerunique", "leftouter"})
_ONE_SIDE = frozenset(
    {"leftsemi", "leftanti", "anti", "leftantisemi", "rightsemi", "rightanti", "rightantisemi"}
)


@dataclass(frozen=True, slots=True)
class Lifted:
    """A query's locality and, unless per-run, its rewrite carrying the hidden column."""

    locality: Locality
    query: ast.Query | None = None
    hidden: str = ""
    reason: str = ""  # per-run: what the query does that a batched evaluation cannot


class _NotLifted(Exception):
    """The query is not known to be row-local or partitionable (internal)."""


def lift(query: ast.Query, timed: Collection[str]) -> Lifted:
    """The cheapest evaluation of ``query``'s replay, and the rewritten query it runs.

    Args:
        query: the rule's parsed query.
        timed: catalog tables with a ``TimeGenerated`` column (the tables a run windows).

    Returns:
        Row-local if it is, else partitionable if it is, else per-run (no rewrite).
    """
    reason = ""
    for locality, hidden in ((Locality.ROW, HIDDEN_TIME), (Locality.BATCH, HIDDEN_RUN)):
        rewriter = _Rewriter(timed, hidden, partition=locality is Locality.BATCH)
        try:
            return Lifted(locality, rewriter.query(query), hidden)
        except _NotLifted as exc:
            reason = str(exc)
    return Lifted(Locality.PER_RUN, reason=reason)


class _Rewriter:
    """Checks a query operator by operator and threads the hidden column through it."""

    def __init__(self, timed: Collection[str], hidden: str, *, partition: bool) -> None:
        self.timed = frozenset(timed)
        self.hidden = hidden
        self.partition = partition
        self.tabular: set[str] = set()  # let names bound to tabular values
        self.constant: set[str] = set()  # let names bound to constant tables (datatable only)
        self.functions: set[str] = set()  # let names bound to scalar functions

    def query(self, query: ast.Query) -> ast.Query:
        if len(query.body) != 1:
            raise _NotLifted("several tabular statements")
        lets = tuple(self.let(let) for let in query.lets)
        return dataclasses.replace(query, lets=lets, body=(self.tabular_expr(query.body[0]),))

    # --- let ----------------------------------------------------------------------------------

    def let(self, let: ast.Let) -> ast.Let:
        value = let.value
        self.tabular.discard(let.name)
        self.constant.discard(let.name)
        self.functions.discard(let.name)
        if self.is_tabular(value) and self.is_constant(value):
            self.constant.add(let.name)  # the same in every run: kept as it is
            return let
        if isinstance(value, ast.Lambda):
            self.scalar_function(value)
            self.functions.add(let.name)
            return let
        if self.is_tabular(value):
            rewritten = self.tabular_expr(value)
            self.tabular.add(let.name)
            return dataclasses.replace(let, value=rewritten)
        self.expr(value)
        return let

    def is_tabular(self, node: ast.Node) -> bool:
        if isinstance(node, ast.TabularExpr | TabularAsExpr):
            return True
        if isinstance(node, ast.Name):
            return (
                node.name in self.tabular or node.name in self.timed or node.name in self.constant
            )
        return isinstance(node, ast.Call) and node.name == "materialize"

    def is_constant(self, node: ast.Node) -> bool:
        """A table that every run sees whole and alike: its only sources are ``datatable`` (or
        lets bound to such tables), and nothing in it reads the clock, randomness or a table
        by name (a bare name that is not a constant let may be a table: not constant)."""
        kinds = [self._constant_part(sub) for sub in node.walk()]
        return False not in kinds and True in kinds

    def _constant_part(self, node: ast.Node) -> bool | None:
        """True: a constant source; False: makes a table not constant; None: neither."""
        if isinstance(node, ast.Datatable):
            return True
        if isinstance(node, ast.TableRef | ast.Name) and node.name in self.constant:
            return True
        if isinstance(node, ast.TableRef | ast.FunctionSource | ast.UnionSource):
            return False
        if isinstance(node, ast.Call) and node.name in NOT_LOCAL_FUNCTIONS:
            return False
        if isinstance(node, ast.Name) and (node.name in self.tabular or node.name in self.timed):
            return False
        return None

    def scalar_function(self, fn: ast.Lambda) -> None:
        if any(p.tabular for p in fn.params) or isinstance(fn.body, ast.TabularExpr):
            raise _NotLifted("a function with a tabular parameter or body")
        for param in fn.params:
            if param.default is not None:
                self.expr(param.default)
        for inner in fn.lets:
            if isinstance(inner.value, ast.Lambda) or self.is_tabular(inner.value):
                raise _NotLifted("a function with a tabular let")
            self.expr(inner.value)
        self.expr(fn.body)

    # --- tabular expressions ------------------------------------------------------------------

    def tabular_expr(self, node: ast.Node) -> ast.TabularExpr:
        if isinstance(node, ast.Pipeline):
            source = self.tabular_expr(node.source)
            ops = tuple(out for op in node.ops for out in self.op(op))
            return dataclasses.replace(node, source=source, ops=ops)
        if isinstance(node, ast.TableRef | ast.Name):
            # a let of the same name hides the table; a table without time has no window
            if node.name not in self.tabular and node.name not in self.timed:
                raise _NotLifted(f"{node.name}: not a table with TimeGenerated")
            return ast.TableRef(name=node.name, span=node.span)
        if isinstance(node, ast.UnionSource):
            return dataclasses.replace(node, union=self.union(node.union))
        if isinstance(node, TabularAsExpr):
            return self.tabular_expr(node.query)
        call = node.call if isinstance(node, ast.FunctionSource) else node
        if isinstance(call, ast.Call) and call.name == "materialize" and len(call.args) == 1:
            return self.tabular_expr(call.args[0])  # caching changes no row
        raise _NotLifted(f"a {type(node).__name__} source")

    def union(self, op: ast.Union) -> ast.Union:
        if op.withsource == self.hidden:
            raise _NotLifted("union withsource names the hidden column")
        return dataclasses.replace(op, tables=tuple(self.tabular_expr(t) for t in op.tables))

    # --- pipe operators -----------------------------------------------------------------------

    def op(self, op: ast.PipeOp) -> tuple[ast.PipeOp, ...]:
        handler = _ROW_OPS.get(type(op))
        if handler is None and self.partition:
            handler = _PARTITION_OPS.get(type(op))
        if handler is None:
            raise _NotLifted(f"the {type(op).__name__} operator")
        return handler(self, op)

    def where(self, op: ast.Where) -> tuple[ast.PipeOp, ...]:
        self.expr(op.predicate)
        return (op,)

    def extend(self, op: ast.Extend) -> tuple[ast.PipeOp, ...]:
        self.assignments(op.items)
        return (op,)

    def project(self, op: ast.Project) -> tuple[ast.PipeOp, ...]:
        self.assignments(op.items)
        return (dataclasses.replace(op, items=(*op.items, self.keep())),)

    def project_away(self, op: ast.ProjectAway) -> tuple[ast.PipeOp, ...]:
        if any(_matches(p.pattern, self.hidden) for p in op.patterns):
            raise _NotLifted("project-away of every column")
        return (op,)

    def project_keep(self, op: ast.ProjectKeep) -> tuple[ast.PipeOp, ...]:
        kept = (*op.patterns, ast.ColumnPattern(pattern=self.hidden))
        return (dataclasses.replace(op, patterns=kept),)

    def project_rename(self, op: ast.ProjectRename) -> tuple[ast.PipeOp, ...]:
        self.names(name for pair in op.pairs for name in pair)
        return (op,)

    def project_reorder(self, op: ast.ProjectReorder) -> tuple[ast.PipeOp, ...]:
        return (op,)

    def sort(self, op: ast.Sort) -> tuple[ast.PipeOp, ...]:
        for key in op.keys:
            self.expr(key.expr)
        return (op,)

    def parse(self, op: ast.Parse) -> tuple[ast.PipeOp, ...]:
        self.expr(op.source)
        self.names(p.name for p in op.parts if isinstance(p, ast.ParseColumn))
        return (op,)

    def mv_expand(self, op: ast.MvExpand) -> tuple[ast.PipeOp, ...]:
        if op.limit is not None:
            self.expr(op.limit)
        self.names([op.with_itemindex or ""])
        for item in op.items:
            self.names([item.name or ""])
            self.expr(item.expr)
        return (op,)

    def union_op(self, op: ast.Union) -> tuple[ast.PipeOp, ...]:
        return (self.union(op),)

    # partitioned only: grouping and matching gain the run as a key

    def summarize(self, op: ast.Summarize) -> tuple[ast.PipeOp, ...]:
        if not op.by:  # one row even for a run with no input: not a per-run partition
            raise _NotLifted("summarize with no by")
        self.assignments(op.aggregates)
        self.assignments(op.by)
        return (dataclasses.replace(op, by=(*op.by, self.keep())),)

    def distinct(self, op: ast.Distinct) -> tuple[ast.PipeOp, ...]:
        self.assignments(op.items)
        return (op if op.star else dataclasses.replace(op, items=(*op.items, self.keep())),)

    def join(self, op: ast.Join) -> tuple[ast.PipeOp, ...]:
        if op.kind not in _BOTH_SIDES | _ONE_SIDE:
            # right and full outer rows would take the right side's run
            raise _NotLifted(f"join kind={op.kind}")
        joined = dataclasses.replace(op, right=self.tabular_expr(op.right), on=self.on(op.on))
        if op.kind in _ONE_SIDE:
            return (joined,)
        duplicate = ast.ColumnPattern(pattern=self.hidden + "1")
        return joined, ast.ProjectAway(patterns=(duplicate,))

    def lookup(self, op: ast.Lookup) -> tuple[ast.PipeOp, ...]:
        return (dataclasses.replace(op, right=self.tabular_expr(op.right), on=self.on(op.on)),)

    def on(self, conditions: tuple[ast.JoinCondition, ...]) -> tuple[ast.JoinCondition, ...]:
        self.names(name for cond in conditions for name in (cond.left, cond.right))
        return (*conditions, ast.JoinCondition(left=self.hidden, right=self.hidden))

    # --- scalar parts -------------------------------------------------------------------------

    def keep(self) -> ast.Assignment:
        return ast.Assignment(name=self.hidden, expr=ast.Name(name=self.hidden))

    def names(self, names: Iterable[str]) -> None:
        """Refuse a query that names the hidden column itself (it never should)."""
        if any(name.lower() == self.hidden for name in names):
            raise _NotLifted("a column named like the hidden one")

    def assignments(self, items: tuple[ast.Assignment, ...]) -> None:
        for item in items:
            self.names([item.name or "", *item.names])
            self.expr(item.expr)

    def expr(self, node: ast.Node) -> None:
        """Refuse expressions that read other rows, the clock, or a tabular value."""
        for sub in node.walk():
            if isinstance(sub, ast.TabularExpr | TabularAsExpr | ast.Lambda):
                raise _NotLifted("a tabular value in an expression")
            if isinstance(sub, ast.InList) and any(self.names_table(i) for i in sub.items):
                raise _NotLifted("a table in an 'in' list")
            if isinstance(sub, ast.Name) and sub.name == self.hidden:
                raise _NotLifted("a column named like the hidden one")
            if isinstance(sub, ast.Call) and not self.known_local(sub.name):
                raise _NotLifted(f"the function {sub.name}()")

    def names_table(self, node: ast.Node) -> bool:
        """A bare name in an ``in`` list that may be a windowed table (a column of that name
        wins); a constant table is the same in every run, so ``in`` over it is row-local."""
        return isinstance(node, ast.Name) and (node.name in self.tabular or node.name in self.timed)

    def known_local(self, name: str) -> bool:
        if name in self.functions:
            return True
        return name not in NOT_LOCAL_FUNCTIONS and (name in FUNCTIONS or name in AGGREGATES)


def _matches(pattern: str, name: str) -> bool:
    """Does a project-away pattern (``*`` wildcards) name ``name``? Case is ignored: DuckDB does."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name, flags=re.IGNORECASE) is not None


_OpRewrite = Callable[[_Rewriter, Any], tuple[ast.PipeOp, ...]]
_ROW_OPS: dict[type[ast.PipeOp], _OpRewrite] = {
    ast.Where: _Rewriter.where,
    ast.Extend: _Rewriter.extend,
    ast.Project: _Rewriter.project,
    ast.ProjectAway: _Rewriter.project_away,
    ast.ProjectKeep: _Rewriter.project_keep,
    ast.ProjectRename: _Rewriter.project_rename,
    ast.ProjectReorder: _Rewriter.project_reorder,
    ast.Sort: _Rewriter.sort,
    ast.Parse: _Rewriter.parse,
    ast.MvExpand: _Rewriter.mv_expand,
    ast.Union: _Rewriter.union_op,
}
_PARTITION_OPS: dict[type[ast.PipeOp], _OpRewrite] = {
    ast.Summarize: _Rewriter.summarize,
    ast.Distinct: _Rewriter.distinct,
    ast.Join: _Rewriter.join,
    ast.Lookup: _Rewriter.lookup,
}
