"""The ``trustwatch deploy`` commands: plan output, dry runs, exit codes, inert errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.deploy.replay import (
    GROUP,
    RULE_ID,
    RULES,
    SUBSCRIPTION,
    TOKEN,
    WORKSPACE,
    FakeCredential,
    ReplayTransport,
    recording,
)
from trustwatch.cli import deploy_cmd
from trustwatch.cli.main import cli
from trustwatch.deploy.rest import RestClient, Service
from trustwatch.rules.model import load_rules

RULE_FILE = str(RULES / "root_store_write.yaml")
TUNING = str(RULES.parent / "tuning.yaml")
SENTINEL = [
    "deploy", "sentinel", "--subscription", SUBSCRIPTION, "--resource-group", GROUP,
    "--workspace", WORKSPACE,
]  # fmt: skip


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_offline_dry_run_plans_the_default_pack_without_signing_in() -> None:
    code, out, err = invoke(*SENTINEL, "--dry-run", "--offline")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("target: Sentinel workspace myWorkspace")
    creates = [line for line in lines if line.strip().startswith("create")]
    # the default pack's rules, CertificateIntel, the shipped tuning's 3 watchlists
    # (TrustedCertificateInstallers, ProtectedDomains, TrustwatchExclusions)
    expected = len(load_rules(["default"])) + 1 + 3
    assert len(creates) == expected
    assert sum(" watchlist " in line for line in creates) == 4
    assert all(line.endswith("(not compared: no access)") for line in creates)
    assert f"plan: {expected} create" in lines
    assert lines[-1] == "dry run: nothing was changed (and nothing was read: --offline)"


def test_offline_needs_dry_run() -> None:
    code, _, err = invoke(*SENTINEL, "--offline")
    assert code == 2
    assert "error[IN001]" in err and "add --dry-run" in err


def test_dry_run_reads_compares_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = recording("cli_sentinel")
    del transport.replay.interactions[3:]  # a dry run stops after the reads
    _use(monkeypatch, transport)
    code, out, err = invoke(*SENTINEL, "--rules", RULE_FILE, "--tuning", TUNING, "--dry-run")
    assert code == 0, err
    assert "  create     watchlist      CertificateIntel  163 items" in out
    assert f"  create     alertRule      {RULE_ID}  Deploy test - root store write" in out
    assert out.splitlines()[-1] == "dry run: nothing was changed"
    assert [s.method for s in transport.replay.sent] == ["GET", "GET", "GET"]


def test_deploy_prints_the_plan_then_each_change(monkeypatch: pytest.MonkeyPatch) -> None:
    transport = recording("cli_sentinel")
    _use(monkeypatch, transport)
    code, out, err = invoke(*SENTINEL, "--rules", RULE_FILE, "--tuning", TUNING)
    assert code == 0, err
    lines = out.splitlines()
    assert lines.index("plan: 2 create") < lines.index(
        "created watchlist CertificateIntel  (163 items)"
    )
    assert lines[-2:] == [
        f"created alertRule {RULE_ID}  Deploy test - root store write",
        "deployed: 2 change(s)",
    ]
    assert not transport.replay.interactions


def test_a_refusal_midway_keeps_what_was_said_and_exits_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = recording("cli_sentinel_refused")
    _use(monkeypatch, transport)
    code, out, err = invoke(*SENTINEL, "--rules", RULE_FILE, "--tuning", TUNING)
    assert code == 2
    assert "created watchlist CertificateIntel  (163 items)" in out
    assert "error[DEP103]" in err
    assert "1 of 2 changes were made before it (listed above)" in err
    assert "Microsoft Sentinel Contributor" in err
    assert "\x1b" not in err and "\x07" not in err  # the server's escapes shown inert
    assert "\\x1b]0;owned\\x07" in err
    assert TOKEN not in out + err


def test_sign_in_failure_is_one_diagnostic(monkeypatch: pytest.MonkeyPatch) -> None:
    def make_client(service: Service, tenant: str | None) -> RestClient:
        transport = recording("sentinel_no_workspace")
        transport.replay.interactions.clear()
        return RestClient(service, FakeCredential(fail=True), transport=transport)

    monkeypatch.setattr(deploy_cmd, "make_client", make_client)
    code, out, err = invoke(*SENTINEL, "--rules", RULE_FILE, "--tuning", TUNING, "--dry-run")
    assert code == 2
    assert "error[DEP101]: could not sign in to Azure Resource Manager" in err
    assert "--dry-run --offline" in err
    assert "Traceback" not in err and out == ""


def test_defender_offline_plan_takes_the_default_pack() -> None:
    code, out, err = invoke("deploy", "defender", "--dry-run", "--offline")
    assert code == 0, err
    created = [line for line in out.splitlines() if line.strip().startswith("create")]
    expected = len(load_rules(["default"]))
    assert len(created) == expected
    assert f"plan: {expected} create" in out and "skip" not in out


def test_defender_offline_plan_skips_what_defender_refuses() -> None:
    # the verbatim specification rule projects Timestamp but no ReportId
    code, out, err = invoke("deploy", "defender", "--dry-run", "--offline", "--rules", "all")
    assert code == 0, err
    skipped = [line for line in out.splitlines() if line.strip().startswith("skip")]
    assert len(skipped) == 1
    assert "(specification, verbatim)" in skipped[0]
    assert "does not return ReportId, which Defender requires" in skipped[0]
    assert f"plan: {len(load_rules(['all'])) - 1} create, 1 skip" in out


def test_defender_deploys_a_rule_defender_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    transport = recording("defender_create")
    _use(monkeypatch, transport)
    code, out, err = invoke("deploy", "defender", "--rules", RULE_FILE)
    assert code == 0, err
    assert f"created detectionRule {RULE_ID}" in out
    assert "warning:" not in err  # 1H schedule and look-back fit the rule's 1h


def test_help_says_a_dry_run_still_reads() -> None:
    code, out, _ = invoke("deploy", "sentinel", "--help")
    assert code == 0
    assert "reads (GET)" in " ".join(out.split())


def _use(monkeypatch: pytest.MonkeyPatch, transport: ReplayTransport) -> None:
    def make_client(service: Service, tenant: str | None) -> RestClient:
        return RestClient(service, FakeCredential(), transport=transport)

    monkeypatch.setattr(deploy_cmd, "make_client", make_client)
