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


SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "src/trustwatch/content/samples/hunt/spec-test-1-certutil-root.sysmon.xml"
)


@pytest.mark.parametrize(
    "args",
    [
        ["query", "--format", "json", 'print x = 1, s = "a"'],
        # query is not one of the lazily loaded commands; --data ingests (Python values to Arrow)
        ["query", "--format", "json", "--data", str(SAMPLE), "DeviceProcessEvents | take 1"],
        ["hunt", "--format", "json", str(SAMPLE)],
    ],
    ids=["query-print", "query-data", "hunt"],
)
def test_a_command_does_not_import_pandas_for_pyarrow(tmp_path: Path, args: list[str]) -> None:
    """pyarrow would import pandas (0.2-0.45 s) the first time it converts Python values, to
    tell pandas objects apart; a command answers for it (trustwatch.startup)."""
    pytest.importorskip("pandas")  # installed with the spark extra; else nothing to skip
    code = (
        "import sys\nfrom trustwatch.cli.main import main\n"
        f"sys.argv = ['trustwatch', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, 1), exc.code\n"
        "assert 'pandas' not in sys.modules\n"
        "import pandas, pyarrow\n"  # and pandas still works when asked for
        "assert pyarrow.table({'a': [1]}).to_pandas().shape == (1, 1)\n"
        "print('[]')"
    )
    loaded_after(code, tmp_path)  # check=True: the assertions above held


@pytest.mark.parametrize(("argv", "pandas_loaded"), [([], False), (["--engine", "spark"], True)])
def test_the_spark_engine_keeps_pyarrows_pandas_support(
    argv: list[str], pandas_loaded: bool, tmp_path: Path
) -> None:
    pytest.importorskip("pandas")
    code = (
        "import sys\nfrom trustwatch.startup import skip_pandas_probe\n"
        f"skip_pandas_probe({argv!r})\n"
        "import pyarrow\npyarrow.array(['x'])\n"
        f"assert ('pandas' in sys.modules) is {pandas_loaded}\n"
        "print('[]')"
    )
    loaded_after(code, tmp_path)


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_the_terminal_output_loads_no_emoji_table(tmp_path: Path, fmt: str) -> None:
    """rich's emoji table costs ~45 ms to import and would turn ``:name:`` in a message into a
    picture: every console is made with ``emoji=False``."""
    code = (
        "import sys\nfrom trustwatch.cli.main import main\n"
        f"sys.argv = ['trustwatch', 'hunt', '--format', {fmt!r}, {str(SAMPLE)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, 1), exc.code\n"
        "assert 'rich._emoji_codes' not in sys.modules\n"
        "print('[]')"
    )
    loaded_after(code, tmp_path)
