"""``.reg`` exports: both formats, continuation lines, located problems, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.certs import certgen
from trustwatch.certs.blob import decode_blob, encode_blob, sha1_thumbprint
from trustwatch.certs.regfile import (
    REG_BINARY,
    REG_DWORD,
    REG_EXPAND_SZ,
    REG_MULTI_SZ,
    REG_QWORD,
    REG_SZ,
    KeyDeletion,
    RegEntry,
    RegistryValue,
    RegKey,
    ValueDeletion,
    decode_reg_bytes,
    encode_reg,
    parse_reg,
    read_reg,
    write_reg,
)
from trustwatch.errors import InputError

ROOT_KEY = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\SystemCertificates\\ROOT\\Certificates"


def sz(text: str) -> bytes:
    return (text + "\x00").encode("utf-16-le")


def shape(entries: tuple[RegEntry, ...] | list[RegEntry]) -> list[tuple[object, ...]]:
    """Entries without their source and line, to compare a round trip."""
    out: list[tuple[object, ...]] = []
    for e in entries:
        if isinstance(e, RegistryValue):
            out.append(("value", e.key, e.name, e.type, e.data))
        elif isinstance(e, ValueDeletion):
            out.append(("delete-value", e.key, e.name))
        else:
            out.append((type(e).__name__, e.key))
    return out


@pytest.fixture(scope="module")
def blob() -> bytes:
    der = certgen.self_signed_root().public_bytes(Encoding.DER)
    return encode_blob(der, "Contoso")


@pytest.fixture(scope="module")
def entries(blob: bytes) -> list[RegEntry]:
    thumb = sha1_thumbprint(decode_blob(blob).der)
    key = f"{ROOT_KEY}\\{thumb}"
    other = 'HKEY_CURRENT_USER\\Software\\Contoso "Quoted" [brackets]'
    return [
        RegKey(key),
        RegistryValue(key, "Blob", REG_BINARY, blob),
        RegKey(other),
        RegistryValue(other, "", REG_SZ, sz("default value")),
        RegistryValue(other, 'Path "q"', REG_SZ, sz('C:\\Temp\\"x"')),
        RegistryValue(other, "Count", REG_DWORD, (0x1F).to_bytes(4, "little")),
        RegistryValue(other, "Expand", REG_EXPAND_SZ, sz("%SystemRoot%\\caf\u00e9")),
        RegistryValue(other, "Multi", REG_MULTI_SZ, sz("a\x00b\x00")),
        RegistryValue(other, "Big", REG_QWORD, (2**40).to_bytes(8, "little")),
        RegistryValue(other, "Empty", REG_BINARY, b""),
        RegistryValue(other, "Lines", REG_SZ, sz("two\r\nlines")),
        ValueDeletion(other, "Gone"),
        KeyDeletion("HKEY_CURRENT_USER\\Software\\Old"),
    ]


def test_round_trip_utf16(entries: list[RegEntry], tmp_path: Path) -> None:
    data = encode_reg(write_reg(entries))
    assert data[:2] == b"\xff\xfe"
    assert data[2:34].decode("utf-16-le") == "Windows Registry"
    path = tmp_path / "export.reg"
    path.write_bytes(data)
    snap = read_reg(path)
    assert snap.format == "5.00"
    assert snap.problems == ()
    assert shape(snap.entries) == shape(entries)
    assert snap.values[0].location == f"{path}:4"  # header, blank, [key], then the Blob


def test_round_trip_regedit4(entries: list[RegEntry]) -> None:
    text = write_reg(entries, regedit4=True)
    data = encode_reg(text)
    assert data.startswith(b"REGEDIT4\r\n")
    assert "hex(2):25,00" not in text  # REGEDIT4 strings are ANSI: one byte a character
    assert '"Expand"=hex(2):25,53,79,73,74,65,6d,52,6f,6f,74,25,5c,63,61,66,e9,00' in text
    snap = parse_reg(decode_reg_bytes(data), "old.reg")
    assert snap.format == "REGEDIT4"
    assert snap.problems == ()
    assert shape(snap.entries) == shape(entries)


def test_written_layout_is_regedits(entries: list[RegEntry]) -> None:
    text = write_reg(entries)
    lines = text.split("\r\n")
    assert lines[0] == "Windows Registry Editor Version 5.00"
    assert lines[1] == ""
    assert lines[2].startswith(f"[{ROOT_KEY}\\")
    assert lines[3].startswith('"Blob"=hex:04,00,00,00,01,00,00,00,10,00,00,00,')
    assert all(len(line) <= 80 for line in lines if not line.startswith("["))
    assert all(line.startswith("  ") for line in lines[4:10])
    assert '"Path \\"q\\""="C:\\\\Temp\\\\\\"x\\""' in lines
    assert '"Count"=dword:0000001f' in lines
    assert '@="default value"' in lines
    assert '"Gone"=-' in lines
    assert "[-HKEY_CURRENT_USER\\Software\\Old]" in lines
    assert any(line.startswith('"Lines"=hex(1):') for line in lines)  # no raw newlines


def test_continuation_lines_and_comments() -> None:
    text = "\n".join(
        [
            "Windows Registry Editor Version 5.00",
            "",
            "; exported by hand",
            "[HKEY_CURRENT_USER\\Software\\T]",
            '"Bin"=hex:01,02,\\',
            "  03,04,\\",
            "\t05",
            "   ; an indented comment",
            '"After"=dword:00000002 ; trailing comment',
            '"Str"="a;b" ; the ; inside quotes is data',
        ]
    )
    snap = parse_reg(text, "c.reg")
    assert snap.problems == ()
    values = snap.values
    assert [(v.name, v.data, v.line) for v in values] == [
        ("Bin", b"\x01\x02\x03\x04\x05", 5),
        ("After", b"\x02\x00\x00\x00", 9),
        ("Str", sz("a;b"), 10),
    ]


def test_bad_lines_are_located_and_the_rest_is_kept() -> None:
    text = "\r\n".join(
        [
            "Windows Registry Editor Version 5.00",  # 1
            "",
            "[HKEY_CURRENT_USER\\Software\\T]",  # 3
            '"Good1"=dword:00000001',
            '"Bad"=hex:zz,01',  # 5
            '"Good2"="two"',
            "garbage line",  # 7
            '"Unterminated="x"',  # 8: the name swallows the rest
            "[HKEY_CURRENT_USER\\Software\\Broken",  # 9
            '"Lost"=dword:00000003',  # 10
            "[HKEY_CURRENT_USER\\Software\\U]",
            '"Good3"=dword:00000004',  # 12
            '"Wrap"=hex:01,\\',  # 13: cut off by the next value
            '"Good4"=hex(b):01,00,00,00,00,00,00,00',
        ]
    )
    snap = parse_reg(text, "bad.reg")
    assert [v.name for v in snap.values] == ["Good1", "Good2", "Good3", "Good4"]
    assert [(p.line, p.location) for p in snap.problems] == [
        (5, "bad.reg:5"),
        (7, "bad.reg:7"),
        (8, "bad.reg:8"),
        (9, "bad.reg:9"),
        (10, "bad.reg:10"),
        (13, "bad.reg:13"),
    ]
    messages = [p.message for p in snap.problems]
    assert "bad hex byte 'zz'" in messages[0]
    assert "not a key, value or comment" in messages[1]
    assert "expected '='" in messages[2]
    assert "does not end with ']'" in messages[3]
    assert "unreadable key of line 9" in messages[4]
    assert "continues" in messages[5]
    error = snap.error()
    assert error is not None
    rendered = error.render()
    assert "--> bad.reg:5:1" in rendered
    assert '"Bad"=hex:zz,01' in rendered
    assert str(error).startswith("bad.reg:5: bad hex byte")


def test_values_outside_a_key() -> None:
    text = 'REGEDIT4\n\n"Early"=dword:1\n[-HKEY_CURRENT_USER\\X]\n"AfterDelete"=dword:2\n'
    snap = parse_reg(text, "o.reg")
    assert snap.values == ()
    assert [(p.line, p.message) for p in snap.problems] == [
        (3, "value before any [key] line"),
        (5, "value after the [-key] of line 4: it has no key"),
    ]
    assert isinstance(snap.entries[0], KeyDeletion)


def test_no_problems_means_no_error() -> None:
    snap = parse_reg("Windows Registry Editor Version 5.00\n", "e.reg")
    assert snap.entries == ()
    assert snap.error() is None


@pytest.mark.parametrize(
    "data",
    [b"[HKEY_LOCAL_MACHINE\\X]\r\n", b"", "hello".encode("utf-16")],
    ids=["no-header", "empty", "utf16-prose"],
)
def test_not_a_reg_export(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "x.reg"
    path.write_bytes(data)
    with pytest.raises(InputError, match="x.reg"):
        read_reg(path)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read .*nope.reg"):
        read_reg(tmp_path / "nope.reg")


def test_decoding() -> None:
    header = "Windows Registry Editor Version 5.00\r\n"
    assert decode_reg_bytes(header.encode("utf-16-le")) == header  # BOM lost by a tool
    assert decode_reg_bytes(b"\xef\xbb\xbf" + header.encode()) == header
    assert decode_reg_bytes('REGEDIT4\r\n"x"="\xe9"'.encode("cp1252")).endswith('"\xe9"')
    with pytest.raises(InputError, match="not valid UTF-16"):
        decode_reg_bytes(b"\xff\xfe\x00\xd8A\x00", "bad.reg")
