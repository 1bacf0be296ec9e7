"""SQL for the raw-event store: staging a batch of evtx-style JSON documents, and the Sentinel
views (Event, WindowsEvent, SecurityEvent) over the stored raw events.

Everything here is built as sqlglot trees; the fixed fragments are parsed from constant text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache

import sqlglot
from sqlglot import exp

from trustwatch.kql.semantics import sql_type
from trustwatch.schema.model import TableSchema, builtin_schemas

RAW = "_raw_events"

# stored raw event: column -> SQL type
RAW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_key", "UBIGINT"),
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
    ("EventData", "VARCHAR"),  # JSON text, parsed only by the maps and views that read it
    ("UserData", "VARCHAR"),
)

# Every value the store keeps, by its JSON path in the document; read in one pass.
_PATHS: tuple[tuple[str, str], ...] = (
    ("SystemTime", '$.Event.System.TimeCreated."#attributes".SystemTime'),
    ("Provider", '$.Event.System.Provider."#attributes".Name'),
    ("ProviderGuid", '$.Event.System.Provider."#attributes".Guid'),
    ("Channel", "$.Event.System.Channel"),
    ("Computer", "$.Event.System.Computer"),
    ("EventID", "$.Event.System.EventID"),
    ("EventIDText", '$.Event.System.EventID."#text"'),
    ("Qualifiers", '$.Event.System.EventID."#attributes".Qualifiers'),
    ("Version", "$.Event.System.Version"),
    ("Level", "$.Event.System.Level"),
    ("Task", "$.Event.System.Task"),
    ("Opcode", "$.Event.System.Opcode"),
    ("Keywords", "$.Event.System.Keywords"),
    ("EventRecordID", "$.Event.System.EventRecordID"),
    ("SystemUserId", '$.Event.System.Security."#attributes".UserID'),
    ("SystemProcessId", '$.Event.System.Execution."#attributes".ProcessID'),
    ("SystemThreadId", '$.Event.System.Execution."#attributes".ThreadID'),
    ("EventData", "$.Event.EventData"),
    ("UserData", "$.Event.UserData"),
)
_AT = {name: i + 1 for i, (name, _) in enumerate(_PATHS)}


def _v(name: str) -> str:
    """The extracted value ``name`` (``v[i]`` once parsed by :func:`_sql`)."""
    return f"{_V}{_AT[name]}"


_V = "_tw_v"  # the text's stand-in for ``v[i]`` (see _sql)


# How each stored column is made from the extracted values (v).
_COLUMN_SQL = {
    "TimeCreated": f"TRY_CAST(TRY_CAST({_v('SystemTime')} AS TIMESTAMPTZ) AS TIMESTAMP)",
    "Provider": f"COALESCE({_v('Provider')}, '')",
    "ProviderGuid": f"upper(trim(COALESCE({_v('ProviderGuid')}, ''), '{{}}'))",
    "Channel": f"COALESCE({_v('Channel')}, '')",
    "Computer": f"COALESCE({_v('Computer')}, '')",
    "EventID": f"COALESCE(TRY_CAST({_v('EventID')} AS INTEGER), "
    f"TRY_CAST({_v('EventIDText')} AS INTEGER))",
    "Qualifiers": f"TRY_CAST({_v('Qualifiers')} AS INTEGER)",
    "Version": f"TRY_CAST({_v('Version')} AS INTEGER)",
    "Level": f"TRY_CAST({_v('Level')} AS INTEGER)",
    "Task": f"TRY_CAST({_v('Task')} AS INTEGER)",
    "Opcode": f"TRY_CAST({_v('Opcode')} AS INTEGER)",
    "Keywords": f"COALESCE({_v('Keywords')}, '')",
    "EventRecordID": f"TRY_CAST({_v('EventRecordID')} AS BIGINT)",
    "SystemUserId": f"COALESCE({_v('SystemUserId')}, '')",
    "SystemProcessId": f"TRY_CAST({_v('SystemProcessId')} AS BIGINT)",
    "SystemThreadId": f"TRY_CAST({_v('SystemThreadId')} AS BIGINT)",
    "EventData": _v("EventData"),
    "UserData": _v("UserData"),
}


def _sql(text: str) -> exp.Expr:
    """A fixed fragment as a tree; each ``_v(name)`` in it becomes ``list_extract(v, i)``.

    That is DuckDB's ``v[i]`` (1-based, NULL beyond the end), written without brackets:
    sqlglot imports its type annotator (60 ms, at every start of an ingest) to parse or
    generate the first bracket it meets.
    """

    def bracket(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name.startswith(_V):
            index = exp.Literal.number(int(node.name[len(_V) :]))
            return exp.Anonymous(this="list_extract", expressions=[exp.column("v"), index])
        return node

    return sqlglot.parse_one(text, dialect="duckdb").transform(bracket)


INGEST_VARIABLE, FILE_VARIABLE = "tw_ingest", "tw_file"  # set per ingest and per file

# An event time no real event has: Windows' zero time (1601-01-01, a FILETIME of 0) and any
# time before 1970, or more than a year after now. Such an event is stored with its time as
# logged (TimeCreated of the raw event), but the tables' Timestamp / TimeGenerated are left
# empty: a forged or zeroed time never dates an alert 1601 or stretches a hunt over centuries.
_IMPOSSIBLE = "{t} < TIMESTAMP '1970-01-01' OR {t} > CAST(now() AS TIMESTAMP) + INTERVAL 1 YEAR"


def impossible_time(value: exp.Expr) -> exp.Expr:
    """Whether the time ``value`` is impossible for an event (see ``_IMPOSSIBLE``)."""
    condition = _sql(_IMPOSSIBLE.format(t="_tw_t"))
    return condition.transform(
        lambda n: value.copy() if isinstance(n, exp.Column) and n.name == "_tw_t" else n
    )


def possible_time(value: exp.Expr) -> exp.Expr:
    """``value``, or NULL when it is an impossible event time."""
    return exp.Case(ifs=[exp.If(this=impossible_time(value), true=exp.null())], default=value)


def variable(name: str) -> exp.Expr:
    """``getvariable(name)``: a value set once (per ingest, per file) so the SQL stays fixed."""
    return exp.Anonymous(this="getvariable", expressions=[exp.Literal.string(name)])


@cache
def stage_sql(batch_view: str) -> str:
    """:func:`stage_query` as DuckDB SQL, built once per process."""
    return stage_query(batch_view).sql(dialect="duckdb")


def stage_query(batch_view: str) -> exp.Query:
    """One row per document: the stored columns, its key, or why it cannot be stored.

    The document is parsed once (one list extraction); malformed JSON gives a reason, not an
    error for the whole chunk. The ingest id comes from the variable :data:`INGEST_VARIABLE`,
    each document's file id from the chunk's ``file`` column.
    """
    paths = exp.Array(expressions=[exp.Literal.string(path) for _, path in _PATHS])
    extract = exp.Anonymous(
        this="TRY",
        expressions=[
            exp.Anonymous(this="json_extract_string", expressions=[exp.column("doc"), paths])
        ],
    )
    parts = exp.Select(
        expressions=[exp.column("ref"), exp.column("file"), exp.column("doc"), extract.as_("v")]
    ).from_(exp.to_table(batch_view))
    columns: list[exp.Expr] = [
        variable(INGEST_VARIABLE).as_("_ingest"),
        exp.column("file").as_("_file"),
        exp.column("ref").as_("_ref"),
    ]
    columns += [_sql(sql).as_(name) for name, sql in _COLUMN_SQL.items()]
    columns += [
        _sql(
            "CASE WHEN v IS NULL THEN 'not JSON' "
            f"WHEN COALESCE({_v('Provider')}, {_v('SystemTime')}, {_v('Computer')}, "
            f"{_v('Channel')}, {_v('EventID')}) IS NULL THEN "
            "'not a Windows event (no Event.System)' "
            f"WHEN {_v('SystemTime')} IS NULL THEN 'event has no System/TimeCreated' "
            f"WHEN TRY_CAST({_v('SystemTime')} AS TIMESTAMPTZ) IS NULL THEN "
            "'System/TimeCreated is not a time' END"
        ).as_("_reason"),
        _sql("CASE WHEN _reason IS NOT NULL THEN left(doc, 200) END").as_("_excerpt"),
        # without a record number, an event is told apart by its place in the file and content
        _sql(
            f"CASE WHEN TRY_CAST({_v('EventRecordID')} AS BIGINT) IS NULL THEN "
            "CAST(ref AS VARCHAR) || ':' || md5(doc) END"
        ).as_("_anon"),
    ]
    staged = exp.Select(expressions=columns).from_(parts.subquery("parts"))
    return exp.Select(
        expressions=[
            exp.Star(),
            _sql(
                "md5_number_lower(concat_ws('|', Computer, Channel, Provider, EventID, "
                "EventRecordID, epoch_us(TimeCreated), _anon))"
            ).as_("_key"),
            impossible_time(exp.column("TimeCreated")).as_("_bad_time"),
        ]
    ).from_(staged.subquery("staged"))


def create_raw() -> exp.Create:
    return create_table(RAW, RAW_COLUMNS)


def create_table(
    name: str, columns: tuple[tuple[str, str], ...] | list[tuple[str, str]]
) -> exp.Create:
    """CREATE TABLE IF NOT EXISTS; text columns default to "" (KQL strings are never null)."""
    defs = []
    for n, t in columns:
        kind = exp.DataType.build(t, dialect="duckdb")
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
    ("_key", "UBIGINT"),
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
    return create_table(schema.name, [*columns, *HIDDEN_COLUMNS])


def event_filter(provider: str, event_ids: Iterable[int]) -> exp.Expr:
    """The events of ``provider`` with one of ``event_ids`` (provider names ignore case)."""
    return exp.and_(
        exp.EQ(
            this=exp.Lower(this=exp.column("Provider")),
            expression=exp.Literal.string(provider.lower()),
        ),
        exp.In(this=exp.column("EventID"), expressions=[exp.Literal.number(i) for i in event_ids]),
    )


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
        .where(event_filter(provider, event_ids))
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
# <EventData xmlns=...><Data Name="k">v</Data>...</EventData>: the Event view wraps it in a
# <DataItem>; SecurityEvent holds it bare, as Sentinel's EventData column does for the fields
# that are not columns of its own (4885's AuditFilter, 5123's PropertyName, ...)
_EVENT_DATA_XML = (
    "'<EventData xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\">' || "
    "COALESCE(array_to_string(list_transform(json_keys(EventData), "
    "k -> CASE WHEN json_type(json_extract(EventData, k)) = 'OBJECT' AND "
    "json_extract(json_extract(EventData, k), '#text') IS NOT NULL "
    f"THEN {_UNNAMED} ELSE '<Data Name=\"' || {_XML_KEY} || '\">' || {_XML_VALUE} || "
    "'</Data>' END), ''), '') || '</EventData>'"
)
_COMMON = {
    "TimeGenerated": f"CASE WHEN {_IMPOSSIBLE.format(t='TimeCreated')} THEN NULL "
    "ELSE TimeCreated END",
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
    f"'%Y-%m-%dT%H:%M:%S.%fZ') || '\">' || {_EVENT_DATA_XML} || '</DataItem>'",
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
    "EventData": _EVENT_DATA_XML,
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
