"""Table and Column records, KQL scalar types, and loading the shipped table schemas."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal, cast

from trustwatch import yamlio
from trustwatch.errors import InputError

KqlType = Literal[
    "string", "int", "long", "real", "bool", "datetime", "timespan", "dynamic", "guid"
]
KQL_TYPES: tuple[KqlType, ...] = (
    "string",
    "int",
    "long",
    "real",
    "bool",
    "datetime",
    "timespan",
    "dynamic",
    "guid",
)


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name and KQL type."""

    name: str
    type: KqlType


@dataclass(frozen=True, slots=True)
class TableSchema:
    """A table's documented columns, in order, and where they are documented."""

    name: str
    columns: tuple[Column, ...]
    product: str = ""
    doc: str = ""

    def column(self, name: str) -> Column | None:
        """The column called ``name`` (case-sensitive, like KQL), or None."""
        for col in self.columns:
            if col.name == name:
                return col
        return None

    def with_extra_columns(self, extra: list[Column]) -> TableSchema:
        """This schema plus columns present in loaded data but not documented (kept, not lost)."""
        known = {c.name for c in self.columns}
        added = tuple(c for c in extra if c.name not in known)
        return (
            TableSchema(self.name, self.columns + added, self.product, self.doc) if added else self
        )


def suggest(name: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """A "did you mean" hint for a misspelt name, or None."""
    lowered = {c.lower(): c for c in choices}
    if name.lower() in lowered:
        return f"did you mean '{lowered[name.lower()]}'? (names are case-sensitive)"
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.75)
    if close:
        return f"did you mean '{close[0]}'?"
    # Defender prefixes many columns (AccountName -> InitiatingProcessAccountName)
    longer = [c for c in choices if c.endswith(name)]
    return f"did you mean '{longer[0]}'?" if len(longer) >= 1 and len(name) >= 4 else None


def _table_from_dict(data: dict[str, object], origin: str) -> TableSchema:
    name = data.get("name")
    raw_columns = data.get("columns")
    if not isinstance(name, str) or not isinstance(raw_columns, list):
        raise InputError(f"{origin}: a table schema needs 'name' and a 'columns' list")
    columns = []
    for entry in raw_columns:
        if not (isinstance(entry, list) and len(entry) == 2 and entry[1] in KQL_TYPES):
            raise InputError(f"{origin}: bad column entry {entry!r}; expected [name, kql type]")
        columns.append(Column(str(entry[0]), cast(KqlType, entry[1])))
    return TableSchema(name, tuple(columns), str(data.get("product", "")), str(data.get("doc", "")))


@cache
def builtin_schemas() -> dict[str, TableSchema]:
    """Every shipped table schema, by table name (read once, on first use).

    Each file's parsed YAML is kept across runs (``yamlio.load_cached``): parsing the 80-odd
    files costs tens of milliseconds, reading them back as JSON a few.
    """
    folder = resources.files("trustwatch.schema").joinpath("tables")
    schemas: dict[str, TableSchema] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            data = yamlio.load_cached(entry.read_text(encoding="utf-8"), "schema-yaml")
            table = _table_from_dict(data, f"schema/tables/{entry.name}")
            schemas[table.name] = table
    return schemas
