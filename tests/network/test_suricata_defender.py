"""Suricata EVE tls events into Suricata_tls_CL; Defender's SslConnectionInspected rows into
DeviceNetworkEvents (the existing Defender readers, with their AdditionalFields)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.network.fixtures import collect, jsonl, write
from trustwatch.ingest import pipeline, readers
from trustwatch.ingest.readers.suricata import read_suricata_eve
from trustwatch.ingest.workspace import Workspace

TLS = {
    "timestamp": "2024-05-01T12:00:00.250000+0200",
    "flow_id": 1234567890123,
    "in_iface": "eth0",
    "event_type": "tls",
    "src_ip": "10.0.0.5",
    "src_port": 50000,
    "dest_ip": "203.0.113.9",
    "dest_port": 8443,
    "proto": "TCP",
    "tls": {
        "subject": "C=US, ST=Washington, L=Redmond, O=Microsoft, CN=Major Cobalt Strike",
        "issuerdn": "C=US, O=Microsoft, CN=Major Cobalt Strike",
        "serial": "08:BB:00:EE",
        "fingerprint": "6e:ce:5e:ce:40:37:bb:40:a3:25:5a:30:b7:be:f4:b2:8c:0f:ce:8a",
        "sni": "update.example.net",
        "version": "TLS 1.2",
        "notbefore": "2015-05-20T18:26:24",
        "notafter": "2025-05-17T18:26:24",
        "ja3": {"hash": "72a589da586844d7f0818ce684948eea", "string": "771,49195-49199"},
        "ja3s": {"hash": "b742b407517bac9536a77a7b0fee28e9", "string": "771,49199,65281"},
        "weird_new_field": 7,
    },
}


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_tls_events_are_stored_and_others_counted(tmp_path: Path, compress: bool) -> None:
    flow = {"timestamp": "2024-05-01T10:00:00Z", "event_type": "flow", "src_ip": "10.0.0.5"}
    dns = {"timestamp": "2024-05-01T10:00:00Z", "event_type": "dns", "src_ip": "10.0.0.5"}
    text = jsonl([flow, flow, TLS, dns]) + "{not json\n" + jsonl([{"no": "type"}])
    path = write(tmp_path / ("eve.json.gz" if compress else "eve.json"), text, compress=compress)
    assert readers.detect(path).name == "suricata-eve"
    rows, rejected = collect(read_suricata_eve(path))
    [(ref, row)] = rows["Suricata_tls_CL"]
    assert ref == 3
    assert row["timestamp_t"] == row["TimeGenerated"] == "2024-05-01T10:00:00.250000Z"
    assert (row["src_ip_s"], row["dest_ip_s"], row["dest_port_d"]) == (
        "10.0.0.5",
        "203.0.113.9",
        8443,
    )
    assert row["tls_subject_s"].endswith("CN=Major Cobalt Strike")
    assert row["tls_issuerdn_s"] == "C=US, O=Microsoft, CN=Major Cobalt Strike"
    assert row["tls_serial_s"] == "08:BB:00:EE"
    assert row["tls_fingerprint_s"].startswith("6e:ce:5e")
    assert row["tls_sni_s"] == "update.example.net"
    # Suricata writes the validity without a zone: UTC
    assert (row["tls_notbefore_t"], row["tls_notafter_t"]) == (
        "2015-05-20T18:26:24Z",
        "2025-05-17T18:26:24Z",
    )
    assert row["tls_ja3_hash_s"] == "72a589da586844d7f0818ce684948eea"
    assert row["tls_ja3s_hash_s"] == "b742b407517bac9536a77a7b0fee28e9"
    assert json.loads(row["AdditionalFields"]) == {"tls_weird_new_field": 7}
    got = [(r.ref, r.count, r.reason.split(" (")[0]) for r in rejected]
    assert got == [
        (1, 2, "EVE event_type 'flow' is not read"),
        (4, 1, "EVE event_type 'dns' is not read"),
        (5, 1, "invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2"),
        (6, 1, "not an EVE event"),
    ]


def test_eve_file_accounting_and_reingest(tmp_path: Path) -> None:
    other = {"timestamp": "2024-05-01T10:00:00Z", "event_type": "alert"}
    path = write(tmp_path / "eve.json", jsonl([TLS, other, TLS]))
    ws = Workspace(None)
    [stats] = ws.ingest(pipeline.plan([path])[0])
    assert (stats.read, stats.stored, stats.quarantined, stats.duplicates) == (3, 1, 1, 1)


def test_defender_ssl_connection_inspected_rows_land_in_device_network_events(
    tmp_path: Path,
) -> None:
    fields = {
        "direction": "Out",
        "server_name": "c2.example.net",
        "issuer": "CN=Major Cobalt Strike",
    }
    row = {
        "Timestamp": "2024-05-01T10:00:00Z",
        "DeviceName": "ws01.corp.local",
        "ActionType": "SslConnectionInspected",
        "RemoteIP": "203.0.113.9",
        "RemotePort": 443,
        "LocalIP": "10.0.0.5",
        "AdditionalFields": json.dumps(fields),
    }
    stream = {"category": "AdvancedHunting-DeviceNetworkEvents", "properties": row}
    exported = write(tmp_path / "rows.json", json.dumps([row]))
    streamed = write(tmp_path / "stream.json", jsonl([stream]))
    ws = Workspace(None)
    stats = ws.ingest(pipeline.plan([exported, streamed])[0])
    assert [(s.format, s.tables) for s in stats] == [
        ("defender-csv", {"DeviceNetworkEvents": 1}),
        ("defender-stream", {}),  # the same row: a duplicate
    ]
    assert stats[1].duplicates == 1
    got = ws.engine.execute_sql(
        "SELECT ActionType, RemotePort, AdditionalFields FROM DeviceNetworkEvents"
    ).to_pylist()
    assert len(got) == 1 and got[0]["ActionType"] == "SslConnectionInspected"
    assert json.loads(got[0]["AdditionalFields"]) == fields
