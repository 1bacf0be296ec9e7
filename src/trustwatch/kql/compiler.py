"""Checked KQL syntax tree -> sqlglot expression trees, one small function per pipe operator.

Each pipe operator wraps the previous stage as a subquery and tracks the output columns and
their KQL types, so an unknown column is reported where it is used, with a "did you mean".
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlglot import exp

from trustwatch import limits
from trustwatch.errors import (
    KqlSemanticError,
    KqlSyntaxError,
    Span,
    TrustwatchError,
    UnsupportedKql,
)
from trustwatch.kql import ast, deep
from trustwatch.kql.parser import TabularAsExpr
from trustwatch.kql.scope import (
    Binding,
    LambdaBinding,
    Relation,
    RelationBinding,
    Scope,
)
from trustwatch.kql.semantics import Typed, sql_type
from trustwatch.schema.model import TableSchema, suggest

STAGES_PER_SUBQUERY = 32  # pipe stages nested as subqueries before one is shared by name
WATCHLIST_PREFIX = "watchlist:"  # catalog name of a watchlist (not a valid KQL table name)

#: Runs a query tree through the engine and returns its rows (tuples, by position): how the
#: compiler takes a first pass over the data for operators whose output columns depend on it
#: (``evaluate bag_unpack``, ``evaluate pivot``). Given by the caller that holds the engine
#: (``trustwatch.api.Session``), so the compiler never imports an engine.
Probe = Callable[[exp.Query], Sequence[tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class CatalogTable:
    """A table a query can read: its schema, and the engine's name for its data (None: empty)."""

    schema: TableSchema
    sql_name: str | None


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    """One result-producing statement: the SQL tree and the output columns' KQL types."""

    sql: exp.Query
    columns: tuple[tuple[str, str], ...]

    def to_sql(self, dialect: str = "duckdb", *, pretty: bool = False) -> str:
        """The SQL text (generated on a deep stack: see :func:`trustwatch.kql.deep.sql_text`)."""
        return deep.sql_text(self.sql, dialect, pretty=pretty)


@dataclass(slots=True)
class CompileResult:
    statements: list[CompiledStatement]
    notices: list[str] = field(default_factory=list)


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def alias(sql: exp.Expr, name: str) -> exp.Expr:
    return exp.alias_(sql, _ident(name), copy=False)


class Compiler:
    """Compiles one query against a catalog of tables, with ``now()`` fixed once."""

    def __init__(
        self, catalog: Mapping[str, CatalogTable], now: datetime, probe: Probe | None = None
    ) -> None:
        self.catalog = catalog
        self.probe = probe
        self.now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
        self._aliases = itertools.count(1)
        self.notices: list[str] = []
        # tabular values bound to names (let, as, tabular arguments): compiled once, emitted
        # once as a WITH clause, and read by name at each use - the SQL stays small
        self.ctes: list[tuple[str, exp.Query, bool]] = []  # name, query, materialized
        self.let_depths: dict[int, int] = {}  # id of a scalar let's value -> its chain depth

    # --- helpers ------------------------------------------------------------------------------

    def fresh(self, prefix: str = "_t") -> str:
        return f"{prefix}{next(self._aliases)}"

    def source(self, rel: Relation) -> exp.Expr:
        return exp.Subquery(this=rel.sql, alias=exp.TableAlias(this=_ident(self.fresh())))

    def select(self, rel: Relation, projections: list[exp.Expr]) -> exp.Select:
        return exp.Select(expressions=projections).from_(self.source(rel), copy=False)

    def star_projection(self, rel: Relation) -> list[exp.Expr]:
        """``*``: a relation's SQL yields exactly its columns (and its order column).

        Stars keep the SQL small: DuckDB's planner time grows with long column lists, and
        measured on the specification's query it was half of the whole run.
        """
        return [exp.Star()]

    def column_projection(self, rel: Relation) -> list[exp.Expr]:
        """The relation's columns (and order column) by name, for a source with extra columns."""
        cols: list[exp.Expr] = [_col(n) for n in rel.names()]
        if rel.order:
            cols.append(_col(rel.order))
        return cols

    def semantic_error(
        self, message: str, span: Span, hint: str | None = None, code: str = "KQL200"
    ) -> KqlSemanticError:
        return KqlSemanticError(message, span=span, hint=hint, code=code)

    def unsupported(self, what: str, span: Span) -> UnsupportedKql:
        return UnsupportedKql(
            f"{what} is not supported by trustwatch's KQL engine",
            span=span,
            hint="see docs/kql-support.md for what is implemented",
        )

    # --- query --------------------------------------------------------------------------------

    def compile_query(self, query: ast.Query) -> CompileResult:
        scope = Scope()
        for let in query.lets:
            scope = self.bind_let(let, scope)
        if not query.body:
            raise KqlSyntaxError(
                "the query has no tabular expression to run",
                span=Span(query.span.start, max(query.span.start + 1, query.span.end)),
                hint="end the query with an expression such as a table name",
            )
        relations = [self.compile_tabular(body, scope) for body in query.body]
        statements = [
            self.finish(rel, copy_ctes=i < len(relations) - 1) for i, rel in enumerate(relations)
        ]
        return CompileResult(statements, self.notices)

    def share(self, rel: Relation, *, materialized: bool = False) -> Relation:
        """A relation used by name: a WITH clause, and a small reference to it for each use.

        ``materialized``: computed once for all uses, for relations whose values are not a
        function of their input alone (row numbers without an order).
        """
        name = self.fresh("__tw_let")
        self.ctes.append((name, rel.sql, materialized))
        ref = exp.Select(expressions=[exp.Star()]).from_(exp.to_table(name, quoted=True))
        return Relation(ref, rel.columns, rel.order)

    def bind_let(self, let: ast.Let, scope: Scope) -> Scope:
        value = let.value
        if isinstance(value, ast.Lambda):
            return scope.child(**{let.name: LambdaBinding(value, scope)})
        if isinstance(value, ast.TabularExpr) or self.names_tabular(value, scope):
            # compiled once, here: errors show even if the name is never used
            relation = self.share(self.compile_tabular(value, scope))
            return scope.child(**{let.name: RelationBinding(relation)})
        assert isinstance(value, ast.Expr)
        # a scalar let is inlined where it is used: a chain of lets each using the last builds
        # one expression as deep as the chain, copied at each step (quadratic), which the SQL
        # engine then refuses past 1,000 levels: the chain is bounded by the let-depth limit
        depth = 1 + max(
            (
                self.let_depths.get(id(bound), 0)
                for node in value.walk()
                if isinstance(node, ast.Name)
                and isinstance(bound := scope.lookup(node.name), Typed)
            ),
            default=0,
        )
        bound_limit = limits.current().let_depth
        if depth > bound_limit:
            raise deep.limit_error(
                "let_depth", bound_limit, "the chain of lets this one builds on", let.span
            )
        typed = self.expr(value, scope, None)
        self.let_depths[id(typed)] = depth
        return scope.child(**{let.name: typed})

    def names_tabular(self, node: ast.Node, scope: Scope) -> bool:
        """Is a bare name or call (``let T = DeviceEvents``, ``let T = f()``) tabular?"""
        if isinstance(node, TabularAsExpr):
            return True
        if isinstance(node, ast.Name):
            binding = scope.lookup(node.name)
            if binding is None:
                return node.name in self.catalog
            return isinstance(binding, RelationBinding)
        if isinstance(node, ast.Call):
            binding = scope.lookup(node.name)
            if isinstance(binding, LambdaBinding):
                return isinstance(binding.fn.body, ast.TabularExpr) or self.names_tabular(
                    binding.fn.body, binding.scope
                )
            return node.name in ("materialize", "table", "view", "_GetWatchlist")
        return False

    def finish(self, rel: Relation, *, copy_ctes: bool = False) -> CompiledStatement:
        """Final projection: hidden columns removed, order applied, shared relations attached."""
        projections: list[exp.Expr] = [_col(n) for n in rel.names()]
        select = exp.Select(expressions=projections).from_(self.source(rel), copy=False)
        if rel.order:
            select = select.order_by(exp.Ordered(this=_col(rel.order)))
        for name, sql, materialized in self.ctes:
            body = sql.copy() if copy_ctes else sql
            select = select.with_(name, as_=body, materialized=materialized or None, copy=False)
        return CompiledStatement(select, rel.columns)

    def rows_of(self, rel: Relation, span: Span, what: str, hint: str) -> list[tuple[Any, ...]]:
        """Run ``rel`` now, before the query it is part of (a first pass over the data).

        ``what`` names the operator that needs it (for the error when no data is at hand:
        rules and cached content compile without an engine); ``hint`` says how to do without.

        Raises:
            UnsupportedKql: no probe was given, located at ``span``.
            TrustwatchError: the engine's error, located at ``span`` if it was not.
        """
        if self.probe is None:
            raise UnsupportedKql(
                f"{what} takes its output columns from the data, and this query is compiled "
                "without data (a rule, or content compiled ahead)",
                span=span,
                hint=hint,
            )
        copy = Relation(rel.sql.copy(), rel.columns, rel.order)
        statement = self.finish(copy, copy_ctes=True)
        try:
            return list(self.probe(statement.sql))
        except TrustwatchError as exc:
            if exc.diagnostic.span is not None:
                raise
            d = exc.diagnostic
            raise type(exc)(d.message, span=span, hint=d.hint, code=d.code) from exc

    # --- tabular expressions ------------------------------------------------------------------

    def compile_tabular(self, node: ast.Node, scope: Scope) -> Relation:
        if isinstance(node, ast.Pipeline):
            rel = self.compile_tabular(node.source, scope)
            for n, op in enumerate(node.ops, 1):
                rel, scope = self.compile_op(op, rel, scope)
                if n % STAGES_PER_SUBQUERY == 0 and n < len(node.ops):
                    # each stage wraps the last as a subquery: a long pipe is cut into shared
                    # stages (WITH clauses) so its SQL nests at most this deep, for sqlglot's
                    # generator and DuckDB's parser alike
                    rel = self.share(rel)
            return rel
        if isinstance(node, ast.TableRef | ast.Name):
            return self.table_ref(node.name, node.span, scope)
        if isinstance(node, TabularAsExpr):
            return self.compile_tabular(node.query, scope)
        if isinstance(node, ast.FunctionSource):
            return self.tabular_call(node.call, scope)
        if isinstance(node, ast.Call):
            return self.tabular_call(node, scope)
        from trustwatch.kql import sources

        handler = sources.SOURCES.get(type(node))
        if handler is None:
            raise self.semantic_error("expected a tabular expression", node.span, code="KQL206")
        try:
            return handler(self, node, scope)
        except UnsupportedKql as exc:
            if exc.diagnostic.span is not None:
                raise
            d = exc.diagnostic  # e.g. from Relation: located at the union or search that made it
            raise UnsupportedKql(d.message, span=node.span, hint=d.hint, code=d.code) from None

    def table_ref(self, name: str, span: Span, scope: Scope) -> Relation:
        binding = scope.lookup(name)
        if isinstance(binding, RelationBinding):  # a tree used in several places is copied
            bound = binding.relation
            return Relation(bound.sql.copy(), bound.columns, bound.order)
        if isinstance(binding, LambdaBinding) and not binding.fn.params:
            return self.compile_tabular(binding.fn.body, self.lambda_scope(binding, [], span))
        table = self.catalog.get(name)
        if table is None:
            names = list(self.catalog) + [
                n for n, b in scope.bindings.items() if not isinstance(b, Typed)
            ]
            raise self.semantic_error(
                f"unknown table '{name}'", span, hint=suggest(name, names), code="KQL201"
            )
        columns = tuple((c.name, c.type) for c in table.schema.columns)
        if table.sql_name is None:
            return self.empty_relation(columns)
        # the engine stores a table's columns in schema order, so * is exactly `columns`
        return Relation(
            exp.Select(expressions=[exp.Star()]).from_(exp.to_table(table.sql_name, quoted=True)),
            columns,
        )

    def empty_relation(self, columns: tuple[tuple[str, str], ...]) -> Relation:
        projections = [alias(exp.Cast(this=exp.null(), to=sql_type(t)), n) for n, t in columns]
        return Relation(exp.Select(expressions=projections).where(exp.false()), columns)

    def tabular_call(self, call: ast.Call, scope: Scope) -> Relation:
        binding = scope.lookup(call.name)
        if isinstance(binding, LambdaBinding):
            body_scope = self.lambda_scope(binding, list(call.args), call.span, scope)
            return self.compile_tabular(binding.fn.body, body_scope)
        if call.name in ("materialize", "view") and len(call.args) == 1:
            return self.compile_tabular(call.args[0], scope)
        if call.name == "table" and len(call.args) == 1 and isinstance(call.args[0], ast.Expr):
            # table("T") or table(name) with a name bound to a constant string
            arg = self.expr(call.args[0], scope, None)
            if arg.is_constant and isinstance(arg.constant, str):
                return self.table_ref(arg.constant, call.args[0].span, scope)
            raise self.semantic_error(
                "table() needs a constant table name", call.args[0].span, code="KQL205"
            )
        if call.name == "_GetWatchlist" and binding is None:
            return self.watchlist(call, scope)
        if binding is None and call.name in self.catalog:
            raise self.semantic_error(
                f"'{call.name}' is a table, not a function", call.name_span, code="KQL203"
            )
        raise self.semantic_error(
            f"unknown tabular function '{call.name}'",
            call.name_span,
            hint=suggest(
                call.name, [n for n, b in scope.bindings.items() if isinstance(b, LambdaBinding)]
            ),
            code="KQL203",
        )

    def watchlist(self, call: ast.Call, scope: Scope) -> Relation:
        """Sentinel's ``_GetWatchlist('Name')``: a watchlist loaded as table ``watchlist:Name``."""
        arg = self.expr(call.args[0], scope, None) if len(call.args) == 1 else None
        if arg is None or not (arg.is_constant and isinstance(arg.constant, str)):
            raise self.semantic_error(
                "_GetWatchlist() takes one constant watchlist name", call.span, code="KQL204"
            )
        name = WATCHLIST_PREFIX + arg.constant
        if name not in self.catalog:
            known = [
                n[len(WATCHLIST_PREFIX) :] for n in self.catalog if n.startswith(WATCHLIST_PREFIX)
            ]
            raise self.semantic_error(
                f"unknown watchlist '{arg.constant}'",
                call.args[0].span,
                hint=suggest(arg.constant, known)
                or "watchlists are CSV files named in the tuning file (see docs/rules.md)",
                code="KQL201",
            )
        return self.table_ref(name, call.span, scope)

    def lambda_scope(
        self,
        binding: LambdaBinding,
        args: list[ast.Node],
        span: Span,
        caller: Scope | None = None,
        implicit: Relation | None = None,
        row: Relation | None = None,
    ) -> Scope:
        """Bind a user function's parameters to the call's arguments (by position)."""
        fn = binding.fn
        params = list(fn.params)
        bound: dict[str, Binding] = {}
        if implicit is not None:
            if not params or not params[0].tabular:
                raise self.semantic_error(
                    "invoke needs a function whose first parameter is tabular", span, code="KQL204"
                )
            bound[params[0].name] = RelationBinding(self.share(implicit))
            params = params[1:]
        required = [p for p in params if p.default is None]
        if not (len(required) <= len(args) <= len(params)):
            raise self.semantic_error(
                f"function takes {len(required)}"
                + (f" to {len(params)}" if len(params) != len(required) else "")
                + f" arguments, got {len(args)}",
                span,
                code="KQL204",
            )
        caller = caller or Scope()
        for i, param in enumerate(params):
            if i < len(args):
                arg = args[i]
                if param.tabular:
                    bound[param.name] = RelationBinding(
                        self.share(self.compile_tabular(arg, caller))
                    )
                else:
                    bound[param.name] = self.expr(arg, caller, row)
            else:
                assert param.default is not None
                bound[param.name] = self.expr(param.default, binding.scope, None)
        scope = binding.scope.child(**bound)
        for let in fn.lets:
            scope = self.bind_let(let, scope)
        return scope

    # --- pipe operators -----------------------------------------------------------------------

    def compile_op(self, op: ast.PipeOp, rel: Relation, scope: Scope) -> tuple[Relation, Scope]:
        from trustwatch.kql import operators

        if isinstance(op, ast.As):
            shared = self.share(rel)
            return shared, scope.child(**{op.name: RelationBinding(shared)})
        handler = operators.OPERATORS.get(type(op))
        if handler is None:
            name = op.name if isinstance(op, ast.OtherOp) else operators.KQL_NAMES[type(op)]
            raise self.unsupported(f"the '{name}' operator", op.span)
        try:
            return handler(self, op, rel, scope), scope
        except UnsupportedKql as exc:
            if exc.diagnostic.span is not None:
                raise
            d = exc.diagnostic  # e.g. from Relation: located at the operator that caused it
            raise UnsupportedKql(d.message, span=op.span, hint=d.hint, code=d.code) from None

    # --- scalar expressions -------------------------------------------------------------------

    def expr(
        self,
        node: ast.Node,
        scope: Scope,
        rel: Relation | None,
        *,
        overlay: Mapping[str, Typed] | None = None,
        aggregate: AggregateContext | None = None,
    ) -> Typed:
        """Compile a scalar expression against the columns of ``rel`` (None: no row context)."""
        from trustwatch.kql.expressions import ExprCompiler

        return ExprCompiler(self, scope, rel, overlay or {}, aggregate).compile(node)


class AggregateContext:
    """Collects aggregate calls met while compiling a ``summarize`` item."""

    def __init__(self) -> None:
        self.calls: list[ast.Call] = []


OperatorHandler = Callable[[Compiler, ast.PipeOp, Relation, Scope], Relation]


def compile_query(
    query: ast.Query,
    catalog: Mapping[str, CatalogTable],
    now: datetime,
    *,
    probe: Probe | None = None,
) -> CompileResult:
    """Compile a parsed query to SQL trees.

    Args:
        query: the parsed query.
        catalog: every table the query may read.
        now: the value of ``now()`` for the whole query.
        probe: runs a query over the catalog's data, for the operators whose output columns
            come from the data (``evaluate bag_unpack``/``pivot`` without an output schema);
            without it they are refused (``UnsupportedKql``).

    Raises:
        KqlSemanticError: unknown tables, columns or functions, or misused types.
        UnsupportedKql: valid KQL this engine does not implement.
        LimitExceeded: a query past the ``union-tables`` limit (or nested past what the
            stack can take when ``query-depth`` was raised).
    """
    return deep.call(Compiler(catalog, now, probe).compile_query, query, span=query.span)
