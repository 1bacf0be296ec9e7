"""Which columns a converted query reads that trustwatch's ingest of Windows logs never fills.

The Microsoft XDR pipeline maps Sigma fields to Defender columns, and some of those columns
have no source in a Sysmon or Security event (``ProcessVersionInfoFileDescription`` for a file
event, ``InitiatingProcessParentFileName``...). Such a rule runs, but can match EVTX data only
through its other conditions: the hunt says so. A column counts as filled when one of the
shipped field maps (``ingest/maps/*.yaml``) writes it, when it is an ``InitiatingProcess*``
column filled from the process-creation event (``maps/enrich.yaml``), or when it is one of the
time columns every ingested row gets. Data read from Defender or Sentinel exports fills every
column it has; the notice is about event logs.
"""

from __future__ import annotations

import json
from functools import cache

from trustwatch import compiled
from trustwatch.errors import TrustwatchError
from trustwatch.ingest import normalize
from trustwatch.kql import ast
from trustwatch.kql.parser import parse_query
from trustwatch.schema.model import builtin_schemas

ALWAYS = ("TimeGenerated", "Timestamp", "Type")  # set on every ingested row (ingest.finish)


@cache
def filled_columns() -> dict[str, frozenset[str]]:
    """Table -> the columns the shipped field maps fill (cached with the compiled content)."""
    text = compiled.cached_text("sigma-filled", ["v1"], _build)
    return {table: frozenset(columns) for table, columns in json.loads(text).items()}


def _build() -> str:
    schemas = builtin_schemas()
    enrich = normalize.enrich_columns()
    filled: dict[str, set[str]] = {}
    for m in normalize.field_maps():
        _, columns = m.compile("_tw_sigma_probe")
        names = {name for name, _ in columns}
        out = filled.setdefault(m.target, set(ALWAYS))
        out.update(n for n in names if not n.startswith("_"))
        schema = schemas[m.target]
        if "_pguid" in names or m.link_by_process_id:
            out.update(t for t in enrich if schema.column(t) is not None)
    return json.dumps({t: sorted(c) for t, c in sorted(filled.items())})


def columns_read(query: str) -> tuple[str, list[str]]:
    """The table a converted query reads and the columns of it the query names, in order.

    Returns ``("", [])`` when the query does not parse (the compile check reports that).
    """
    try:
        tree = parse_query(query, "<sigma>")
    except TrustwatchError:
        return "", []
    tables = [n.name for n in tree.walk() if isinstance(n, ast.TableRef)]
    if len(tables) != 1 or tables[0] not in builtin_schemas():
        return "", []
    schema = builtin_schemas()[tables[0]]
    names: list[str] = []
    for node in tree.walk():
        if isinstance(node, ast.Name) and node.name not in names and schema.column(node.name):
            names.append(node.name)
    return tables[0], names


def unfilled(query: str) -> tuple[str, list[str]]:
    """The query's table and the columns it reads that no ingest of Windows logs fills."""
    table, names = columns_read(query)
    if not table:
        return "", []
    filled = filled_columns().get(table, frozenset())
    return table, [n for n in names if n not in filled]
