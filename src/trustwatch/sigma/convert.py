"""Sigma rule files -> KQL over the Defender tables, with pySigma's Kusto backend (cached).

Each file is read through trustwatch's YAML limits (size, alias expansion) before pySigma
parses it, then every rule in it is converted with ``pySigma-backend-kusto`` and its Microsoft
XDR pipeline (``sigma.pipelines.microsoftxdr``), in which :mod:`trustwatch.sigma.pipeline` keeps
Sysmon's registry fields ``TargetObject`` and ``Details`` as Sigma means them. What a file
converts to - each rule's metadata and query, or why it could not be converted - is kept by
:mod:`trustwatch.compiled`, keyed by the file's text and the pySigma, backend and pipeline
versions: a hunt after the first one reads no Sigma YAML with pySigma at all.

A rule that does not convert is never dropped in silence: it becomes a :class:`Failure` with a
short ``reason`` (the same for every rule failing the same way, so failures can be counted by
reason) and a ``detail`` naming what in that rule failed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from trustwatch import compiled, limits, yamlio
from trustwatch.errors import RuleFileError
from trustwatch.sigma import pipeline

SUFFIXES = (".yml", ".yaml")
Stage = Literal["read", "convert", "compile"]
# pySigma packages whose versions decide what a file converts to
PACKAGES = ("pySigma", "pySigma-backend-kusto")

# Exceptions pySigma and the Kusto backend raise for a rule they cannot take. Besides
# SigmaError, the backend raises bare Exception subclasses (InvalidHashAlgorithmError) and
# NotImplementedError, and malformed rules reach pySigma code paths that raise the builtins.
_BUILTIN_FAILURES: tuple[type[Exception], ...] = (
    NotImplementedError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
)

# pySigma message -> the reason rules failing that way are counted under (first match wins);
# the message itself stays the rule's detail
REASONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"^Unable to determine table name"),
        "no Defender XDR table for the rule's logsource (the Microsoft XDR pipeline maps "
        "Sysmon-style categories only)",
    ),
    (
        re.compile(r"^Invalid SigmaDetectionItem field name"),
        "a field the Microsoft XDR pipeline does not map to a column of the rule's table",
    ),
    (
        re.compile(r"^No valid hash algo found"),
        "a Hashes value without an MD5, SHA1 or SHA256 algorithm",
    ),
    (
        re.compile(r"^Field reference expression is not supported"),
        "field references (|fieldref) are not supported by the Kusto backend",
    ),
    (re.compile(r"^Sigma type 'SigmaFieldReference'"), "field references (|fieldref) in values"),
    (re.compile(r"correlation", re.IGNORECASE), "correlation rules are not converted"),
    (
        re.compile(r"^the backend returned 0 queries"),
        "no query: the pipeline drops EventID, the rule's only condition",
    ),
)


@dataclass(frozen=True, slots=True)
class Converted:
    """One Sigma rule and the KQL it converted to."""

    path: Path
    sigma_id: str
    title: str
    level: str
    status: str
    description: str
    author: str
    tags: tuple[str, ...]
    logsource: str  # product/category/service, as ``windows/process_creation/-``
    query: str


@dataclass(frozen=True, slots=True)
class Failure:
    """A Sigma rule (or file) that does not run: where, at which stage, and why."""

    path: Path
    stage: Stage
    reason: str  # shared by every rule failing the same way
    detail: str  # what failed in this rule
    title: str = ""
    sigma_id: str = ""


@dataclass(frozen=True, slots=True)
class FileResult:
    """What one file converted to."""

    converted: tuple[Converted, ...]
    failures: tuple[Failure, ...]


def sigma_files(selectors: Iterable[str | Path]) -> list[Path]:
    """The Sigma files named: files as given, folders searched recursively for *.yml/*.yaml.

    Raises:
        RuleFileError: a path that does not exist, or a folder without any Sigma file.
    """
    files: dict[Path, Path] = {}
    for selector in selectors:
        path = Path(selector)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                raise RuleFileError(f"no Sigma rule files (*.yml, *.yaml) in {path}")
        elif path.is_file():
            found = [path]
        else:
            raise RuleFileError(
                f"no Sigma rules at '{selector}'", hint="give a Sigma rule file or a folder of them"
            )
        for p in found:
            files.setdefault(p.resolve(), p)
    return list(files.values())


def convert_files(paths: Iterable[Path]) -> Iterator[FileResult]:
    """Each file's conversion, in order (see :func:`convert_file`)."""
    for path in paths:
        yield convert_file(path)


def convert_file(path: Path) -> FileResult:
    """Every rule of one Sigma file converted to KQL, or the reason it could not be.

    Never raises for the file's content: an unreadable, oversized or invalid file is one
    failure at stage ``read``.
    """
    text, failure = _read(path)
    if failure is not None:
        return FileResult((), (failure,))
    entry = compiled.cached_text("sigma", [text, *versions()], lambda: _convert_text(text))
    try:
        items = json.loads(entry)["rules"]
        return _file_result(path, items)
    except (ValueError, KeyError, TypeError):  # a damaged cache entry costs a conversion
        return _file_result(path, json.loads(_convert_text(text))["rules"])


def _file_result(path: Path, items: list[dict[str, Any]]) -> FileResult:
    converted: list[Converted] = []
    failures: list[Failure] = []
    for item in items:
        if "error" in item:
            error = item["error"]
            failures.append(
                Failure(
                    path,
                    "convert",
                    str(error["reason"]),
                    str(error["detail"]),
                    str(error["title"]),
                    str(error.get("sigma_id", "")),
                )
            )
        else:
            rule = dict(item["rule"])
            rule["tags"] = tuple(rule["tags"])
            converted.append(Converted(path=path, **rule))
    return FileResult(tuple(converted), tuple(failures))


def _read(path: Path) -> tuple[str, Failure | None]:
    """The file's text, held to the YAML limits before pySigma sees it."""
    bound = limits.current().yaml_bytes
    try:
        size = path.stat().st_size
        if size > bound:
            reason = limits.exceeded("yaml_bytes", bound, f"the file ({size:,} bytes)")
            return "", Failure(path, "read", "over the yaml-bytes limit", reason)
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return "", Failure(path, "read", "cannot be read", exc.strerror or str(exc))
    except UnicodeDecodeError as exc:
        return "", Failure(path, "read", "not UTF-8 text", f"{exc.reason} at byte {exc.start}")
    try:
        yamlio.check(text)
    except yamlio.YamlLimitExceeded as exc:
        where = _mark(exc.problem_mark)
        return "", Failure(path, "read", "over a YAML limit", f"{where}{exc.problem}")
    return text, None


def _mark(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


@cache
def versions() -> tuple[str, ...]:
    """``name version`` of each pySigma package conversion depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in PACKAGES:
        try:
            out.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            out.append(f"{package} missing")
    return tuple(out)


@cache
def _backend() -> Any:
    """The Kusto backend with trustwatch's pipeline: Microsoft XDR's, Sysmon's registry fields
    kept (:mod:`trustwatch.sigma.pipeline`). pySigma is imported on first use."""
    from sigma.backends.kusto.kusto import KustoBackend

    return KustoBackend(processing_pipeline=pipeline.pipeline())


def _convert_text(text: str) -> str:
    """The JSON entry of a file: ``{"rules": [{"rule": {...}} | {"error": {...}}]}``."""
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError
    from sigma.rule import SigmaRule

    failures: tuple[type[Exception], ...] = (
        SigmaError,
        yaml.YAMLError,
        *_BUILTIN_FAILURES,
        _hash_error(),
    )
    items: list[dict[str, Any]] = []
    try:
        collection = SigmaCollection.from_yaml(text, collect_errors=True)
    except failures as exc:
        return json.dumps({"rules": [_error(exc, "", "")]})
    for error in collection.errors:
        items.append(_error(error, "", ""))
    for rule in collection.rules:
        title = str(getattr(rule, "title", "") or "")
        ident = str(getattr(rule, "id", "") or "")
        if not isinstance(rule, SigmaRule):
            items.append(_error(None, title, ident, "correlation rules are not converted"))
            continue
        if rule.errors:
            items.append(_error(rule.errors[0], title, ident))
            continue
        try:
            queries = _backend().convert_rule(rule)
        except failures as exc:
            item = _error(exc, title, ident)
            if item["error"]["reason"] == REASONS[0][1]:  # which logsource has no table
                item["error"]["detail"] = f"no table for logsource {_logsource(rule)}"
            items.append(item)
            continue
        if len(queries) != 1 or not isinstance(queries[0], str):
            detail = f"the backend returned {len(queries)} queries, not one"
            items.append(_error(None, title, ident, detail))
            continue
        items.append({"rule": _metadata(rule, queries[0])})
    return json.dumps({"rules": items})


def _hash_error() -> type[Exception]:
    from sigma.pipelines.kusto_common.errors import InvalidHashAlgorithmError

    return InvalidHashAlgorithmError


def _logsource(rule: Any) -> str:
    source = rule.logsource
    return "/".join(str(v or "-") for v in (source.product, source.category, source.service))


def _metadata(rule: Any, query: str) -> dict[str, Any]:
    level = rule.level.name.lower() if rule.level is not None else ""
    status = rule.status.name.lower() if rule.status is not None else ""
    converted = Converted(
        path=Path(),
        sigma_id=str(rule.id) if rule.id is not None else "",
        title=str(rule.title or ""),
        level=level,
        status=status,
        description=str(rule.description or ""),
        author=str(rule.author or ""),
        tags=tuple(f"{t.namespace}.{t.name}" for t in rule.tags),
        logsource=_logsource(rule),
        query=query,
    )
    out = asdict(converted)
    del out["path"]
    out["tags"] = list(converted.tags)
    return out


def _error(
    exc: BaseException | None, title: str, sigma_id: str, message: str = ""
) -> dict[str, Any]:
    text = message or (str(exc) if exc is not None else "") or type(exc).__name__
    error = {"reason": reason_of(exc, text), "detail": _first_line(text), "title": title}
    return {"error": {**error, "sigma_id": sigma_id}}


def reason_of(exc: BaseException | None, message: str) -> str:
    """The reason a conversion failure is counted under: a known pySigma failure's wording,
    else the exception's name and the message's first sentence, without quoted values."""
    for pattern, reason in REASONS:
        if pattern.search(message):
            return reason
    sentence = re.split(r"(?<=[.:])\s", _first_line(message), maxsplit=1)[0]
    sentence = re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", sentence)[:120]
    name = type(exc).__name__ if exc is not None else "conversion"
    return f"{name}: {sentence}"


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:500]
