"""Reading crt.sh exports and certstream JSON lines: fields, bad records located, limits."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

from trustwatch import limits
from trustwatch.ct.readers import CtEntry, Passed, Skipped, read_ct_file

DATA = Path(__file__).parent / "data"


def _entries(items: list[object]) -> list[CtEntry]:
    return [i for i in items if isinstance(i, CtEntry)]


def _skipped(items: list[object]) -> list[Skipped]:
    return [i for i in items if isinstance(i, Skipped)]


def test_crtsh_export_fields() -> None:
    items = list(read_ct_file(DATA / "crtsh_export.json"))
    entries = _entries(items)
    assert len(entries) == 6
    first = entries[0]
    assert first.source == "crt.sh"
    assert (first.ref_kind, first.ref) == ("record", 1)
    assert first.names == ("c0ntoso.com", "www.c0ntoso.com")
    assert first.issuer.organisation == "Let's Encrypt"
    assert first.issuer.common_name == "R11"
    assert first.issuer.automated is not None and first.issuer.automated.kind == "free"
    assert first.serial == "4A1B2C3D4E5F60718293A4B5C6D7E8F9A0B"
    assert first.crtsh_id == 12913450871
    assert first.logged == datetime(2024, 5, 1, 10, 0, 1, 123000, tzinfo=UTC)
    assert first.not_after == datetime(2024, 7, 30, 8, 59, 59, tzinfo=UTC)


def test_crtsh_bad_records_are_located_and_the_rest_read() -> None:
    skipped = _skipped(list(read_ct_file(DATA / "crtsh_export.json")))
    assert [(s.ref_kind, s.ref) for s in skipped] == [("record", 7), ("record", 8)]
    assert "not a JSON object" in skipped[0].reason
    assert "'common_name' is a number" in skipped[1].reason


def test_certstream_lines() -> None:
    items = list(read_ct_file(DATA / "certstream.jsonl"))
    entries = _entries(items)
    assert [e.ref for e in entries] == [2, 3, 4, 5]
    full = entries[0]
    assert full.source == "certstream"
    assert full.names == ("xn--cntoso-i0e.com", "www.xn--cntoso-i0e.com")
    assert full.issuer.organisation == "Let's Encrypt"
    assert full.cert_index == 123456789
    assert full.log == "Let's Encrypt 'Oak2024H2' log"
    assert full.fingerprint == "ABCDEF0123456789ABCDEF0123456789ABCDEF01"
    assert full.logged == datetime.fromtimestamp(1714557700.5, UTC)
    # a message's data alone, its issuer from the chain (certstream's original server)
    assert entries[1].issuer.organisation == "ZeroSSL"
    assert entries[1].serial == "FA17"
    assert [p.what for p in items if isinstance(p, Passed)] == ["certstream heartbeat message"]
    skipped = _skipped(items)
    assert [s.ref for s in skipped] == [6, 7, 9]
    assert "invalid JSON" in skipped[0].reason
    assert "all_domains is not a list" in skipped[2].reason


def test_gzip_is_read(tmp_path: Path) -> None:
    path = tmp_path / "stream.jsonl.gz"
    path.write_bytes(gzip.compress((DATA / "certstream.jsonl").read_bytes()))
    assert len(_entries(list(read_ct_file(path)))) == 4


def test_a_line_past_the_limit_is_skipped_and_reading_goes_on(tmp_path: Path) -> None:
    big = {"message_type": "certificate_update", "data": {"leaf_cert": {"all_domains": ["x"]}}}
    big["padding"] = "x" * 5000  # type: ignore[assignment]
    small = {"leaf_cert": {"all_domains": ["c0ntoso.com"]}}
    path = tmp_path / "lines.jsonl"
    path.write_text(json.dumps(big) + "\n" + json.dumps(small) + "\n", encoding="utf-8")
    with limits.using(limits.Limits(event_bytes=1000)):
        items = list(read_ct_file(path))
    [skipped] = _skipped(items)
    assert skipped.ref == 1 and "event-bytes limit" in skipped.reason
    assert [e.names for e in _entries(items)] == [("c0ntoso.com",)]


def test_an_array_element_past_the_limit_is_skipped(tmp_path: Path) -> None:
    rows = [
        {"name_value": "a.com", "issuer_name": "O=X", "padding": "y" * 5000},
        {"name_value": "c0ntoso.com", "issuer_name": "O=X"},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    with limits.using(limits.Limits(event_bytes=1000)):
        items = list(read_ct_file(path))
    assert [s.ref for s in _skipped(items)] == [1]
    assert [e.names for e in _entries(items)] == [("c0ntoso.com",)]


def test_an_element_with_too_many_fields_is_skipped(tmp_path: Path) -> None:
    wide = {"name_value": "a.com", **{f"f{i}": i for i in range(50)}}
    path = tmp_path / "wide.json"
    path.write_text(json.dumps([wide, {"name_value": "b.com"}]), encoding="utf-8")
    with limits.using(limits.Limits(fields=20)):
        items = list(read_ct_file(path))
    [skipped] = _skipped(items)
    assert skipped.ref == 1 and "fields limit" in skipped.reason
    assert len(_entries(items)) == 1


def test_too_deep_a_record_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    good = '{"leaf_cert": {"all_domains": ["a.com"]}}\n'
    path.write_text(good + "[" * 500 + "]" * 500 + "\n" + good)
    items = list(read_ct_file(path))
    [skipped] = _skipped(items)
    assert skipped.ref == 2 and "depth limit" in skipped.reason
    assert len(_entries(items)) == 2


def test_an_array_that_breaks_off_says_where(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text('[{"name_value": "a.com"}, {"name_value": "b.com"', encoding="utf-8")
    items = list(read_ct_file(path))
    assert len(_entries(items)) == 1
    assert "breaks off after record 2" in _skipped(items)[-1].reason


def test_text_after_the_array_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "two.json"
    path.write_text('[{"name_value": "a.com"}]\n[{"name_value": "b.com"}]\n', encoding="utf-8")
    items = list(read_ct_file(path))
    assert len(_entries(items)) == 1
    assert "after the array's end" in _skipped(items)[0].reason


def test_files_that_are_no_ct_export(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    missing = tmp_path / "missing.json"
    for path, reason in ((text, "not a crt.sh JSON export"), (empty, "empty"), (missing, "cannot")):
        [item] = list(read_ct_file(path))
        assert isinstance(item, Skipped) and item.ref_kind == "file"
        assert reason in item.reason
