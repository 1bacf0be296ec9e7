"""Start-up stays light: importing trustwatch and asking for help load no engine or compiler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import trustwatch

# what a bare import or `--help` must not load (each costs tens to hundreds of milliseconds)
HEAVY = ("pyarrow", "duckdb", "sqlglot", "numpy", "rich", "cryptography", "yaml")


def loaded_after(code: str, tmp_path: Path) -> list[str]:
    """The HEAVY top-level packages a fresh interpreter has loaded after running ``code``."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    env = {**os.environ, "TRUSTWATCH_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_import_loads_no_engine(tmp_path: Path) -> None:
    assert loaded_after("import trustwatch", tmp_path) == []


def test_help_loads_no_engine(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom trustwatch.cli.main import main\n"
        "sys.argv = ['trustwatch', '--help']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code"
    )
    assert loaded_after(code, tmp_path) == []


def test_a_query_without_watchlist_loads_no_certificate_code(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom trustwatch.cli.main import main\n"
        "sys.argv = ['trustwatch', 'query', '--format', 'json', 'print x = 1']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code"
    )
    loaded = loaded_after(code, tmp_path)
    assert "duckdb" in loaded
    assert "cryptography" not in loaded


@pytest.mark.parametrize("name", trustwatch.__all__)
def test_public_names_resolve_lazily(name: str) -> None:
    from trustwatch import api, errors

    value = getattr(trustwatch, name)
    assert value is getattr(api if hasattr(api, name) else errors, name)
    assert name in dir(trustwatch)


def test_from_import_and_unknown_names() -> None:
    from trustwatch import TrustwatchError, query

    assert query("print x = 1").to_pylist() == [{"x": 1}]
    assert issubclass(TrustwatchError, Exception)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = trustwatch.nothing_here
