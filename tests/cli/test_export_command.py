"""``trustwatch rules export``: stdout or one file per rule in --out, and nowhere else."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from trustwatch.cli.main import cli


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["rules", "export", *args])
    return result.exit_code, result.stdout, result.stderr


def test_arm_pack_on_stdout() -> None:
    code, out, err = _run("--format", "arm")
    assert code == 0, err
    template = json.loads(out)
    assert template["parameters"]["workspace"]["type"] == "String"
    assert "22 rule(s) as arm" in err


def test_one_rule_into_a_folder(tmp_path: Path) -> None:
    code, _, err = _run("--format", "defender", "--out", str(tmp_path / "d"), "certutil_download")
    assert code == 0, err
    names = [p.name for p in (tmp_path / "d").iterdir()]
    assert names == ["certutil_downloads_a_file_from_a_url.json"]


def test_an_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("keep", encoding="utf-8")
    code, _, err = _run("--format", "sigma", "--out", str(target))
    assert code == 2 and "is not a folder" in err
    assert target.read_text(encoding="utf-8") == "keep"


def test_a_hostile_rule_name_stays_inside_out(tmp_path: Path) -> None:
    shipped = Path(__file__).parents[2] / "src/trustwatch/content/rules/default"
    text = (shipped / "certutil_download.yaml").read_text(encoding="utf-8")
    hostile = text.replace(
        "name: Certutil downloads a file from a URL", 'name: "../../escape/\\x1b[31m.."'
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "x.yaml").write_text(hostile, encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = _run("--format", "sentinel-yaml", "--rules", str(rules), "--out", str(out))
    assert code == 0, err
    assert [p.name for p in out.iterdir()] == ["escape_31m.yaml"]
    assert not (tmp_path / "escape").exists()


def test_a_link_in_out_is_not_followed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep", encoding="utf-8")
    (out / "certutil_downloads_a_file_from_a_url.yml").symlink_to(victim)
    code, _, err = _run("--format", "sigma", "--out", str(out), "certutil_download")
    assert code == 2 and "refusing" in err
    assert victim.read_text(encoding="utf-8") == "keep"


def test_splunk_notes_what_it_cannot_convert() -> None:
    code, out, err = _run("--format", "splunk", "--rules", "default")
    assert code == 0
    assert "temporal_ordered" in err and "EventCode=1" in out
