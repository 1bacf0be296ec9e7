"""``rules export --apply-exclusions``: the tuning exclusions written into each rule's KQL
suppress exactly what ``hunt`` suppresses with the tuning file."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

import trustwatch
from trustwatch.api import Session
from trustwatch.cli.main import cli
from trustwatch.export.exclusions import exclusions_kql, rule_columns, with_exclusions
from trustwatch.export.formats import export_rules
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import Workspace
from trustwatch.rules.model import load_rules
from trustwatch.rules.runner import Hunter
from trustwatch.rules.tuning import (
    ChangeWindow,
    Exclusion,
    Tuning,
    Watchlist,
    default_tuning_path,
    load_tuning,
)
from trustwatch.scenarios import validate
from trustwatch.scenarios.model import load_scenarios
from trustwatch.scenarios.render import DEFAULT_SEED, FILE_NAMES, render


def _key(alert: dict[str, Any]) -> tuple[Any, ...]:
    rows = tuple(sorted(json.dumps(e, sort_keys=True, default=str) for e in alert["Evidence"]))
    return (alert["AlertName"], str(alert["StartTime"]), str(alert["EndTime"]), rows)


class _Counting(Tuning):
    def __init__(self, base: Tuning) -> None:
        Tuning.__init__(self, base.path, base.exclusions, base.watchlists)
        self.suppressed: list[str] = []

    def suppressing(self, rule: Any, row: Any, signers: Any = None) -> Exclusion | None:
        found = Tuning.suppressing(self, rule, row, signers)
        if found is not None:
            self.suppressed.append(found.id)
        return found


@pytest.mark.parametrize("source", ["sysmon", "defender"])
def test_exported_queries_suppress_what_hunt_suppresses(source: str) -> None:
    """Every validation scenario, hunted with the default tuning, and with the exported rules
    (exclusions in their queries) and a tuning of the same watchlists but no exclusions."""
    rules = load_rules(["all"])
    tuning = _Counting(load_tuning(default_tuning_path()))
    bare = Tuning(tuning.path, [], tuning.watchlists)
    columns = Session(tuning.tables())
    exported = [with_exclusions(r, tuning, rule_columns(r, columns)) for r in rules]
    assert sum(r.query != e.query for r, e in zip(rules, exported, strict=True)) >= 2
    tuned_alerts: list[tuple[Any, ...]] = []
    exported_alerts: list[tuple[Any, ...]] = []
    for batch in validate._batches(load_scenarios(host="windows"), DEFAULT_SEED):
        with tempfile.TemporaryDirectory() as tmp:
            for scenario in batch.values():
                name = FILE_NAMES[source].format(id=scenario.id)
                (Path(tmp) / name).write_text(render(scenario, source, DEFAULT_SEED), "utf-8")
            ws = Workspace(None)
            try:
                ws.ingest(pipeline.plan([tmp])[0])
                views = pipeline.query_views(ws.engine)
                now = validate._hunt_time(batch, DEFAULT_SEED)
                session = Session(tuning.tables(), engine=ws.engine, views=views)
                tuned = Hunter(session, tuning).run(rules, now=now).alerts
                session = Session(bare.tables(), engine=ws.engine, views=views)
                plain = Hunter(session, bare).run(exported, now=now).alerts
            finally:
                ws.close()
        tuned_alerts += map(_key, tuned)
        exported_alerts += map(_key, plain)
    assert len(tuning.suppressed) >= 4, "the scenarios exercise the exclusions"
    assert sorted(exported_alerts) == sorted(tuned_alerts)


ROWS = """datatable(TimeGenerated: datetime, ProcessPath: string, AccountName: string,
    AccountDomain: string, AccountSid: string, InitiatingProcessSHA1: string, N: long) [
    datetime(2024-01-01T10:00:00Z), @"C:\\Tools\\certutil.exe", "alice", "CONTOSO", "S-1-5-1",
    "aa", 1,
    datetime(2024-01-01T12:00:00Z), @"C:\\Tools\\certutil.exe", "alice", "CONTOSO", "S-1-5-1",
    "aa", 2,
    datetime(2024-01-01T10:00:00Z), @"D:\\x\\CERTUTIL.EXE", "bob", "", "S-1-5-2", "BB", 3,
    datetime(2024-01-01T10:00:00Z), @"C:\\a[b]\\tool.exe", "", "FABRIKAM", "S-1-5-3", "", 4
]"""


ROW_COLUMNS = {
    "TimeGenerated": "datetime",
    "ProcessPath": "string",
    "AccountName": "string",
    "AccountDomain": "string",
    "AccountSid": "string",
    "InitiatingProcessSHA1": "string",
    "N": "long",
}


def _kept(exclusions: list[Exclusion], tuning: Tuning | None = None) -> list[int]:
    """The N of the rows the exclusions' KQL keeps, run by trustwatch's engine: the same
    whether the rows' columns are known when the KQL is written or read if they exist."""
    tables: dict[str, Any] = dict((tuning or Tuning()).tables())
    tables["DeviceFileCertificateInfo"] = pa.table(
        {"SHA1": ["AA", "BB"], "Signer": ["Contoso Ltd", "Evil Inc"], "IsTrusted": [True, False]}
    )
    kept = []
    for columns in (None, ROW_COLUMNS):
        text = exclusions_kql(exclusions, columns)
        assert ("column_ifexists" in text) == (columns is None)
        result = trustwatch.query(
            ROWS + "\n" + text + "| project N | order by N asc", tables=tables
        )
        kept.append([int(n) for n in result.column("N").to_pylist()])
    assert kept[0] == kept[1]
    return kept[0]


def _excl(when: dict[str, tuple[str, ...]], windows: tuple[ChangeWindow, ...] = ()) -> Exclusion:
    return Exclusion("x", "test", ("*",), when, windows)


def test_glob_conditions_match_the_whole_value_in_any_case() -> None:
    assert _kept([_excl({"process_name": ("certutil.exe",)})]) == [4]
    assert _kept([_excl({"process_path": (r"C:\Tools\*",)})]) == [3, 4]
    assert _kept([_excl({"process_path": (r"C:\a[b]\*",)})]) == [1, 2, 3]  # '[' is itself
    assert _kept([_excl({"process_path": ("certutil.exe",)})]) == [1, 2, 3, 4]  # whole value


def test_every_condition_and_one_window_must_hold() -> None:
    both = _excl({"process_name": ("certutil.exe",), "account": ("bob",)})
    assert _kept([both]) == [1, 2, 4]
    window = ChangeWindow(datetime(2024, 1, 1, 9, tzinfo=UTC), datetime(2024, 1, 1, 11, tzinfo=UTC))
    assert _kept([_excl({"process_name": ("certutil.exe",)}, (window,))]) == [2, 4]


def test_account_matches_name_domain_name_and_sid_beside_a_name() -> None:
    assert _kept([_excl({"account": (r"contoso\ALICE",)})]) == [3, 4]
    assert _kept([_excl({"account": ("S-1-5-2",)})]) == [1, 2, 4]
    assert _kept([_excl({"account": ("S-1-5-3",)})]) == [1, 2, 3, 4]  # no name: no values


def test_signer_and_watchlist_conditions() -> None:
    assert _kept([_excl({"signer": ("contoso*",)})]) == [3, 4]  # BB's signer is not trusted
    watchlist = Watchlist("Installers", Path("w.csv"), "Path", ({"Path": r"d:\X\certutil.exe"},))
    tuning = Tuning(None, [], {"Installers": watchlist})
    assert _kept([_excl({"process_path": ("watchlist:Installers",)})], tuning) == [1, 2, 4]


def test_cli_refuses_a_format_without_kql() -> None:
    result = CliRunner().invoke(cli, ["rules", "export", "--format", "sigma", "--apply-exclusions"])
    assert result.exit_code == 2
    assert "--apply-exclusions" in result.stderr and "not for sigma" in result.stderr


def test_cli_writes_the_exclusions_into_the_sentinel_queries() -> None:
    args = ["rules", "export", "--format", "sentinel-yaml", "trust_store_certificate_write"]
    plain = CliRunner().invoke(cli, args)
    applied = CliRunner().invoke(cli, [*args, "--apply-exclusions"])
    assert plain.exit_code == applied.exit_code == 0
    assert "tuning exclusion" not in plain.stdout
    assert "// tuning exclusion software-deployment-sccm\n" in applied.stdout
    rule = next(r for r in load_rules(["default"]) if r.path.stem == args[-1])
    applying = [e for e in load_tuning(default_tuning_path()).exclusions if e.applies_to(rule)]
    assert len(applying) >= 5
    assert applied.stdout.count("| where not(") - plain.stdout.count("| where not(") == len(
        applying
    )
    for exclusion in applying:
        assert f"// tuning exclusion {exclusion.id}\n" in applied.stdout


def test_a_query_the_exclusions_would_make_too_long_is_kept_with_a_note() -> None:
    """Sentinel takes at most 10,000 characters of query: past that, the rule is written as it
    is, and a note says why (whichever rules that is, as the pack changes)."""
    rules = load_rules(["default"])
    tuning = load_tuning(default_tuning_path())
    result = export_rules(rules, "sentinel-yaml", tuning, apply_exclusions=True)
    session = Session(tuning.tables())
    for rule in rules:
        long = len(with_exclusions(rule, tuning, rule_columns(rule, session)).query) > 10_000
        noted = [n for n in result.notes if n.rule == rule.name]
        assert bool(noted) == long, rule.name
        assert all("over Sentinel's 10000: written without them" in n.message for n in noted)
    written = [json.dumps(f.text) for f in result.files if f.name.endswith(".yaml")]
    assert sum("tuning exclusion" in text for text in written) >= len(rules) - len(result.notes)
