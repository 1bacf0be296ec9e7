"""What a report needs from the session: a summary of the data, and each incident investigated.

The queries here are fixed KQL text (no value from the data is put into them); the pivots are
run by ``trustwatch.guides.investigate``, which binds alert values as typed ``let`` literals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from trustwatch.errors import TrustwatchError
from trustwatch.guides.investigate import Investigation, guides_of, investigate
from trustwatch.output import text_cell
from trustwatch.report.build import DataSummary
from trustwatch.report.model import Grid

if TYPE_CHECKING:
    from trustwatch.api import Session
    from trustwatch.records import SecurityIncident
    from trustwatch.rules.model import Rule

# the telemetry tables whose rows are counted, and the column naming the device in each
DEVICE_COLUMN = {
    "DeviceProcessEvents": "DeviceName",
    "DeviceRegistryEvents": "DeviceName",
    "DeviceFileEvents": "DeviceName",
    "DeviceNetworkEvents": "DeviceName",
    "DeviceEvents": "DeviceName",
    "DeviceImageLoadEvents": "DeviceName",
    "DeviceInfo": "DeviceName",
    "SecurityEvent": "Computer",
    "Event": "Computer",
    "WindowsEvent": "Computer",
}
SOURCES_QUERY = (
    "_files | summarize Files = count(), Read = sum(read), Stored = sum(stored), "
    "Quarantined = sum(quarantined), Failed = countif(isnotempty(failed)) by Format = format "
    "| sort by Format asc"
)


def _rows(session: Session, kql: str) -> list[dict[str, object]]:
    result = session.run(kql, source_name="<report>")
    return result.tables[-1].to_pylist() if result.tables else []


def data_summary(session: Session) -> DataSummary:
    """Input files by format (from the workspace's ``_files``), rows per table, devices."""
    tables: list[tuple[str, int]] = []
    devices: dict[str, str] = {}
    for name, column in DEVICE_COLUMN.items():
        known = session.catalog.get(name)
        if known is None or known.sql_name is None:
            continue
        rows = _rows(session, f"{name} | summarize Rows = count() by Device = {column}")
        total = sum(int(str(r["Rows"])) for r in rows)
        if total:
            tables.append((name, total))
        for row in rows:
            device = str(row["Device"] or "")
            if device:
                devices.setdefault(device.lower(), device)
    try:
        sources = _rows(session, SOURCES_QUERY) if "_files" in session.catalog else []
    except TrustwatchError:  # a workspace without the _files table: no per-file account
        sources = []
    columns = ("format", "files", "records read", "stored", "quarantined", "failed")
    keys = ("Format", "Files", "Read", "Stored", "Quarantined", "Failed")
    grid = Grid(
        columns=columns,
        rows=tuple(tuple(text_cell(r.get(k)) for k in keys) for r in sources),
        total=len(sources),
    )
    return DataSummary(sources=grid, tables=tuple(tables), devices=tuple(sorted(devices.values())))


def investigate_incidents(
    incidents: Sequence[SecurityIncident], rules: Sequence[Rule], session: Session
) -> dict[str, Investigation]:
    """Each incident's alerts investigated together (pivots run once per bound query)."""
    guides = guides_of(rules)
    return {
        incident.incident_name: investigate(
            [a.to_record() for a in incident.alerts], guides, rules, session
        )
        for incident in incidents
    }
