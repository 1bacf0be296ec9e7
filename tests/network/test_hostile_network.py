"""Hostile Zeek/Suricata input: escape sequences never reach the terminal raw, huge lines and
headers are quarantined within the limits, the records limit holds, re-ingest adds nothing."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from tests.network.fixtures import (
    SSL_NEW_FIELDS,
    SSL_NEW_TYPES,
    collect,
    jsonl,
    ssl_new_row,
    write,
    zeek_tsv,
)
from trustwatch import limits
from trustwatch.cli.main import cli
from trustwatch.ingest import pipeline
from trustwatch.ingest.readers import by_name
from trustwatch.ingest.workspace import Workspace

ESC = "\x1b]0;owned\x07\x1b[2J"


def hostile_files(tmp_path: Path) -> list[Path]:
    # Zeek writes control bytes escaped (\x1b); a raw ESC in a line is hostile all the same
    escaped = ssl_new_row("1.0", "C1", "203.0.113.9", "evil\\x1b[2J\\x1b]0;owned\\x07", "(empty)")
    raw = ssl_new_row("2.0", "C2", "203.0.113.9", f"raw{ESC}", "(empty)")
    bad = f"broken{ESC}\tline"
    tsv = write(
        tmp_path / "ssl.log", zeek_tsv("ssl", SSL_NEW_FIELDS, SSL_NEW_TYPES, [escaped, raw, bad])
    )
    eve = write(
        tmp_path / "eve.json",
        jsonl([{"timestamp": "2024-05-01T10:00:00Z", "event_type": "tls", "tls": {"sni": ESC}}])
        + f'{{"event_type": "{ESC}\n',
    )
    return [tsv, eve]


def test_escape_sequences_stay_inert_on_the_terminal(tmp_path: Path) -> None:
    tsv, eve = hostile_files(tmp_path)
    runner = CliRunner()
    for kql in (
        "Corelight_v2_ssl_CL | project server_name_s",
        "Suricata_tls_CL | project tls_sni_s",
        "_quarantine | project reason, excerpt",
    ):
        result = runner.invoke(cli, ["query", "--data", str(tsv), "--data", str(eve), kql])
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.stdout and "\x1b" not in result.stderr
        assert "\x07" not in result.stdout
    shown = runner.invoke(
        cli, ["query", "--data", str(tsv), "Corelight_v2_ssl_CL | project server_name_s"]
    ).stdout
    assert "\\x1b[2J" in shown  # made visible, not dropped
    # the exact value is kept for JSON consumers
    exact = runner.invoke(
        cli,
        ["query", "--data", str(tsv), "--format", "json", "Corelight_v2_ssl_CL | take 1"],
    ).stdout
    assert "\x1b" not in exact and "\\u001b" in exact
    ingest = runner.invoke(cli, ["ingest", str(tsv), str(eve), "--workspace", str(tmp_path / "w")])
    assert "\x1b" not in ingest.stdout + ingest.stderr


def test_huge_line_and_too_many_fields_are_quarantined(tmp_path: Path) -> None:
    small = replace(limits.current(), event_bytes=4096, fields=32)
    huge = ssl_new_row("1.0", "C1", "203.0.113.9", "x" * 10_000, "(empty)")
    good = ssl_new_row("2.0", "C2", "203.0.113.9", "ok", "(empty)")
    wide = zeek_tsv("ssl", [f"f{i}" for i in range(40)], ["string"] * 40, ["\t".join("v" * 40)])
    path = write(
        tmp_path / "ssl.log", zeek_tsv("ssl", SSL_NEW_FIELDS, SSL_NEW_TYPES, [huge, good]) + wide
    )
    with limits.using(small):
        rows, rejected = collect(by_name("zeek-tsv").read(path))
    assert [ref for ref, _ in rows["Corelight_v2_ssl_CL"]] == [10]
    assert [(r.ref, r.count) for r in rejected] == [(9, 1), (20, 1)]
    assert rejected[0].reason == "a line of 10,100 bytes exceeds the event-bytes limit (4,096)"
    assert rejected[1].reason == "a #fields header of 40 fields exceeds the fields limit (32)"
    assert len(rejected[1].excerpt) <= 200


def test_records_limit_stops_a_zeek_file(tmp_path: Path) -> None:
    rows = [ssl_new_row(f"{i}.0", f"C{i}", "203.0.113.9", "a", "(empty)") for i in range(1, 8)]
    path = write(tmp_path / "ssl.log", zeek_tsv("ssl", SSL_NEW_FIELDS, SSL_NEW_TYPES, rows))
    with limits.using(replace(limits.current(), records=5)):
        got, rejected = collect(by_name("zeek-tsv").read(path))
    assert len(got["Corelight_v2_ssl_CL"]) == 5
    [stop] = rejected
    assert (stop.ref, stop.count) == (14, 2) and "reading stopped" in stop.reason


def test_reingest_is_idempotent_and_every_record_is_accounted(tmp_path: Path) -> None:
    tsv, eve = hostile_files(tmp_path)
    db = tmp_path / "ws.duckdb"
    ws = Workspace(db)
    first = ws.ingest(pipeline.plan([tsv, eve])[0])
    assert [(s.read, s.stored, s.quarantined, s.duplicates) for s in first] == [
        (3, 2, 1, 0),
        (2, 1, 1, 0),
    ]
    ws.close()
    again = Workspace(db)
    second = again.ingest(pipeline.plan([tsv, eve])[0])
    assert all(s.skipped_ingest for s in second)
    # the same rows in a copy of the files (not skipped as already read): all duplicates
    copies = []
    for p in (tsv, eve):
        copy = tmp_path / f"copy-{p.name}"
        copy.write_bytes(p.read_bytes() + b"\n")
        copies.append(copy)
    third = again.ingest(pipeline.plan(copies)[0])
    assert [(s.read, s.stored, s.quarantined, s.duplicates) for s in third] == [
        (3, 0, 1, 2),
        (2, 0, 1, 1),
    ]
    for s in [*first, *third]:
        assert s.read == s.stored + s.quarantined + s.duplicates
    assert again.engine.execute_sql(
        "SELECT count(*) AS n FROM Corelight_v2_ssl_CL"
    ).to_pylist() == [{"n": 2}]
    again.close()


def test_a_cut_gzip_keeps_what_was_read_and_reports_the_rest(tmp_path: Path) -> None:
    rows = [
        ssl_new_row(f"{i}.5", f"C{i}", "203.0.113.9", f"h{i}.example", "(empty)")
        for i in range(1, 3001)
    ]
    whole = gzip.compress(zeek_tsv("ssl", SSL_NEW_FIELDS, SSL_NEW_TYPES, rows).encode())
    path = tmp_path / "ssl.log.gz"
    path.write_bytes(whole[: len(whole) // 2])
    got, rejected = collect(by_name("zeek-tsv").read(path))
    kept = [ref for ref, _ in got["Corelight_v2_ssl_CL"]]
    assert kept == list(range(9, 9 + len(kept))) and 0 < len(kept) < 3000
    [cut] = rejected
    assert cut.ref == kept[-1] + 1 or cut.ref == kept[-1] + 2
    assert "the gzip stream is cut short or damaged" in cut.reason
