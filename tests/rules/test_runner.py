"""The schedule replay, trigger, de-duplication, tuning and alert shape of ``Hunter``."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from trustwatch.api import Session
from trustwatch.errors import KqlSemanticError, RuleFileError
from trustwatch.rules import runner, schedule
from trustwatch.rules.model import load_rule, parse_duration
from trustwatch.rules.runner import Hunter
from trustwatch.rules.testing import case_rows
from trustwatch.rules.tuning import Tuning, load_tuning
from trustwatch.tables import rows_to_arrow

H = timedelta(hours=1)


def write_rule(tmp_path: Path, query: str, name: str = "r", **keys: Any) -> Path:
    doc: dict[str, Any] = {
        "id": "00000000-0000-4000-8000-000000000001",
        "name": f"rule {name}",
        "description": "test rule",
        "severity": "Medium",
        "queryFrequency": "1h",
        "queryPeriod": "1h",
        "triggerOperator": "gt",
        "triggerThreshold": 0,
        "tactics": ["DefenseEvasion"],
        "relevantTechniques": ["T1553.004"],
        "query": query,
        "entityMappings": [
            {
                "entityType": "Host",
                "fieldMappings": [{"identifier": "FullName", "columnName": "DeviceName"}],
            }
        ],
        "eventGroupingSettings": {"aggregationKind": "AlertPerResult"},
        "version": "1.0.0",
        "kind": "Scheduled",
    }
    doc.update(keys)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def session_of(**tables: list[dict[str, Any]]) -> Session:
    return Session({n: rows_to_arrow(case_rows(rows)) for n, rows in tables.items()})


def proc(
    time: str, device: str = "ws01", cmd: str = "certutil -addstore root c.cer", **extra: Any
) -> dict[str, Any]:
    return {
        "TimeGenerated": time,
        "DeviceName": device,
        "FileName": "certutil.exe",
        "ProcessCommandLine": cmd,
        **extra,
    }


CERTUTIL = """DeviceProcessEvents | where ProcessCommandLine has "addstore"
| project TimeGenerated, DeviceName, ProcessCommandLine"""


# --- the schedule -----------------------------------------------------------------------------


def brute_force(times_us: list[int], f: int, p: int) -> dict[int, frozenset[int]]:
    """Every grid run k with its window's content, by definition: k*f - p < x <= k*f."""
    runs: dict[int, frozenset[int]] = {}
    lo = min(times_us) // f - p // f - 2
    hi = max(times_us) // f + p // f + 3
    for k in range(lo, hi):
        content = frozenset(x for x in times_us if k * f - p < x <= k * f)
        if content:
            runs[k] = content
    return runs


@pytest.mark.parametrize("seed", range(20))
def test_replay_visits_one_run_per_distinct_window_content(seed: int) -> None:
    rnd = random.Random(seed)
    f = rnd.choice([5, 10, 60])
    p = f * rnd.choice([1, 2, 3]) + rnd.choice([0, 0, 3])
    times = [rnd.randrange(0, 400) for _ in range(rnd.randrange(1, 12))]
    truth = brute_force(times, f, p)
    spans = [(-(-x // f), -(-(x + p) // f)) for x in set(times)]
    assert schedule.run_count(spans) == len(truth)
    fu, pu = timedelta(microseconds=f), timedelta(microseconds=p)
    runs = list(schedule.replay_runs(spans, fu, pu, depends_on_now=False))
    # every distinct content is evaluated once, and the repeats add up to every active run
    ks = [(r.at - schedule.EPOCH) // fu for r in runs]
    assert sum(r.repeats for r in runs) == len(truth)
    assert all(truth[k] for k in ks)
    for k, run in zip(ks, runs, strict=True):
        assert all(truth.get(k + i) == truth[k] for i in range(run.repeats))
    all_runs = list(schedule.replay_runs(spans, fu, pu, depends_on_now=True))
    assert [(r.at - schedule.EPOCH) // fu for r in all_runs] == sorted(truth)


def test_durations() -> None:
    assert parse_duration("5m") == timedelta(minutes=5)
    assert parse_duration("14d") == timedelta(days=14)
    assert parse_duration("1.02:00:00") == timedelta(days=1, hours=2)
    assert parse_duration("PT1H") == H
    with pytest.raises(RuleFileError):
        parse_duration("1 hour")


# --- running ---------------------------------------------------------------------------------


def test_replay_alerts_once_per_result_and_counts_sentinel_repeats(tmp_path: Path) -> None:
    rule = load_rule(write_rule(tmp_path, CERTUTIL, queryPeriod="3h"))
    session = session_of(
        DeviceProcessEvents=[proc("2024-05-01T10:20:00Z"), proc("2024-05-03T08:00:00Z", "ws02")]
    )
    result = Hunter(session).run([rule])
    assert [a["CompromisedEntity"] for a in result.alerts] == ["ws01", "ws02"]
    stats = result.stats[0]
    # each event sits in 3 hourly runs (3h look-back): Sentinel would alert 3 times on each
    assert stats.runs == 6 and stats.results == 6 and stats.alerts == 2
    assert stats.evaluations < stats.runs
    assert result.daily[("2024-05-01", "rule r")] == {"alerts": 1, "results": 3}
    assert result.span == (
        datetime(2024, 5, 1, 10, 20, tzinfo=UTC),
        datetime(2024, 5, 3, 8, 0, tzinfo=UTC),
    )


def test_now_runs_once_over_the_query_period(tmp_path: Path) -> None:
    rule = load_rule(write_rule(tmp_path, CERTUTIL, queryPeriod="2h"))
    session = session_of(
        DeviceProcessEvents=[
            proc("2024-05-01T07:00:00Z", "old"),
            proc("2024-05-01T09:30:00Z", "in"),
        ]
    )
    at = datetime(2024, 5, 1, 10, tzinfo=UTC)
    result = Hunter(session).run([rule], now=at)
    assert [a["CompromisedEntity"] for a in result.alerts] == ["in"]
    props = json.loads(result.alerts[0]["ExtendedProperties"])
    assert props["Query Start Time UTC"] == "2024-05-01T08:00:00Z"
    assert props["Query End Time UTC"] == "2024-05-01T10:00:00Z"
    assert props["Query Period"] == "02:00:00"


def test_a_query_reading_the_clock_is_compiled_per_run(tmp_path: Path) -> None:
    query = (
        "DeviceProcessEvents | where TimeGenerated > ago(10m) | project TimeGenerated, DeviceName"
    )
    rule = load_rule(write_rule(tmp_path, query))
    session = session_of(
        DeviceProcessEvents=[
            proc("2024-05-01T10:20:00Z", "early"),
            proc("2024-05-01T10:55:00Z", "late"),
        ]
    )
    result = Hunter(session).run([rule])
    # the run at 11:00 sees both rows, but ago(10m) keeps only the late one
    assert [a["CompromisedEntity"] for a in result.alerts] == ["late"]


def test_trigger_threshold_and_single_alert_grouping(tmp_path: Path) -> None:
    rows = [proc(f"2024-05-01T10:1{i}:00Z", f"ws{i}") for i in range(3)]
    per_run = load_rule(
        write_rule(
            tmp_path,
            CERTUTIL,
            "single",
            triggerThreshold=2,
            eventGroupingSettings={"aggregationKind": "SingleAlert"},
        )
    )
    result = Hunter(session_of(DeviceProcessEvents=rows)).run([per_run])
    assert len(result.alerts) == 1
    assert len(result.alerts[0]["Evidence"]) == 3
    assert (
        json.loads(result.alerts[0]["ExtendedProperties"])["Search Query Results Overall Count"]
        == "3"
    )
    high = load_rule(write_rule(tmp_path, CERTUTIL, "high", triggerThreshold=3))
    assert Hunter(session_of(DeviceProcessEvents=rows)).run([high]).alerts == []
    lt = load_rule(write_rule(tmp_path, CERTUTIL, "lt", triggerOperator="lt", triggerThreshold=3))
    assert len(Hunter(session_of(DeviceProcessEvents=rows[:2])).run([lt]).alerts) == 2


def test_alert_shape(tmp_path: Path) -> None:
    query = """DeviceRegistryEvents
| extend RegistryHive = tostring(split(RegistryKey, @"\\")[0]),
         RegistryKeyPath = substring(RegistryKey, indexof(RegistryKey, @"\\") + 1),
         Sev = iff(RegistryKey has "Root", "High", "Low")
| project TimeGenerated, DeviceName, RegistryHive, RegistryKeyPath, Sev,
          InitiatingProcessFileName"""
    path = write_rule(
        tmp_path,
        query,
        entityMappings=[
            {
                "entityType": "Host",
                "fieldMappings": [{"identifier": "FullName", "columnName": "DeviceName"}],
            },
            {
                "entityType": "RegistryKey",
                "fieldMappings": [
                    {"identifier": "Hive", "columnName": "RegistryHive"},
                    {"identifier": "Key", "columnName": "RegistryKeyPath"},
                ],
            },
        ],
        customDetails={"Process": "InitiatingProcessFileName"},
        alertDetailsOverride={
            "alertDisplayNameFormat": "{{InitiatingProcessFileName}} on {{DeviceName}}",
            "alertSeverityColumnName": "Sev",
        },
    )
    key = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\SystemCertificates\Root\Certificates\AB"
    session = session_of(
        DeviceRegistryEvents=[
            {
                "TimeGenerated": "2024-05-01T10:00:00.5Z",
                "DeviceName": "ws01",
                "RegistryKey": key,
                "InitiatingProcessFileName": "certutil.exe",
            }
        ]
    )
    alert = Hunter(session).run([load_rule(path)]).alerts[0]
    assert alert["DisplayName"] == "certutil.exe on ws01"
    assert alert["AlertSeverity"] == "High"
    assert alert["ProviderName"] == "ASI Scheduled Alerts"
    assert alert["ProductComponentName"] == "Scheduled Alerts"
    assert alert["StartTime"] == alert["EndTime"] == "2024-05-01T10:00:00.5Z"
    assert alert["Tactics"] == "DefenseEvasion"
    assert json.loads(alert["Techniques"]) == ["T1553.004"]
    entities = json.loads(alert["Entities"])
    assert entities == [
        {"$id": "1", "FullName": "ws01", "Type": "host"},
        {
            "$id": "2",
            "Hive": "HKEY_LOCAL_MACHINE",
            "Key": r"SOFTWARE\Microsoft\SystemCertificates\Root\Certificates\AB",
            "Type": "registry-key",
        },
    ]
    props = json.loads(alert["ExtendedProperties"])
    assert json.loads(props["Custom Details"]) == {"Process": ["certutil.exe"]}
    assert props["Analytic Rule Ids"] == json.dumps(["00000000-0000-4000-8000-000000000001"])
    assert alert["Evidence"][0]["RegistryHive"] == "HKEY_LOCAL_MACHINE"


def test_a_broken_rule_stops_the_hunt_with_its_location(tmp_path: Path) -> None:
    good = load_rule(write_rule(tmp_path, CERTUTIL, "good"))
    bad = load_rule(
        write_rule(
            tmp_path,
            "DeviceProcessEvents\n| project Nope",
            "bad",
            id="00000000-0000-4000-8000-000000000002",
        )
    )
    with pytest.raises(KqlSemanticError) as info:
        Hunter(session_of()).run([good, bad])
    rendered = info.value.render()
    assert "bad.yaml:" in rendered and "Nope" in rendered


# --- tuning ----------------------------------------------------------------------------------


def write_tuning(tmp_path: Path, text: str) -> Tuning:
    (tmp_path / "wl.csv").write_text("Path,Owner\nC:\\Tools\\certagent.exe,PKI\n", encoding="utf-8")
    path = tmp_path / "tuning.yaml"
    path.write_text(text, encoding="utf-8")
    return load_tuning(path)


TUNING = r"""
watchlists:
  - {name: Installers, path: wl.csv, searchKey: Path}
exclusions:
  - id: agent-by-path
    rules: [r]
    when:
      process_path: C:\Program Files\Zscaler\*
  - id: from-watchlist
    when:
      process_path: watchlist:Installers
  - id: change-window
    when:
      device: "*.corp.example"
      account: CORP\deployer
    windows:
      - {start: 2024-05-01T20:00:00Z, end: 2024-05-01T22:00:00Z}
"""

PROCESS_QUERY = """DeviceProcessEvents
| project TimeGenerated, DeviceName, ProcessPath = FolderPath, AccountName, AccountDomain"""


def test_exclusions_suppress_and_are_counted(tmp_path: Path) -> None:
    tuning = write_tuning(tmp_path, TUNING)
    rule = load_rule(write_rule(tmp_path, PROCESS_QUERY))
    rows = [
        {
            "TimeGenerated": "2024-05-01T10:00:00Z",
            "DeviceName": "a",
            "FolderPath": r"C:\Program Files\Zscaler\ZSATunnel\ZSATunnel.exe",
        },
        {
            "TimeGenerated": "2024-05-01T10:01:00Z",
            "DeviceName": "b",
            "FolderPath": r"C:\Users\Public\Zscaler\ZSATunnel.exe",
        },  # a copy elsewhere alerts
        {
            "TimeGenerated": "2024-05-01T10:02:00Z",
            "DeviceName": "c",
            "FolderPath": r"c:\tools\CERTAGENT.exe",
        },
        {
            "TimeGenerated": "2024-05-01T21:00:00Z",
            "DeviceName": "d.corp.example",
            "FolderPath": r"C:\x.exe",
            "AccountName": "deployer",
            "AccountDomain": "CORP",
        },
        {
            "TimeGenerated": "2024-05-01T23:00:00Z",
            "DeviceName": "e.corp.example",
            "FolderPath": r"C:\x.exe",
            "AccountName": "deployer",
            "AccountDomain": "CORP",
        },
    ]
    session = Session({"DeviceProcessEvents": rows_to_arrow(case_rows(rows)), **tuning.tables()})
    result = Hunter(session, tuning).run([rule])
    assert sorted(a["CompromisedEntity"] for a in result.alerts) == ["b", "e.corp.example"]
    assert result.suppressed == {
        "agent-by-path": {"rule r": 1},
        "from-watchlist": {"rule r": 1},
        "change-window": {"rule r": 1},
    }
    assert result.stats[0].suppressed == 3


def test_watchlists_are_readable_from_kql(tmp_path: Path) -> None:
    tuning = write_tuning(tmp_path, TUNING)
    query = """DeviceProcessEvents
| where FolderPath !in~ ((_GetWatchlist('Installers') | project SearchKey))
| project TimeGenerated, DeviceName"""
    rule = load_rule(write_rule(tmp_path, query))
    rows = [
        proc("2024-05-01T10:00:00Z", "listed", FolderPath=r"C:\Tools\certagent.exe"),
        proc("2024-05-01T10:00:00Z", "other", FolderPath=r"C:\Tools\other.exe"),
    ]
    session = Session({"DeviceProcessEvents": rows_to_arrow(case_rows(rows)), **tuning.tables()})
    result = Hunter(session, Tuning()).run([rule])
    assert [a["CompromisedEntity"] for a in result.alerts] == ["other"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("exclusions:\n  - id: x\n    when: {colour: red}\n", "unknown condition 'colour'"),
        ("exclusions:\n  - id: x\n", "give conditions"),
        (
            "exclusions:\n  - id: x\n    when: {device: a}\n  - id: x\n    when: {device: b}\n",
            "used twice",
        ),
        ("exclusions:\n  - id: x\n    when: {process_path: 'watchlist:Nope'}\n", "no watchlist"),
        (
            "exclusions:\n  - id: x\n    windows:\n"
            "      - {start: 2024-05-02T00:00:00Z, end: 2024-05-01T00:00:00Z}\n",
            "ends before it starts",
        ),
        ("watchlists:\n  - {name: W, path: wl.csv, searchKey: Missing}\n", "searchKey 'Missing'"),
        ("exclusion: []\n", "unknown key"),
    ],
)
def test_bad_tuning_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RuleFileError, match=message):
        write_tuning(tmp_path, text)


def test_the_default_tuning_file_loads() -> None:
    from trustwatch.rules.tuning import default_tuning_path

    tuning = load_tuning(default_tuning_path())
    assert {e.id for e in tuning.exclusions} >= {
        "browser-updaters",
        "tls-inspection-and-vpn-agents",
    }
    assert "TrustedCertificateInstallers" in tuning.watchlists


def test_repeated_rows_in_overlapping_windows_are_not_counted_twice(tmp_path: Path) -> None:
    tuning = write_tuning(tmp_path, TUNING)
    rule = load_rule(write_rule(tmp_path, PROCESS_QUERY, queryPeriod="5h"))
    rows = [
        {
            "TimeGenerated": "2024-05-01T10:00:00Z",
            "DeviceName": "a",
            "FolderPath": r"C:\Program Files\Zscaler\x.exe",
        }
    ]
    session = Session({"DeviceProcessEvents": rows_to_arrow(case_rows(rows)), **tuning.tables()})
    result = Hunter(session, tuning).run([rule])
    assert result.suppressed == {"agent-by-path": {"rule r": 1}}


def test_pairs_of_runs_never_raise_the_same_alert_twice(tmp_path: Path) -> None:
    rule = load_rule(write_rule(tmp_path, CERTUTIL, queryPeriod="1d"))
    rows = [
        proc(f"2024-05-0{d}T{h:02d}:30:00Z", f"ws{d}{h}")
        for d, h in itertools.product((1, 2), (1, 13))
    ]
    result = Hunter(session_of(DeviceProcessEvents=rows)).run([rule])
    ids = [a["SystemAlertId"] for a in result.alerts]
    assert len(ids) == len(set(ids)) == 4


def test_signer_and_company_exclusions(tmp_path: Path) -> None:
    tuning = write_tuning(
        tmp_path,
        "exclusions:\n"
        "  - id: by-signer\n    when: {signer: 'Zscaler, Inc.'}\n"
        "  - id: by-company\n    when: {company: 'Netskope*'}\n",
    )
    query = """DeviceProcessEvents
| project TimeGenerated, DeviceName, ProcessSHA1 = SHA1,
          ProcessCompany = ProcessVersionInfoCompanyName"""
    rule = load_rule(write_rule(tmp_path, query))
    rows = [
        proc("2024-05-01T10:10:00Z", "signed", SHA1="aa" * 20),
        proc("2024-05-01T10:11:00Z", "untrusted-signature", SHA1="bb" * 20),
        proc("2024-05-01T10:12:00Z", "company", ProcessVersionInfoCompanyName="Netskope, Inc."),
    ]
    certs = [
        {
            "TimeGenerated": "2024-05-01T09:00:00Z",
            "SHA1": "AA" * 20,
            "Signer": "Zscaler, Inc.",
            "IsTrusted": True,
        },
        {
            "TimeGenerated": "2024-05-01T09:00:00Z",
            "SHA1": "bb" * 20,
            "Signer": "Zscaler, Inc.",
            "IsTrusted": False,
        },
    ]
    session = Session(
        {
            "DeviceProcessEvents": rows_to_arrow(case_rows(rows)),
            "DeviceFileCertificateInfo": rows_to_arrow(case_rows(certs)),
        }
    )
    result = Hunter(session, tuning).run([rule])
    assert [a["CompromisedEntity"] for a in result.alerts] == ["untrusted-signature"]
    assert result.suppressed == {"by-signer": {"rule r": 1}, "by-company": {"rule r": 1}}


# --- rows without a time ------------------------------------------------------------------------


def untimed_note(alert: dict[str, Any]) -> str | None:
    return json.loads(alert["ExtendedProperties"]).get("Event Time")


@pytest.mark.parametrize("fast", [True, False])
def test_rows_without_a_time_are_one_more_run_dated_by_the_hunt(tmp_path: Path, fast: bool) -> None:
    """A row whose time is empty (a masked or impossible time) is in no replayed window; each
    rule still sees it once, in a run over the untimed rows dated at the rule's first run after
    the data's latest time (with --now: then)."""
    rule = load_rule(write_rule(tmp_path, CERTUTIL))
    session = session_of(
        DeviceProcessEvents=[
            proc("2024-05-01T10:20:00Z", "timed"),
            proc(None, "untimed"),  # type: ignore[arg-type]
            proc(None, "quiet", cmd="notepad.exe"),  # type: ignore[arg-type]
        ]
    )
    result = Hunter(session, fast=fast).run([rule])
    by_device = {a["CompromisedEntity"]: a for a in result.alerts}
    assert set(by_device) == {"timed", "untimed"}
    assert untimed_note(by_device["timed"]) is None
    assert untimed_note(by_device["untimed"]) == runner.UNTIMED_NOTE
    assert by_device["untimed"]["TimeGenerated"] == "2024-05-01T11:00:00Z"
    stats = result.stats[0]
    assert stats.alerts == 2 and stats.untimed == 1
    at = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    pinned = Hunter(session, fast=fast).run([rule], now=at)
    dated = [a for a in pinned.alerts if a["CompromisedEntity"] == "untimed"]
    assert [(a["TimeGenerated"], a["StartTime"]) for a in dated] == [
        ("2030-01-02T03:04:00Z", "2030-01-02T03:04:00Z")
    ]


def test_untimed_rows_are_aggregated_among_themselves_only(tmp_path: Path) -> None:
    """A rule that counts sees the untimed rows as one window of their own: never mixed with
    the timed rows of any run."""
    query = """DeviceProcessEvents | where ProcessCommandLine has "addstore"
| summarize n = count() by DeviceName | where n >= 2"""
    rule = load_rule(write_rule(tmp_path, query))
    session = session_of(
        DeviceProcessEvents=[
            proc("2024-05-01T10:20:00Z", "a"),
            proc(None, "a"),  # type: ignore[arg-type]
            proc(None, "b"),  # type: ignore[arg-type]
            proc(None, "b"),  # type: ignore[arg-type]
        ]
    )
    result = Hunter(session).run([rule])
    assert [(a["CompromisedEntity"], untimed_note(a)) for a in result.alerts] == [
        ("b", runner.UNTIMED_NOTE)
    ]


def test_untimed_rows_are_tuned_and_counted_like_the_others(tmp_path: Path) -> None:
    rule = load_rule(write_rule(tmp_path, CERTUTIL))
    tuning = write_tuning(
        tmp_path,
        """
exclusions:
  - id: lab
    when:
      device: lab01
""",
    )
    session = session_of(
        DeviceProcessEvents=[proc(None, "lab01"), proc(None, "ws09")]  # type: ignore[arg-type]
    )
    result = Hunter(session, tuning).run([rule])
    assert [a["CompromisedEntity"] for a in result.alerts] == ["ws09"]
    assert result.suppressed == {"lab": {"rule r": 1}}
    assert result.span is None  # no timed row: the replay has no run at all
