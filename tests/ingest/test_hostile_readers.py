"""Hostile input to every reader: each bad record is one Rejected naming the limit it broke, and
the good records around it are still read (issue 13: no file or record can blind a reader)."""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED, needs_shared
from trustwatch import limits
from trustwatch.ingest.readers import formats
from trustwatch.ingest.readers.evtx import read_evtx
from trustwatch.ingest.readers.nxlog import read_otrf_zip
from trustwatch.ingest.records import EventBatch, Item, Rejected, RowBatch

FORMAT = {f.name: f for f in formats()}
SMALL = limits.Limits(event_bytes=64 * 1024, depth=16, fields=64, records=1000)
BABYSHARK = SHARED / "data" / "evtx_attack_samples" / "babyshark_mimikatz_powershell.evtx"
PANACHE = SHARED / "data" / "evtx_attack_samples" / "PanacheSysmon_vs_AtomicRedTeam01.evtx"


def evtx_line(record_id: int, **data: Any) -> str:
    system = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
        "EventID": 1,
        "EventRecordID": record_id,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "WS01",
    }
    event_data = {"Image": f"C:\\p{record_id}.exe", **data}
    return json.dumps({"Event": {"System": system, "EventData": event_data}})


def xml_event(record_id: int, data: str = "") -> str:
    return (
        '<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
        '<Provider Name="Microsoft-Windows-Sysmon"/><EventID>1</EventID>'
        f"<EventRecordID>{record_id}</EventRecordID><Channel>c</Channel><Computer>WS01</Computer>"
        f'</System><EventData><Data Name="Image">C:\\p{record_id}.exe</Data>{data}</EventData>'
        "</Event>"
    )


def run(items: Iterator[Item]) -> tuple[list[int], list[Rejected], list[Any]]:
    """The refs of the records kept, the Rejected, and the docs / rows kept."""
    refs: list[int] = []
    rejected: list[Rejected] = []
    kept: list[Any] = []
    for item in items:
        if isinstance(item, Rejected):
            rejected.append(item)
        elif isinstance(item, EventBatch):
            refs += item.refs
            kept += item.docs
        else:
            assert isinstance(item, RowBatch)
            refs += item.refs
            kept += item.rows
    return refs, rejected, kept


def read(fmt: str, path: Path, under: limits.Limits = SMALL) -> tuple[list[int], list[Rejected]]:
    with limits.using(under):
        refs, rejected, _ = run(FORMAT[fmt].read(path))
    return refs, rejected


def storable(rejected: list[Rejected]) -> None:
    for r in rejected:
        assert isinstance(r.excerpt, str) and len(r.excerpt) <= 200
        assert "\x00" not in r.excerpt + r.reason
        r.excerpt.encode("utf-8")  # valid UTF-8: no lone surrogates
        r.reason.encode("utf-8")


# --- JSON event files (evtx-json; ECS, NXLog, flat and Sentinel rows share the reader) ------


def test_deep_nesting_is_one_rejected_and_the_file_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    deep = "[" * 200_000  # json.loads raised RecursionError on this
    path.write_text(f"{evtx_line(1)}\n{deep}\n{evtx_line(3)}\n")
    refs, rejected = read("evtx-json", path, limits.DEFAULT)
    assert refs == [1, 3]
    assert len(rejected) == 1 and rejected[0].ref == 2
    assert "depth limit (64)" in rejected[0].reason
    storable(rejected)


def test_deep_record_within_a_line_is_rejected(tmp_path: Path) -> None:
    nested: Any = "x"
    for _ in range(40):
        nested = {"a": nested}
    path = tmp_path / "deep.jsonl"
    path.write_text(f"{evtx_line(1)}\n{evtx_line(2, Deep=nested)}\n{evtx_line(3)}\n")
    refs, rejected = read("evtx-json", path)
    assert refs == [1, 3]
    assert [r.ref for r in rejected] == [2] and "depth limit (16)" in rejected[0].reason


def test_huge_event_line_is_not_held_and_neighbours_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    big = evtx_line(2, Blob="A" * 200_000)
    path.write_text(f"{evtx_line(1)}\n{big}\n{evtx_line(3)}\n")
    refs, rejected = read("evtx-json", path)
    assert refs == [1, 3]
    assert [r.ref for r in rejected] == [2]
    assert "event-bytes limit (65,536)" in rejected[0].reason
    assert rejected[0].excerpt.startswith('{"Event"')


def test_huge_line_without_newline_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "tail.jsonl"
    path.write_text(f"{evtx_line(1)}\n" + '{"Event": "' + "B" * 300_000)
    refs, rejected = read("evtx-json", path)
    assert refs == [1]
    assert len(rejected) == 1 and "event-bytes" in rejected[0].reason


def test_huge_pretty_document_is_refused_and_the_next_one_read(tmp_path: Path) -> None:
    big = json.loads(evtx_line(2))
    big["Event"]["EventData"]["Lines"] = ["C" * 100] * 2000  # 200 KB spread over 2,000 lines
    docs = [json.loads(evtx_line(1)), big, json.loads(evtx_line(3))]
    path = tmp_path / "pretty.json"
    path.write_text("\n".join(json.dumps(d, indent=2) for d in docs) + "\n")
    refs, rejected = read("evtx-json", path, replace(SMALL, fields=100_000))
    assert len(refs) == 2 and len(rejected) == 1
    assert "event-bytes limit" in rejected[0].reason


def test_too_many_fields(tmp_path: Path) -> None:
    wide = {f"F{i}": i for i in range(100)}
    path = tmp_path / "wide.jsonl"
    path.write_text(f"{evtx_line(1)}\n{evtx_line(2, **wide)}\n{evtx_line(3)}\n")
    refs, rejected = read("evtx-json", path)
    assert refs == [1, 3]
    assert [r.ref for r in rejected] == [2] and "fields limit (64)" in rejected[0].reason


def test_nul_and_invalid_text_in_values_are_stored_safely(tmp_path: Path) -> None:
    path = tmp_path / "nul.jsonl"
    lines = [
        evtx_line(1, CommandLine="a\u0000b"),
        evtx_line(2, CommandLine="\ud800 lone surrogate"),  # \ud800 escape in the JSON text
        evtx_line(3).replace("p3", "p"),  # an invalid UTF-8 byte goes in below
    ]
    raw = "\n".join(lines).encode().replace(b"p.exe", b"p\xff.exe")
    path.write_bytes(raw + b"\n\x00\xff{\x00\n")  # and a line of NULs and junk
    with limits.using(SMALL):
        refs, rejected, docs = run(FORMAT["evtx-json"].read(path))
    assert refs == [1, 2, 3]
    for doc in docs:
        doc.encode("utf-8")  # storable: lone surrogates were replaced
    assert "\\u0000" in docs[0]  # the NUL stays in the value, escaped in the JSON text
    assert "p\ufffd.exe" in docs[2]
    assert len(rejected) == 1 and rejected[0].ref == 4
    storable(rejected)


def test_records_limit_stops_the_file_with_one_rejected(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text("".join(evtx_line(n) + "\n" for n in range(1, 26)))
    refs, rejected = read("evtx-json", path, replace(SMALL, records=10))
    assert refs == list(range(1, 11))
    assert len(rejected) == 1 and "records limit (10)" in rejected[0].reason
    assert rejected[0].ref == 11


# --- XML ------------------------------------------------------------------------------------


def test_xml_limits(tmp_path: Path) -> None:
    deep = "<a>" * 50 + "x" + "</a>" * 50
    wide = "".join(f'<Data Name="F{i}">{i}</Data>' for i in range(100))
    huge = f'<Data Name="Blob">{"D" * 100_000}</Data>'
    path = tmp_path / "events.xml"
    events = [xml_event(1), xml_event(2, deep), xml_event(3, wide), xml_event(4, huge)]
    path.write_text("<Events>" + "".join(events) + xml_event(5) + "</Events>")
    refs, rejected = read("xml", path)
    assert refs == [1, 5]
    reasons = {r.ref: r.reason for r in rejected}
    assert "depth limit (16)" in reasons[2]
    assert "fields limit (64)" in reasons[3]
    assert "event-bytes limit (65,536)" in reasons[4]


def test_xml_deep_nesting_never_recurses(tmp_path: Path) -> None:
    path = tmp_path / "deep.xml"
    path.write_text(xml_event(1, "<a>" * 100_000 + "</a>" * 100_000) + xml_event(2))
    refs, rejected = read("xml", path, replace(SMALL, event_bytes=4 << 20))
    assert refs == [2] and "depth limit" in rejected[0].reason


def test_xml_event_without_end_is_not_held_whole(tmp_path: Path) -> None:
    path = tmp_path / "open.xml"
    path.write_text(xml_event(1) + "<Event><System>" + "E" * 300_000)
    refs, rejected = read("xml", path)
    assert refs == [1]
    assert len(rejected) == 1 and "event-bytes limit" in rejected[0].reason


# --- tables: CSV and JSON rows --------------------------------------------------------------


def test_csv_with_100k_columns_and_a_huge_row(tmp_path: Path) -> None:
    header = "TimeGenerated [UTC],Type,Computer"
    good = '"5/1/2024, 10:00:01.123 AM",Heartbeat,WS{}'
    path = tmp_path / "export.csv"
    wide = ",".join(["x"] * 100_000)
    long = good.format(2) + "Z" * 300_000
    path.write_text("\n".join([header, good.format(1), wide, long, good.format(4)]) + "\n")
    refs, rejected = read("la-portal-csv", path, replace(SMALL, event_bytes=256 * 1024))
    assert refs == [2, 5]
    reasons = {r.ref: r.reason for r in rejected}
    assert "fields limit (64)" in reasons[3]
    assert "event-bytes limit (262,144)" in reasons[4]
    wide_header = tmp_path / "wide.csv"
    wide_header.write_text(f"TimeGenerated [UTC],{wide}\n{good.format(1)}\n")
    refs, rejected = read("la-portal-csv", wide_header, replace(SMALL, event_bytes=256 * 1024))
    assert refs == [] and len(rejected) == 1 and "fields limit (64)" in rejected[0].reason


def test_json_rows_deep_and_huge(tmp_path: Path) -> None:
    row = {"Timestamp": "2024-05-01T10:00:00Z", "DeviceName": "d", "ActionType": "ProcessCreated"}
    deep = "[" * 20_000 + "]" * 20_000
    big = dict(row, ProcessCommandLine="P" * 100_000)
    wide = dict(row, **{f"C{i}": i for i in range(100)})
    path = tmp_path / "rows.json"
    path.write_text(
        f"[{json.dumps(row)},{deep},{json.dumps(big)},{json.dumps(wide)},{json.dumps(row)}]"
    )
    with limits.using(SMALL):
        refs, rejected, _ = run(FORMAT["defender-csv"].read(path))
    assert refs == [1, 5]
    reasons = {r.ref: r.reason for r in rejected}
    assert "depth limit" in reasons[2]
    assert "event-bytes limit" in reasons[3]
    assert "fields limit" in reasons[4]


def test_json_row_lines_deep_and_huge(tmp_path: Path) -> None:
    row = {"Timestamp": "2024-05-01T10:00:00Z", "DeviceName": "d", "ActionType": "ProcessCreated"}
    path = tmp_path / "rows.jsonl"
    deep = "[" * 30_000
    big = json.dumps(dict(row, ProcessCommandLine="P" * 100_000))
    path.write_text("\n".join([json.dumps(row), deep, big, json.dumps(row)]) + "\n")
    with limits.using(SMALL):
        refs, rejected, _ = run(FORMAT["defender-csv"].read(path))
    assert refs == [1, 4]
    reasons = {r.ref: r.reason for r in rejected}
    assert "depth limit" in reasons[2] and "event-bytes limit" in reasons[3]


# --- zips -----------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes | Iterator[bytes]]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            if isinstance(data, bytes):
                archive.writestr(name, data)
                continue
            with archive.open(name, "w", force_zip64=True) as member:
                for piece in data:
                    member.write(piece)


def _zeros(total: int) -> Iterator[bytes]:
    block = b"0" * (1 << 20)
    for _ in range(total >> 20):
        yield block


def test_zip_bomb_member_is_stopped_and_other_members_read(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    good = (evtx_line(1) + "\n").encode()
    _zip(path, {"a.json": good, "bomb.json": _zeros(64 << 20), "c.json": good})
    under = replace(SMALL, zip_member_bytes=8 << 20)
    with limits.using(under):
        refs, rejected, _ = run(read_otrf_zip(path))
    assert len(refs) == 2
    bomb = [r for r in rejected if "bomb.json" in r.reason]
    assert len(bomb) == 1
    assert "zip-ratio limit (200)" in bomb[0].reason or "zip-member-bytes" in bomb[0].reason


def test_zip_member_bytes_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.zip"
    lines = "".join(
        evtx_line(n, Pad="".join(chr(33 + (n * 7 + i) % 90) for i in range(400))) + "\n"
        for n in range(1, 400)
    )
    _zip(path, {"big.json": lines.encode(), "small.json": (evtx_line(999) + "\n").encode()})
    under = replace(SMALL, zip_member_bytes=20_000)
    with limits.using(under):
        refs, rejected, _ = run(read_otrf_zip(path))
    assert 999 in [json.loads(d)["Event"]["System"]["EventRecordID"] for d in _docs(path, under)]
    member = [r for r in rejected if "big.json" in r.reason]
    assert len(member) == 1 and "zip-member-bytes limit (20,000)" in member[0].reason
    assert 0 < len(refs) < 400


def _docs(path: Path, under: limits.Limits) -> list[str]:
    with limits.using(under):
        return run(read_otrf_zip(path))[2]


def test_zip_members_limit(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    _zip(path, {f"m{n}.json": (evtx_line(n) + "\n").encode() for n in range(1, 8)})
    with limits.using(replace(SMALL, zip_members=3)):
        refs, rejected, _ = run(read_otrf_zip(path))
    assert len(refs) == 3
    assert len(rejected) == 1 and "zip-members limit (3)" in rejected[0].reason


def test_zip_member_names_are_only_labels(tmp_path: Path) -> None:
    path = tmp_path / "names.zip"
    _zip(path, {"../../etc/passwd.json": (evtx_line(1) + "\n").encode()})
    refs, rejected, _ = run(read_otrf_zip(path))
    assert len(refs) == 1 and not rejected
    assert not (tmp_path.parent.parent / "etc" / "passwd.json").exists()


# --- EVTX -----------------------------------------------------------------------------------


def _record_ends(chunk: bytes) -> list[int]:
    """Where each record of an intact chunk ends (by its size field), independently."""
    ends, offset = [], 512
    while chunk[offset : offset + 4] == b"\x2a\x2a\x00\x00":
        offset += struct.unpack_from("<I", chunk, offset + 4)[0]
        ends.append(offset)
    return ends


@needs_shared
@pytest.mark.parametrize("cut", [4096 + 600, 10_000, 40_960, 46_600, 60_000, 69_000])
def test_truncated_last_chunk_keeps_every_whole_record(tmp_path: Path, cut: int) -> None:
    data = BABYSHARK.read_bytes()
    ends = _record_ends(data[4096:])
    assert len(ends) == 33
    path = tmp_path / "cut.evtx"
    path.write_bytes(data[:cut])
    refs, rejected, _ = run(read_evtx(path))
    whole = sum(1 for end in ends if 4096 + end <= cut)
    assert refs == list(range(1, whole + 1))
    assert len(refs) + sum(r.count for r in rejected) == 33
    assert any("cut short" in r.reason and "offset 4096" in r.reason for r in rejected)


@needs_shared
def test_flipped_bytes_lose_only_their_chunk_and_are_located(tmp_path: Path) -> None:
    data = bytearray(PANACHE.read_bytes())
    total = sum(1 for _ in read_evtx(PANACHE))  # batches: reading the intact file works
    assert total
    intact, _, _ = run(read_evtx(PANACHE))
    data[4096 + 65536 + 512] ^= 0xFF  # the first record magic of chunk 1
    data[4096 + 2 * 65536] ^= 0xFF  # chunk 2's signature: read behind a repaired one
    path = tmp_path / "flipped.evtx"
    path.write_bytes(bytes(data))
    refs, rejected, _ = run(read_evtx(path))
    assert len(refs) + sum(r.count for r in rejected) == len(intact)
    lost = [r for r in rejected if r.count]
    assert len(lost) == 1 and lost[0].ref == 4096 + 65536 and "chunk 1" in lost[0].reason
    assert any("chunk 2" in r.reason and "repaired" in r.reason for r in rejected)


@needs_shared
def test_evtx_record_limits(tmp_path: Path) -> None:
    with limits.using(replace(limits.DEFAULT, event_bytes=1500)):
        refs, rejected, _ = run(read_evtx(BABYSHARK))
    assert len(refs) + len(rejected) == 33
    assert rejected and all("event-bytes limit (1,500)" in r.reason for r in rejected)
    assert all(r.ref_kind == "record" and r.count == 1 for r in rejected)


def test_zip_declaring_far_too_many_members_is_not_listed(tmp_path: Path) -> None:
    path = tmp_path / "crowd.zip"
    _zip(path, {f"m{n}.json": b"{}\n" for n in range(40)})
    with limits.using(replace(SMALL, zip_members=3)):
        refs, rejected, _ = run(read_otrf_zip(path))
    assert refs == []
    assert len(rejected) == 1 and "not read" in rejected[0].reason
    assert "zip-members limit (3)" in rejected[0].reason


def test_a_deep_first_line_does_not_break_format_detection(tmp_path: Path) -> None:
    """The Defender-rows sniffer json.loads-ed the first line (RecursionError escaped detection:
    found by bench/fuzz.py readers): no reader claims such a head, and the file is skipped with
    its reason; read as event JSON lines, the deep line is one Rejected."""
    from trustwatch.ingest import pipeline

    path = tmp_path / "deep-first.json"
    path.write_text('{"a":' * 20_000 + "1" + "}" * 20_000 + f"\n{evtx_line(2)}\n")
    planned, skipped = pipeline.plan([path], skip_unknown=True)
    assert planned == [] and len(skipped) == 1
    assert "not a telemetry format" in skipped[0][1]
    refs, rejected = read("evtx-json", path, limits.DEFAULT)
    assert refs == [2]
    assert len(rejected) == 1 and "depth limit" in rejected[0].reason


def test_sentinel_event_data_nested_too_deeply_is_a_row_error() -> None:
    from trustwatch.ingest.readers.sentinel import row_doc

    row = {"Type": "WindowsEvent", "EventData": '{"a":' * 20_000 + "1" + "}" * 20_000}
    with pytest.raises(ValueError, match="nested too deeply"):
        row_doc("WindowsEvent", row)
