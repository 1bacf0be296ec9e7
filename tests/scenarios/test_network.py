"""Network scenarios: Zeek (TSV, JSON) and Suricata EVE renderings, read back by the readers."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from trustwatch.api import Session as HuntSession
from trustwatch.ingest import pipeline
from trustwatch.ingest.workspace import FileStats, Workspace
from trustwatch.rules.model import load_rules
from trustwatch.rules.runner import Hunter
from trustwatch.rules.tuning import default_tuning_path, load_tuning
from trustwatch.scenarios.model import HOSTS, Scenario, load_scenario, load_scenarios
from trustwatch.scenarios.network import Session, make_wire
from trustwatch.scenarios.render import INGEST_FORMATS, render, render_files, write

NETWORK = load_scenarios(host="network")
SENSORS = HOSTS["network"]
CS_DEFAULT = "attack-c2-cobalt-strike-default-certificate"
CS_SHA256 = "87F2085C32B6A2CC709B365F55873E207A9CAA10BFFECF2FD16D3CF9D94D390C"
CS_SHA1 = "6ECE5ECE4192683D2D84E25B0BA7E04F9CB7EB7C"
TABLES = {
    "zeek": ("Corelight_v2_ssl_CL", "Corelight_v2_x509_CL"),
    "zeek-json": ("Corelight_v2_ssl_CL", "Corelight_v2_x509_CL"),
    "suricata": ("Suricata_tls_CL",),
}


def by_id(scenario_id: str) -> Scenario:
    return next(s for s in NETWORK if s.id == scenario_id)


def ingest(scenario: Scenario, source: str, tmp: Path, seed: int = 4) -> tuple[Workspace, list]:
    paths = write(scenario, tmp, seed, (source,))[source]
    planned, _ = pipeline.plan(paths)
    assert {fmt for _, fmt, _ in planned} == {INGEST_FORMATS[source]}
    ws = Workspace(None)
    return ws, ws.ingest(planned)


def rows(ws: Workspace, table: str) -> list[dict[str, Any]]:
    cursor = ws.con.execute(f'SELECT * FROM "{table}" ORDER BY "TimeGenerated"')  # noqa: S608
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def test_the_network_scenarios_ship() -> None:
    kinds = {s.id: s.kind for s in NETWORK}
    assert {k for k in kinds.values()} == {"attack", "evasion", "benign"}
    assert {
        CS_DEFAULT,
        "attack-c2-asyncrat-default-certificate",
        "attack-lookalike-domain-free-ca-certificate",
        "benign-vmware-esx-default-certificate",
        "benign-rdp-host-certificate",
        "benign-printer-self-signed-certificate",
    } <= set(kinds)
    assert all(s.sources == SENSORS for s in NETWORK)


@pytest.mark.parametrize("source", SENSORS)
def test_same_seed_same_bytes_other_seed_other_client(source: str) -> None:
    for scenario in NETWORK:
        first = render_files(scenario, source, 11)
        assert render_files(scenario, source, 11) == first
        assert render_files(scenario, source, 12) != first
        a, b = make_wire(scenario, 11), make_wire(scenario, 12)
        assert a.device != b.device
        assert [_what(s) for s in a.sessions] == [_what(s) for s in b.sessions]


def _what(session: Session) -> tuple[Any, ...]:
    """A session without what the seed draws (client, ports, uids, times)."""
    chain = [(c.subject, c.issuer, c.serial, c.sha256, c.sha1) for c in session.chain]
    return (session.server, session.port, session.sni, session.validation, chain)


@pytest.mark.parametrize("source", SENSORS)
def test_every_rendered_record_is_stored(tmp_path: Path, source: str) -> None:
    """read = stored for every file, nothing quarantined; one row per session and certificate."""
    for n, scenario in enumerate(NETWORK):
        ws, stats = ingest(scenario, source, tmp_path / str(n))
        try:
            wire = make_wire(scenario, 4)
            certs = {c.sha256 for s in wire.sessions for c in s.chain}
            s: FileStats
            for s in stats:
                assert s.read == s.stored and not s.quarantined and not s.duplicates, s
            stored = {t: n for s in stats for t, n in s.tables.items()}
            expected = {TABLES[source][0]: len(wire.sessions)}
            if source != "suricata":
                expected[TABLES[source][1]] = len(certs)
            assert stored == expected, scenario.id
        finally:
            ws.close()


def test_zeek_tsv_and_json_store_the_same_rows(tmp_path: Path) -> None:
    scenario = by_id("attack-lookalike-domain-free-ca-certificate")
    seen = {}
    for source in ("zeek", "zeek-json"):
        ws, _ = ingest(scenario, source, tmp_path / source)
        try:
            seen[source] = {
                table: [
                    {k: v for k, v in r.items() if k not in ("AdditionalFields", "_ingest_id")}
                    for r in rows(ws, table)
                ]
                for table in TABLES[source]
            }
        finally:
            ws.close()
    assert seen["zeek"]["Corelight_v2_ssl_CL"][0]["server_name_s"] == "c0ntoso-sso.com"
    assert len(seen["zeek"]["Corelight_v2_x509_CL"]) == 2  # the leaf and Let's Encrypt's R11
    for table in TABLES["zeek"]:
        tsv, js = (
            [{k: v for k, v in r.items() if not k.startswith("_")} for r in seen[src][table]]
            for src in ("zeek", "zeek-json")
        )
        assert tsv == js, table


def test_the_cobalt_strike_default_is_logged_as_each_sensor_logs_it(tmp_path: Path) -> None:
    scenario = by_id(CS_DEFAULT)
    ws, _ = ingest(scenario, "zeek", tmp_path / "zeek")
    try:
        [x509] = rows(ws, "Corelight_v2_x509_CL")
        ssl = rows(ws, "Corelight_v2_ssl_CL")
    finally:
        ws.close()
    assert x509["fingerprint_s"] == CS_SHA256.lower()
    assert x509["certificate_serial_s"] == "08BB00EE"
    assert x509["certificate_subject_s"].startswith("CN=Major Cobalt Strike,OU=")
    assert len(ssl) == 5 and all(r["validation_status_s"] == "self signed certificate" for r in ssl)
    assert all(json.loads(r["cert_chain_fps_s"]) == [CS_SHA256.lower()] for r in ssl)
    assert all(not r["server_name_s"] for r in ssl)
    ws, _ = ingest(scenario, "suricata", tmp_path / "eve")
    try:
        eve = rows(ws, "Suricata_tls_CL")
    finally:
        ws.close()
    assert len(eve) == 5
    assert eve[0]["tls_serial_s"] == "08:BB:00:EE"
    assert eve[0]["tls_fingerprint_s"].replace(":", "").upper() == CS_SHA1
    assert eve[0]["tls_subject_s"] == (
        "C=Earth, ST=Cyberspace, L=Somewhere, O=cobaltstrike, OU=AdvancedPenTesting, "
        "CN=Major Cobalt Strike"
    )


@pytest.mark.parametrize(("source", "matched"), [("zeek", "SHA-256"), ("suricata", "SHA-1")])
def test_the_known_bad_rule_matches_the_default_by_hash(
    tmp_path: Path, source: str, matched: str
) -> None:
    scenario = by_id(CS_DEFAULT)
    ws, _ = ingest(scenario, source, tmp_path)
    try:
        tuning = load_tuning(default_tuning_path())
        views = pipeline.query_views(ws.engine)
        session = HuntSession(tuning.tables(), engine=ws.engine, views=views)
        rules = [r for r in load_rules(["network"]) if r.path.stem == "tls_known_bad_certificate"]
        now = make_wire(scenario, 4).end + timedelta(minutes=5)
        alerts = Hunter(session, tuning).run(rules, now=now).alerts
    finally:
        ws.close()
    [alert] = alerts
    evidence = alert["Evidence"][0]
    assert matched in evidence["MatchedOn"] and "serial and subject" in evidence["MatchedOn"]
    assert (
        evidence["ServerIP"] == "203.0.113.77"
        and evidence["ClientIP"] == make_wire(scenario, 4).device
    )


HOSTILE = (
    "CN=evil\ttab\x1b[31mred\x1b[0m \\\\ back\u202egnp.exe,O=a\\, b,L=\u00e9t\u00e9 \u4e2d\u6587"
)


def _hostile(tmp_path: Path, subject: str) -> Scenario:
    path = tmp_path / "hostile-subject.yaml"
    doc = {
        "id": "hostile-subject",
        "title": "t",
        "kind": "attack",
        "source": "s",
        "host": "network",
        "server_certificates": {"c": {"subject": subject, "serial": "0A"}},
        "steps": [{"tls": {"server": "198.51.100.9", "port": 8443, "certificate": "c"}}],
    }
    path.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    return load_scenario(path)


@pytest.mark.parametrize("subject", [HOSTILE, "-", "(empty)", "a\nb"])
@pytest.mark.parametrize("source", SENSORS)
def test_hostile_subjects_survive_the_round_trip(tmp_path: Path, source: str, subject: str) -> None:
    """Escapes, control characters and Zeek's own markers are written so the readers give the
    subject back as it was (Suricata: its RDNs in certificate order)."""
    scenario = _hostile(tmp_path, subject)
    ws, stats = ingest(scenario, source, tmp_path / "out")
    try:
        if source == "suricata":
            [row] = rows(ws, "Suricata_tls_CL")
            got = row["tls_subject_s"]
            want = ", ".join(reversed(subject.replace("\\,", "\0").split(","))).replace("\0", "\\,")
        else:
            [row] = rows(ws, "Corelight_v2_x509_CL")
            got, want = row["certificate_subject_s"], subject
    finally:
        ws.close()
    assert got == want
    assert all(not s.quarantined for s in stats)


def test_render_refuses_a_source_of_another_host_kind() -> None:
    with pytest.raises(ValueError, match="network host"):
        render(by_id(CS_DEFAULT), "sysmon")
    with pytest.raises(ValueError, match="use render_files"):
        render(by_id(CS_DEFAULT), "zeek")
    windows = load_scenarios(["spec-test-1-certutil-root"])[0]
    with pytest.raises(ValueError, match="windows host"):
        render_files(windows, "suricata")
