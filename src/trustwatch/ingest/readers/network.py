"""The network TLS telemetry formats (Zeek, Suricata EVE), for ``--input-format`` and sniffing."""

from __future__ import annotations

from trustwatch.ingest.readers.suricata import read_suricata_eve, sniff_suricata_eve
from trustwatch.ingest.readers.zeek import (
    read_zeek_json,
    read_zeek_tsv,
    sniff_zeek_json,
    sniff_zeek_tsv,
)
from trustwatch.ingest.records import Format

FORMATS: list[Format] = [
    Format(
        "zeek-tsv",
        "Zeek ASCII logs (#fields/#types header; ssl, x509, notice, known_certs, ocsp), "
        "plain or gzip",
        sniff_zeek_tsv,
        read_zeek_tsv,
    ),
    Format(
        "zeek-json",
        "Zeek JSON logs (json-streaming-logs with _path, or plain JSON lines), plain or gzip",
        sniff_zeek_json,
        read_zeek_json,
    ),
    Format(
        "suricata-eve",
        "Suricata EVE JSON (eve.json; tls events stored, other event types counted), plain or gzip",
        sniff_suricata_eve,
        read_suricata_eve,
    ),
]
