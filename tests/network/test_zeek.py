"""Zeek ssl/x509/notice logs, TSV and JSON, old and new schema, plain and gzip, into the
Corelight tables; the x509 join; malformed lines quarantined where they are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.network.fixtures import (
    FP_C2,
    FP_WEB,
    SSL_NEW_FIELDS,
    SSL_NEW_TYPES,
    SSL_OLD_FIELDS,
    SSL_OLD_TYPES,
    X509_FIELDS,
    X509_TYPES,
    collect,
    jsonl,
    ssl_new_row,
    write,
    x509_row,
    zeek_tsv,
)
from trustwatch.api import Session
from trustwatch.ingest import pipeline, readers
from trustwatch.ingest.readers.zeek import read_zeek_json, read_zeek_tsv
from trustwatch.ingest.workspace import Workspace

SSL_ROWS = [
    ssl_new_row("1714557600.123456", "C1", "203.0.113.9", "c2.example.net", f"{FP_C2},{FP_WEB}"),
    ssl_new_row("1714557601.000001", "C2", "198.51.100.7", "-", "(empty)"),
]
X509_ROWS = [
    x509_row(
        "1714557600.100000", FP_C2, "08BB00EE", "CN=Major Cobalt Strike", "CN=Major Cobalt Strike"
    ),
    x509_row("1714557600.200000", FP_WEB, "01", "CN=Example Issuing CA", "CN=Example Root"),
]


def query(ws: Workspace, kql: str) -> list[dict[str, Any]]:
    session = Session(engine=ws.engine, views=pipeline.query_views(ws.engine))
    return session.run(kql, "2030-01-01T00:00:00Z").tables[-1].to_pylist()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_new_schema_ssl_rows_and_types(tmp_path: Path, compress: bool) -> None:
    name = "ssl.log.gz" if compress else "ssl.log"
    path = write(
        tmp_path / name, zeek_tsv("ssl", SSL_NEW_FIELDS, SSL_NEW_TYPES, SSL_ROWS), compress=compress
    )
    assert readers.detect(path).name == "zeek-tsv"
    rows, rejected = collect(read_zeek_tsv(path))
    assert rejected == []
    (ref1, first), (ref2, second) = rows["Corelight_v2_ssl_CL"]
    assert (ref1, ref2) == (9, 10)  # 8 header lines before them
    assert first["ts_t"] == first["TimeGenerated"] == "2024-05-01T10:00:00.123456Z"
    assert first["id_resp_h_s"] == "203.0.113.9" and first["id_resp_p_d"] == 443
    assert first["server_name_s"] == "c2.example.net"
    assert json.loads(first["cert_chain_fps_s"]) == [FP_C2, FP_WEB]
    assert json.loads(first["client_cert_chain_fps_s"]) == []
    assert first["established_b"] is True and first["resumed_b"] is False
    assert first["_path_s"] == "ssl" and first["Type"] == "Corelight_v2_ssl_CL"
    assert "AdditionalFields" not in first
    # unset (-) values are left out: the column stays empty
    assert "server_name_s" not in second and "sni_matches_cert_b" not in second
    assert json.loads(second["cert_chain_fps_s"]) == []


def test_old_schema_subject_issuer_and_fuids(tmp_path: Path) -> None:
    row = "\t".join(
        ["203.493778", "CU8", "192.168.1.113", "49167", "23.4.249.223", "443", "TLSv12", "TLS_X"]
        + ["secp256r1", "www.microsoft.com", "F", "-", "-", "T", "FaJ,FQ1", "(empty)"]
        + ["CN=www.microsoft.com,O=Microsoft Corporation", "CN=Symantec Class 3", "-", "-"]
        + ["certificate is not yet valid", "Malicious"]
    )
    path = write(
        tmp_path / "ssl.log.labeled", zeek_tsv("ssl", SSL_OLD_FIELDS, SSL_OLD_TYPES, [row])
    )
    rows, rejected = collect(read_zeek_tsv(path))
    assert rejected == []
    [(_, got)] = rows["Corelight_v2_ssl_CL"]
    assert got["subject_s"] == "CN=www.microsoft.com,O=Microsoft Corporation"
    assert got["issuer_s"] == "CN=Symantec Class 3"
    assert json.loads(got["cert_chain_fuids_s"]) == ["FaJ", "FQ1"]
    # a capture's relative time is a time after the epoch, kept as such
    assert got["ts_t"] == "1970-01-01T00:03:23.493778Z"
    # a field without a column (Stratosphere's label) is kept in AdditionalFields
    assert json.loads(got["AdditionalFields"]) == {"label": "Malicious"}


def test_x509_values_unescaped_and_typed(tmp_path: Path) -> None:
    subject = "unstructuredName=1\\\\,564d,O=VMware\\\\, Inc\\x2c tab\\x09end"
    path = write(
        tmp_path / "x509.log",
        zeek_tsv("x509", X509_FIELDS, X509_TYPES, [x509_row("1.5", FP_C2, "CC57", subject, "O=V")]),
    )
    rows, _ = collect(read_zeek_tsv(path))
    [(_, got)] = rows["Corelight_v2_x509_CL"]
    assert got["certificate_subject_s"] == "unstructuredName=1\\,564d,O=VMware\\, Inc, tab\tend"
    assert got["certificate_version_d"] == 3
    assert got["certificate_not_valid_after_t"] == "2025-01-01T00:00:00Z"
    assert json.loads(got["san_dns_s"]) == ["c2.example.net", "www.c2.example.net"]
    assert (got["basic_constraints_ca_b"], got["host_cert_b"]) == (False, True)


def test_json_streaming_logs_and_plain_json_lines(tmp_path: Path) -> None:
    ssl = {
        "_path": "ssl",
        "_write_ts": "2024-05-01T10:00:00.200000Z",
        "ts": "2024-05-01T10:00:00.123456Z",
        "uid": "C1",
        "id.orig_h": "10.0.0.5",
        "id.orig_p": 50000,
        "id.resp_h": "203.0.113.9",
        "id.resp_p": 443,
        "established": True,
        "cert_chain_fps": [FP_C2],
    }
    x509 = {
        "ts": 1714557600.1,
        "fingerprint": FP_C2,
        "certificate.subject": "CN=Major Cobalt Strike",
    }
    mixed = write(tmp_path / "zeek.json", jsonl([ssl, x509]))
    assert readers.detect(mixed).name == "zeek-json"
    rows, rejected = collect(read_zeek_json(mixed))
    assert rejected == []
    [(_, s)] = rows["Corelight_v2_ssl_CL"]
    [(ref, x)] = rows["Corelight_v2_x509_CL"]  # no _path: told by its fields
    assert ref == 2 and x["certificate_subject_s"] == "CN=Major Cobalt Strike"
    assert x["ts_t"] == "2024-05-01T10:00:00.100000Z"
    assert s["_write_ts_t"] == "2024-05-01T10:00:00.200000Z" and s["id_resp_p_d"] == 443
    assert json.loads(s["cert_chain_fps_s"]) == [FP_C2] and s["established_b"] is True
    # nested ids (Zeek's JSON writer without dotted names) land in the same columns
    nested = {"ts": 1.0, "uid": "C9", "id": {"orig_h": "10.0.0.9", "resp_p": 8443}, "cipher": "X"}
    gz = write(tmp_path / "ssl.json.gz", jsonl([nested]), compress=True)
    assert readers.detect(gz).name == "zeek-json"
    rows, _ = collect(read_zeek_json(gz))
    [(_, n)] = rows["Corelight_v2_ssl_CL"]
    assert (n["id_orig_h_s"], n["id_resp_p_d"]) == ("10.0.0.9", 8443)
    assert "_path_s" not in n  # the record did not say its log: its file's name did


def test_tsv_and_json_of_the_same_log_give_the_same_columns(tmp_path: Path) -> None:
    tsv = write(tmp_path / "x509.log", zeek_tsv("x509", X509_FIELDS, X509_TYPES, X509_ROWS[:1]))
    record = {
        "_path": "x509",
        "ts": "2024-05-01T10:00:00.100000Z",
        "fingerprint": FP_C2,
        "certificate.version": 3,
        "certificate.serial": "08BB00EE",
        "certificate.subject": "CN=Major Cobalt Strike",
        "certificate.issuer": "CN=Major Cobalt Strike",
        "certificate.not_valid_before": "2024-01-01T00:00:00.000000Z",
        "certificate.not_valid_after": "2025-01-01T00:00:00.000000Z",
        "certificate.key_alg": "rsaEncryption",
        "san.dns": ["c2.example.net", "www.c2.example.net"],
        "basic_constraints.ca": False,
        "host_cert": True,
    }
    js = write(tmp_path / "x509.json", jsonl([record]))
    [(_, a)] = collect(read_zeek_tsv(tsv))[0]["Corelight_v2_x509_CL"]
    [(_, b)] = collect(read_zeek_json(js))[0]["Corelight_v2_x509_CL"]
    assert a == b


def test_x509_join_by_fingerprint_and_by_file_id(tmp_path: Path) -> None:
    ssl = write(tmp_path / "ssl.log", zeek_tsv("ssl", SSL_NEW_FIELDS, SSL_NEW_TYPES, SSL_ROWS))
    x509 = write(tmp_path / "x509.log", zeek_tsv("x509", X509_FIELDS, X509_TYPES, X509_ROWS))
    ws = Workspace(None)
    planned, _ = pipeline.plan([ssl, x509])
    ws.ingest(planned)
    got = query(
        ws,
        "Corelight_v2_ssl_CL | extend leaf = tostring(todynamic(cert_chain_fps_s)[0]) "
        "| join kind=leftouter (Corelight_v2_x509_CL) on $left.leaf == $right.fingerprint_s "
        "| project uid_s, server_name_s, certificate_subject_s, certificate_serial_s "
        "| sort by uid_s asc",
    )
    assert got == [
        {
            "uid_s": "C1",
            "server_name_s": "c2.example.net",
            "certificate_subject_s": "CN=Major Cobalt Strike",
            "certificate_serial_s": "08BB00EE",
        },
        {
            "uid_s": "C2",
            "server_name_s": "",
            "certificate_subject_s": "",
            "certificate_serial_s": "",
        },
    ]
    # the old schema names certificates by file id: x509.log's id
    old_x509 = write(
        tmp_path / "old_x509.log",
        zeek_tsv(
            "x509", ["ts", "id", "certificate.subject"], "time string string", ["2.0\tFaJ\tCN=old"]
        ),
    )
    planned, _ = pipeline.plan([old_x509])
    ws.ingest(planned)
    assert query(
        ws, 'Corelight_v2_x509_CL | where id_s == "FaJ" | project certificate_subject_s'
    ) == [{"certificate_subject_s": "CN=old"}]


def test_malformed_lines_are_quarantined_with_their_line(tmp_path: Path) -> None:
    rows = [SSL_ROWS[0], "too\tfew\tvalues", SSL_ROWS[1], ""]
    text = "stray data before any header\n" + zeek_tsv("ssl", SSL_NEW_FIELDS, SSL_NEW_TYPES, rows)
    path = write(tmp_path / "ssl.log", text)
    got, rejected = collect(read_zeek_tsv(path))
    assert [ref for ref, _ in got["Corelight_v2_ssl_CL"]] == [10, 12]
    assert [(r.ref_kind, r.ref, r.count) for r in rejected] == [("line", 1, 1), ("line", 11, 1)]
    assert "before a #separator and #fields header" in rejected[0].reason
    assert rejected[1].reason == "3 values for the 19 fields of #fields"
    assert rejected[1].excerpt == "too\tfew\tvalues"


def test_a_bad_value_is_kept_in_additional_fields(tmp_path: Path) -> None:
    # btest baselines mask times; a masked time is not a time, and not lost either
    row = ssl_new_row("XXXXXXXXXX.XXXXXX", "C1", "203.0.113.9", "a", "(empty)")
    path = write(
        tmp_path / "ssl.log",
        "### BTest baseline\n" + zeek_tsv("ssl", SSL_NEW_FIELDS, SSL_NEW_TYPES, [row]),
    )
    got, rejected = collect(read_zeek_tsv(path))
    assert rejected == []
    [(ref, r)] = got["Corelight_v2_ssl_CL"]
    assert ref == 10 and "ts_t" not in r and "TimeGenerated" not in r
    assert json.loads(r["AdditionalFields"]) == {"ts": "XXXXXXXXXX.XXXXXX"}


def test_logs_not_read_are_counted_not_dropped(tmp_path: Path) -> None:
    conn = zeek_tsv("conn", ["ts", "uid"], "time string", ["1.0\tC1", "2.0\tC2", "3.0\tC3"])
    ssl = zeek_tsv("ssl", SSL_NEW_FIELDS, SSL_NEW_TYPES, SSL_ROWS[:1])
    path = write(tmp_path / "all.log", conn + ssl)  # two logs concatenated: two header blocks
    got, rejected = collect(read_zeek_tsv(path))
    assert [ref for ref, _ in got["Corelight_v2_ssl_CL"]] == [21]
    [skip] = rejected
    assert (skip.ref, skip.count) == (9, 3)
    assert skip.reason.startswith("Zeek log 'conn' is not read (trustwatch reads: ssl, x509")
    js = write(tmp_path / "dns.json", jsonl([{"_path": "dns", "ts": 1.0, "query": "a"}]))
    got, rejected = collect(read_zeek_json(js))
    assert got == {} and [(r.ref, r.count) for r in rejected] == [(1, 1)]
    assert "'dns' is not read" in rejected[0].reason


def test_notice_log_is_read_into_the_notice_table(tmp_path: Path) -> None:
    fields = ["ts", "uid", "note", "msg", "sub", "actions", "suppress_for"]
    row = "\t".join(
        ["1.0", "C1", "SSL::Invalid_Server_Cert", "validation failed", "CN=x"]
        + ["Notice::ACTION_LOG", "3600.000000"]
    )
    path = write(
        tmp_path / "notice.log",
        zeek_tsv("notice", fields, "time string enum string string set[enum] interval", [row]),
    )
    got, rejected = collect(read_zeek_tsv(path))
    assert rejected == []
    [(_, r)] = got["Corelight_v2_notice_CL"]
    assert (r["note_s"], r["sub_s"], r["suppress_for_d"]) == (
        "SSL::Invalid_Server_Cert",
        "CN=x",
        3600,
    )
    assert json.loads(r["actions_s"]) == ["Notice::ACTION_LOG"]


def test_files_that_are_not_zeek_are_not_taken_for_zeek(tmp_path: Path) -> None:
    labels = write(tmp_path / "labels.config", "#####\n# Benign, FromWindows:\n#   - Proto=UDP\n")
    eve = write(
        tmp_path / "eve.json", jsonl([{"timestamp": "2024-01-01T00:00:00Z", "event_type": "tls"}])
    )
    with pytest.raises(Exception, match="not a telemetry format"):
        readers.detect(labels)
    assert readers.detect(eve).name == "suricata-eve"
