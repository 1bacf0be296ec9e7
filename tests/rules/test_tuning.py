"""A tuning file's watchlist paths stay in the tuning file's folder (or an allowed one), and no
error quotes a file's content (issue 13, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustwatch.errors import RuleFileError
from trustwatch.rules.tuning import confined, load_tuning

SECRET = "root:x:0:0:SECRET-LINE"


def tuning_file(folder: Path, csv_path: str, key: str = "Path") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tuning.yaml"
    path.write_text(
        f"watchlists:\n  - name: Trusted\n    path: {csv_path}\n    searchKey: {key}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text(SECRET + "\nsecond line\n", encoding="utf-8")
    return secret


def test_a_watchlist_beside_the_tuning_file_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "tuning"
    (folder / "lists").mkdir(parents=True)
    (folder / "lists" / "trusted.csv").write_text("Path,Note\nC:\\x.exe,ok\n", encoding="utf-8")
    tuning = load_tuning(tuning_file(folder, "lists/trusted.csv"))
    assert tuning.watchlists["Trusted"].search_keys() == {"c:\\x.exe"}


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink-file", "symlink-folder"])
def test_a_watchlist_outside_the_folder_is_refused_unread(
    tmp_path: Path, outside: Path, how: str
) -> None:
    folder = tmp_path / "tuning"
    folder.mkdir()
    if how == "dotdot":
        named = "../elsewhere/secret.csv"
    elif how == "absolute":
        named = str(outside)
    elif how == "symlink-file":
        (folder / "link.csv").symlink_to(outside)
        named = "link.csv"
    else:
        (folder / "lists").symlink_to(outside.parent, target_is_directory=True)
        named = "lists/secret.csv"
    with pytest.raises(RuleFileError) as info:
        load_tuning(tuning_file(folder, named))
    text = info.value.render()
    assert "leads outside" in text
    assert "SECRET" not in text and "root:x" not in text
    assert info.value.code == "RULE010"


def test_an_allowed_root_admits_a_watchlist_outside(tmp_path: Path, outside: Path) -> None:
    folder = tmp_path / "tuning"
    path = tuning_file(folder, str(outside), key="root:x:0:0:SECRET-LINE")
    tuning = load_tuning(path, allowed_roots=[outside.parent])
    assert tuning.watchlists["Trusted"].search_keys() == {"second line"}


def test_a_missing_search_key_does_not_quote_the_header(tmp_path: Path, outside: Path) -> None:
    folder = tmp_path / "tuning"
    path = tuning_file(folder, str(outside), key="Missing")
    with pytest.raises(RuleFileError) as info:
        load_tuning(path, allowed_roots=[outside.parent])
    text = info.value.render()
    assert "searchKey 'Missing' is not a column of secret.csv (it has 1 column)" in text
    assert "SECRET-LINE" not in text and "root:x" not in text


def test_a_binary_watchlist_is_refused_without_its_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "tuning"
    folder.mkdir()
    (folder / "bin.csv").write_bytes(b"Path\n\xff\xfe\x1b]0;owned\x07\n")
    with pytest.raises(RuleFileError, match="not a UTF-8 CSV file") as info:
        load_tuning(tuning_file(folder, "bin.csv"))
    assert "owned" not in info.value.render()


def test_confined_resolves_links_before_checking(tmp_path: Path) -> None:
    named_by = tmp_path / "a" / "rule.yaml"
    named_by.parent.mkdir()
    (tmp_path / "b").mkdir()
    (named_by.parent / "inside").symlink_to(tmp_path / "b", target_is_directory=True)
    assert confined(named_by, "x.csv") == (tmp_path / "a" / "x.csv").resolve()
    with pytest.raises(RuleFileError):
        confined(named_by, "inside/x.csv")
    allowed = confined(named_by, "inside/x.csv", [tmp_path / "b"])
    assert allowed == (tmp_path / "b" / "x.csv").resolve()


def test_hunt_allow_path_admits_the_folder_and_nothing_else(tmp_path: Path, outside: Path) -> None:
    from click.testing import CliRunner

    from trustwatch.cli.main import cli

    samples = Path(__file__).parents[2] / "src/trustwatch/content/samples/hunt"
    path = tuning_file(tmp_path / "tuning", str(outside), key="root:x:0:0:SECRET-LINE")
    refused = CliRunner().invoke(cli, ["hunt", str(samples), "--tuning", str(path)])
    assert refused.exit_code == 2
    assert "leads outside" in refused.stderr and "--allow-path DIR" in refused.stderr
    assert "SECRET" not in refused.stderr
    allowed = CliRunner().invoke(
        cli, ["hunt", str(samples), "--tuning", str(path), "--allow-path", str(outside.parent)]
    )
    assert allowed.exit_code == 1, allowed.stderr  # the samples' alerts
    not_a_folder = CliRunner().invoke(
        cli, ["hunt", str(samples), "--tuning", str(path), "--allow-path", str(outside)]
    )
    assert not_a_folder.exit_code == 2
    assert "is not a folder" in not_a_folder.stderr
