"""The Windows-event file formats other than binary EVTX, for ``--input-format`` and sniffing."""

from __future__ import annotations

from trustwatch.ingest.readers.ecs import read_ecs, sniff_ecs
from trustwatch.ingest.readers.evtxjson import read_evtx_json, sniff_evtx_json
from trustwatch.ingest.readers.flat import read_flat, sniff_flat
from trustwatch.ingest.readers.nxlog import read_nxlog, read_otrf_zip, sniff_nxlog, sniff_otrf_zip
from trustwatch.ingest.readers.sentinel import read_sentinel_rows, sniff_sentinel_rows
from trustwatch.ingest.readers.xml import read_xml, sniff_xml
from trustwatch.ingest.records import Format

FORMATS: list[Format] = [
    Format(
        "xml",
        "Windows event XML: one <Event>, an <Events> export (wevtutil /f:xml, Event Viewer) "
        "or concatenated <Event> elements (Splunk .raw); UTF-8 or UTF-16",
        sniff_xml,
        read_xml,
    ),
    Format(
        "evtx-json",
        "evtx_dump -o jsonl / -o json, pyevtx-rs records_json() lines, or pretty evtx JSON "
        "documents (one, or an array)",
        sniff_evtx_json,
        read_evtx_json,
    ),
    Format(
        "ecs",
        "Winlogbeat / Elastic Agent ECS JSON (object, array, JSON lines or search hits), and "
        "Winlogbeat 5/6 JSON from before ECS (event_data, source_name, log_name)",
        sniff_ecs,
        read_ecs,
    ),
    Format(
        "nxlog",
        "NXLog im_msvistalog to_json() records and similar flat Windows events (EventData "
        "fields beside SourceName / EventID / Hostname; without SourceName, the provider from "
        "ProviderGuid or Channel)",
        sniff_nxlog,
        read_nxlog,
    ),
    Format(
        "otrf-zip",
        "OTRF Security-Datasets zip: JSON members (lines, arrays, documents) of flat "
        "(NXLog-style), ECS or Winlogbeat 6, evtx JSON or flat-events Windows events, or of "
        "Log Analytics Event / WindowsEvent / SecurityEvent rows (also query API responses), "
        "read straight from the zip",
        sniff_otrf_zip,
        read_otrf_zip,
    ),
    Format(
        "flat-events",
        "flat-events JSON lines: {source, record_id, ts, provider, event_id, fields}",
        sniff_flat,
        read_flat,
    ),
    Format(
        "sentinel-rows",
        "Sentinel Event / WindowsEvent / SecurityEvent rows as JSON, JSON lines or a JSON array",
        sniff_sentinel_rows,
        read_sentinel_rows,
    ),
]
