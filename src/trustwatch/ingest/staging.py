"""SQL for the raw-event store: staging a batch of evtx-style JSON documents, and the Sentinel
views (Event, WindowsEvent, SecurityEvent) over the stored raw events.

Everything here is built as sqlglot trees; the fixed fragments are parsed from constant text.
"""

from __future__ import annotations

import json
from functools import cache

import sqlglot
from sqlglot import exp

from trustwatch.kql.semantics import sql_type
from trustwatch.schema.model import TableSchema, builtin_schemas

RAW = "_raw_events"

# stored raw event: column -> SQL type
RAW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_key", "UHUGEINT"),
    ("_ingest", "INTEGER"),
    ("_file", "INTEGER"),
    ("_ref", "BIGINT"),
    ("TimeCreated", "TIMESTAMP"),
    ("Provider", "VARCHAR"),
    ("ProviderGuid", "VARCHAR"),
    ("Channel", "VARCHAR"),
    ("Computer", "VARCHAR"),
    ("EventID", "INTEGER"),
    ("Qualifiers", "INTEGER"),
    ("Version", "INTEGER"),
    ("Level", "INTEGER"),
    ("Task", "INTEGER"),
    ("Opcode", "INTEGER"),
    ("Keywords", "VARCHAR"),
    ("EventRecordID", "BIGINT"),
    ("SystemUserId", "VARCHAR"),
    ("SystemProcessId", "BIGINT"),
    ("SystemThreadId", "BIGINT"),
    ("EventData", "JSON"),
    ("UserData", "JSON"),
)

# How each stored column is read from the System object (s) of a document.
_SYSTEM_SQL = {
    "TimeCreated": "TRY_CAST(TRY_CAST(s->>'$.TimeCreated.\"#attributes\".SystemTime' "
    "AS TIMESTAMPTZ) AS TIMESTAMP)",
    "Provider": "COALESCE(s->>'$.Provider.\"#attributes\".Name', '')",
    "ProviderGuid": "upper(trim(COALESCE(s->>'$.Provider.\"#attributes\".Guid', ''), '{}'))",
    "Channel": "COALESCE(s->>'$.Channel', '')",
    "Computer": "COALESCE(s->>'$.Computer', '')",
    "EventID": "COALESCE(TRY_CAST(s->>'$.EventID' AS INTEGER), "
    "TRY_CAST(s->>'$.EventID.\"#text\"' AS INTEGER))",
    "Qualifiers": "TRY_CAST(s->>'$.EventID.\"#attributes\".Qualifiers' AS INTEGER)",
    "Version": "TRY_CAST(s->>'$.Version' AS INTEGER)",
    "Level": "TRY_CAST(s->>'$.Level' AS INTEGER)",
    "Task": "TRY_CAST(s->>'$.Task' AS INTEGER)",
    "Opcode": "TRY_CAST(s->>'$.Opcode' AS INTEGER)",
    "Keywords": "COALESCE(s->>'$.Keywords', '')",
    "EventRecordID": "TRY_CAST(s->>'$.EventRecordID' AS BIGINT)",
    "SystemUserId": "COALESCE(s->>'$.Security.\"#attributes\".UserID', '')",
    "SystemProcessId": "TRY_CAST(s->>'$.Execution.\"#attributes\".ProcessID' AS BIGINT)",
    "SystemThreadId": "TRY_CAST(s->>'$.Execution.\"#attributes\".ThreadID' AS BIGINT)",
}


def _sql(text: str) -> exp.Expr:
    return sqlglot.parse_one(text, dialect="duckdb")


def stage_query(batch_view: str, ingest: int, file_id: int) -> exp.Query:
    """One row per document: the stored columns, or a reason when it cannot be stored."""
    parts = exp.Select(
        expressions=[
            exp.column("ref"),
            exp.column("doc"),
            _sql(
                "CASE WHEN json_valid(doc) THEN json_extract(doc, "
                "['$.Event.System', '$.Event.EventData', '$.Event.UserData']) END"
            ).as_("p"),
        ]
    ).from_(exp.to_table(batch_view))
    split = exp.Select(
        expressions=[
            exp.column("ref"),
            exp.column("doc"),
            _sql("p[1]").as_("s"),
            _sql("p[2]").as_("ed"),
            _sql("p[3]").as_("ud"),
        ]
    ).from_(parts.subquery("parts"))
    columns: list[exp.Expr] = [
        exp.Literal.number(ingest).as_("_ingest"),
        exp.Literal.number(file_id).as_("_file"),
        exp.column("ref").as_("_ref"),
    ]
    columns += [_sql(sql).as_(name) for name, sql in _SYSTEM_SQL.items()]
    columns += [
        _sql("CASE WHEN json_type(ed) = 'NULL' THEN NULL ELSE ed END").as_("EventData"),
        _sql("CASE WHEN json_type(ud) = 'NULL' THEN NULL ELSE ud END").as_("UserData"),
        exp.column("doc"),
        _sql(
            "CASE WHEN s IS NULL OR json_type(s) <> 'OBJECT' THEN 'not a Windows event "
            "(no Event.System object, or not JSON)' "
            "WHEN s->>'$.TimeCreated.\"#attributes\".SystemTime' IS NULL THEN "
            "'event has no System/TimeCreated' END"
        ).as_("_reason"),
    ]
    staged = exp.Select(expressions=columns).from_(split.subquery("split"))
    return exp.Select(
        expressions=[
            exp.Star(),
            _sql(
                "md5_number(concat_ws('|', Computer, Channel, Provider, EventID, EventRecordID, "
                "strftime(TimeCreated, '%Y-%m-%dT%H:%M:%S.%f'), "
                "CASE WHEN EventRecordID IS NULL THEN _ref || ':' || "
                "md5(COALESCE(CAST(EventData AS VARCHAR), CAST(UserData AS VARCHAR), doc)) END))"
            ).as_("_key"),
        ]
    ).from_(staged.subquery("staged"))


def create_raw() -> exp.Create:
    return _create(RAW, RAW_COLUMNS)


def _create(name: str, columns: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> exp.Create:
    """CREATE TABLE IF NOT EXISTS; text columns default to "" (KQL strings are never null)."""
    defs = []
    for n, t in columns:
        kind = exp.DataType.build(t)
        constraints = []
        if kind.this in (exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT):
            constraints.append(
                exp.ColumnConstraint(kind=exp.DefaultColumnConstraint(this=exp.Literal.string("")))
            )
        defs.append(
            exp.ColumnDef(
                this=exp.to_identifier(n, quoted=True), kind=kind, constraints=constraints
            )
        )
    return exp.Create(
        this=exp.Schema(this=exp.to_table(name, quoted=True), expressions=defs),
        kind="TABLE",
        exists=True,
    )


HIDDEN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_key", "UHUGEINT"),
    ("_ingest", "INTEGER"),
    ("_file", "INTEGER"),
    ("_ref", "BIGINT"),
    ("_map", "VARCHAR"),
    ("_guid", "VARCHAR"),
    ("_pguid", "VARCHAR"),
)


def create_stored(schema: TableSchema) -> exp.Create:
    """A stored table: the documented columns with their types, then the hidden ones."""
    columns = [(c.name, sql_type(c.type).sql("duckdb")) for c in schema.columns]
    return _create(schema.name, [*columns, *HIDDEN_COLUMNS])


def field_input(
    fresh: str, provider: str, event_ids: tuple[int, ...], fields: tuple[str, ...]
) -> exp.Query:
    """The rows a map reads: its events, System columns, and each field as text ("" if absent)."""
    spec = json.dumps({f: "VARCHAR" for f in fields})
    inner = (
        exp.Select(
            expressions=[
                exp.Star(),
                exp.Anonymous(
                    this="json_transform",
                    expressions=[exp.column("EventData"), exp.Literal.string(spec)],
                ).as_("_f"),
            ]
        )
        .from_(exp.to_table(fresh))
        .where(
            exp.and_(
                # provider and channel names are not case-sensitive in Windows
                exp.EQ(
                    this=exp.Lower(this=exp.column("Provider")),
                    expression=exp.Literal.string(provider.lower()),
                ),
                exp.In(
                    this=exp.column("EventID"),
                    expressions=[exp.Literal.number(i) for i in event_ids],
                ),
            )
        )
    )
    columns: list[exp.Expr] = [exp.column(c) for c, _ in RAW_COLUMNS if c != "UserData"]
    for f in fields:
        value = exp.Dot(this=exp.column("_f"), expression=exp.to_identifier(f, quoted=True))
        columns.append(
            exp.Coalesce(this=value, expressions=[exp.Literal.string("")]).as_(
                exp.to_identifier(f, quoted=True)
            )
        )
    return exp.Select(expressions=columns).from_(inner.subquery("_in"))


@cache
def sentinel_views() -> dict[str, exp.Query]:
    """Event (legacy agent), WindowsEvent (AMA) and SecurityEvent over the stored raw events."""
    schemas = builtin_schemas()
    return {
        "Event": _view(schemas["Event"], _EVENT, security=False),
        "WindowsEvent": _view(schemas["WindowsEvent"], _WINDOWS_EVENT, security=False),
        "SecurityEvent": _view(schemas["SecurityEvent"], _SECURITY_EVENT, security=True),
    }


_XML = (
    "replace(replace(replace(replace({}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '\"', '&quot;')"
)
_XML_KEY = _XML.format("k")
_XML_VALUE = _XML.format("COALESCE(json_extract_string(EventData, k), '')")
# unnamed <Data> elements (classic providers), which evtx gives as {"Data": {"#text": [...]}}
_UNNAMED = (
    "array_to_string(list_transform(CASE WHEN json_type(json_extract(EventData, k), '#text') = "
    "'ARRAY' "
    "THEN CAST(json_extract(json_extract(EventData, k), '#text') AS VARCHAR[]) "
    "ELSE [json_extract_string(json_extract(EventData, k), '#text')] END, "
    f"v -> '<Data>' || {_XML.format('COALESCE(v, chr(0))').replace('chr(0)', chr(39) * 2)} || "
    "'</Data>'), '')"
)
_COMMON = {
    "TimeGenerated": "TimeCreated",
    "Computer": "Computer",
    "EventID": "EventID",
    "SourceSystem": "'OpsManager'",
}
_EVENT = {
    **_COMMON,
    "Source": "Provider",
    "EventLog": "Channel",
    "EventLevel": "Level",
    "EventLevelName": "CASE Level WHEN 1 THEN 'Critical' WHEN 2 THEN 'Error' WHEN 3 THEN "
    "'Warning' WHEN 4 THEN 'Information' WHEN 5 THEN 'Verbose' ELSE '' END",
    "EventCategory": "Task",
    "UserName": "SystemUserId",
    "Type": "'Event'",
    "EventData": '\'<DataItem type="System.XmlData" time="\' || strftime(TimeCreated, '
    "'%Y-%m-%dT%H:%M:%S.%fZ') || '\"><EventData xmlns=\"http://schemas.microsoft.com/win/2004"
    "/08/events/event\">' || COALESCE(array_to_string(list_transform(json_keys(EventData), "
    "k -> CASE WHEN json_type(json_extract(EventData, k)) = 'OBJECT' AND "
    "json_extract(json_extract(EventData, k), '#text') IS NOT NULL "
    f"THEN {_UNNAMED} ELSE '<Data Name=\"' || {_XML_KEY} || '\">' || {_XML_VALUE} || "
    "'</Data>' END), ''), '') || '</EventData></DataItem>'",
}
_WINDOWS_EVENT = {
    **_COMMON,
    "SourceSystem": "'Windows'",
    "Provider": "Provider",
    "Channel": "Channel",
    "Task": "Task",
    "EventLevel": "Level",
    "EventLevelName": _EVENT["EventLevelName"],
    "SystemUserId": "SystemUserId",
    "Version": "Version",
    "Opcode": "CAST(Opcode AS VARCHAR)",
    "Keywords": "Keywords",
    "SystemProcessId": "SystemProcessId",
    "SystemThreadId": "SystemThreadId",
    "EventRecordId": "CAST(EventRecordID AS VARCHAR)",
    "EventData": "COALESCE(EventData, UserData)",
    "TimeCreated": "TimeCreated",
    "Type": "'WindowsEvent'",
}
_SECURITY_EVENT = {
    **_COMMON,
    "SourceSystem": "'OpsManager'",
    "EventSourceName": "Provider",
    "Channel": "Channel",
    "Task": "Task",
    "Level": "CAST(Level AS VARCHAR)",
    "Keywords": "Keywords",
    "EventRecordId": "CAST(EventRecordID AS VARCHAR)",
    "SystemProcessId": "SystemProcessId",
    "SystemThreadId": "SystemThreadId",
    "SystemUserId": "SystemUserId",
    "Account": "CASE WHEN COALESCE(EventData->>'SubjectUserName', '') = '' THEN '' ELSE "
    "COALESCE(EventData->>'SubjectDomainName', '') || '\\' || (EventData->>'SubjectUserName') END",
    "Process": "regexp_extract(COALESCE(EventData->>'NewProcessName', "
    "EventData->>'ProcessName', ''), '([^\\\\]*)$', 1)",
    "Type": "'SecurityEvent'",
}


def _view(schema: TableSchema, known: dict[str, str], *, security: bool) -> exp.Query:
    columns: list[exp.Expr] = []
    for col in schema.columns:
        target = sql_type(col.type)
        source = known.get(col.name)
        if source is not None:
            value: exp.Expr = _sql(source)
        elif security:  # Security events promote their EventData fields to columns
            value = exp.JSONExtractScalar(
                this=exp.column("EventData"), expression=exp.Literal.string(col.name)
            )
        else:
            value = exp.null()
        if col.type in ("string",):
            value = exp.Coalesce(
                this=exp.Cast(this=value, to=target), expressions=[exp.Literal.string("")]
            )
        elif col.type == "dynamic":
            value = exp.Cast(this=value, to=target)
        else:
            value = exp.TryCast(this=value, to=target)
        columns.append(value.as_(exp.to_identifier(col.name, quoted=True)))
    channel = exp.EQ(
        this=exp.Lower(this=exp.column("Channel")), expression=exp.Literal.string("security")
    )
    where = channel if security else exp.Not(this=channel)
    return exp.Select(expressions=columns).from_(exp.to_table(RAW)).where(where)
