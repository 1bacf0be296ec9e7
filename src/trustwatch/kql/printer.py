"""Pretty-printer turning a KQL syntax tree back into canonical KQL text that re-parses to it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from trustwatch.kql import ast, deep
from trustwatch.kql.literals import format_timespan_value
from trustwatch.kql.parser import TabularAsExpr
from trustwatch.kql.tokens import TIMESPAN_UNITS

INDENT = "    "
# A list (call arguments, an ``in`` list, projected columns) longer than this: one item a line.
MAX_INLINE = 80
MAX_INDENT = 16  # indentation levels shown; deeper nesting prints at this one

# Binding strength, weakest first: the parser's binary levels, then unary +/- and postfix access
# (``a.b``, ``a[0]``, calls, literals). Operators not listed in _BINARY_PRECEDENCE are
# comparisons and string operators (==, =~, has, !contains_cs, matches regex...).
# https://learn.microsoft.com/kusto/query/operators
_OR, _AND, _CMP, _ADD, _MUL, _UNARY, _POSTFIX = range(1, 8)

_BINARY_PRECEDENCE: dict[str, int] = {
    "or": _OR,
    "and": _AND,
    "+": _ADD,
    "-": _ADD,
    "*": _MUL,
    "/": _MUL,
    "%": _MUL,
}

_NODE_PRECEDENCE: dict[type[ast.Node], int] = {
    ast.InList: _CMP,
    ast.Between: _CMP,
    ast.UnaryOp: _UNARY,
}

# Words that read as something else in some position (a literal, an operator, a clause keyword,
# a statement or source keyword), so a column or table with that name is printed as ["name"].
_RESERVED_WORDS = (
    frozenset({"true", "false", "and", "or", "in"})
    | frozenset({"by", "on", "with", "to", "from", "step", "limit", "asc", "desc", "nulls"})
    | frozenset({"let", "set", "declare", "print", "union", "search", "range", "datatable"})
)

# Timespan suffixes from the largest unit down; "microsecond" divides every ``timedelta``.
_TIMESPAN_SUFFIXES = ("d", "h", "m", "s", "ms", "microsecond")

_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}

_T = TypeVar("_T")


# --- names and strings ---------------------------------------------------------------------------


def _is_identifier(text: str) -> bool:
    """True if the lexer reads ``text`` as one identifier token (``$left`` included)."""
    body = text[1:] if text.startswith("$") else text
    return (
        bool(body)
        and (body[0].isalpha() or body[0] == "_")
        and all(ch.isalnum() or ch == "_" for ch in body)
    )


def _is_control(ch: str) -> bool:
    return ord(ch) < 0x20 or ord(ch) == 0x7F


def quote_string(value: str) -> str:
    """A string literal: verbatim ``@"C:\\Temp"`` for paths, else ``"..."`` with escapes."""
    if "\\" in value and not value.endswith("\\") and not any(map(_is_control, value)):
        return '@"' + value.replace('"', '""') + '"'
    out = []
    for ch in value:
        if ch in _STRING_ESCAPES:
            out.append(_STRING_ESCAPES[ch])
        elif _is_control(ch):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def format_name(name: str) -> str:
    """A column, table, variable or parameter name: bare when it is safe, else ``["name"]``."""
    if _is_identifier(name) and name not in _RESERVED_WORDS:
        return name
    return f"[{quote_string(name)}]"


def format_pattern(pattern: str, *, leading_star: bool = True) -> str:
    """A column pattern (``Initiating*``) or table wildcard; bracketed when it is not plain."""
    segments = pattern.split("*")
    plain = (
        bool(pattern)
        and pattern not in _RESERVED_WORDS
        and all(not seg or _is_identifier(seg) for seg in segments)
        and (leading_star or bool(segments[0]))
    )
    return pattern if plain else f"[{quote_string(pattern)}]"


def _member_suffix(name: str) -> str:
    """``.name`` for identifiers, ``["name"]`` otherwise."""
    return f".{name}" if _is_identifier(name) else f"[{quote_string(name)}]"


def _hint(key: str, value: str) -> str:
    if _is_identifier(value) or (value.isascii() and value.isdigit() and str(int(value)) == value):
        shown = value
    else:
        shown = quote_string(value)
    return f"hint.{format_name(key)}={shown}"


# --- literals ------------------------------------------------------------------------------------


def _expect(value: object, kind: type[_T] | tuple[type[_T], ...]) -> _T:
    if not isinstance(value, kind):
        raise TypeError(f"cannot print {value!r} as a literal of this type")
    return value


def _format_long(value: object) -> str:
    return str(int(_expect(value, int)))


def _format_int(value: object) -> str:
    return f"int({int(_expect(value, int))})"


def _format_real(value: object) -> str:
    number = float(_expect(value, (int, float)))
    if math.isnan(number):
        return "real(nan)"
    if math.isinf(number):
        return "real(inf)" if number > 0 else "real(-inf)"
    text = repr(number)
    if number.is_integer() and "e" not in text:
        return f"real({int(number)})"  # not "1", a long: the type must survive the round trip
    return text  # "2.5", "1e+300": the lexer reads both as reals


def _format_bool(value: object) -> str:
    return "true" if _expect(value, bool) else "false"


def _format_string(value: object) -> str:
    return quote_string(_expect(value, str))


def _format_guid(value: object) -> str:
    return f"guid({_expect(value, str)})"


def _format_datetime(value: object) -> str:
    """``datetime(2024-01-01T10:00:00.123456Z)``: UTC, the fraction only when non-zero."""
    moment = _expect(value, datetime)
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return f"datetime({text}Z)"


def _format_timespan(value: object) -> str:
    """``1d``, ``90m``, ``100ms``, ``10microsecond``: the largest unit dividing exactly.

    Falls back to ``timespan([-][d.]hh:mm:ss[.fffffff])`` when the lexer, which reads the number
    as a float, could not get the same value back from the short form.
    """
    span = _expect(value, timedelta)
    sign = "-" if span < timedelta(0) else ""
    magnitude = abs(span)
    ticks = (magnitude // timedelta(microseconds=1)) * 10
    for suffix in _TIMESPAN_SUFFIXES:
        per_unit = TIMESPAN_UNITS[suffix]
        if ticks % per_unit == 0:
            count = ticks // per_unit
            try:  # mirrors the lexer (round(float(n) * unit)) and parser (ticks / 10 µs)
                exact = timedelta(microseconds=round(float(count) * per_unit) / 10) == magnitude
            except OverflowError:
                exact = False
            if exact:
                return f"{sign}{count}{suffix}"
            break
    return f"timespan({format_timespan_value(span)})"


def _format_json(value: object) -> str:
    """The inside of ``dynamic(...)``: JSON, with strings quoted as KQL string literals."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot print {value!r} inside dynamic(...)")
        return repr(value)
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_format_json(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{quote_string(str(k))}: {_format_json(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise TypeError(f"cannot print {value!r} inside dynamic(...)")


def _format_dynamic(value: object) -> str:
    return f"dynamic({_format_json(value)})"


_LITERAL_FORMATTERS: dict[str, Callable[[object], str]] = {
    "string": _format_string,
    "long": _format_long,
    "int": _format_int,
    "real": _format_real,
    "bool": _format_bool,
    "datetime": _format_datetime,
    "timespan": _format_timespan,
    "dynamic": _format_dynamic,
    "guid": _format_guid,
}


def format_literal(node: ast.Literal) -> str:
    """A literal's KQL text; typed nulls print as ``long(null)``, ``datetime(null)``..."""
    if node.value is None:
        return f"{node.type}(null)"
    formatter = _LITERAL_FORMATTERS.get(node.type)
    if formatter is None:
        raise ValueError(f"cannot print a literal of type {node.type!r}")
    return formatter(node.value)


# --- the printer ---------------------------------------------------------------------------------


class Printer(ast.Visitor):
    """Prints one tree; ``visit_<ClassName>`` returns that node's text at the current depth.

    Pipe operators print without their leading ``| ``. Multi-line text (pipelines nested in
    parentheses, datatable rows, function bodies) is indented one level per nesting.
    """

    def __init__(self) -> None:
        self.depth = 0

    # --- helpers --------------------------------------------------------------------------------

    def text(self, node: ast.Node) -> str:
        """The text of any node, dispatched on its class."""
        result: str = self.visit(node)
        return result

    def generic_visit(self, node: ast.Node) -> str:
        raise TypeError(f"the KQL printer has no rule for {type(node).__name__}")

    @contextmanager
    def indented(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def newline(self) -> str:
        # capped: a 1,000-deep expression would otherwise print ~2 MB of indentation
        return "\n" + INDENT * min(self.depth, MAX_INDENT)

    def joined(self, nodes: Sequence[ast.Node], sep: str = ", ") -> str:
        return sep.join(self.text(node) for node in nodes)

    def items(self, nodes: Sequence[ast.Node]) -> list[str]:
        """The texts of list items, printed one level deeper (where a broken list puts them)."""
        with self.indented():
            return [self.text(node) for node in nodes]

    def item_break(self, texts: Sequence[str]) -> str | None:
        """The line break to put before each item of a list, or None if it fits on one line."""
        if sum(len(text) + 2 for text in texts) <= MAX_INLINE + 2 and not any(
            "\n" in text for text in texts
        ):
            return None
        with self.indented():
            return self.newline()

    def parenthesised(self, nodes: Sequence[ast.Node]) -> str:
        """``(a, b)``, or one item per indented line when long or when an item spans lines.

        A lone scalar item stays inside the parentheses (``not(...)``) whatever its length; a
        lone multi-line query goes on its own indented lines.
        """
        if len(nodes) == 1 and not isinstance(nodes[0], ast.TabularExpr):
            return f"({self.text(nodes[0])})"
        texts = self.items(nodes)
        brk = self.item_break(texts)
        if brk is None:
            return "(" + ", ".join(texts) + ")"
        return "(" + ",".join(brk + text for text in texts) + self.newline() + ")"

    def listing(self, nodes: Sequence[ast.Node]) -> str:
        """`` a, b`` after an operator keyword, or one item per indented line when long."""
        if len(nodes) == 1:
            return " " + self.text(nodes[0])
        return self.listing_texts(self.items(nodes))

    def listing_texts(self, texts: Sequence[str]) -> str:
        brk = self.item_break(texts)
        if brk is None or len(texts) == 1:
            return " " + ", ".join(texts)
        return ",".join(brk + text for text in texts)

    def operand(self, node: ast.Expr, weakest: int) -> str:
        """An operand, in parentheses if it binds more loosely than ``weakest`` allows."""
        text = self.text(node)
        if isinstance(node, ast.BinaryOp):
            precedence = _BINARY_PRECEDENCE.get(node.op, _CMP)
        elif isinstance(node, ast.Literal) and text.startswith("-"):
            precedence = _UNARY  # a negative number is unary minus when re-parsed
        else:
            precedence = _NODE_PRECEDENCE.get(type(node), _POSTFIX)
        return f"({text})" if precedence < weakest else text

    def table_side(self, node: ast.TabularExpr, *, wildcard: bool = False) -> str:
        """A join/lookup right side or union leg: a name, a call, or a parenthesised query."""
        if isinstance(node, ast.TableRef):
            return (
                format_pattern(node.name, leading_star=False)
                if wildcard
                else format_name(node.name)
            )
        if isinstance(node, ast.FunctionSource):
            return format_name(node.call.name) + self.parenthesised(node.call.args)
        return self.parenthesised([node])

    # --- query, let, functions ------------------------------------------------------------------

    def visit_Query(self, node: ast.Query) -> str:
        lines = [self.text(let) + ";" for let in node.lets]
        lines.append(self.joined(node.body, ";\n"))
        return "\n".join(lines)

    def visit_Let(self, node: ast.Let) -> str:
        if isinstance(node.value, ast.Pipeline):
            with self.indented():  # continuation lines of the pipeline sit under the name
                value = self.text(node.value)
        else:
            value = self.text(node.value)
        return f"let {format_name(node.name)} = {value}"

    def visit_Lambda(self, node: ast.Lambda) -> str:
        """``(x:long) { x + 1 }`` when short, else the body's statements on indented lines."""
        params = f"({self.joined(node.params)})"
        with self.indented():
            lines = [self.text(let) + ";" for let in node.lets]
            lines.append(self.text(node.body))
            inner = self.newline()
        if len(lines) == 1 and "\n" not in lines[0] and len(lines[0]) <= MAX_INLINE:
            return f"{params} {{ {lines[0]} }}"
        body = "".join(inner + line for line in lines)
        return f"{params} {{{body}{self.newline()}}}"

    def visit_Parameter(self, node: ast.Parameter) -> str:
        name = format_name(node.name)
        if node.tabular:
            return f"{name}:(*)"
        text = f"{name}:{node.type}" if node.type else name
        if node.default is not None:
            text += f" = {self.text(node.default)}"
        return text

    # --- tabular sources ------------------------------------------------------------------------

    def visit_Pipeline(self, node: ast.Pipeline) -> str:
        source = node.source
        text = (
            self.parenthesised([source]) if isinstance(source, ast.Pipeline) else self.text(source)
        )
        return text + "".join(self.newline() + "| " + self.text(op) for op in node.ops)

    def visit_TableRef(self, node: ast.TableRef) -> str:
        return format_name(node.name)

    def visit_Datatable(self, node: ast.Datatable) -> str:
        columns = ", ".join(f"{format_name(name)}:{ktype}" for name, ktype in node.columns)
        width = len(node.columns) or len(node.values) or 1
        with self.indented():
            rows = [
                self.joined(node.values[i : i + width]) for i in range(0, len(node.values), width)
            ]
            inner = self.newline()
        body = ",".join(inner + row for row in rows) + self.newline() if rows else ""
        return f"datatable({columns}) [{body}]"

    def visit_RangeSource(self, node: ast.RangeSource) -> str:
        return (
            f"range {format_name(node.column)} from {self.text(node.start)}"
            f" to {self.text(node.stop)} step {self.text(node.step)}"
        )

    def visit_PrintSource(self, node: ast.PrintSource) -> str:
        return "print" + self.listing(node.items)

    def visit_FunctionSource(self, node: ast.FunctionSource) -> str:
        return self.text(node.call)

    def visit_UnionSource(self, node: ast.UnionSource) -> str:
        return self.text(node.union)

    def visit_ExternalData(self, node: ast.ExternalData) -> str:
        return node.text  # the stored source text, verbatim

    def visit_QualifiedTable(self, node: ast.QualifiedTable) -> str:
        return self.text(node.path)

    def visit_FindSource(self, node: ast.FindSource) -> str:
        words = ["find"]
        if node.withsource != "source_":
            words.append(f"withsource={format_name(node.withsource)}")
        if node.tables:
            words.append(f"in ({', '.join(node.tables)})")
        words += ["where", self.text(node.predicate)]
        if node.project is not None:
            items = [
                format_name(name) + ("" if ktype is None else f":{ktype}")
                for name, ktype in node.project
            ]
            if node.pack_all:
                items.append("pack_all()")
            words += ["project", ", ".join(items)]
        return " ".join(words)

    def visit_SearchSource(self, node: ast.SearchSource) -> str:
        return self.text(node.search)

    # --- pipe operators -------------------------------------------------------------------------

    def visit_Where(self, node: ast.Where) -> str:
        return "where " + self.text(node.predicate)

    def visit_Extend(self, node: ast.Extend) -> str:
        return "extend" + self.listing(node.items)

    def visit_Project(self, node: ast.Project) -> str:
        return "project" + self.listing(node.items)

    def visit_Assignment(self, node: ast.Assignment) -> str:
        expr = self.text(node.expr)
        if node.names:
            return "(" + ", ".join(map(format_name, node.names)) + f") = {expr}"
        if node.name is not None:
            return f"{format_name(node.name)} = {expr}"
        return expr

    def visit_ColumnPattern(self, node: ast.ColumnPattern) -> str:
        return format_pattern(node.pattern)

    def visit_ProjectAway(self, node: ast.ProjectAway) -> str:
        return "project-away" + self.listing(node.patterns)

    def visit_ProjectKeep(self, node: ast.ProjectKeep) -> str:
        return "project-keep" + self.listing(node.patterns)

    def visit_ProjectRename(self, node: ast.ProjectRename) -> str:
        pairs = [f"{format_name(new)} = {format_name(old)}" for new, old in node.pairs]
        return "project-rename" + self.listing_texts(pairs)

    def visit_ProjectReorder(self, node: ast.ProjectReorder) -> str:
        items = []
        for i, pattern in enumerate(node.patterns):
            order = node.orders[i] if i < len(node.orders) else None
            items.append(self.text(pattern) + (f" {order}" if order else ""))
        return "project-reorder" + self.listing_texts(items)

    def visit_SortKey(self, node: ast.SortKey) -> str:
        text = self.text(node.expr) + (" desc" if node.descending else " asc")
        if node.nulls_first is not None:
            text += " nulls first" if node.nulls_first else " nulls last"
        return text

    def visit_Sort(self, node: ast.Sort) -> str:
        return "sort by" + self.listing(node.keys)

    def visit_Top(self, node: ast.Top) -> str:
        return f"top {self.text(node.count)} by {self.text(node.key)}"

    def visit_Take(self, node: ast.Take) -> str:
        return "take " + self.text(node.count)

    def visit_Sample(self, node: ast.Sample) -> str:
        return "sample " + self.text(node.count)

    def visit_Distinct(self, node: ast.Distinct) -> str:
        return "distinct *" if node.star else "distinct" + self.listing(node.items)

    def visit_Count(self, node: ast.Count) -> str:
        return "count" if node.name == "Count" else f"count as {format_name(node.name)}"

    def visit_Summarize(self, node: ast.Summarize) -> str:
        text = "summarize"
        if node.aggregates:
            text += self.listing(node.aggregates)
        if node.by and "\n" in text:
            with self.indented():  # under a broken aggregate list, "by" starts its own line
                text += self.newline() + "by" + self.listing(node.by)
        elif node.by:
            text += " by" + self.listing(node.by)
        return text

    def visit_JoinCondition(self, node: ast.JoinCondition) -> str:
        if node.left == node.right:
            return format_name(node.left)
        return f"$left{_member_suffix(node.left)} == $right{_member_suffix(node.right)}"

    def visit_Join(self, node: ast.Join) -> str:
        words = ["join"]
        if node.kind != "innerunique":
            words.append(f"kind={node.kind}")
        words += [_hint(key, value) for key, value in node.hints]
        words += [self.table_side(node.right), "on", self.joined(node.on)]
        return " ".join(words)

    def visit_Lookup(self, node: ast.Lookup) -> str:
        words = ["lookup"]
        if node.kind != "leftouter":
            words.append(f"kind={node.kind}")
        words += [self.table_side(node.right), "on", self.joined(node.on)]
        return " ".join(words)

    def visit_Union(self, node: ast.Union) -> str:
        words = ["union"]
        if node.kind != "outer":
            words.append(f"kind={node.kind}")
        if node.withsource is not None:
            words.append(f"withsource={format_name(node.withsource)}")
        if node.isfuzzy:
            words.append("isfuzzy=true")
        words.append(", ".join(self.table_side(t, wildcard=True) for t in node.tables))
        return " ".join(words)

    def visit_MvExpandItem(self, node: ast.MvExpandItem) -> str:
        text = self.text(node.expr)
        if node.name is not None:
            text = f"{format_name(node.name)} = {text}"
        if node.to_type is not None:
            text += f" to typeof({node.to_type})"
        return text

    def expand_head(self, name: str, node: ast.MvExpand | ast.MvApply) -> list[str]:
        """What mv-expand and mv-apply print alike: options, the items, and ``limit``."""
        words = [name]
        if node.bagexpansion is not None:
            words.append(f"bagexpansion={format_name(node.bagexpansion)}")
        if node.with_itemindex is not None:
            words.append(f"with_itemindex={format_name(node.with_itemindex)}")
        words.append(self.joined(node.items))
        if node.limit is not None:
            words.append("limit " + self.text(node.limit))
        return words

    def visit_MvExpand(self, node: ast.MvExpand) -> str:
        return " ".join(self.expand_head("mv-expand", node))

    def visit_MvApply(self, node: ast.MvApply) -> str:
        words = self.expand_head("mv-apply", node)
        # the subquery's source is the parser's placeholder: only its operators are written
        with self.indented():
            ops = [self.text(op) for op in node.subquery.ops]
            inner = self.newline()
        body = inner + (inner + "| ").join(ops)
        return " ".join(words) + f" on ({body}{self.newline()})"

    def visit_Partition(self, node: ast.Partition) -> str:
        words = ["partition", *(_hint(key, value) for key, value in node.hints)]
        words += ["by", format_name(node.column)]
        if node.source_query is not None:
            with self.indented():
                inner = self.newline()
                body = self.text(node.source_query)
            return " ".join(words) + " {" + inner + body + self.newline() + "}"
        assert node.subquery is not None
        with self.indented():
            ops = [self.text(op) for op in node.subquery.ops]
            inner = self.newline()
        body = inner + (inner + "| ").join(ops)
        return " ".join(words) + f" ({body}{self.newline()})"

    def visit_ParseColumn(self, node: ast.ParseColumn) -> str:
        if node.name == "*":
            return "*"
        name = format_name(node.name)
        return name if node.type == "string" else f"{name}:{node.type}"

    def visit_Parse(self, node: ast.Parse) -> str:
        words = ["parse-where" if node.filter_rows else "parse"]
        if node.kind != "simple":
            words.append(f"kind={node.kind}")
        if node.flags:
            words.append(f"flags={format_name(node.flags)}")
        words += [self.text(node.source), "with"]
        words += [quote_string(p) if isinstance(p, str) else self.text(p) for p in node.parts]
        return " ".join(words)

    def visit_As(self, node: ast.As) -> str:
        return "as " + format_name(node.name)

    def visit_Serialize(self, node: ast.Serialize) -> str:
        return "serialize" + self.listing(node.items) if node.items else "serialize"

    def visit_Render(self, node: ast.Render) -> str:
        return "render " + format_name(node.visualization)

    def visit_Getschema(self, node: ast.Getschema) -> str:
        return "getschema"

    def visit_Invoke(self, node: ast.Invoke) -> str:
        return "invoke " + self.text(node.call)

    def visit_Evaluate(self, node: ast.Evaluate) -> str:
        words = ["evaluate", *(_hint(key, value) for key, value in node.hints)]
        text = " ".join([*words, self.text(node.call)])
        if node.schema is None:
            return text
        items = ["*"] if node.schema_star else []
        items += [f"{format_name(name)}:{ktype}" for name, ktype in node.schema]
        return f"{text} : ({', '.join(items)})"

    def visit_TopNestedLevel(self, node: ast.TopNestedLevel) -> str:
        words = ["top-nested"]
        if node.count is not None:
            words.append(self.text(node.count))
        words += ["of", self.text(node.value)]
        if node.others is not None:
            words += ["with others =", self.text(node.others)]
        words += ["by", self.text(node.aggregate)]
        if not node.descending:
            words.append("asc")
        return " ".join(words)

    def visit_TopNested(self, node: ast.TopNested) -> str:
        return ", ".join(self.text(level) for level in node.levels)

    def visit_MakeSeries(self, node: ast.MakeSeries) -> str:
        series = []
        for i, agg in enumerate(node.aggregates):
            default = node.defaults[i] if i < len(node.defaults) else None
            series.append(
                self.text(agg) + ("" if default is None else f" default={self.text(default)}")
            )
        words = ["make-series", ", ".join(series), "on", self.text(node.on)]
        if node.start is not None:
            words += ["from", self.text(node.start)]
        if node.stop is not None:
            words += ["to", self.text(node.stop)]
        words += ["step", self.text(node.step)]
        if node.by:
            words += ["by", self.joined(node.by)]
        return " ".join(words)

    def visit_Search(self, node: ast.Search) -> str:
        words = ["search"]
        if node.tables:
            words.append("in (" + ", ".join(map(format_pattern, node.tables)) + ")")
        words.append(self.text(node.predicate))
        return " ".join(words)

    def visit_OtherOp(self, node: ast.OtherOp) -> str:
        # the stored source text, verbatim: re-parsing must slice out exactly the same text
        return f"{node.name} {node.text}" if node.text else node.name

    # --- scalar expressions ---------------------------------------------------------------------

    def visit_Literal(self, node: ast.Literal) -> str:
        if node.type == "dynamic" and node.value is not None:
            return f"dynamic({self.json_text(node.value)})"
        return format_literal(node)

    def json_text(self, value: object) -> str:
        """A dynamic value; a long array or property bag has one element per indented line."""
        inline = _format_json(value)
        if len(inline) <= MAX_INLINE or not isinstance(value, list | tuple | dict) or not value:
            return inline
        with self.indented():
            if isinstance(value, dict):
                items = [f"{quote_string(str(k))}: {self.json_text(v)}" for k, v in value.items()]
            else:
                items = [self.json_text(v) for v in value]
            brk = self.newline()
        opening, closing = "{}" if isinstance(value, dict) else "[]"
        return opening + ",".join(brk + item for item in items) + self.newline() + closing

    def visit_Name(self, node: ast.Name) -> str:
        return format_name(node.name)

    def visit_Star(self, node: ast.Star) -> str:
        return "*"

    def visit_Member(self, node: ast.Member) -> str:
        return self.operand(node.target, _POSTFIX) + _member_suffix(node.name)

    def visit_Index(self, node: ast.Index) -> str:
        return f"{self.operand(node.target, _POSTFIX)}[{self.text(node.index)}]"

    def visit_Call(self, node: ast.Call) -> str:
        return node.name + self.parenthesised(node.args)

    def visit_BinaryOp(self, node: ast.BinaryOp) -> str:
        if node.op in ("and", "or"):
            return self.logic_chain(node)
        # left-associative: an equally strong operator needs parentheses only on the right
        precedence = _BINARY_PRECEDENCE.get(node.op, _CMP)
        left = self.operand(node.left, precedence)
        right = self.operand(node.right, precedence + 1)
        return f"{left} {node.op} {right}"

    def logic_chain(self, node: ast.BinaryOp) -> str:
        """``a and b and c`` on one line, or, when long, each further operand on its own
        indented line starting with the operator."""
        precedence = _BINARY_PRECEDENCE[node.op]
        # and/or are associative: (a and b) and c, a and (b and c) print as a and b and c, which
        # parses back to the same (balanced) tree: see ast.logic_chain
        operands = ast.logic_operands(node, node.op)
        with self.indented():
            texts = [self.operand(e, precedence + 1) for e in operands]
            brk = self.newline()
        inline = f" {node.op} ".join(texts)
        if len(inline) <= MAX_INLINE and "\n" not in inline:
            return inline
        return texts[0] + "".join(f"{brk}{node.op} {text}" for text in texts[1:])

    def visit_UnaryOp(self, node: ast.UnaryOp) -> str:
        return node.op + self.operand(node.operand, _UNARY)

    def visit_InList(self, node: ast.InList) -> str:
        return f"{self.operand(node.target, _CMP)} {node.op} {self.parenthesised(node.items)}"

    def visit_Between(self, node: ast.Between) -> str:
        op = "!between" if node.negated else "between"
        bounds = f"({self.text(node.low)} .. {self.text(node.high)})"
        return f"{self.operand(node.target, _CMP)} {op} {bounds}"

    def visit__TabularAsExpr(self, node: TabularAsExpr) -> str:
        return self.parenthesised([node.query])


def print_query(query: ast.Query) -> str:
    """Print a whole query as canonical KQL.

    Args:
        query: a tree from :func:`trustwatch.kql.parser.parse_query` (or built by hand).

    Returns:
        The text, without a trailing newline: ``let`` statements one per line ending with
        ``;``, then the tabular statements separated by ``;`` and a newline, each pipe operator
        on its own line. Parsing it gives back a tree equal to ``query``.
    """
    return deep.call(Printer().text, query)


def print_expression(expr: ast.Expr) -> str:
    """Print one scalar expression as canonical KQL, with only the parentheses it needs."""
    return deep.call(Printer().text, expr)
