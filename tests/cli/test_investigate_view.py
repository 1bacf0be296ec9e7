"""``investigate``'s pivot rows on the terminal: no token split across lines, values inert."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest
from rich.console import Console

from trustwatch.cli.investigate_cmd import pivot_rows

SHA1 = "17cf0eff754c1be00d024870fb57d43dd8dd9e67"
TIME = "2026-03-09T10:45:38.194Z"
COMMAND = (
    '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" -NoProfile -Command '
    '"$c = New-SelfSignedCertificate -DnsName atomic-root.test -CertStoreLocation '
    'Cert:\\LocalMachine\\My; Export-Certificate -Cert $c -FilePath C:\\Users\\x\\a.cer"'
)
HOSTILE = "evil\x1b[2J\x1b]0;owned\x07\nnext"


def render(width: int) -> list[str]:
    table = pa.table(
        {
            "Timestamp": [TIME, TIME],
            "Relation": ["alert process", ""],
            "AccountName": ["erin.tan", HOSTILE],
            "FileName": ["powershell.exe", "certutil.exe"],
            "ProcessId": [5472, 2660],
            "ProcessCommandLine": [COMMAND, "certutil -addstore Root a.cer"],
            "ParentCommandLine": ["C:\\Windows\\Explorer.EXE", COMMAND],
            "SHA1": [SHA1, SHA1.upper()],
        }
    )
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(pivot_rows(table, width))
    return out.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 120, 200, 260])
def test_no_time_or_hash_is_split_and_nothing_is_wider(width: int) -> None:
    lines = render(width)
    assert all(len(line) <= width for line in lines)
    text = "\n".join(lines)
    for token in (TIME, SHA1, SHA1.upper(), "powershell.exe", "ProcessCommandLine"):
        assert token in text, token
    # the hostile account name is shown, escaped, never acted on
    assert "\x1b" not in text and "\x07" not in text
    assert "evil\\x1b[2J" in text


def test_a_wide_screen_gets_a_table_a_narrow_one_a_block_per_row() -> None:
    wide = "\n".join(render(260))
    assert "┃ Timestamp" in wide and "row 1" not in wide
    narrow = "\n".join(render(80))
    assert "row 1" in narrow and "row 2" in narrow and "┃" not in narrow
    assert any(line.startswith("SHA1") and SHA1 in line for line in narrow.splitlines())
