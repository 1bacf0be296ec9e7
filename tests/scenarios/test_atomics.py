"""`trustwatch atomics export`: the specification's 4 tests as valid Atomic Red Team YAML."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import yaml
from click.testing import CliRunner

from trustwatch.cli.main import cli

EXECUTORS = {"powershell", "command_prompt", "sh", "bash", "manual"}
ARG = re.compile(r"#\{(\w+)\}")


def export(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    out = tmp_path / "T1588.004.yaml"
    result = CliRunner().invoke(cli, ["atomics", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def test_the_file_follows_the_atomic_red_team_layout(tmp_path: Path) -> None:
    doc = export(tmp_path)
    assert doc["attack_technique"] == "T1588.004"
    tests = doc["atomic_tests"]
    assert len(tests) == 4
    guids = [str(uuid.UUID(t["auto_generated_guid"])) for t in tests]
    assert len(set(guids)) == 4
    for test in tests:
        assert test["name"] and test["description"]
        assert test["supported_platforms"] == ["windows"]
        assert test["executor"]["name"] in EXECUTORS
        args = test.get("input_arguments") or {}
        for spec in args.values():
            assert {"description", "type", "default"} <= set(spec)
        texts = [test["executor"]["command"], test["executor"].get("cleanup_command", "")]
        for dep in test.get("dependencies") or []:
            texts += [dep["prereq_command"], dep["get_prereq_command"]]
        used = {name for text in texts for name in ARG.findall(text)}
        assert used <= set(args), f"{test['name']}: undefined #{{...}} {used - set(args)}"


def test_commands_produce_the_specifications_signals(tmp_path: Path) -> None:
    tests = export(tmp_path)["atomic_tests"]
    command = [t["executor"]["command"] for t in tests]
    prereq = tests[0]["dependencies"][0]["get_prereq_command"]
    assert "New-SelfSignedCertificate" in prereq and "Export-Certificate" in prereq
    assert "certutil -addstore Root" in command[0]
    assert "Import-Certificate" in command[1] and r"Cert:\LocalMachine\Root" in command[1]
    assert "-store Root" in command[2] and "-store CA" in command[2]
    assert "Get-ChildItem Cert:" in command[2] and "HasPrivateKey" in command[2]
    assert "-urlcache -split -f" in command[3]
    assert tests[3]["input_arguments"]["url"]["default"].startswith("http://127.0.0.1:8080/")


def test_export_to_stdout_and_bad_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["atomics", "export"])
    assert result.exit_code == 0 and result.stdout.startswith("attack_technique: T1588.004")
    result = CliRunner().invoke(cli, ["atomics", "export", "--out", str(tmp_path / "no/x.yaml")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
