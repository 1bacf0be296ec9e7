"""Scenario files: errors name the file and the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustwatch.scenarios.model import ScenarioError, load_scenario

GOOD_STEP = """
  - id: ps
    process: {image: C:\\Windows\\System32\\cmd.exe, command_line: cmd.exe}
"""


def _write(tmp_path: Path, body: str, steps: str = GOOD_STEP) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text(f"id: x\ntitle: t\nkind: attack\nsource: s\n{body}steps:{steps}")
    return path


@pytest.mark.parametrize(
    ("body", "steps", "message"),
    [
        ("colour: red\n", GOOD_STEP, "unknown field 'colour'"),
        ("", "\n  - registry: {by: nobody, action: create_key, key: HKLM\\\\X}\n", "by: nobody"),
        ("", GOOD_STEP + "  - file: {by: ps}\n", "steps[1].file: 'path' is required"),
        ("", GOOD_STEP.replace("cmd.exe}", "cmd.exe, parent: x}"), "parent 'x'"),
        ("", GOOD_STEP + "  - at: 5\n    network: {by: ps, ip: 1.2.3.4, port: x}\n", "port"),
        ("expect: {a: true}\nknown_misses: {a: why}\n", GOOD_STEP, "both expected and"),
        ("", GOOD_STEP + "  - capi2: {by: ps}\n", "steps[1].capi2: 'subject' is required"),
        (
            "",
            GOOD_STEP + "  - registry: {by: ps, action: read_key, key: HKLM\\\\X}\n",
            "'read_key' is not one of create_key, set_value, open_key, delete_key",
        ),
        ("sources:\n  splunk: {}\n", GOOD_STEP, "sources: a mapping keyed by"),
        ("sources:\n  security: {expect: {}, colour: red}\n", GOOD_STEP, "unknown field 'colour'"),
        (
            "sources:\n  security: {fp_not_removed: why}\n",
            GOOD_STEP,
            "fp_not_removed: a reason (text), for a scenario with a known_false_positive",
        ),
    ],
)
def test_errors_are_located(tmp_path: Path, body: str, steps: str, message: str) -> None:
    path = _write(tmp_path, body, steps)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    text = info.value.diagnostic.message
    assert str(path) in text and message in text


def test_per_source_expectations_override(tmp_path: Path) -> None:
    body = "expect: {a: true}\nsources:\n  defender:\n    expect: {a: false, b: true}\n"
    scenario = load_scenario(_write(tmp_path, body))
    assert scenario.expect["sysmon"].fire == {"a"}
    assert scenario.expect["defender"].fire == {"b"}


def test_security_overrides_and_a_known_false_positive_kept_there(tmp_path: Path) -> None:
    body = (
        "known_false_positive: {exclusion: x}\nexpect: {a: true}\nsources:\n  security:\n"
        "    expect: {a: false, b: true}\n    known_misses: {a: why}\n"
        "    fp_not_removed: the exclusion needs a parent 4657 does not name\n"
    )
    scenario = load_scenario(_write(tmp_path, body))
    assert scenario.expect["sysmon"].fire == {"a"} and not scenario.expect["sysmon"].fp_not_removed
    security = scenario.expect["security"]
    assert security.fire == {"b"} and security.known_misses == {"a": "why"}
    assert security.fp_not_removed.startswith("the exclusion")


def test_a_capi2_step_takes_the_host_thumbprint_unless_given(tmp_path: Path) -> None:
    from trustwatch.scenarios.host import make_host

    steps = (
        GOOD_STEP
        + "  - capi2: {by: ps, subject: CN=R}\n  - capi2: {by: ps, subject: CN=S, thumbprint: AB}\n"
    )
    host = make_host(load_scenario(_write(tmp_path, "", steps)), 1)
    assert [a.fields["thumbprint"] for a in host.activity] == [host.thumbprint, "AB"]


CERT = "server_certificates:\n  c: {subject: CN=x, serial: '0A'}\n"
TLS_STEP = "\n  - tls: {server: 198.51.100.9, port: 443, certificate: c}\n"


@pytest.mark.parametrize(
    ("body", "steps", "message"),
    [
        ("host: mainframe\n", GOOD_STEP, "host: 'mainframe' is not one of windows, network"),
        ("host: network\n" + CERT, GOOD_STEP, "steps[0]: a 'process' step on a network host"),
        (CERT, TLS_STEP, "steps[0]: a 'tls' step on a windows host"),
        ("host: network\n", TLS_STEP, "steps[0].tls.certificate: 'c' is not in server_"),
        (
            "host: network\n" + CERT + "sources:\n  sysmon: {}\n",
            TLS_STEP,
            "sources: a mapping keyed by zeek, zeek-json, suricata",
        ),
        (
            "host: network\nserver_certificates:\n  c: {subject: CN=x, serial: 10}\n",
            TLS_STEP,
            "server_certificates.c.serial: expected text",
        ),
        (
            "host: network\nserver_certificates:\n  c: {subject: CN=x, serial: XY}\n",
            TLS_STEP,
            "server_certificates.c.serial: hexadecimal digits",
        ),
        (
            "host: network\nserver_certificates:\n  c: {subject: CN=x, serial: '1', key: dsa}\n",
            TLS_STEP,
            "server_certificates.c.key: 'dsa' is not one of",
        ),
        (
            "host: network\nserver_certificates:\n  c: {subject: CN=x, serial: '1', chain: [i]}\n",
            TLS_STEP,
            "server_certificates.c.chain: 'i' is not defined",
        ),
        (
            "host: network\nserver_certificates:\n"
            "  c: {subject: CN=x, serial: '1', not_before: '2024-01-01', valid_days: 3}\n",
            TLS_STEP,
            "not both",
        ),
        (
            "host: network\n" + CERT,
            TLS_STEP.replace("443,", "443, version: TLSv13,"),
            "'TLSv13' is not one of TLSv10, TLSv11, TLSv12",
        ),
    ],
)
def test_network_scenario_errors_are_located(
    tmp_path: Path, body: str, steps: str, message: str
) -> None:
    path = _write(tmp_path, body, steps)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    text = info.value.diagnostic.message
    assert str(path) in text and message in text


def test_a_network_scenario_has_the_sensors_as_sources(tmp_path: Path) -> None:
    body = "host: network\n" + CERT + "expect: {a: true}\n"
    body += "sources:\n  suricata: {expect: {a: false}}\n"
    scenario = load_scenario(_write(tmp_path, body, TLS_STEP))
    assert scenario.sources == ("zeek", "zeek-json", "suricata")
    assert scenario.expect["zeek"].fire == {"a"} and not scenario.expect["suricata"].fire
    cert = scenario.server_certificates["c"]
    assert (cert.issuer, cert.serial, cert.valid_days) == ("CN=x", "0A", 365)


CA_PROCESS = """
  - id: certsrv
    process:
      {image: C:\\Windows\\System32\\certsrv.exe, command_line: certsrv.exe, parent: services}
"""


@pytest.mark.parametrize(
    ("body", "steps", "message"),
    [
        (
            "",
            GOOD_STEP + "  - ca_audit: {by: ps, event_id: 4887, data: {RequestId: '1'}}\n",
            "steps[1]: a 'ca_audit' step on a windows host",
        ),
        (
            "host: ca\n",
            CA_PROCESS + "  - registry: {by: certsrv, action: create_key, key: HKLM\\\\X}\n",
            "steps[1]: a 'registry' step on a ca host",
        ),
        (
            "host: ca\n",
            CA_PROCESS + "  - ca_audit: {by: certsrv, event_id: 4887, data: {RequestId: 1}}\n",
            "steps[1].ca_audit.data: EventData field names and text values",
        ),
        ("host: ca\n", CA_PROCESS + "  - ca_audit: {by: certsrv, event_id: 4887}\n", "'data'"),
    ],
)
def test_ca_host_steps_are_checked(tmp_path: Path, body: str, steps: str, message: str) -> None:
    path = _write(tmp_path, body, steps)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert message in info.value.diagnostic.message


def test_a_ca_audit_step_is_a_security_event_of_the_ca_ingested_into_securityevent(
    tmp_path: Path,
) -> None:
    """The event id, the task of Certification Services, its data as EventData, placeholders
    filled; ingest stores it in SecurityEvent with the documented fields as columns."""
    import json

    from trustwatch.api import Session
    from trustwatch.ingest import pipeline
    from trustwatch.ingest.workspace import Workspace
    from trustwatch.scenarios.host import make_host
    from trustwatch.scenarios.render import render

    steps = CA_PROCESS + (
        "  - at: 3\n    ca_audit:\n      by: certsrv\n      event_id: 4887\n"
        "      data: {RequestId: '7', Requester: '%USERDOMAIN%\\%USERNAME%', "
        'Attributes: "CertificateTemplate:User\\nSAN:upn=a@b.c"}\n'
    )
    scenario = load_scenario(_write(tmp_path, "host: ca\n", steps))
    assert scenario.sources == ("ca-security",)
    host = make_host(scenario, 3)
    assert host.device.startswith("pki-ca-")
    docs = [json.loads(line) for line in render(scenario, "ca-security", 3).splitlines()]
    event = next(d["Event"] for d in docs if d["Event"]["System"]["EventID"] == 4887)
    assert event["System"]["Task"] == 12805
    requester = f"{host.user.domain}\\{host.user.name}"
    assert event["EventData"] == {
        "RequestId": "7",
        "Requester": requester,
        "Attributes": "CertificateTemplate:User\nSAN:upn=a@b.c",
    }
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.ca-security.jsonl").write_text(render(scenario, "ca-security", 3), encoding="utf-8")
    planned, _ = pipeline.plan([out])
    ws = Workspace(None)
    try:
        ws.ingest(planned)
        session = Session({}, engine=ws.engine, views=pipeline.query_views(ws.engine))
        query = "SecurityEvent | where EventID == 4887 | project RequestId, Requester, Attributes"
        rows = session.run(query).tables[-1].to_pylist()
    finally:
        ws.close()
    assert rows == [
        {
            "RequestId": "7",
            "Requester": requester,
            "Attributes": "CertificateTemplate:User\nSAN:upn=a@b.c",
        }
    ]
