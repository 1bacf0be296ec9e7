"""Fuzzing the telemetry readers and the workspace over mutated real files (issue 13).

Seeds are small real files from ``../shared/data`` (EVTX, evtx JSON, Splunk event XML, flat
JSON lines, an OTRF zip) and the repository's Defender sample; each example cuts, flips,
splices, duplicates or nests them (``tests.fuzz.mutation``). Properties: detection and the
reader yield only batches and rejections, and only a ``TrustwatchError`` escapes; an ingest
accounts for every record (``read == stored + quarantined + duplicates``) and the intact file
beside the damaged one keeps all its records.
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

from hypothesis import given

from tests.conftest import needs_shared
from tests.fuzz import fixed_seeds
from tests.fuzz.mutation import SAMPLES, Recipe, recipes
from tests.fuzz.properties import check_reader, check_workspace

INTACT = SAMPLES / "spec-test-1-certutil-root.sysmon.xml"


@cache
def intact_records() -> int:
    """Records the intact companion file stores when ingested on its own."""
    from trustwatch.ingest import pipeline
    from trustwatch.ingest.workspace import Workspace

    planned, _ = pipeline.plan([INTACT])
    return Workspace(None).ingest(planned)[0].stored


def write(folder: Path, recipe: Recipe) -> Path:
    path = folder / recipe.seed
    path.write_bytes(recipe.build())
    return path


@needs_shared
@fixed_seeds(120)
@given(recipes())
def test_mutated_files_read_into_batches_or_fail_with_trustwatch_errors(recipe: Recipe) -> None:
    with tempfile.TemporaryDirectory() as folder:
        check_reader(write(Path(folder), recipe))


@needs_shared
@fixed_seeds(12)
@given(recipes())
def test_mutated_files_ingest_with_every_record_accounted_for(recipe: Recipe) -> None:
    with tempfile.TemporaryDirectory() as folder:
        mutated = write(Path(folder), recipe)
        check_workspace([mutated, INTACT], intact={str(INTACT): intact_records()})
