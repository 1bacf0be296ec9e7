"""Tuning: exclusions applied to rule results, change windows, and watchlists.

A tuning file is YAML (docs/rules.md, "Tuning"). Exclusions are matched against the columns a
rule projects, with the fallbacks below so that the verbatim reference rule and user rules with
Defender column names are covered too. Every suppressed result is counted per exclusion.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from trustwatch import yamlio
from trustwatch.errors import RuleFileError
from trustwatch.rules.model import Rule

# condition -> the row columns it reads, first present wins
FIELDS: dict[str, tuple[str, ...]] = {
    "process_path": ("ProcessPath", "InitiatingProcessFolderPath"),
    "process_name": ("ProcessPath", "InitiatingProcessFolderPath", "InitiatingProcessFileName"),
    "command_line": ("ProcessCommandLine", "InitiatingProcessCommandLine"),
    "parent": ("ParentProcessName", "InitiatingProcessParentFileName"),
    "company": ("ProcessCompany", "InitiatingProcessVersionInfoCompanyName"),
    "signer": ("ProcessSHA1", "InitiatingProcessSHA1"),  # looked up in DeviceFileCertificateInfo
    "account": ("AccountName", "InitiatingProcessAccountName"),
    "device": ("DeviceName",),
    "thumbprint": ("CertThumbprint",),
    "store": ("CertStore", "CertStoreType"),
}
TIME_COLUMNS = ("TimeGenerated", "Timestamp")

SignerLookup = Callable[[str], Sequence[str]]


@dataclass(frozen=True, slots=True)
class Watchlist:
    """A Sentinel watchlist: CSV rows and the column used as SearchKey."""

    name: str
    path: Path
    search_key: str
    rows: tuple[dict[str, str], ...]

    def search_keys(self) -> set[str]:
        return {r.get(self.search_key, "").lower() for r in self.rows}

    def to_arrow(self) -> pa.Table:
        """The rows as ``_GetWatchlist('Name')`` returns them (CSV columns + SearchKey)."""
        columns = list(self.rows[0]) if self.rows else [self.search_key]
        data: dict[str, list[str]] = {c: [r.get(c, "") for r in self.rows] for c in columns}
        data["SearchKey"] = [r.get(self.search_key, "") for r in self.rows]
        data["_DTItemId"] = [f"{self.name}-{i + 1}" for i in range(len(self.rows))]
        return pa.table(data)


@dataclass(frozen=True, slots=True)
class ChangeWindow:
    start: datetime
    end: datetime

    def contains(self, when: datetime) -> bool:
        return self.start <= when <= self.end


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Results matching every condition (inside a change window, if any) are suppressed."""

    id: str
    description: str
    rules: tuple[str, ...]  # rule ids, file stems or names; "*" for every rule
    when: Mapping[str, tuple[str, ...]]  # condition -> glob patterns (any may match)
    windows: tuple[ChangeWindow, ...] = ()

    def applies_to(self, rule: Rule) -> bool:
        if "*" in self.rules:
            return True
        names = {rule.id.lower(), rule.path.stem.lower(), rule.name.lower()}
        return any(r.lower() in names for r in self.rules)


@dataclass(slots=True)
class Tuning:
    """Exclusions and watchlists from one tuning file (or none)."""

    path: Path | None = None
    exclusions: list[Exclusion] = field(default_factory=list)
    watchlists: dict[str, Watchlist] = field(default_factory=dict)

    def tables(self) -> dict[str, pa.Table]:
        """Watchlists as catalog tables for ``_GetWatchlist``: the built-in ones
        (CertificateIntel, CertificateBrands, AutomatedCertificateAuthorities, an empty
        ProtectedDomains), then the tuning file's own (which may replace them)."""
        from trustwatch.certs.brands import builtin_watchlist_tables
        from trustwatch.kql.compiler import WATCHLIST_PREFIX

        own = {WATCHLIST_PREFIX + n: w.to_arrow() for n, w in self.watchlists.items()}
        return {**builtin_watchlist_tables(), **own}

    def suppressing(
        self, rule: Rule, row: Mapping[str, Any], signers: SignerLookup | None = None
    ) -> Exclusion | None:
        """The first exclusion that suppresses ``row`` of ``rule``, if any."""
        for exclusion in self.exclusions:
            if exclusion.applies_to(rule) and self._matches(exclusion, row, signers):
                return exclusion
        return None

    def _matches(
        self, exclusion: Exclusion, row: Mapping[str, Any], signers: SignerLookup | None
    ) -> bool:
        if exclusion.windows:
            when = row_time(row)
            if when is None or not any(w.contains(when) for w in exclusion.windows):
                return False
        for condition, patterns in exclusion.when.items():
            values = _values(condition, row, signers)
            if not any(self._match_one(p, v) for p in patterns for v in values):
                return False
        return True

    def _match_one(self, pattern: str, value: str) -> bool:
        if pattern.lower().startswith("watchlist:"):
            watchlist = self.watchlists[pattern.split(":", 1)[1]]
            return value.lower() in watchlist.search_keys()
        return _glob(pattern).fullmatch(value) is not None


def row_time(row: Mapping[str, Any]) -> datetime | None:
    """The row's event time (TimeGenerated, else Timestamp), as aware UTC."""
    for column in TIME_COLUMNS:
        value = row.get(column)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _values(condition: str, row: Mapping[str, Any], signers: SignerLookup | None) -> list[str]:
    for column in FIELDS[condition]:
        value = row.get(column)
        if value in (None, ""):
            continue
        text = str(value)
        if condition == "process_name":
            return [re.split(r"[\\/]", text)[-1]]
        if condition == "signer":
            return list(signers(text)) if signers else []
        if condition == "account":
            domain = str(
                row.get("AccountDomain") or row.get("InitiatingProcessAccountDomain") or ""
            )
            sid = str(row.get("AccountSid") or row.get("InitiatingProcessAccountSid") or "")
            return [v for v in (text, f"{domain}\\{text}" if domain else "", sid) if v]
        return [text]
    return []


def glob_regex(pattern: str) -> str:
    """A tuning glob as a regular expression, the same in Python and in RE2 (KQL's ``matches
    regex``): the whole value, any case; ``*`` and ``?`` match any characters, backslashes and
    line feeds included; every other character is itself (``[`` too: not a character class)."""
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return f"(?is)^{body}$"


@functools.cache
def _glob(pattern: str) -> re.Pattern[str]:
    """Case-insensitive glob (:func:`glob_regex`)."""
    return re.compile(glob_regex(pattern))


# --- reading a tuning file --------------------------------------------------------------------


def default_tuning_path() -> Path:
    return Path(str(resources.files("trustwatch.content"))) / "tuning" / "default.yaml"


def load_tuning(path: str | Path | None, allowed_roots: Sequence[str | Path] = ()) -> Tuning:
    """Read a tuning file (its watchlists too). Errors name the file and the entry.

    A watchlist's ``path`` must lead (symbolic links resolved) into the tuning file's folder,
    or into one of ``allowed_roots``: a tuning file cannot make trustwatch read any file on the
    machine. Errors about a watchlist never quote its content.
    """
    if path is None:
        return Tuning()
    p = Path(path)
    roots = [Path(r) for r in allowed_roots]
    try:
        doc = yamlio.load_cached(p.read_text(encoding="utf-8"), "tuning-yaml") or {}
    except OSError as exc:
        raise RuleFileError(f"cannot read tuning file {p}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise RuleFileError(f"{p}: a tuning file is a mapping with 'exclusions' and 'watchlists'")
    unknown = set(doc) - {"exclusions", "watchlists", "version"}
    if unknown:
        raise RuleFileError(f"{p}: unknown key(s) {', '.join(sorted(unknown))}")
    tuning = Tuning(p)
    for i, raw in enumerate(doc.get("watchlists") or []):
        watchlist = _watchlist(p, i, raw, roots)
        tuning.watchlists[watchlist.name] = watchlist
    seen: set[str] = set()
    for i, raw in enumerate(doc.get("exclusions") or []):
        exclusion = _exclusion(p, i, raw, tuning.watchlists)
        if exclusion.id in seen:
            raise RuleFileError(f"{p}: exclusion id '{exclusion.id}' is used twice")
        seen.add(exclusion.id)
        tuning.exclusions.append(exclusion)
    return tuning


def confined(named_by: Path, value: str, allowed_roots: Sequence[Path] = ()) -> Path:
    """The file ``value`` names, relative to the folder of the file ``named_by`` that names it.

    Symbolic links are resolved first; the result must lie inside that folder or one of
    ``allowed_roots``.

    Raises:
        RuleFileError: the path leads outside them (``..``, an absolute path, a link).
    """
    folder = named_by.parent.resolve()
    target = (folder / value).resolve()
    roots = [folder, *(Path(r).resolve() for r in allowed_roots)]
    if not any(target.is_relative_to(root) for root in roots):
        raise RuleFileError(
            f"{named_by}: path '{value}' leads outside {folder}",
            hint="keep the file beside the one that names it, or allow its folder "
            "(hunt --allow-path DIR)",
            code="RULE010",
        )
    return target


def _watchlist(path: Path, i: int, raw: object, allowed_roots: Sequence[Path] = ()) -> Watchlist:
    where = f"{path}: watchlist {i + 1}"
    if not isinstance(raw, dict) or not raw.get("name") or not raw.get("path"):
        raise RuleFileError(f"{where}: needs 'name', 'path' (CSV) and 'searchKey'")
    try:
        csv_path = confined(path, str(raw["path"]), allowed_roots)
    except RuleFileError as exc:
        raise RuleFileError(
            f"{where}: {exc.diagnostic.message}", hint=exc.diagnostic.hint, code=exc.code
        ) from None
    try:
        with csv_path.open(encoding="utf-8-sig", newline="") as fh:
            rows = tuple(dict(r) for r in csv.DictReader(fh))
    except OSError as exc:
        raise RuleFileError(f"{where}: cannot read {csv_path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:  # their text may quote the file: not shown
        raise RuleFileError(
            f"{where}: {csv_path.name} is not a UTF-8 CSV file ({type(exc).__name__})"
        ) from None
    key = str(raw.get("searchKey") or "")
    header = list(rows[0]) if rows else []
    if key not in header:
        # the names are not quoted: they are the file's first line, whatever the file is
        raise RuleFileError(
            f"{where}: searchKey '{key}' is not a column of {csv_path.name} "
            f"(it has {len(header)} column{'s' if len(header) != 1 else ''})",
            hint="searchKey names a column of the CSV header",
        )
    return Watchlist(str(raw["name"]), csv_path, key, rows)


def _exclusion(path: Path, i: int, raw: object, watchlists: Mapping[str, Watchlist]) -> Exclusion:
    where = f"{path}: exclusion {i + 1}"
    if not isinstance(raw, dict) or not raw.get("id"):
        raise RuleFileError(f"{where}: needs an 'id'")
    where = f"{path}: exclusion '{raw['id']}'"
    when_raw = raw.get("when") or {}
    if not isinstance(when_raw, dict):
        raise RuleFileError(f"{where}: 'when' maps a condition to a value or a list of values")
    when: dict[str, tuple[str, ...]] = {}
    for condition, value in when_raw.items():
        if condition not in FIELDS:
            raise RuleFileError(
                f"{where}: unknown condition '{condition}'",
                hint="conditions: " + ", ".join(FIELDS),
            )
        patterns = tuple(str(v) for v in (value if isinstance(value, list) else [value]))
        for pattern in patterns:
            if pattern.lower().startswith("watchlist:") and pattern[10:] not in watchlists:
                raise RuleFileError(f"{where}: no watchlist named '{pattern[10:]}'")
        when[str(condition)] = patterns
    windows = tuple(_window(where, w) for w in raw.get("windows") or [])
    if not when and not windows:
        raise RuleFileError(f"{where}: give conditions under 'when' and/or change 'windows'")
    rules = raw.get("rules") or ["*"]
    return Exclusion(
        str(raw["id"]),
        str(raw.get("description") or ""),
        tuple(str(r) for r in (rules if isinstance(rules, list) else [rules])),
        when,
        windows,
    )


def _window(where: str, raw: object) -> ChangeWindow:
    from trustwatch.kql.literals import parse_datetime_text

    if not isinstance(raw, dict) or "start" not in raw or "end" not in raw:
        raise RuleFileError(f"{where}: a change window needs 'start' and 'end' (ISO 8601, UTC)")
    try:
        start, end = (parse_datetime_text(_iso(raw[k])) for k in ("start", "end"))
    except Exception as exc:
        raise RuleFileError(f"{where}: change window: {exc}") from exc
    if end < start:
        raise RuleFileError(f"{where}: change window ends before it starts")
    return ChangeWindow(start, end)


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return str(value)
