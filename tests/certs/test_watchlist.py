"""KQL access to the classification: the built-in CertificateIntel watchlist."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

from trustwatch.api import Session
from trustwatch.cli.main import cli
from trustwatch.rules.tuning import Tuning

KEYS = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\SystemCertificates\\ROOT\\Certificates\\"
WRITES = [
    {"DeviceName": "ws1", "RegistryKey": KEYS + "1F3D38F280635F275BE92B87CF83E40E40458400"},
    {"DeviceName": "ws1", "RegistryKey": KEYS + "3B1EFD3A66EA28B16697394703A72CA340A05BD5"},
    {"DeviceName": "ws1", "RegistryKey": KEYS + "AB" * 20},
]
QUERY = """DeviceRegistryEvents
| extend CertThumbprint = toupper(extract(@"\\\\([0-9A-Fa-f]{40})$", 1, RegistryKey))
| lookup kind=leftouter (_GetWatchlist('CertificateIntel')
    | project CertThumbprint = SearchKey, Verdict, Reason) on CertThumbprint
| project CertThumbprint, Verdict = coalesce(Verdict, "unknown")
| order by CertThumbprint asc"""


def test_rules_and_hunters_can_look_up_a_thumbprint() -> None:
    session = Session({**Tuning().tables(), "DeviceRegistryEvents": WRITES})
    rows = session.run(QUERY).tables[-1].to_pylist()
    assert [(r["CertThumbprint"], r["Verdict"]) for r in rows] == [
        ("1F3D38F280635F275BE92B87CF83E40E40458400", "known-bad"),
        ("3B1EFD3A66EA28B16697394703A72CA340A05BD5", "microsoft-root"),
        ("AB" * 20, "unknown"),
    ]


def test_query_command_has_the_watchlist() -> None:
    kql = "_GetWatchlist('CertificateIntel') | where Verdict == 'public-root' | count"
    result = CliRunner().invoke(cli, ["query", kql, "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    assert int(result.stdout.splitlines()[1]) >= 100  # certifi's roots


def test_watchlist_csv_for_sentinel(tmp_path: Path) -> None:
    out = tmp_path / "CertificateIntel.csv"
    result = CliRunner().invoke(cli, ["certs", "watchlist", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    with out.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_thumb = {r["Thumbprint"]: r for r in rows if r["Thumbprint"]}
    assert by_thumb["6ECE5ECE4192683D2D84E25B0BA7E04F9CB7EB7C"]["Verdict"] == "known-bad"
    assert "cobalt-strike" in by_thumb["6ECE5ECE4192683D2D84E25B0BA7E04F9CB7EB7C"]["Labels"]
    assert {"Thumbprint", "Verdict", "Subject", "Source", "SourceDate"} <= set(rows[0])
