"""Shared test fixtures and the location of ../shared (reference data beside the checkout)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"needs ../shared reference data at {SHARED}"
)

# Folders of ../shared/data that trustwatch does not read yet, left out of every walk of it by
# name: none (network/, the Zeek TLS logs, is read since issue 17).
NOT_YET_READ: frozenset[str] = frozenset()


def shared_data_paths() -> list[Path]:
    """The entries of ../shared/data that trustwatch reads: all but the NOT_YET_READ folders."""
    return [p for p in sorted((SHARED / "data").iterdir()) if p.name not in NOT_YET_READ]


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` (./dev test) the tests sharing a costly fixture share a worker.

    A module or session fixture is built once per xdist worker that runs a test needing it, so
    a module whose tests were spread over both workers built its fixture twice (the validate
    matrix: 40 s each time). The tests of ``shared_workspace`` (about 200k events ingested: half
    a minute and some 700 MB) are one group; every other test needing a module fixture, or a
    session fixture of a folder's conftest, is grouped with the other tests needing it.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        group = _fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def _fixture_group(item: pytest.Item) -> str | None:
    """The group of the first module or session fixture ``item`` needs (None: it needs none).

    This file's session fixtures are cheap (environment variables) or grouped on their own.
    """
    if "shared_workspace" in getattr(item, "fixturenames", ()):
        return "shared_workspace"
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name) or ()
        for definition in definitions:
            if definition.scope == "module":
                return item.nodeid.split("::")[0]
            if definition.scope == "session" and definition.baseid not in ("", "tests"):
                return f"{definition.baseid}::{name}"
    return None


@pytest.fixture(autouse=True, scope="session")
def _no_user_certificate_lists(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Certificate lists a user imported into their home never change what tests see."""
    import os

    before = os.environ.get("TRUSTWATCH_DATA_DIR")
    os.environ["TRUSTWATCH_DATA_DIR"] = str(tmp_path_factory.mktemp("trustwatch-data"))
    yield
    if before is None:
        del os.environ["TRUSTWATCH_DATA_DIR"]
    else:
        os.environ["TRUSTWATCH_DATA_DIR"] = before


@pytest.fixture(autouse=True, scope="session")
def _private_compiled_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Compiled content (trustwatch.compiled) is cached in this session's own empty folder.

    Under xdist the workers share it (the base temporary folder's parent is the session's):
    each entry is compiled once for the session, not once per worker; entries are written to
    a temporary file and renamed, so a worker never reads half of one.
    """
    import os

    from trustwatch import compiled

    before = os.environ.get("TRUSTWATCH_CACHE_DIR")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.getbasetemp().parent / "trustwatch-cache"
        folder.mkdir(exist_ok=True)
    else:
        folder = tmp_path_factory.mktemp("trustwatch-cache")
    os.environ["TRUSTWATCH_CACHE_DIR"] = str(folder)
    compiled.clear_memo()
    yield
    compiled.clear_memo()
    if before is None:
        del os.environ["TRUSTWATCH_CACHE_DIR"]
    else:
        os.environ["TRUSTWATCH_CACHE_DIR"] = before


@pytest.fixture
def compile_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A compiled-content cache of the test's own, empty, in memory and on disk."""
    from trustwatch import compiled

    folder = tmp_path / "cache"
    monkeypatch.setenv("TRUSTWATCH_CACHE_DIR", str(folder))
    compiled.clear_memo()
    yield folder
    compiled.clear_memo()


@pytest.fixture(scope="session")
def shared_workspace() -> Any:
    """../shared/data (but NOT_YET_READ) ingested once into an in-memory workspace.

    Returns (ws, stats, skipped).
    """
    from trustwatch.ingest import pipeline
    from trustwatch.ingest.workspace import Workspace

    planned, skipped = pipeline.plan(shared_data_paths(), skip_unknown=True)
    ws = Workspace(None)
    return ws, ws.ingest(planned), skipped


def spark_unavailable() -> str | None:
    """Why the Spark engine cannot run here (no PySpark, no Java), or None when it can."""
    import importlib.util
    import os
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        return "PySpark is not installed (pip install 'trustwatch[spark]'): Spark cases skipped"
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        return "Java is not installed (the Spark engine needs 17 or newer): Spark cases skipped"
    return None


# the Spark cases share one worker under --dist loadgroup, which starts one SparkSession
spark_group = pytest.mark.xdist_group("spark")


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """One local SparkSession for the whole test session: 2 cores, small shuffles, no UI."""
    reason = spark_unavailable()
    if reason:
        pytest.skip(reason)
    from trustwatch.engines.spark import build_session

    session = build_session(
        "local[2]",
        {
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.driver.memory": "1g",
            "spark.sql.adaptive.enabled": "false",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
