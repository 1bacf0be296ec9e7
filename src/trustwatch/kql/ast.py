"""Frozen dataclass syntax tree for KQL, one class per construct, each with a source span.

Names follow the Kusto documentation (Where, Project, Summarize, BinaryOp...). Literals keep
typed values: a timespan is a ``timedelta``, a datetime a timezone-aware ``datetime``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar, dataclass_transform

from trustwatch.errors import Span

_NO_SPAN = Span(0, 0)
_N = TypeVar("_N")


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field,))
def _node(cls: type[_N]) -> type[_N]:
    """Declare a syntax-tree node: a frozen, slotted, keyword-only dataclass.

    Equality and ``repr`` are :class:`Node`'s, which work at any depth (a query may nest to
    the ``query-depth`` limit, past Python's recursion limit for generated methods).
    """
    return dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)(cls)


def _compared(node: Node) -> list[object]:
    return [getattr(node, f.name) for f in dataclasses.fields(node) if f.compare]


def _equal(a: object, b: object) -> bool:
    """Structural equality of two trees, without recursion (spans are not compared)."""
    stack: list[tuple[object, object]] = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if isinstance(x, Node) or isinstance(y, Node):
            if type(x) is not type(y):
                return False
            assert isinstance(x, Node) and isinstance(y, Node)
            stack.extend(zip(_compared(x), _compared(y), strict=True))
        elif isinstance(x, tuple) and isinstance(y, tuple):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif not (type(x) is type(y) and x == y):
            return False
    return True


def _repr(node: Node) -> str:
    parts = [
        f"{f.name}={_repr_value(getattr(node, f.name))}" for f in dataclasses.fields(node) if f.repr
    ]
    return f"{type(node).__qualname__}({', '.join(parts)})"


def _repr_value(value: object) -> str:
    if isinstance(value, Node):
        return _repr(value)
    if isinstance(value, tuple):
        items = [_repr_value(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    return repr(value)


@_node
class Node:
    """Base of every node."""

    span: Span = field(default=_NO_SPAN, compare=False, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return _equal(self, other)

    def __hash__(self) -> int:
        # consistent with __eq__ (equal trees have the same class); nodes are rarely hashed
        return hash(type(self).__qualname__)

    def __repr__(self) -> str:
        """The dataclass-style ``Class(field=value, ...)`` text, at any depth."""
        from trustwatch.kql import deep

        return deep.call(_repr, self)

    def children(self) -> Iterator[Node]:
        """Yield the direct child nodes, in field order."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            yield from _nodes_in(value)

    def walk(self) -> Iterator[Node]:
        """Yield this node and all descendants, depth first (without recursion: any depth)."""
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(list(node.children())))


def _nodes_in(value: object) -> Iterator[Node]:
    if isinstance(value, Node):
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from _nodes_in(item)


# --- scalar expressions ----------------------------------------------------------------------


@_node
class Expr(Node):
    """Base of scalar expressions."""


@_node
class Literal(Expr):
    """A typed constant. ``type`` is a KQL type name; ``value`` None is that type's null."""

    value: object
    type: str


@_node
class Name(Expr):
    """A column, ``let`` variable or parameter reference."""

    name: str


@_node
class Star(Expr):
    """``*`` as an argument (``count(*)``, ``arg_max(t, *)``)."""


@_node
class Member(Expr):
    """Property access ``target.name`` or ``target["name"]``."""

    target: Expr
    name: str


@_node
class Index(Expr):
    """Element access ``target[index]`` with a non-constant-string index."""

    target: Expr
    index: Expr


@_node
class Call(Expr):
    """A function call. ``args`` may contain a :class:`TabularExpr` (``toscalar(T | ...)``)."""

    name: str
    args: tuple[Node, ...] = ()
    name_span: Span = field(default=_NO_SPAN, compare=False, repr=False)


@_node
class BinaryOp(Expr):
    """``left op right`` for arithmetic, comparison, logic and string operators (``has``...)."""

    op: str
    left: Expr
    right: Expr


LOGIC_OPERATORS = frozenset({"and", "or"})


def logic_operands(node: Expr, op: str) -> list[Expr]:
    """The operands of an ``op`` chain, left to right: ``a or (b or c)`` gives [a, b, c].

    ``and`` and ``or`` are associative, so the grouping of a chain carries no meaning; this
    reads it without recursion, whatever its shape.
    """
    out: list[Expr] = []
    stack: list[Expr] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, BinaryOp) and item.op == op:
            stack.extend((item.right, item.left))
        else:
            out.append(item)
    return out


def logic_chain(op: str, operands: list[Expr]) -> Expr:
    """The canonical tree of an ``and``/``or`` chain: balanced, so 10,000 operands nest only
    14 deep. The parser builds every chain this way (operands that are chains of the same
    operator, parenthesised, are spliced in), so printing and parsing a tree gives it back.
    """
    flat: list[Expr] = []
    for operand in operands:
        flat.extend(logic_operands(operand, op))
    if not flat:
        raise ValueError("a logic chain needs operands")
    # recursion depth is log2(len(flat)): 17 for the query-terms limit's 100,000
    return _balanced(op, flat, 0, len(flat))


def _balanced(op: str, items: list[Expr], lo: int, hi: int) -> Expr:
    if hi - lo == 1:
        return items[lo]
    mid = lo + (hi - lo + 1) // 2
    left = _balanced(op, items, lo, mid)
    right = _balanced(op, items, mid, hi)
    return BinaryOp(op=op, left=left, right=right, span=left.span.to(right.span))


@_node
class UnaryOp(Expr):
    """``-x`` or ``+x``."""

    op: str
    operand: Expr


@_node
class InList(Expr):
    """``x in (a, b)``, ``in~``, ``!in``, ``!in~``, ``has_any``, ``has_all`` and friends."""

    op: str
    target: Expr
    items: tuple[Node, ...]


@_node
class Between(Expr):
    """``x between (low .. high)`` and ``!between``."""

    target: Expr
    low: Expr
    high: Expr
    negated: bool = False


# --- statements and tabular expressions ------------------------------------------------------


@_node
class TabularExpr(Node):
    """Base of tabular expressions."""


@_node
class Assignment(Node):
    """``Name = expr`` (name may be None: default naming) or ``(A, B) = expr``."""

    name: str | None
    expr: Expr
    names: tuple[str, ...] = ()


@_node
class TableRef(TabularExpr):
    """A table by name (also a tabular ``let`` variable)."""

    name: str


@_node
class Datatable(TabularExpr):
    """``datatable(a:string, b:long) [ ... ]``."""

    columns: tuple[tuple[str, str], ...]
    values: tuple[Expr, ...]


@_node
class RangeSource(TabularExpr):
    """``range x from a to b step s``."""

    column: str
    start: Expr
    stop: Expr
    step: Expr


@_node
class QualifiedTable(TabularExpr):
    """A table elsewhere: ``database("d").T``, ``cluster("c").database("d").T``, ``arg("").R``."""

    path: Expr


@_node
class ExternalData(TabularExpr):
    """``externaldata(columns) [urls] with (...)``: reads from the network; parsed, never run."""

    columns: tuple[tuple[str, str], ...]
    text: str


@_node
class PrintSource(TabularExpr):
    """``print a = 1, 2``."""

    items: tuple[Assignment, ...]


@_node
class FunctionSource(TabularExpr):
    """A call used as a table: a user lambda, ``materialize(T)``, ``table("T")``..."""

    call: Call


@_node
class Pipeline(TabularExpr):
    """``source | op | op ...``."""

    source: TabularExpr
    ops: tuple[PipeOp, ...] = ()


@_node
class PipeOp(Node):
    """Base of pipe operators."""


@_node
class Where(PipeOp):
    predicate: Expr


@_node
class Extend(PipeOp):
    items: tuple[Assignment, ...]


@_node
class Project(PipeOp):
    items: tuple[Assignment, ...]


@_node
class ColumnPattern(Node):
    """A column name or wildcard pattern (``Initiating*``) in project-away and friends."""

    pattern: str


@_node
class ProjectAway(PipeOp):
    patterns: tuple[ColumnPattern, ...]


@_node
class ProjectKeep(PipeOp):
    patterns: tuple[ColumnPattern, ...]


@_node
class ProjectRename(PipeOp):
    pairs: tuple[tuple[str, str], ...]  # (new, old)
    old_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)


@_node
class ProjectReorder(PipeOp):
    patterns: tuple[ColumnPattern, ...]
    orders: tuple[str | None, ...] = ()


@_node
class SortKey(Node):
    expr: Expr
    descending: bool = True
    nulls_first: bool | None = None


@_node
class Sort(PipeOp):
    keys: tuple[SortKey, ...]


@_node
class Top(PipeOp):
    count: Expr
    key: SortKey


@_node
class TopNestedLevel(Node):
    """One clause of ``top-nested``: ``[N] of [Name =] Expr [with others = C] by [Name =]
    Aggregation [asc|desc]``; ``count`` None keeps every value."""

    count: Expr | None
    value: Assignment
    others: Expr | None = None
    aggregate: Assignment
    descending: bool = True


@_node
class TopNested(PipeOp):
    levels: tuple[TopNestedLevel, ...]


@_node
class Take(PipeOp):
    count: Expr


@_node
class Distinct(PipeOp):
    items: tuple[Assignment, ...]  # empty tuple with star=True means "distinct *"
    star: bool = False


@_node
class Count(PipeOp):
    name: str = "Count"


@_node
class Summarize(PipeOp):
    aggregates: tuple[Assignment, ...]
    by: tuple[Assignment, ...] = ()


@_node
class JoinCondition(Node):
    """``Col`` (same name on both sides) or ``$left.A == $right.B``."""

    left: str
    right: str


@_node
class Join(PipeOp):
    kind: str
    right: TabularExpr
    on: tuple[JoinCondition, ...]
    hints: tuple[tuple[str, str], ...] = ()


@_node
class Lookup(PipeOp):
    kind: str
    right: TabularExpr
    on: tuple[JoinCondition, ...]


@_node
class Union(PipeOp):
    tables: tuple[TabularExpr, ...]
    kind: str = "outer"
    withsource: str | None = None
    isfuzzy: bool = False


@_node
class UnionSource(TabularExpr):
    """``union A, B`` at the start of a query."""

    union: Union


@_node
class MvExpandItem(Node):
    name: str | None
    expr: Expr
    to_type: str | None = None


@_node
class MvExpand(PipeOp):
    items: tuple[MvExpandItem, ...]
    limit: Expr | None = None
    bagexpansion: str | None = None
    with_itemindex: str | None = None


@_node
class MvApply(PipeOp):
    items: tuple[MvExpandItem, ...]
    subquery: Pipeline
    limit: Expr | None = None
    with_itemindex: str | None = None
    bagexpansion: str | None = None


@_node
class Partition(PipeOp):
    """``partition [hint.strategy=...] by Column (subquery)``, or ``{ T | ... }`` (a subquery
    with its own source, the legacy strategy's second form, kept in ``source_query``)."""

    column: str
    subquery: Pipeline | None
    source_query: TabularExpr | None = None
    hints: tuple[tuple[str, str], ...] = ()


@_node
class ParseColumn(Node):
    name: str
    type: str = "string"


@_node
class Parse(PipeOp):
    """``parse [kind=simple|relaxed|regex] [flags=..] expr with pattern``; ``parse-where`` (which
    also drops the rows the pattern does not match) when ``filter_rows``."""

    kind: str
    source: Expr
    parts: tuple[str | ParseColumn, ...]
    flags: str = ""
    filter_rows: bool = False


@_node
class As(PipeOp):
    name: str


@_node
class Serialize(PipeOp):
    items: tuple[Assignment, ...] = ()


@_node
class Render(PipeOp):
    visualization: str


@_node
class Getschema(PipeOp):
    pass


@_node
class Invoke(PipeOp):
    call: Call


@_node
class Evaluate(PipeOp):
    """``evaluate plugin(...) [: (*, Name:type, ...)]``; ``schema`` is the output schema given
    after ``:`` (None: none given), ``schema_star`` its leading ``*``."""

    call: Call
    hints: tuple[tuple[str, str], ...] = ()
    schema: tuple[tuple[str, str], ...] | None = None
    schema_star: bool = False


@_node
class MakeSeries(PipeOp):
    aggregates: tuple[Assignment, ...]
    on: Expr
    defaults: tuple[Expr | None, ...] = ()
    start: Expr | None
    stop: Expr | None
    step: Expr
    by: tuple[Assignment, ...] = ()


@_node
class Search(PipeOp):
    predicate: Expr
    tables: tuple[str, ...] = ()


@_node
class FindSource(TabularExpr):
    """``find [withsource=N] [in (T, ...)] where P [project-smart | project C[:type], ...]``
    (or ``find P ...``). ``project`` None is project-smart; ``pack_all`` adds ``pack_``."""

    predicate: Expr
    tables: tuple[str, ...] = ()
    withsource: str = "source_"
    project: tuple[tuple[str, str | None], ...] | None = None
    pack_all: bool = False


@_node
class SearchSource(TabularExpr):
    search: Search


@_node
class Sample(PipeOp):
    count: Expr


@_node
class OtherOp(PipeOp):
    """A documented operator we parse only loosely (``scan``, ``partition``...): never compiled."""

    name: str
    text: str


# --- let and the query -----------------------------------------------------------------------


@_node
class Parameter(Node):
    name: str
    type: str | None  # None for tabular parameters written (T:(*)) or untyped
    default: Expr | None = None
    tabular: bool = False


@_node
class Lambda(Node):
    """``(x:string, y:long = 1) { let a = ...; body }``."""

    params: tuple[Parameter, ...]
    lets: tuple[Let, ...]
    body: Node  # Expr or TabularExpr


@_node
class Let(Node):
    name: str
    value: Node  # Expr, TabularExpr or Lambda


@_node
class Query(Node):
    """A whole query: ``let`` statements then tabular expressions separated by ``;``."""

    lets: tuple[Let, ...]
    body: tuple[TabularExpr, ...]


AnyNode: TypeAlias = Node


class Visitor:
    """Dispatch on ``visit_<ClassName>``; unknown classes go to :meth:`generic_visit`."""

    def visit(self, node: Node) -> Any:
        method = getattr(self, "visit_" + type(node).__name__, self.generic_visit)
        return method(node)

    def generic_visit(self, node: Node) -> Any:
        for child in node.children():
            self.visit(child)
        return None
