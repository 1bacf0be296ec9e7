"""`trustwatch ct scan` from the command line: exit codes, formats, hostile input, --fetch."""

from __future__ import annotations

import csv
import io
import json
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from trustwatch.cli.main import cli
from trustwatch.ct import fetch
from trustwatch.records import SecurityAlert

DATA = Path(__file__).parent / "data"
EXPORT = str(DATA / "crtsh_export.json")
STREAM = str(DATA / "certstream.jsonl")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["ct", "scan", *args])
    return result.exit_code, result.stdout, result.stderr


def test_alerts_exit_1_with_the_table() -> None:
    code, out, err = run("--domain", "contoso.com", EXPORT)
    assert code == 1
    assert "c0ntoso.com" in out and "homoglyph" in out and "Let's Encrypt (R11) [free]" in out
    assert "www.contoso.com" not in out  # the protected domain's own certificate
    assert "skipped: " in err and "record 7" in err and "record 8" in err
    assert "look-alike certificates: 3 (1 High, 2 Medium)" in err
    assert err.rstrip().splitlines()[-1].startswith("input skipped: 2 record(s)")


def test_json_is_security_alerts() -> None:
    code, out, _ = run(
        "--domain", "contoso.com", "--domain", "fabrikam.com", EXPORT, STREAM, "--format", "json"
    )
    assert code == 1
    records = json.loads(out)
    alerts = [SecurityAlert.from_record(r) for r in records]
    assert [a.to_record() for a in alerts] == records  # the SecurityAlert shape, key for key
    top = alerts[0]
    assert top.alert_severity == "High"
    assert top.techniques == ("T1588.004", "T1583.001")
    assert top.tactics == ("ResourceDevelopment",)
    props = top.extended_properties
    assert props["Score"] == "100"
    assert props["Techniques"] == "idn-homoglyph"
    assert props["Free Or Automated CA"] == "free"
    assert "xn--cntoso-i0e.com" in props["Lookalike Names"]
    assert {e["DomainName"] for e in top.entities} == {
        "xn--cntoso-i0e.com",
        "www.xn--cntoso-i0e.com",
    }
    assert top.start_time == "2024-05-01T10:01:40Z"  # the log's time, not the clock
    # crt.sh's precertificate and certificate (same issuer and serial) are one alert
    c0ntoso = next(a for a in alerts if "c0ntoso.com" in a.display_name)
    assert c0ntoso.extended_properties["Sightings"] == "2"
    assert len(c0ntoso.evidence) == 2
    # a paid CA's certificate for another TLD scores without the free-CA bonus
    net = next(a for a in alerts if "contoso.net" in a.display_name)
    assert net.extended_properties["Score"] == "65"
    assert net.extended_properties["Free Or Automated CA"] == ""


def test_jsonl_out_file_and_csv(tmp_path: Path) -> None:
    out_file = tmp_path / "alerts.jsonl"
    code, out, err = run(
        "--domain", "contoso.com", EXPORT, "--format", "csv", "--out", str(out_file)
    )
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["Names"] for r in rows] == [
        "c0ntoso.com www.c0ntoso.com",
        "contoso-login.com",
        "contoso.net www.contoso.net",
    ]
    assert rows[1]["FreeOrAutomated"] == "automated"
    assert "score: added-word 60; automated CA +10" in rows[1]["Why"]
    lines = out_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["AlertType"] == "trustwatch_ct_lookalike"
    assert f"wrote 3 alert(s) to {out_file}" in err


def test_allowed_names_never_alert(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(
        json.dumps(
            [
                {
                    "name_value": "contoso.sharepoint.com\nx.contoso.sharepoint.com",
                    "issuer_name": "O=Microsoft Corporation, CN=X",
                }
            ]
        )
    )
    code, _, _ = run("--domain", "contoso.com", str(path))
    assert code == 1  # the brand as a subdomain of sharepoint.com
    code, out, err = run("--domain", "contoso.com", "--allow", "contoso.sharepoint.com", str(path))
    assert (code, out) == (0, "")
    assert "2 name(s) your own" in err
    code, _, err = run("--domain", "contoso.com", "--allow", "not a name", str(path))
    assert code == 2 and "is not a DNS name" in err


def test_min_score_filters() -> None:
    code, out, err = run(
        "--domain", "contoso.com", EXPORT, "--min-score", "90", "--format", "jsonl"
    )
    assert code == 1
    assert len(out.splitlines()) == 1
    assert "scoring 90 or more: 1" in err


def test_nothing_found_exits_0(tmp_path: Path) -> None:
    clean = tmp_path / "clean.json"
    clean.write_text(
        json.dumps(
            [
                {
                    "name_value": "www.contoso.com\ncontoso.com",
                    "issuer_name": "C=US, O=DigiCert Inc, CN=X",
                }
            ]
        )
    )
    code, out, err = run("--domain", "contoso.com", str(clean))
    assert (code, out) == (0, "")
    assert "2 name(s) your own" in err


def test_nothing_found_but_input_skipped_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a CT export\n")
    code, _, err = run("--domain", "contoso.com", str(bad))
    assert code == 3
    assert f"unreadable: {bad}: not a crt.sh JSON export" in err
    assert "input skipped: 1 file(s) unreadable" in err


def test_one_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    bad = tmp_path / "a-broken.json"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    code, out, err = run("--domain", "contoso.com", str(bad), EXPORT, "--format", "jsonl")
    assert code == 1
    assert len(out.splitlines()) == 3
    assert f"unreadable: {bad}" in err


def test_a_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text((DATA / "crtsh_export.json").read_text())
    code, out, _ = run("--domain", "contoso.com", str(tmp_path), "--format", "jsonl")
    assert code == 1 and len(out.splitlines()) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((EXPORT,), "no --domain given"),
        (("--domain", "contoso.com"), "no CT records given"),
        (("--domain", "co.uk", EXPORT), "not a registrable domain name"),
        (("--domain", "contoso.com", "/nonexistent/ct.json"), "no such file or directory"),
    ],
)
def test_bad_usage_exits_2(args: tuple[str, ...], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2 and out == ""
    assert message in err
    assert "Traceback" not in err


def test_a_line_past_the_limit_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "stream.jsonl"
    line = json.dumps({"leaf_cert": {"all_domains": ["c0ntoso.com"], "pad": "x" * 3000}})
    path.write_text(line + "\n" + json.dumps({"leaf_cert": {"all_domains": ["c0ntoso.com"]}}))
    code, out, err = run(
        "--domain", "contoso.com", str(path), "--limit", "event-bytes=1KB", "--format", "jsonl"
    )
    assert code == 1 and len(out.splitlines()) == 1
    assert f"skipped: {path}:line 1: a line of" in err and "event-bytes limit" in err


def test_hostile_issuer_is_inert_on_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "hostile.json"
    path.write_text(
        json.dumps(
            [
                {
                    "name_value": "contoso-login.com\n\x1b]0;pwned\x07evil.com",
                    "issuer_name": "C=US, O=Evil\x1b[2J\u202eCA, CN=R1",
                    "serial_number": "01",
                }
            ]
        )
    )
    code, out, err = run("--domain", "contoso.com", str(path))
    assert code == 1
    for text in (out, err):
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "\\x1b[2J" in out and "\\u202e" in out
    code, out, _ = run("--domain", "contoso.com", str(path), "--format", "json")
    assert "\x1b" not in out and "\\u001b" in out
    props = json.loads(json.loads(out)[0]["ExtendedProperties"])
    assert props["Issuer"] == "C=US, O=Evil\x1b[2J\u202eCA, CN=R1"  # exact once parsed


# --- --fetch, with a recorded crt.sh answer (never the network) ---------------------------------


class _Opener:
    """Stands in for urllib's urlopen: records the request, answers from a file or fails."""

    def __init__(self, answer: bytes | Exception) -> None:
        self.answer = answer
        self.requests: list[Any] = []

    @contextmanager
    def __call__(self, request: Any, timeout: float) -> Iterator[io.BufferedReader]:
        self.requests.append((request, timeout))
        if isinstance(self.answer, Exception):
            raise self.answer
        yield io.BufferedReader(io.BytesIO(self.answer))  # type: ignore[arg-type]


def test_fetch_reads_crtsh_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    opener = _Opener((DATA / "crtsh_response_contoso.json").read_bytes())
    monkeypatch.setattr(fetch.urllib.request, "urlopen", opener)
    code, out, err = run(
        "--domain", "contoso.com", "--fetch", "--fetch-timeout", "5", "--format", "jsonl"
    )
    assert code == 1
    [(request, timeout)] = opener.requests
    assert request.full_url == "https://crt.sh/?q=%25contoso%25&output=json"
    assert timeout == 5
    [alert] = [json.loads(line) for line in out.splitlines()]
    assert "contoso-support.help" in alert["DisplayName"]
    assert json.loads(alert["ExtendedProperties"])["crt.sh"] == "https://crt.sh/?id=13000000101"
    assert "fetched: crt.sh %contoso%: 2 certificate record(s)" in err


def test_fetch_without_network_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    opener = _Opener(urllib.error.URLError("[Errno -3] Temporary failure in name resolution"))
    monkeypatch.setattr(fetch.urllib.request, "urlopen", opener)
    code, out, err = run("--domain", "contoso.com", "--fetch", EXPORT)
    assert code == 2 and out == ""
    assert "cannot reach crt.sh" in err and "name resolution" in err
    assert "scan the file" in err


def test_fetch_http_error_names_the_status(monkeypatch: pytest.MonkeyPatch) -> None:
    url = fetch.query_url("%contoso%")
    error = urllib.error.HTTPError(url, 502, "Bad Gateway", {}, None)  # type: ignore[arg-type]
    monkeypatch.setattr(fetch.urllib.request, "urlopen", _Opener(error))
    code, _, err = run("--domain", "contoso.com", "--fetch")
    assert code == 2
    assert "crt.sh answered HTTP 502" in err


def test_fetch_reads_json_lines_and_rewinds_once() -> None:
    stream = io.BytesIO(b'{"leaf_cert": {"all_domains": ["c0ntoso.com"]}}\n' * 3)
    items = list(fetch.fetch_crtsh("%x%", opener=_Opener(stream.getvalue())))
    assert len(items) == 3
