"""trustwatch's pySigma pipeline: Microsoft XDR's, with Sysmon's registry fields kept.

Sigma's registry rules are written against Sysmon's fields: ``TargetObject`` is the key *and*
the value name (``HKLM\\...\\ProcDump\\EulaAccepted``, ``...\\command\\(Default)``), ``Details``
the data as Sysmon prints it (``DWORD (0x00000001)``, ``QWORD (0x...-0x...)``, ``(Empty)``,
``Binary Data``). Defender's ``DeviceRegistryEvents`` - and trustwatch's ingest, which writes
Sysmon registry events the Defender way (docs/ingest.md, "Key and value apart") - keeps the key
in ``RegistryKey`` (``HKEY_LOCAL_MACHINE\\...``), the value name in ``RegistryValueName`` (empty
for the default value) and the data as ``1`` or ``""``. The Microsoft XDR pipeline maps
``TargetObject`` to ``RegistryKey`` and ``Details`` to ``RegistryValueData`` unchanged, so a
converted rule naming a value, or data, matches nothing there.

Here the two fields stay Sysmon's: a registry rule reading them is converted to

    DeviceRegistryEvents
    | extend TargetObject = <Sysmon's TargetObject from the Defender columns>
    | where TargetObject endswith "\\\\EulaAccepted"
    | project-away TargetObject

the conditions unchanged from the rule (no hive rewriting of the values either: the column is
rebuilt in Sysmon's ``HKLM``/``HKU`` form), the result the table's own columns. The ``extend``
is plain KQL, so the query runs as it is in Defender XDR and Sentinel; ``rules.fusion`` inlines
it into the predicate when rules over one table are evaluated together. The expressions are
:data:`SYSMON_COLUMNS`; docs/sigma.md ("Registry rules") says why and what they cover.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

TABLE = "DeviceRegistryEvents"

# Sysmon's TargetObject: the key in Sysmon's hive form (HKEY_LOCAL_MACHINE\ -> HKLM\, Defender's
# per-user HKEY_CURRENT_USER\<SID>\ and HKEY_USERS\ -> HKU\) and, for a value event, "\" and
# the value's name ("(Default)" for the default value, which Defender and ingest keep as an
# empty name). A key rename's is its new key (Sysmon logs the old one; no rule converts that
# reads it: the rename rules also read NewName, which the XDR pipeline does not map).
TARGET_OBJECT = (
    "strcat(case("
    'RegistryKey startswith "HKEY_LOCAL_MACHINE\\\\", strcat("HKLM", substring(RegistryKey, 18)), '
    'RegistryKey startswith "HKEY_CURRENT_USER\\\\", strcat("HKU", substring(RegistryKey, 17)), '
    'RegistryKey startswith "HKEY_USERS\\\\", strcat("HKU", substring(RegistryKey, 10)), '
    "RegistryKey), "
    'iff(ActionType in ("RegistryValueSet", "RegistryValueDeleted"), '
    'strcat("\\\\", iff(isempty(RegistryValueName), "(Default)", RegistryValueName)), ""))'
)

# Sysmon's Details (only a value set has one): DWORD and QWORD data as Sysmon prints them (in
# hexadecimal, the QWORD's high and low halves apart), "Binary Data" (Sysmon does not log the
# bytes), "(Empty)" for empty data, anything else as it is
DETAILS = (
    'iff(ActionType != "RegistryValueSet", "", case('
    'RegistryValueType =~ "Dword" and isnotnull(tolong(RegistryValueData)), '
    'strcat("DWORD (0x", tohex(tolong(RegistryValueData), 8), ")"), '
    'RegistryValueType =~ "QWord" and isnotnull(tolong(RegistryValueData)), '
    'strcat("QWORD (0x", substring(tohex(tolong(RegistryValueData), 16), 0, 8), "-0x", '
    'substring(tohex(tolong(RegistryValueData), 16), 8, 8), ")"), '
    'RegistryValueType =~ "Binary", "Binary Data", '
    'isempty(RegistryValueData), "(Empty)", '
    "RegistryValueData))"
)

SYSMON_COLUMNS: dict[str, str] = {"TargetObject": TARGET_OBJECT, "Details": DETAILS}

# PowerShell script blocks (Sigma's ps_script: Microsoft-Windows-PowerShell/Operational 4104).
# Defender has no script-block events; trustwatch's ingest writes each block as a DeviceEvents
# row with ActionType "PowerShellScriptBlock" and the event's fields in AdditionalFields
# (docs/ingest.md). A ps_script rule is converted to that table and ActionType, its two fields
# (ScriptBlockText and Path, the only ones SigmaHQ's ps_script rules read) computed from
# AdditionalFields as the registry columns are.
SCRIPT_TABLE = "DeviceEvents"
SCRIPT_ACTION = "PowerShellScriptBlock"
SCRIPT_COLUMNS: dict[str, str] = {
    name: f'iff(ActionType == "{SCRIPT_ACTION}", tostring(parse_json(AdditionalFields).{name}), "")'
    for name in ("ScriptBlockText", "Path")
}
#: table -> the Sigma fields a query over it computes (``extend``) before its conditions
COMPUTED: dict[str, dict[str, str]] = {TABLE: SYSMON_COLUMNS, SCRIPT_TABLE: SCRIPT_COLUMNS}
_MAPPING_ITEM = "microsoft_xdr_table_fieldmappings"  # the XDR item mapping fields per table
_SET_TABLE_ITEM = "microsoft_xdr_set_query_table"  # the XDR item choosing the rule's table
_UNSUPPORTED_ITEM = "microsoft_xdr_unsupported_fields_"  # + table: refuses fields not its own


def pipeline() -> Any:
    """The Microsoft XDR pipeline, its table mapping leaving ``TargetObject`` and ``Details``
    alone (only DeviceRegistryEvents maps them), and the registry rules' ``extend``; ps_script
    rules read trustwatch's script-block rows of DeviceEvents (:data:`SCRIPT_COLUMNS`)."""
    from sigma.pipelines.kusto_common.errors import InvalidFieldTransformation
    from sigma.pipelines.kusto_common.transformations import DynamicFieldMappingTransformation
    from sigma.pipelines.microsoftxdr.mappings import MICROSOFT_XDR_FIELD_MAPPINGS
    from sigma.pipelines.microsoftxdr.microsoftxdr import microsoft_xdr_pipeline
    from sigma.processing.conditions import (
        ExcludeFieldCondition,
        IncludeFieldCondition,
        LogsourceCondition,
        RuleProcessingItemAppliedCondition,
        RuleProcessingStateCondition,
    )
    from sigma.processing.pipeline import ProcessingItem, QueryPostprocessingItem
    from sigma.processing.transformations import (
        AddConditionTransformation,
        SetStateTransformation,
    )

    xdr: Any = microsoft_xdr_pipeline()  # typed dict[str, Any] by the backend, wrongly
    found = _item_index(xdr, _MAPPING_ITEM)
    if xdr.items[found].field_name_conditions:
        raise RuntimeError(f"the Microsoft XDR pipeline's '{_MAPPING_ITEM}' is not as expected")
    mapping = ProcessingItem(
        identifier=_MAPPING_ITEM,
        transformation=DynamicFieldMappingTransformation(MICROSOFT_XDR_FIELD_MAPPINGS),
        field_name_conditions=[ExcludeFieldCondition(list(SYSMON_COLUMNS))],
    )
    absent = ProcessingItem(  # Sysmon has no Details on a key event: KQL's "" there, not null
        identifier="trustwatch_sysmon_registry_null",
        transformation=_null_as_empty_transformation(),
        field_name_conditions=[IncludeFieldCondition(list(SYSMON_COLUMNS))],
    )
    extend = QueryPostprocessingItem(
        identifier="trustwatch_sysmon_registry_columns",
        transformation=_sysmon_columns_transformation(),
    )
    script_table = ProcessingItem(  # read before the XDR item sets the table from the category
        identifier="trustwatch_ps_script_table",
        transformation=SetStateTransformation("query_table", SCRIPT_TABLE),
        rule_conditions=[LogsourceCondition(product="windows", category="ps_script")],
    )
    script_action = ProcessingItem(
        identifier="trustwatch_ps_script_action",
        transformation=AddConditionTransformation({"ActionType": SCRIPT_ACTION}),
        rule_conditions=[LogsourceCondition(product="windows", category="ps_script")],
    )
    unsupported = _item_index(xdr, _UNSUPPORTED_ITEM + SCRIPT_TABLE)
    (allowed,) = xdr.items[unsupported].field_name_conditions
    if not isinstance(allowed, ExcludeFieldCondition):
        raise TypeError(f"the Microsoft XDR pipeline's '{_UNSUPPORTED_ITEM}' is not as expected")
    refuse = ProcessingItem(  # XDR's refusal of fields DeviceEvents lacks, but the computed ones
        identifier=_UNSUPPORTED_ITEM + SCRIPT_TABLE,
        transformation=InvalidFieldTransformation(
            f"Please use valid fields for the {SCRIPT_TABLE} table"
        ),
        field_name_conditions=[ExcludeFieldCondition([*allowed.fields, *SCRIPT_COLUMNS])],
        rule_conditions=[
            RuleProcessingItemAppliedCondition(_SET_TABLE_ITEM),
            RuleProcessingStateCondition("query_table", SCRIPT_TABLE),
        ],
        rule_condition_linking=all,
    )
    for item in (mapping, absent, extend, script_table, script_action, refuse):
        item.set_pipeline(xdr)
    xdr.items[unsupported] = refuse
    xdr.items[found] = mapping
    xdr.items.insert(found + 1, absent)
    first = _item_index(xdr, _SET_TABLE_ITEM)
    xdr.items[first:first] = [script_table, script_action]
    xdr.postprocessing_items.append(extend)  # after the XDR item that writes "T | where"
    xdr.name = (
        f"{xdr.name}; trustwatch: Sysmon's TargetObject and Details on {TABLE}, "
        f"ps_script on {SCRIPT_TABLE} {SCRIPT_ACTION}"
    )
    return xdr


def _item_index(xdr: Any, identifier: str) -> int:
    found = [i for i, item in enumerate(xdr.items) if item.identifier == identifier]
    if len(found) != 1:
        raise RuntimeError(f"the Microsoft XDR pipeline's '{identifier}' is not as expected")
    return found[0]


def with_sysmon_columns(query: str, fields: set[str], table: str = TABLE) -> str:
    """``table\n| where P`` (the XDR pipeline's query) with the computed columns of ``table``
    (:data:`COMPUTED`) that ``P`` reads computed before it and dropped after it."""
    columns = COMPUTED.get(table, {})
    used = [name for name in columns if name in fields]
    head = f"{table}\n| where "
    if not used or not query.startswith(head):
        return query
    extend = ", ".join(f"{name} = {columns[name]}" for name in used)
    where = query[len(head) :]
    return f"{table}\n| extend {extend}\n| where {where}\n| project-away {', '.join(used)}"


def rule_fields(rule: Any) -> set[str]:
    """The field names a (processed) Sigma rule's detections compare."""
    return {name for name in _fields(rule) if name}


def _fields(rule: Any) -> Iterator[str | None]:
    from sigma.rule import SigmaDetection

    stack: list[Any] = list(rule.detection.detections.values())
    while stack:
        node = stack.pop()
        if isinstance(node, SigmaDetection):
            stack.extend(node.detection_items)
        else:
            yield node.field


def _null_as_empty_transformation() -> Any:
    """``Details: null`` (the field absent, as on Sysmon's key events) as ``Details == ""``:
    a KQL string is never null, and the computed column is empty exactly where Sysmon has none
    (a value set's is never empty: "(Empty)" at least)."""
    from sigma.processing.transformations.base import ValueTransformation
    from sigma.types import SigmaNull, SigmaString, SigmaType

    class NullAsEmpty(ValueTransformation):
        def apply_value(
            self, field: str | None, val: SigmaType
        ) -> SigmaType | Iterable[SigmaType] | None:
            return SigmaString("")

    # pySigma applies a ValueTransformation to the value types its annotation names
    NullAsEmpty.apply_value.__annotations__ = {"field": str, "val": SigmaNull, "return": object}
    return NullAsEmpty()


def _sysmon_columns_transformation() -> Any:
    from sigma.processing.postprocessing import QueryPostprocessingTransformation

    class SysmonRegistryColumns(QueryPostprocessingTransformation):
        """Adds the ``extend`` of the computed columns a query reads (:data:`COMPUTED`)."""

        def apply(self, rule: Any, query: Any) -> Any:
            super().apply(rule, query)
            table = self._pipeline.state.get("query_table") if self._pipeline else None
            if table not in COMPUTED or not isinstance(query, str):
                return query
            return with_sysmon_columns(query, rule_fields(rule), str(table))

    return SysmonRegistryColumns()
