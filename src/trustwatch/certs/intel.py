"""The reference lists a certificate is classified against, and their KQL table.

Three layers (docs/certificates.md, "Reference lists"):

- shipped with the package (``content/certs/*.yaml``, written for trustwatch): Microsoft's roots,
  known-bad certificates by public facts, free/automated CAs;
- public roots from the installed ``certifi`` bundle (Mozilla's list), dated by certifi's version;
- lists the user imported from files with ``update_intel`` (never fetched from the network).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import certifi
import pyarrow as pa

from trustwatch import yamlio
from trustwatch.certs import refresh
from trustwatch.certs.model import (
    RANK,
    TRUSTED,
    FreeCa,
    IntelEntry,
    IntelSource,
    Verdict,
    load_pem,
    normalise_serial,
    normalise_thumbprint,
    root_entry,
)
from trustwatch.certs.names import NameKeys, keys_of_text, normalise
from trustwatch.errors import InputError

SHIPPED_FILES = ("microsoft_roots.yaml", "known_bad.yaml", "free_cas.yaml")


@dataclass(frozen=True, slots=True, eq=False)
class Intel:
    """Every list entry, indexed for classification. Build it with ``Intel.build``."""

    entries: tuple[IntelEntry, ...]
    free_cas: tuple[FreeCa, ...]
    sources: tuple[IntelSource, ...]
    hash_sources: tuple[IntelSource, ...]  # the sources that list certificates by hash
    by_hash: Mapping[str, tuple[IntelEntry, ...]]  # SHA-1, SHA-256 and MD5 hex -> entries
    roots_by_name: Mapping[str, tuple[IntelEntry, ...]]  # "level:key" -> root entries
    bad_by_serial: Mapping[str, tuple[IntelEntry, ...]]
    bad_by_cn: Mapping[str, tuple[IntelEntry, ...]]
    free_by_org: Mapping[str, FreeCa]

    @classmethod
    def build(
        cls,
        entries: Iterable[IntelEntry],
        free_cas: Iterable[FreeCa] = (),
        sources: Iterable[IntelSource] = (),
    ) -> Intel:
        """Index entries by hash, root name, serial and common name."""
        all_entries = tuple(entries)
        all_free = tuple(free_cas)
        by_hash: dict[str, list[IntelEntry]] = defaultdict(list)
        by_name: dict[str, list[IntelEntry]] = defaultdict(list)
        by_serial: dict[str, list[IntelEntry]] = defaultdict(list)
        by_cn: dict[str, list[IntelEntry]] = defaultdict(list)
        for entry in all_entries:
            for digest in {entry.sha1, entry.sha256, entry.md5} - {""}:
                by_hash[digest].append(entry)
            if entry.verdict in TRUSTED and entry.subject:
                for level, key in keys_of_text(entry.subject).levels():
                    by_name[f"{level}:{key}"].append(entry)
            if entry.verdict is Verdict.KNOWN_BAD:
                if entry.serial:
                    by_serial[entry.serial].append(entry)
                for cn in entry.subject_cns:
                    by_cn[normalise(cn)].append(entry)
        return cls(
            entries=all_entries,
            free_cas=all_free,
            sources=tuple(dict.fromkeys([*sources, *(e.source for e in all_entries)])),
            hash_sources=tuple(
                dict.fromkeys(e.source for e in all_entries if e.sha1 or e.sha256 or e.md5)
            ),
            by_hash=_freeze(by_hash),
            roots_by_name=_freeze(by_name),
            bad_by_serial=_freeze(by_serial),
            bad_by_cn=_freeze(by_cn),
            free_by_org={normalise(f.organisation): f for f in all_free},
        )

    def lookup(self, digest: str) -> tuple[IntelEntry, ...]:
        """Entries listing this SHA-1, SHA-256 or MD5 (any case, separators allowed)."""
        return self.by_hash.get(normalise_thumbprint(digest), ())

    def roots_named(self, keys: NameKeys) -> tuple[str, tuple[IntelEntry, ...]]:
        """Known roots with this name, at the strictest level that has any, and that level.

        Levels: ``dn`` (the whole name), ``cn+o`` (common name and organisation), ``cn``.
        """
        for level, key in keys.levels():
            found = self.roots_by_name.get(f"{level}:{key}")
            if found:
                return level, found
        return "", ()


def _freeze(index: Mapping[str, list[IntelEntry]]) -> dict[str, tuple[IntelEntry, ...]]:
    return {key: tuple(dict.fromkeys(values)) for key, values in index.items()}


# --- the layers -------------------------------------------------------------------------------


def load_intel(data_dir: str | Path | None = None) -> Intel:
    """Shipped lists + certifi's public roots + whatever was imported into ``data_dir``.

    Args:
        data_dir: the directory ``update_intel`` writes; default ``refresh.default_data_dir()``
            (``$TRUSTWATCH_DATA_DIR/certs``, else ``$XDG_DATA_HOME/trustwatch/certs``, else
            ``~/.local/share/trustwatch/certs``). A missing directory means nothing imported.

    Raises:
        InputError: a shipped list or the import manifest is malformed.
    """
    directory = Path(data_dir) if data_dir is not None else refresh.default_data_dir()
    return _load_intel(directory, _directory_state(directory))


def _directory_state(directory: Path) -> tuple[tuple[str, bytes], ...]:
    """The files ``update_intel`` keeps in ``directory`` (flat: a manifest and list copies)."""
    try:
        files = sorted(p for p in directory.iterdir() if p.is_file())
        return tuple((p.name, p.read_bytes()) for p in files)
    except OSError:
        return ()  # no directory (nothing imported), or unreadable: read_imported says which


@functools.lru_cache(maxsize=4)
def _load_intel(directory: Path, state: tuple[tuple[str, bytes], ...]) -> Intel:
    """``load_intel`` once per process for one content of the directory (hunt and validate
    ask for the lists several times; an import in between is new content, so a new Intel)."""
    del state  # part of the cache key only
    imported = refresh.read_imported(directory)
    shipped = shipped_intel()
    public = certifi_entries()
    return Intel.build(
        [*shipped.entries, *public, *imported.entries],
        shipped.free_cas,
        [*shipped.sources, certifi_source(), *imported.sources],
    )


@functools.cache
def shipped_intel() -> Intel:
    """The lists that ship with trustwatch (read once per process)."""
    microsoft_doc, microsoft = _read_shipped("microsoft_roots.yaml")
    bad_doc, bad = _read_shipped("known_bad.yaml")
    free_doc, free = _read_shipped("free_cas.yaml")
    entries = [
        *_microsoft_entries(microsoft_doc, microsoft),
        *_bad_entries(bad_doc, bad),
    ]
    return Intel.build(entries, _free_cas(free_doc, free), [microsoft, bad, free])


def _read_shipped(file_name: str) -> tuple[dict[str, Any], IntelSource]:
    where = f"trustwatch/content/certs/{file_name}"
    doc = yamlio.load_shipped("certs", file_name)
    if not isinstance(doc, dict) or not doc.get("source") or not doc.get("as_of"):
        raise InputError(f"{where}: a shipped list needs 'source', 'as_of' and its entries")
    source = IntelSource(
        name=f"trustwatch {file_name}",
        date=str(doc["as_of"]),
        origin="shipped",
        note=" ".join(str(doc["source"]).split()),
    )
    return doc, source


def _items(doc: Mapping[str, Any], key: str, source: IntelSource) -> list[Any]:
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise InputError(f"{source.name}: '{key}' must be a list")
    return items


def _microsoft_entries(doc: Mapping[str, Any], source: IntelSource) -> list[IntelEntry]:
    entries = []
    for raw in _items(doc, "roots", source):
        if not isinstance(raw, dict) or not raw.get("sha1") or not raw.get("subject"):
            raise InputError(f"{source.name}: every root needs 'sha1' and 'subject': {raw!r}")
        labels = ["microsoft-root"]
        if raw.get("attack_consistent"):
            labels.append("attack-t1553.004-consistent")
        subject = str(raw["subject"])
        entries.append(
            IntelEntry(
                verdict=Verdict.MICROSOFT_ROOT,
                source=source,
                sha1=normalise_thumbprint(str(raw["sha1"])),
                subject=subject,
                name=keys_of_text(subject).display,
                labels=tuple(labels),
                reason=str(raw.get("note") or ""),
            )
        )
    for subject in _items(doc, "names", source):
        entries.append(
            IntelEntry(
                verdict=Verdict.MICROSOFT_ROOT,
                source=source,
                subject=str(subject),
                name=keys_of_text(str(subject)).display,
                labels=("microsoft-root", "name-only"),
                reason="genuine Microsoft root; thumbprint not shipped (name used for lookalikes)",
            )
        )
    return entries


def _bad_entries(doc: Mapping[str, Any], source: IntelSource) -> list[IntelEntry]:
    entries = []
    for raw in _items(doc, "certificates", source):
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("reason"):
            raise InputError(f"{source.name}: every certificate needs 'id' and 'reason': {raw!r}")
        sha1, sha256, md5 = (_digest(raw.get(k)) for k in ("sha1", "sha256", "md5"))
        entries.append(
            IntelEntry(
                verdict=Verdict.KNOWN_BAD,
                source=source,
                subject=str(raw.get("subject") or ""),
                serial=normalise_serial(str(raw["serial"])) if raw.get("serial") else "",
                subject_cns=tuple(str(c) for c in raw.get("subject_cns") or ()),
                labels=("known-bad", *(str(x) for x in raw.get("labels") or ())),
                reason=" ".join(str(raw["reason"]).split()),
                name=str(raw.get("name") or raw["id"]),
                sha1=sha1,
                sha256=sha256,
                md5=md5,
            )
        )
    return entries


def _digest(value: object) -> str:
    return normalise_thumbprint(str(value)) if value else ""


def _free_cas(doc: Mapping[str, Any], source: IntelSource) -> list[FreeCa]:
    cas = []
    for raw in _items(doc, "cas", source):
        if not isinstance(raw, dict) or not raw.get("organisation"):
            raise InputError(f"{source.name}: every CA needs an 'organisation': {raw!r}")
        cas.append(
            FreeCa(
                organisation=str(raw["organisation"]),
                operator=str(raw.get("operator") or raw["organisation"]),
                issuers=tuple(str(i) for i in raw.get("issuers") or ()),
                source=source,
            )
        )
    return cas


@functools.cache
def certifi_source() -> IntelSource:
    """certifi's bundle as a source: its version is the date of Mozilla's list it carries."""
    version = str(getattr(certifi, "__version__", "unknown"))
    parts = version.split(".")
    as_of = "-".join(p.zfill(2) for p in parts[:3]) if len(parts) >= 3 else version
    return IntelSource(
        name=f"certifi {version}",
        date=as_of,
        origin="certifi",
        note="Mozilla's trusted roots as packaged by certifi (installed dependency)",
    )


@functools.cache
def certifi_entries() -> tuple[IntelEntry, ...]:
    """Every root in the installed certifi bundle (parsed once per process)."""
    path = Path(certifi.where())
    source = certifi_source()
    return tuple(
        root_entry(cert, source, ("public-root", "certifi")) for cert in load_pem(path.read_bytes())
    )


# --- the KQL table ----------------------------------------------------------------------------

INTEL_SCHEMA = pa.schema(
    [
        ("Thumbprint", pa.string()),
        ("Sha256", pa.string()),
        ("Subject", pa.string()),
        ("Verdict", pa.string()),
        ("Serial", pa.string()),
        ("CommonNames", pa.list_(pa.string())),
        ("Labels", pa.list_(pa.string())),
        ("Reason", pa.string()),
        ("Source", pa.string()),
        ("SourceDate", pa.timestamp("us", tz="UTC")),
    ]
)


def intel_table(intel: Intel) -> pa.Table:
    """One row per known certificate (by SHA-1) or known name, for KQL ``lookup``/``join``.

    Entries of several lists for one thumbprint are merged into one row, so a lookup on
    ``Thumbprint`` never multiplies rows: the verdict is the highest-ranked one, labels and
    sources are joined, ``SourceDate`` is the newest list date. Name-only entries (Microsoft
    names, free-CA issuers) have an empty ``Thumbprint``; an entry known only by SHA-256 has its
    hash in ``Sha256`` and an empty ``Thumbprint``. ``Serial`` (upper-case hex, no leading
    zeros) and ``CommonNames`` (the subject common names a known-bad entry is matched by alone,
    as classification does) let network rules match what a sensor logs without a hash.
    """
    groups: dict[tuple[str, str], list[_Row]] = defaultdict(list)
    for row in _rows(intel):
        if row.sha1 or row.sha256:
            key = ("hash", row.sha1 or row.sha256)
        else:
            key = ("name", f"{row.verdict}|{row.subject}")
        groups[key].append(row)
    merged = [_merge(rows) for rows in groups.values()]
    merged.sort(key=lambda r: (r["Thumbprint"] == "", r["Thumbprint"], r["Subject"]))
    columns = {name: [row[name] for row in merged] for name in INTEL_SCHEMA.names}
    return pa.table(columns, schema=INTEL_SCHEMA)


@dataclass(frozen=True, slots=True)
class _Row:
    sha1: str
    sha256: str
    subject: str
    verdict: Verdict
    serial: str
    common_names: tuple[str, ...]  # known-bad entries matched by subject common name alone
    labels: tuple[str, ...]
    reason: str
    source: IntelSource


def _rows(intel: Intel) -> Iterable[_Row]:
    for e in intel.entries:
        cns = e.subject_cns if e.verdict is Verdict.KNOWN_BAD else ()
        yield _Row(
            e.sha1, e.sha256, e.subject, e.verdict, e.serial, cns, e.labels, e.reason, e.source
        )
    for ca in intel.free_cas:
        for issuer in ca.issuers:
            subject = f"CN={_escape(issuer)},O={_escape(ca.organisation)}"
            labels = ("free-ca", "issuer-name")
            yield _Row("", "", subject, Verdict.FREE_CA, "", (), labels, ca.operator, ca.source)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("+", "\\+")


def _merge(rows: list[_Row]) -> dict[str, Any]:
    best = max(rows, key=lambda r: RANK[r.verdict])
    labels = list(dict.fromkeys(label for r in rows for label in r.labels))
    sources = list(dict.fromkeys(r.source for r in rows))
    reasons = list(dict.fromkeys(r.reason for r in rows if r.reason))
    return {
        "Thumbprint": best.sha1,
        "Sha256": next((r.sha256 for r in rows if r.sha256), ""),
        "Subject": next((r.subject for r in rows if r.subject), ""),
        "Verdict": str(best.verdict),
        "Serial": next((r.serial for r in rows if r.serial), ""),
        "CommonNames": list(dict.fromkeys(cn for r in rows for cn in r.common_names)),
        "Labels": labels,
        "Reason": "; ".join(reasons),
        "Source": "; ".join(s.name for s in sources),
        "SourceDate": max(filter(None, (_as_datetime(s.date) for s in sources)), default=None),
    }


def _as_datetime(text: str) -> datetime | None:
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# --- KQL access: a Sentinel watchlist -----------------------------------------------------------

WATCHLIST_NAME = "CertificateIntel"


def intel_watchlist(intel: Intel) -> pa.Table:
    """``intel_table`` as Sentinel returns a watchlist: text columns, ``SearchKey``, ``_DTItemId``.

    Rules read it as ``_GetWatchlist('CertificateIntel')``; ``trustwatch certs watchlist``
    writes the same rows as CSV to upload to Sentinel under that name (SearchKey: Thumbprint),
    so a rule that uses it runs unchanged in both places.
    """
    table = intel_table(intel)
    rows = table.to_pylist()
    text: dict[str, list[str]] = {
        "Thumbprint": [r["Thumbprint"] for r in rows],
        "Sha256": [r["Sha256"] for r in rows],
        "Subject": [r["Subject"] for r in rows],
        "Verdict": [r["Verdict"] for r in rows],
        "Serial": [r["Serial"] for r in rows],
        # '|' between names: a common name may hold a comma (split(CommonNames, "|") in KQL)
        "CommonNames": ["|".join(r["CommonNames"]) for r in rows],
        "Labels": [",".join(r["Labels"]) for r in rows],
        "Reason": [r["Reason"] for r in rows],
        "Source": [r["Source"] for r in rows],
        "SourceDate": [r["SourceDate"].date().isoformat() if r["SourceDate"] else "" for r in rows],
    }
    text["SearchKey"] = text["Thumbprint"]
    text["_DTItemId"] = [f"{WATCHLIST_NAME}-{i + 1}" for i in range(len(rows))]
    return pa.table(text)


def watchlist_tables(data_dir: str | Path | None = None) -> dict[str, pa.Table]:
    """The certificate intelligence as a catalog table (``_GetWatchlist`` names it); every
    built-in watchlist: ``trustwatch.certs.brands.builtin_watchlist_tables``."""
    from trustwatch.kql.compiler import WATCHLIST_PREFIX

    return {WATCHLIST_PREFIX + WATCHLIST_NAME: _watchlist_of(load_intel(data_dir))}


@functools.lru_cache(maxsize=4)
def _watchlist_of(intel: Intel) -> pa.Table:
    """``intel_watchlist``, built once per ``Intel`` (``load_intel`` hands out the same one)."""
    return intel_watchlist(intel)
