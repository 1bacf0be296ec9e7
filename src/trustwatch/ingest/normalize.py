"""Field maps (data files of KQL) compiled into the SQL that turns raw events into table rows.

A map names the events it takes (provider, event ids), the EventData fields it reads, the
table it writes, and a KQL pipeline over ``WinEvent`` -- the raw event's System values plus one
string column per field. The pipeline is compiled by trustwatch's own KQL compiler, so the
mapping rules read like the detections they feed, and run vectorised in DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

from sqlglot import exp

from trustwatch import yamlio
from trustwatch.errors import RuleFileError, TrustwatchError
from trustwatch.kql.compiler import CatalogTable, compile_query
from trustwatch.kql.parser import parse_query
from trustwatch.schema.model import Column, KqlType, TableSchema

# The System part of every raw event, as maps see it (names as in Sentinel's WindowsEvent).
SYSTEM_COLUMNS: tuple[tuple[str, KqlType], ...] = (
    ("TimeCreated", "datetime"),
    ("Provider", "string"),
    ("Channel", "string"),
    ("Computer", "string"),
    ("EventID", "int"),
    ("Version", "int"),
    ("Level", "int"),
    ("Task", "int"),
    ("Opcode", "int"),
    ("Keywords", "string"),
    ("EventRecordID", "long"),
    ("SystemUserId", "string"),
    ("SystemProcessId", "long"),
    ("SystemThreadId", "long"),
    ("EventData", "dynamic"),
)
HIDDEN: dict[str, KqlType] = {"_guid": "string", "_pguid": "string", "_file": "long"}
Stage = Literal["event", "final"]


@dataclass(frozen=True, slots=True)
class FieldMap:
    """One map: which events, which fields, which table, and its compiled form."""

    name: str
    provider: str
    event_ids: tuple[int, ...]
    target: str
    fields: tuple[str, ...]
    query: str
    stage: Stage
    origin: str
    # rows name their process only by id (no ProcessGuid): after each ingest they are filled
    # from the latest process created with that id on the device (finish.link_by_process_id)
    link_by_process_id: bool = False
    # final-stage maps: the EventData field whose value (per computer) groups the events one
    # output row is made from; an ingest rebuilds only the groups it added events to
    group_field: str | None = None

    def input_schema(self) -> TableSchema:
        columns = [Column(n, t) for n, t in SYSTEM_COLUMNS]
        columns.append(Column("_file", "long"))  # the file read: event-stage maps keep it
        columns += [Column(f, "string") for f in self.fields]
        return TableSchema("WinEvent", tuple(columns))

    def compile(self, input_sql_name: str) -> tuple[exp.Query, list[tuple[str, str]]]:
        """The SELECT producing the target rows from the input view, and its column types."""
        text = f"{prelude()}\nWinEvent\n| {self.query}"
        catalog = {"WinEvent": CatalogTable(self.input_schema(), input_sql_name)}
        try:
            result = compile_query(parse_query(text, self.origin), catalog, datetime.now(UTC))
        except TrustwatchError as exc:
            raise RuleFileError(
                f"field map {self.name} ({self.origin}) does not compile: {exc}"
            ) from exc
        statement = result.statements[-1]
        return statement.sql, list(statement.columns)


@cache
def prelude() -> str:
    return resources.files("trustwatch.ingest").joinpath("maps/prelude.kql").read_text("utf-8")


def _load_file(name: str) -> list[FieldMap]:
    text = resources.files("trustwatch.ingest").joinpath(f"maps/{name}").read_text("utf-8")
    doc: Any = yamlio.load(text)
    out = []
    system = {n.lower() for n, _ in SYSTEM_COLUMNS}
    for entry in doc.get("maps", []):
        fields = tuple(entry["fields"])
        clash = [f for f in fields if f.lower() in system]
        if clash:
            raise RuleFileError(f"field map {entry['name']}: fields {clash} clash with System")
        if entry.get("stage") == "final" and entry.get("group_field") not in fields:
            raise RuleFileError(
                f"field map {entry['name']}: a final-stage map names its group_field (one of "
                "its fields)"
            )
        out.append(
            FieldMap(
                name=entry["name"],
                provider=entry["provider"],
                event_ids=tuple(int(i) for i in entry["event_ids"]),
                target=entry["target"],
                fields=fields,
                query=entry["query"],
                stage=entry.get("stage", "event"),
                origin=f"maps/{name}",
                link_by_process_id=bool(entry.get("link_by_process_id", False)),
                group_field=entry.get("group_field"),
            )
        )
    return out


MAP_FILES = ("sysmon.yaml", "security.yaml", "powershell.yaml")


@cache
def field_maps() -> tuple[FieldMap, ...]:
    """Every shipped map; process-creation maps first (others are enriched from them)."""
    maps = [m for name in MAP_FILES for m in _load_file(name)]
    maps.sort(key=lambda m: m.target != "DeviceProcessEvents")
    return tuple(maps)


@cache
def enrich_columns() -> dict[str, str]:
    """Target InitiatingProcess* column -> DeviceProcessEvents column it is filled from."""
    text = resources.files("trustwatch.ingest").joinpath("maps/enrich.yaml").read_text("utf-8")
    columns: dict[str, str] = yamlio.load(text)["columns"]
    return columns


def mapped_event_ids() -> dict[str, set[int]]:
    """Provider -> the event ids some map takes (the rest are counted as unmapped)."""
    out: dict[str, set[int]] = {}
    for m in field_maps():
        out.setdefault(m.provider, set()).update(m.event_ids)
    return out
