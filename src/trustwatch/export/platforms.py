"""Other platforms: the Sigma export converted by pySigma's backends (Splunk SPL, Elastic ES|QL
and EQL; Kusto for the round-trip test), each with the processing pipelines it needs.

Pipelines: the exported rules use Sysmon's field names. Splunk reads them as the Splunk add-on
for Sysmon extracts them, so it gets trustwatch's ``pipelines/sysmon.yaml`` (EventID and event
log channel per category) and pySigma's ``splunk_windows_pipeline`` (channel -> ``source``).
Elastic gets pySigma's ``ecs_windows`` (Sysmon -> ECS fields). Kusto gets ``microsoft_xdr``
(Sysmon -> Defender XDR tables and columns).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from trustwatch.export.model import Note
from trustwatch.export.sigma import SigmaExport, sigma_text


@dataclass(frozen=True, slots=True)
class Target:
    """A pySigma backend with its pipelines, the file suffix and comment form of its queries."""

    name: str
    suffix: str
    comment: str  # format with the query's title
    backend: Callable[[], Any]


def _sysmon_pipeline() -> Any:
    from sigma.processing.pipeline import ProcessingPipeline

    text = (resources.files("trustwatch.export") / "pipelines" / "sysmon.yaml").read_text(
        encoding="utf-8"
    )
    return ProcessingPipeline.from_yaml(text)


def _splunk() -> Any:
    from sigma.backends.splunk.splunk import SplunkBackend
    from sigma.pipelines.splunk import splunk as splunk_pipelines

    windows: Callable[[], Any] = splunk_pipelines.splunk_windows_pipeline  # untyped upstream
    return SplunkBackend(_sysmon_pipeline() + windows())


def _esql() -> Any:
    from sigma.backends.elasticsearch.elasticsearch_esql import ESQLBackend
    from sigma.pipelines.elasticsearch.windows import ecs_windows

    return ESQLBackend(ecs_windows())


def _eql() -> Any:
    from sigma.backends.elasticsearch.elasticsearch_eql import EqlBackend
    from sigma.pipelines.elasticsearch.windows import ecs_windows

    return EqlBackend(ecs_windows())


def _kusto() -> Any:
    from sigma.backends.kusto.kusto import KustoBackend
    from sigma.pipelines.microsoftxdr.microsoftxdr import microsoft_xdr_pipeline

    return KustoBackend(microsoft_xdr_pipeline())


TARGETS: Mapping[str, Target] = {
    "splunk": Target("splunk", ".spl", "``` {} ```", _splunk),
    "esql": Target("esql", ".esql", "// {}", _esql),
    "eql": Target("eql", ".eql", "/* {} */", _eql),
    "kusto": Target("kusto", ".kql", "// {}", _kusto),
}
#: ``rules export --format`` -> the targets it writes
FORMAT_TARGETS: Mapping[str, tuple[str, ...]] = {
    "splunk": ("splunk",),
    "elastic": ("esql", "eql"),
}


@dataclass(frozen=True, slots=True)
class Query:
    """One converted query: the Sigma document's title and id, and the backend's text."""

    title: str
    sigma_id: str
    text: str


def convert(export: SigmaExport, target: str) -> tuple[list[Query], list[Note]]:
    """Every standalone Sigma document of ``export`` through ``target``'s backend.

    A document the backend refuses (an unsupported log source, correlation type or modifier)
    is a note naming the document and the backend's reason; the others still convert.
    """
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError

    backend = _backend(target)
    queries: list[Query] = []
    notes: list[Note] = []
    for doc in export.standalone():
        collection = SigmaCollection.from_yaml(sigma_text(export.with_references(doc)))
        try:
            texts = backend.convert(collection)
        except (SigmaError, NotImplementedError) as exc:
            reason = _one_line(str(exc))
            notes.append(
                Note(export.rule.name, f"{target}: '{doc['title']}' not converted: {reason}")
            )
            continue
        queries.extend(Query(str(doc["title"]), str(doc["id"]), str(t)) for t in texts)
    return queries, notes


@functools.cache
def _backend(target: str) -> Any:
    return TARGETS[target].backend()


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:300]


def query_text(queries: list[Query], target: str) -> str:
    """The queries of one rule as a file: each preceded by a comment with its title and id."""
    comment = TARGETS[target].comment
    return "".join(
        comment.format(_comment_safe(f"{q.title} (Sigma id {q.sigma_id})")) + "\n" + q.text + "\n\n"
        for q in queries
    )


def _comment_safe(text: str) -> str:
    """Title text that cannot end the comment it sits in, nor break its line."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned.replace("*/", "* /").replace("```", "'''")
