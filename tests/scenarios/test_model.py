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
