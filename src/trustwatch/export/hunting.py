"""A rule's query as Defender XDR advanced hunting can run it: ``TimeGenerated`` from ``Timestamp``.

trustwatch's Defender tables are the Sentinel copies (``schema/tables``, ``product: defender``):
Log Analytics adds ``TenantId``, ``TimeGenerated``, ``SourceSystem`` and ``Type`` to them, and
the rules filter, group and order on ``TimeGenerated``. Advanced hunting has ``Timestamp`` only
(``../shared/reference/mde_schema.json``), so such a query fails there. Each Defender table the
query reads is bound to a ``let`` that adds the column::

    let tw_DeviceProcessEvents = DeviceProcessEvents | extend TimeGenerated = Timestamp;

and the query reads the ``let`` instead: the table names are replaced at the spans the parser
reports, so the query's comments and layout are kept. Nothing changes for a query that never
names ``TimeGenerated``. A ``let`` never shadows its table (``let T = T | ...``): that Kusto
resolves the inner ``T`` to the table is not verified. In the scenarios' Defender data (and in
trustwatch's ingest of Defender's own records) ``TimeGenerated`` is the event time, equal to
``Timestamp``, so the rewritten query returns the rows the original returns in Sentinel.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trustwatch.errors import TrustwatchError
from trustwatch.kql import ast
from trustwatch.kql.lexer import tokenize
from trustwatch.kql.parser import parse_query
from trustwatch.kql.tokens import TokenType
from trustwatch.schema.model import TableSchema, builtin_schemas

#: the columns Log Analytics adds to its copies of the advanced hunting tables
#: (``../shared/reference/mde_schema_notes.md``, "Sentinel vs. AH differences")
LOG_ANALYTICS_COLUMNS = frozenset({"TenantId", "TimeGenerated", "SourceSystem", "Type"})
TIME_GENERATED = "TimeGenerated"
TIMESTAMP = "Timestamp"
LET_PREFIX = "tw_"


@dataclass(frozen=True, slots=True)
class HuntingQuery:
    """A query rewritten for advanced hunting, and what was done to it."""

    text: str
    tables: tuple[str, ...] = ()  # tables bound to a let, in the order the query first reads them
    kept: tuple[str, ...] = ()  # Defender tables read but left alone (the query binds the name)


def hunting_schema(schema: TableSchema) -> TableSchema:
    """``schema`` without the columns Log Analytics adds (advanced hunting's columns)."""
    columns = tuple(c for c in schema.columns if c.name not in LOG_ANALYTICS_COLUMNS)
    return TableSchema(schema.name, columns, schema.product, schema.doc)


def hunting_schemas() -> dict[str, TableSchema]:
    """The Defender tables (``product: defender``) as advanced hunting has them."""
    return {
        name: hunting_schema(schema)
        for name, schema in builtin_schemas().items()
        if schema.product == "defender"
    }


def rebound_tables(schemas: Mapping[str, TableSchema] | None = None) -> frozenset[str]:
    """Tables a query naming ``TimeGenerated`` reads through a let: advanced hunting's tables
    that have ``Timestamp`` and lack ``TimeGenerated``."""
    found = hunting_schemas() if schemas is None else schemas
    return frozenset(
        name
        for name, schema in found.items()
        if schema.column(TIMESTAMP) is not None and schema.column(TIME_GENERATED) is None
    )


def hunting_session(tables: Mapping[str, Any] | None = None) -> Any:
    """A :class:`trustwatch.api.Session` whose catalog holds advanced hunting's tables only
    (their columns without ``TimeGenerated``; no Sentinel table, no watchlist), with ``tables``
    (name -> data) loaded."""
    from trustwatch.api import Session

    schemas = hunting_schemas()
    session = Session(tables, schemas=schemas)
    for name in [n for n in session.catalog if n not in schemas]:
        del session.catalog[name]
    return session


@functools.cache
def hunting_catalog() -> Any:
    """One :func:`hunting_session` without data, kept for compiling exported queries."""
    return hunting_session()


def mentions_time_generated(query: str) -> bool:
    """Does ``query`` name ``TimeGenerated`` (a word, or a string such as ``['TimeGenerated']``)?
    Comments do not count. A text that does not tokenize counts as not naming it."""
    try:
        tokens = tokenize(query)
    except TrustwatchError:
        return False
    return any(
        (t.type is TokenType.IDENT and t.text == TIME_GENERATED)
        or (t.type is TokenType.STRING and t.value == TIME_GENERATED)
        for t in tokens
    )


def _bound_names(tree: ast.Query) -> set[str]:
    """Every name the query binds itself: lets (also inside functions) and parameters."""
    return {node.name for node in tree.walk() if isinstance(node, ast.Let | ast.Parameter)}


def _words(query: str) -> set[str]:
    return {t.text for t in tokenize(query) if t.type is TokenType.IDENT}


def hunting_query(query: str, schemas: Mapping[str, TableSchema] | None = None) -> HuntingQuery:
    """``query`` as advanced hunting can run it (see the module's doc); unchanged when it does
    not name ``TimeGenerated``, reads no table to rebind, or does not parse."""
    if not mentions_time_generated(query):
        return HuntingQuery(query)
    try:
        tree = parse_query(query)
    except TrustwatchError:
        return HuntingQuery(query)
    rebound = rebound_tables(schemas)
    bound = _bound_names(tree)
    references: dict[int, tuple[int, str]] = {}  # start -> (end, table)
    kept: set[str] = set()
    for node in tree.walk():
        # a table is a TableRef, or a Name where a call takes a table (materialize(T))
        if not isinstance(node, ast.TableRef | ast.Name) or node.name not in rebound:
            continue
        written = query[node.span.start : node.span.end]
        if node.name in bound or written not in (node.name, f"['{node.name}']", f'["{node.name}"]'):
            kept.add(node.name)
            continue
        references[node.span.start] = (node.span.end, node.name)
    if not references:
        return HuntingQuery(query, kept=tuple(sorted(kept)))
    words = _words(query)
    names: dict[str, str] = {}
    parts: list[str] = []
    position = 0
    for start in sorted(references):
        end, table = references[start]
        if start < position:  # overlapping spans: never expected, never spliced twice
            continue
        if table not in names:
            name = LET_PREFIX + table
            while name in words:
                name += "_"
            names[table] = name
        parts += [query[position:start], names[table]]
        position = end
    parts.append(query[position:])
    lets = "".join(
        f"let {name} = {table} | extend {TIME_GENERATED} = {TIMESTAMP};\n"
        for table, name in names.items()
    )
    return HuntingQuery(lets + "".join(parts), tuple(names), tuple(sorted(kept - set(names))))
