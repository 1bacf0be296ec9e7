"""``hunt --report`` and ``investigate --report`` write the report the extension names."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tests.report.conftest import DEMO
from trustwatch.cli.main import cli


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stderr


def test_hunt_writes_html_and_investigate_writes_markdown(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    code, stderr = run("hunt", str(DEMO), "--no-grouping", "--report", str(html))
    assert code == 1, stderr  # alerts found
    assert "wrote the report to" in stderr
    text = html.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.count('<article class="alert') == 22
    assert text.count('<section class="incident"') == 22  # --no-grouping: one per alert
    alert_id = text.split('id="alert-', 1)[1].split('"', 1)[0]
    md = tmp_path / "alert.md"
    code, stderr = run("investigate", alert_id, str(DEMO), "--report", str(md))
    assert code == 0, stderr
    written = md.read_text(encoding="utf-8")
    assert written.startswith("# trustwatch investigation") and alert_id in written
    assert "### Pivots" in written and "Playbook:" in written


def test_investigate_refuses_an_unknown_extension(tmp_path: Path) -> None:
    code, stderr = run("investigate", "x" * 8, str(DEMO), "--report", str(tmp_path / "r.txt"))
    assert code == 2 and "extension chooses the format" in stderr
