"""Small Zeek and Suricata files written by the tests, and reading them through a reader."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trustwatch.ingest.records import EventBatch, Item, Rejected, RowBatch

SSL_NEW_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "version",
    "cipher",
    "curve",
    "server_name",
    "resumed",
    "last_alert",
    "next_protocol",
    "established",
    "ssl_history",
    "cert_chain_fps",
    "client_cert_chain_fps",
    "sni_matches_cert",
    "validation_status",
]
SSL_NEW_TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "string",
    "string",
    "string",
    "string",
    "bool",
    "string",
    "string",
    "bool",
    "string",
    "vector[string]",
    "vector[string]",
    "bool",
    "string",
]
SSL_OLD_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "version",
    "cipher",
    "curve",
    "server_name",
    "resumed",
    "last_alert",
    "next_protocol",
    "established",
    "cert_chain_fuids",
    "client_cert_chain_fuids",
    "subject",
    "issuer",
    "client_subject",
    "client_issuer",
    "validation_status",
    "label",
]
SSL_OLD_TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "string",
    "string",
    "string",
    "string",
    "bool",
    "string",
    "string",
    "bool",
    "vector[string]",
    "vector[string]",
    "string",
    "string",
    "string",
    "string",
    "string",
    "string",
]
X509_FIELDS = [
    "ts",
    "fingerprint",
    "certificate.version",
    "certificate.serial",
    "certificate.subject",
    "certificate.issuer",
    "certificate.not_valid_before",
    "certificate.not_valid_after",
    "certificate.key_alg",
    "san.dns",
    "basic_constraints.ca",
    "host_cert",
]
X509_TYPES = "time string count string string string time time string vector[string] bool bool"
FP_C2 = "aa" * 32
FP_WEB = "bb" * 32


def zeek_tsv(path: str, fields: list[str], types: list[str] | str, rows: list[str]) -> str:
    """A Zeek ASCII log: header, the rows (tab-separated text), and #close."""
    kinds = types.split() if isinstance(types, str) else types
    head = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        f"#path\t{path}",
        "#open\t2024-05-01-10-00-00",
        "#fields\t" + "\t".join(fields),
        "#types\t" + "\t".join(kinds),
    ]
    return "\n".join([*head, *rows, "#close\t2024-05-01-11-00-00"]) + "\n"


def ssl_new_row(ts: str, uid: str, resp: str, sni: str, chain: str) -> str:
    values = [ts, uid, "10.0.0.5", "50000", resp, "443", "TLSv12", "TLS_AES", "x25519", sni]
    values += ["F", "-", "h2", "T", "CsxknGIi", chain, "(empty)", "-", "ok"]
    return "\t".join(values)


def x509_row(ts: str, fp: str, serial: str, subject: str, issuer: str) -> str:
    values = [ts, fp, "3", serial, subject, issuer, "1704067200.000000", "1735689600.000000"]
    values += ["rsaEncryption", "c2.example.net,www.c2.example.net", "F", "T"]
    return "\t".join(values)


def write(path: Path, text: str, *, compress: bool = False) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def collect(
    items: Iterator[Item],
) -> tuple[dict[str, list[tuple[int, dict[str, Any]]]], list[Rejected]]:
    """Rows per table as (ref, row), and the Rejected."""
    rows: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    rejected: list[Rejected] = []
    for item in items:
        if isinstance(item, Rejected):
            rejected.append(item)
        elif isinstance(item, RowBatch):
            rows.setdefault(item.table, []).extend(zip(item.refs, item.rows, strict=True))
        else:
            assert not isinstance(item, EventBatch), "network readers yield rows only"
    return rows, rejected
