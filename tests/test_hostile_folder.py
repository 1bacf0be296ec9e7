"""Issue 13's acceptance: a real attack EVTX beside each hostile file still gives its alert.

Each hostile file is one the issue names (200 KB of nested ``[``, one 50 MB JSON event, a zip
whose member inflates to 5 GB, plus terminal escapes in a file name and in a record): ``hunt``
over the folder must report the certutil alert, exit 1, and say which input it skipped.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import SHARED, needs_shared
from trustwatch.cli.main import cli

# one worker builds the module fixture (ingests, hunts) under --dist loadgroup, not both
pytestmark = [needs_shared, pytest.mark.xdist_group("hostile_folder")]

ATTACK = (
    SHARED
    / "data/sigma_regression/proc_creation_win_certutil_certificate_installation"
    / "d2125259-ddea-4c1c-9c22-977eb5b29cf0.evtx"
)
RULE = "Certutil adds a certificate to a Windows certificate store"
HEAD = '{"Event": {"System": {"EventID": 1, "Computer": "x"}, "EventData": {"CommandLine": "'


def nested(path: Path) -> None:
    """200 KB of nested ``[`` behind a JSON event's head (json.loads recursed to death)."""
    path.write_text(HEAD[:-1] + "[" * 200_000 + "\n")


def huge_event(path: Path) -> None:
    """A single 50 MB JSON event."""
    with path.open("w") as f:
        f.write(HEAD)
        f.write("A" * (50 << 20))
        f.write('"}}}\n')


def zip_bomb(path: Path, inflated: int = 5 << 30) -> None:
    """A zip of one JSON-lines member that inflates to ``inflated`` bytes (5 GB).

    The deflate stream is one full-flushed block of 1 MiB of lines repeated: identical bytes
    each time, so the file is written in milliseconds. Its CRC is not computed (a reader that
    stops at its limits never gets to check it).
    """
    block = b'{"a":1}\n' * (1 << 17)  # 1 MiB
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    unit = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.flush(zlib.Z_FINISH)
    count = inflated // len(block)
    size = len(unit) * count + len(tail)
    name = b"bomb.jsonl"
    # zip64 sizes in an extra field, so the declared size is the real 5 GB
    extra = struct.pack("<HHQQ", 1, 16, count * len(block), size)
    local = struct.pack(
        "<4sHHHHHIIIHH",
        b"PK\x03\x04",
        45,
        0,
        8,
        0,
        0,
        0,
        0xFFFFFFFF,
        0xFFFFFFFF,
        len(name),
        len(extra),
    )
    with path.open("wb") as f:
        f.write(local + name + extra)
        for _ in range(count):
            f.write(unit)
        f.write(tail)
        central_at = f.tell()
        extra_c = struct.pack("<HHQQQ", 1, 24, count * len(block), size, 0)
        central = struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            45,
            45,
            0,
            8,
            0,
            0,
            0,
            0xFFFFFFFF,
            0xFFFFFFFF,
            len(name),
            len(extra_c),
            0,
            0,
            0,
            0,
            0,
        )
        f.write(central + name + extra_c)
        central_size = f.tell() - central_at
        eocd64_at = f.tell()
        f.write(
            struct.pack(
                "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1, central_size, central_at
            )
        )
        f.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd64_at, 1))
        f.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, central_size, central_at, 0))


def escapes_in_name_and_record(folder: Path) -> Path:
    """A file named with terminal escapes, whose one record is garbage with escapes in it."""
    path = folder / "evil\x1b]0;owned\x07\x1b[2J.jsonl"
    path.write_text(HEAD + '\x1b[2Jhidden\x1b]8;;http://x\x1b\\ "not json at all\n')
    return path


HOSTILE = {"nested.json": nested, "huge.json": huge_event, "bomb.zip": zip_bomb}


@pytest.fixture(scope="session")  # once: one worker runs the group (below)
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    shutil.copy(ATTACK, root / ATTACK.name)
    for name, make in HOSTILE.items():
        make(root / name)
    escapes_in_name_and_record(root)
    return root


@pytest.fixture(scope="session")  # once: one worker runs the group (below)
def hunted(folder: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["hunt", str(folder), "--format", "json"])
    return result.exit_code, result.stdout, result.stderr


def test_the_attack_is_still_reported(hunted: tuple[int, str, str]) -> None:
    code, out, err = hunted
    assert code == 1, err
    names = [a["AlertName"] for a in json.loads(out)]
    assert RULE in names


@pytest.mark.parametrize("name", [*HOSTILE, "evil"])
def test_each_hostile_file_is_reported_as_skipped(hunted: tuple[int, str, str], name: str) -> None:
    _, _, err = hunted
    assert "internal error" not in err
    assert any(name in line for line in err.splitlines()), err


def test_nothing_raw_reaches_the_terminal(hunted: tuple[int, str, str]) -> None:
    _, out, err = hunted
    for text in (out, err):
        assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b" in err  # the file's name, made visible
