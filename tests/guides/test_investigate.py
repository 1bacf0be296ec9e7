"""``investigate`` on the demo: each alert and incident gets pivots showing its scenario."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from trustwatch.api import Session
from trustwatch.cli.main import cli
from trustwatch.guides.investigate import Investigation, guides_of, investigate, select
from trustwatch.rules.model import Rule, load_rules
from trustwatch.rules.runner import Hunter
from trustwatch.rules.tuning import default_tuning_path, load_tuning

DEMO = "src/trustwatch/content/samples/hunt/"

# device -> texts the pivots of its incident must show (the scenario's key events)
KEY_EVENTS = {
    "ws-fin-524.corp.tailspin.com": [  # forged Microsoft root from a hidden script
        "7C95805E4F31812C2CF2ACCDDDF7B0591710D668",
        "FromBase64String",
        "rootsync.ps1",
    ],
    "ws-hr-749.hq.contoso.com": [  # specification test 1: self-signed root via certutil
        "EA8B4616FBF8679CFCB03CA7DCB65A335227A7DB",
        "New-SelfSignedCertificate",
        "atomic-root.cer",
    ],
    "lt-sales-708.corp.contoso.com": [  # specification test 2: Import-Certificate
        "7599F6D26D024CB1A2276DBB2B02BFC1AB891B2E",
        "install-root.ps1",
        "atomic-import.cer",
    ],
    "ws-hr-092.hq.northwind.com": [  # renamed certutil
        "0F2AD798A52EC9E05BA5280EB8B5328743EED360",
        "cu.exe",
        "C:\\Users\\Public\\r.cer",
    ],
    "lt-dev-637.corp.northwind.com": [  # WMI writes a cloned root
        "1F3D38F280635F275BE92B87CF83E40E40458400",
        "wmiprvse.exe",
    ],
    "ws-hr-494.corp.contoso.com": [  # specification test 4: certutil -urlcache
        "http://127.0.0.1:8080/atomic-root.cer",
        "127.0.0.1",
    ],
    "ws-eng-399.ad.woodgrove.com": [  # specification test 3: store enumeration
        "certutil  -store Root",
        "Get-ChildItem Cert:",
    ],
}


@pytest.fixture(scope="module")
def demo() -> tuple[Session, list[Rule], list[dict[str, Any]]]:
    from trustwatch.cli.ingest_cmd import ingest_paths
    from trustwatch.ingest import pipeline

    ws, _, _ = ingest_paths((DEMO,), None)
    tuning = load_tuning(default_tuning_path(), ())
    session = Session(tuning.tables(), engine=ws.engine, views=pipeline.query_views(ws.engine))
    rules = load_rules(("default",))
    return session, rules, Hunter(session, tuning).run(rules).alerts


def pivot_text(result: Investigation) -> str:
    """Every cell of every pivot's rows, as text, one per line."""
    from trustwatch.output import json_rows

    def cells(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            for item in value:
                yield from cells(item)
        elif value is not None:
            yield str(value)

    tables = [list(json_rows(p.table)) for p in result.pivots if p.table is not None]
    return "\n".join(cells(tables))


def incident_ids(alerts: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    from trustwatch import incidents
    from trustwatch.records import SecurityAlert

    for incident in incidents.group([SecurityAlert.from_record(a) for a in alerts]):
        yield incident.incident_name, incident.entities.devices[0]


def test_the_demo_has_22_alerts_on_7_devices(demo: Any) -> None:
    _, _, alerts = demo
    assert len(alerts) == 22
    assert {a["CompromisedEntity"] for a in alerts} == set(KEY_EVENTS)


def test_every_alert_has_pivots_with_rows_holding_its_own_evidence(demo: Any) -> None:
    session, rules, alerts = demo
    guides = guides_of(rules)
    for alert in alerts:
        result = investigate([alert], guides, rules, session)
        assert any(p.table is not None and p.table.num_rows for p in result.pivots), alert
        evidence = alert["Evidence"][0]
        text = pivot_text(result)
        assert evidence["ProcessCommandLine"] in text, alert["SystemAlertId"]
        if evidence.get("CertThumbprint"):
            assert evidence["CertThumbprint"] in text
        assert result.alerts[0].steps, alert["AlertName"]


@pytest.mark.parametrize("device", sorted(KEY_EVENTS))
def test_each_incident_shows_its_scenario(demo: Any, device: str) -> None:
    session, rules, alerts = demo
    ids = [i for i, d in incident_ids(alerts) if d.lower() == device]
    assert len(ids) == 1, ids  # one incident per attacked device
    chosen, incident = select(alerts, ids[0][:8])
    assert incident is not None and incident.incident_name == ids[0]
    result = investigate(chosen, guides_of(rules), rules, session)
    text = pivot_text(result)
    missing = [k for k in KEY_EVENTS[device] if k not in text]
    assert not missing, missing
    # the union of the alerts' pivots: each bound query once, naming every alert it serves
    assert sorted({a for p in result.pivots for a in p.alerts}) == sorted(incident.alert_ids)


def test_the_command_investigates_an_incident_and_an_alert() -> None:
    runner = CliRunner()
    hunted = runner.invoke(cli, ["hunt", DEMO, "--format", "json"])
    alerts = json.loads(hunted.stdout)
    alerts = alerts if isinstance(alerts, list) else alerts["alerts"]
    incident = next(i for i, d in incident_ids(alerts) if d.startswith("ws-fin-524"))
    result = runner.invoke(cli, ["investigate", incident, DEMO, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["Incident"]["IncidentName"] == incident
    assert any(p["Rows"] for p in doc["Pivots"])
    commands = [s["Command"] for a in doc["Alerts"] for s in a["Playbook"]]
    assert "certutil -delstore Root 7C95805E4F31812C2CF2ACCDDDF7B0591710D668" in commands
    alert = next(a for a in alerts if a["CompromisedEntity"].startswith("ws-hr-494"))
    table = runner.invoke(cli, ["investigate", alert["SystemAlertId"][:8], DEMO])
    assert table.exit_code == 0, table.stderr
    assert "Network connections of the alert's process" in table.stdout
    assert "8080" in table.stdout
    missing = runner.invoke(cli, ["investigate", "ffffffff", DEMO])
    assert missing.exit_code == 2 and "no alert 'ffffffff'" in missing.stderr


def test_an_incidents_playbook_lists_each_step_once_with_its_alerts(demo: Any) -> None:
    from trustwatch.cli.investigate_cmd import merged_playbook

    session, rules, alerts = demo
    [key] = [i for i, d in incident_ids(alerts) if d.startswith("lt-dev-637")]
    chosen, _ = select(alerts, key)
    result = investigate(chosen, guides_of(rules), rules, session)
    merged = merged_playbook(result.alerts)
    every = [(a.alert["SystemAlertId"], s) for a in result.alerts for s in a.steps]
    assert len(merged) < len(every)  # shared steps (isolate, export, audit) come once
    for alert_id, step in every:  # and no step is lost
        assert any(alert_id in served and m.command == step.command for m, served in merged)
    by_id = {m.step.id: served for m, served in merged}
    where = {
        a.alert["Evidence"][0]["CertStoreLocation"]: a.alert["SystemAlertId"] for a in result.alerts
    }
    machine, user = where["LocalMachine"], where["CurrentUser"]
    assert by_id["delete-cert-certutil-machine"] == [machine]
    assert by_id["delete-cert-reg-user"] == [user]
    assert sorted(by_id["isolate-device"]) == sorted([machine, user])
