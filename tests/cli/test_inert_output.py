"""Every terminal output path prints hostile values inert; JSON / JSONL / CSV keep them exact.

One value holding every C0 and C1 control, DEL, the common CSI / OSC sequences, bidi and
zero-width characters and rich markup goes through the query table, hunt's alert table, the
ingest account (as a file name), error messages and the ``kql`` dumps.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustwatch.cli.main import cli
from trustwatch.inert import UNSAFE, visible

SEQUENCES = "\x1b[2J\x1b]0;title\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\x9b31m\x1b[8m"
INVISIBLE = "\u202e\u2066\u2069\u200e\u200f\u061c\u200b\u200c\u200d\u2060\ufeff\u2028\U000e0041"
MARKUP = "[red]x[/] [link=http://x]y[/link] :smile:"
CONTROLS = "".join(chr(c) for c in range(0x20) if c not in (0x0A, 0x0D)) + "\x7f"
C1 = "".join(map(chr, range(0x80, 0xA0)))
HOSTILE = f"cmd {CONTROLS}{C1}{SEQUENCES}{INVISIBLE}{MARKUP} evil\nline2\rover"
_UNSAFE = re.compile(f"[{UNSAFE}]")
IN_NAME = SEQUENCES.replace("/", "_")  # what a file name can hold


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def assert_inert(text: str, layout: str = "\n") -> None:
    """No unsafe character but the ``layout`` of our own (line feeds) reaches the output."""
    raw = sorted({f"U+{ord(c):04X}" for c in _UNSAFE.findall(text) if c not in layout})
    assert raw == [], text[:2000]


def hostile_table(tmp_path: Path) -> Path:
    path = tmp_path / "procs.jsonl"
    row = {"DeviceName": "ws\x1b[2J01", "ProcessCommandLine": HOSTILE, "FileName": MARKUP}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


QUERY = "DeviceProcessEvents | project DeviceName, ProcessCommandLine, FileName"


def test_query_table_shows_the_hostile_value_escaped_and_no_markup(tmp_path: Path) -> None:
    code, stdout, stderr = run(
        "query", QUERY, "--table", f"DeviceProcessEvents={hostile_table(tmp_path)}"
    )
    assert code == 0, stderr
    assert_inert(stdout)
    assert "ws\\x1b[2J01" in stdout
    assert "\\x1b]0;title\\x07" in stdout and "\\x9b31m" in stdout and "\\u202e" in stdout
    assert "evil\\x0aline2\\x0dover" in stdout  # a cell stays on its line
    assert MARKUP in stdout  # shown as written, not read as rich markup


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_formats_are_inert_and_exact(tmp_path: Path, fmt: str) -> None:
    code, stdout, _ = run(
        "query", QUERY, "--table", f"DeviceProcessEvents={hostile_table(tmp_path)}", "--format", fmt
    )
    assert code == 0
    assert_inert(stdout)
    rows = json.loads(stdout) if fmt == "json" else [json.loads(x) for x in stdout.splitlines()]
    assert rows == [
        {"DeviceName": "ws\x1b[2J01", "ProcessCommandLine": HOSTILE, "FileName": MARKUP}
    ]


def test_csv_stays_byte_exact(tmp_path: Path) -> None:
    code, stdout, _ = run(
        "query",
        QUERY,
        "--table",
        f"DeviceProcessEvents={hostile_table(tmp_path)}",
        "--format",
        "csv",
    )
    assert code == 0
    rows = list(csv.reader(io.StringIO(stdout, newline="")))
    assert rows[1] == ["ws\x1b[2J01", HOSTILE, MARKUP]


def sysmon_json(record: int, image: str, computer: str, store: str = "ROOT") -> str:
    """A Sysmon registry write (EventID 13) as evtx_dump JSON: a certificate into ``store``."""
    system = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
        "EventID": 13,
        "TimeCreated": {"#attributes": {"SystemTime": f"2024-05-01T10:0{record}:00.000000Z"}},
        "EventRecordID": record,
        "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 8}},
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": computer,
        "Security": {"#attributes": {"UserID": "S-1-5-18"}},
    }
    data = {
        "EventType": "SetValue",
        "UtcTime": f"2024-05-01 10:0{record}:00.000",
        "ProcessGuid": "{11111111-2222-3333-4444-555555555555}",
        "ProcessId": 4242,
        "Image": image,
        "TargetObject": f"HKLM\\SOFTWARE\\Microsoft\\SystemCertificates\\{store}\\Certificates\\"
        f"{'3B' * 20}\\Blob",
        "Details": "Binary Data",
        "User": "CORP\\bob",
    }
    return json.dumps({"Event": {"System": system, "EventData": data}})


def test_hunt_table_and_account_are_inert(tmp_path: Path) -> None:
    folder = tmp_path / f"triage{IN_NAME}"
    folder.mkdir()
    name = "sysmon\x1b[2J\u202egnp.jsonl"  # a hostile file name, shown in the hunt's notices
    (folder / name).write_text(
        sysmon_json(1, f"C:\\Users\\Public\\{HOSTILE}.exe", f"ws{SEQUENCES}01") + "\n{{{\n",
        encoding="utf-8",
    )
    code, stdout, stderr = run("hunt", str(folder), "--no-tuning")
    assert code == 1, stderr
    assert_inert(stdout)
    assert_inert(stderr)
    assert "\\x1b[2J" in stdout and "\\u202e" in stdout and MARKUP in stdout
    assert "input skipped: 1 record(s) quarantined in 1 file(s)" in stderr
    code, stdout, _ = run("hunt", str(folder), "--no-tuning", "--format", "json")
    assert code == 1
    assert_inert(stdout)
    alerts = json.loads(stdout)
    assert alerts[0]["Evidence"][0]["ProcessPath"] == f"C:\\Users\\Public\\{HOSTILE}.exe"
    out = tmp_path / "alerts.jsonl"
    assert run("hunt", str(folder), "--no-tuning", "--out", str(out))[0] == 1
    written = out.read_text(encoding="utf-8")
    assert_inert(written)
    assert json.loads(written.splitlines()[0])["Evidence"] == alerts[0]["Evidence"]


def test_ingest_account_shows_a_hostile_file_name_escaped(tmp_path: Path) -> None:
    name = f"a{IN_NAME}{MARKUP.replace('/', '_')}\u202e.jsonl"
    (tmp_path / name).write_text(
        sysmon_json(1, "C:\\x.exe", "ws01") + "\nnot json\x1b[2J\n", encoding="utf-8"
    )
    (tmp_path / f"notes{IN_NAME}.txt").write_text("hello\n", encoding="utf-8")
    code, stdout, stderr = run("ingest", str(tmp_path), "--workspace", str(tmp_path / "ws.duckdb"))
    assert code == 0, stderr
    assert_inert(stdout)
    assert_inert(stderr)
    assert visible(name)[:20] in stdout.replace("\n", "")
    assert f"notes{visible(IN_NAME)}.txt" in stderr
    assert (
        stderr.rstrip().splitlines()[-1].startswith("input skipped: 1 file(s) not read, 1 record")
    )


@pytest.mark.parametrize(
    "args",
    [
        ("query", f'print x = "{SEQUENCES}" | where'),  # a syntax error quoting the line
        ("query", f"DeviceProcessEvents | where {MARKUP}\u202e == 1"),
        ("query", "-f", f"missing{SEQUENCES}.kql"),
        ("hunt", f"nothing-here{SEQUENCES}"),
    ],
    ids=["syntax", "markup", "file name", "hunt path"],
)
def test_error_messages_are_inert(args: tuple[str, ...]) -> None:
    code, stdout, stderr = run(*args)
    assert code == 2
    assert_inert(stdout + stderr)
    assert "error[" in stderr


@pytest.mark.parametrize("stage", ["tokens", "ast", "sql", "fmt"])
def test_kql_dumps_are_inert(stage: str) -> None:
    query = f'print x = @"{SEQUENCES}{INVISIBLE}{MARKUP}", y = strlen("\u202e")'
    code, stdout, stderr = run("kql", stage, query)
    assert code == 0, stderr
    assert_inert(stdout, "\n\t" if stage == "tokens" else "\n")  # tokens: tab-separated
    assert "[2J" in stdout and "\\u202e" in stdout  # shown as escapes (ours or the printer's)


def test_kql_fmt_keeps_the_layout_of_the_query() -> None:
    code, stdout, _ = run("kql", "fmt", "DeviceProcessEvents\n| where FileName == 'a\tb'\n| take 1")
    assert code == 0
    assert "\n| " in stdout and "\\x0a" not in stdout


def test_rules_list_and_lint_are_inert(tmp_path: Path) -> None:
    rule = tmp_path / "hostile.yaml"
    rule.write_text(
        'id: not-a-guid\nname: "evil \\e[2J \\u202e [red]x[/]"\nkind: Scheduled\n'
        "query: |\n  DeviceProcessEvents\n  | project Nope\n",
        encoding="utf-8",
    )
    code, stdout, stderr = run("rules", "list", "--rules", str(rule))
    assert code == 0, stderr
    assert_inert(stdout)
    assert "evil \\x1b[2J \\u202e [red]x[/]" in stdout
    code, stdout, stderr = run("rules", "lint", "--rules", str(rule))
    assert_inert(stdout + stderr)
