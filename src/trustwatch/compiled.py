"""A cache of compiled built-in content (field maps, rules): SQL text kept across runs.

Compiling KQL to SQL costs tens of milliseconds a query, and the built-in field maps and rules
are the same on every run: their SQL is kept on disk, keyed by everything it depends on - the
text compiled, trustwatch's version, the shipped table schemas, and the caller's own parts
(catalog names, options). A change to any of them is a new key, never a stale entry.

Entries live in ``$TRUSTWATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/trustwatch/compiled``, else
``~/.cache/trustwatch/compiled``; ``TRUSTWATCH_CACHE_DIR=off`` turns the disk cache off. A
missing, unreadable or unwritable cache only costs the compile: it is never an error. Entries
are written to a temporary file and renamed, so a reader never sees half of one.

The cache does not grow with each upgrade: entries are kept in one folder per version of the
code (``v-<fingerprint>``), and the first time a version writes there, the folders of other
versions that no process has used for ``RETAIN_SECONDS`` (a day) are removed, with those of the
layout before this one. A process marks its version's folder as used the first time it reads
or writes an entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from pathlib import Path

_MEMO: dict[str, str] = {}
_USED: set[Path] = set()  # version folders this process has marked as used
RETAIN_SECONDS = 24 * 3600  # another version's folder unused this long is removed
# the kind folders of the layout before version folders (removed like an old version's)
_LEGACY = frozenset(
    (
        "hunt-rule",
        "hunt-fused",
        "ingest-map",
        "ingest-sql",
        "rule-yaml-lines",
        "sigma",
        "sigma-filled",
    )
)


def cache_dir() -> Path | None:
    """Where compiled entries live (None: the disk cache is off)."""
    explicit = os.environ.get("TRUSTWATCH_CACHE_DIR")
    if explicit:
        return None if explicit.lower() == "off" else Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "trustwatch" / "compiled"


@cache
def _fingerprint() -> str:
    """trustwatch's version, code, shipped schemas and field maps, hashed (~10 ms, once)."""
    from importlib.metadata import PackageNotFoundError, version  # imported on first use

    digest = hashlib.sha256()
    # sqlglot writes the SQL text: another sqlglot may write other text for the same tree
    for package in ("trustwatch", "sqlglot"):
        try:
            digest.update(f"{package} {version(package)}\n".encode())
        except PackageNotFoundError:
            digest.update(f"{package} unknown\n".encode())
    for package, folder in (("trustwatch.schema", "tables"), ("trustwatch.ingest", "maps")):
        root = resources.files(package).joinpath(folder)
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if entry.is_file():
                digest.update(entry.name.encode())
                digest.update(entry.read_bytes())
    # the code itself: a change to the compiler or to what wraps its output is a new key
    root = Path(str(resources.files("trustwatch")))
    for entry in sorted(root.rglob("*.py")):
        digest.update(str(entry.relative_to(root)).encode())
        digest.update(entry.read_bytes())
    return digest.hexdigest()


def key(kind: str, parts: Iterable[str]) -> str:
    """The cache key of an entry: its kind, the code and schema fingerprint, and its parts."""
    digest = hashlib.sha256(_fingerprint().encode())
    digest.update(kind.encode())
    for part in parts:
        digest.update(b"\x00")
        digest.update(part.encode())
    return digest.hexdigest()


def cached_text(kind: str, parts: Iterable[str], build: Callable[[], str]) -> str:
    """The text ``build()`` returns for these parts, from the cache when it has it.

    Args:
        kind: what the entry is (``"map"``, ``"rule"``...), a file-name-safe word.
        parts: everything the text depends on besides trustwatch's code and schemas.
        build: makes the text on a miss (its errors propagate; nothing is cached then).
    """
    name = key(kind, parts)
    memo = _MEMO.get(name)
    if memo is not None:
        return memo
    folder = cache_dir()
    version = version_folder(folder) if folder is not None else None
    path = version / kind / f"{name}.txt" if version is not None else None
    if version is not None and path is not None:
        _mark_used(version)
        try:
            # newline="": the text as written ("\r" and "\r\n" in SQL literals stay as they are)
            with path.open(encoding="utf-8", newline="") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError):
            pass
        else:
            _MEMO[name] = text
            return text
    text = build()
    _MEMO[name] = text
    if path is not None:
        _store(path, text)
    return text


def version_folder(folder: Path) -> Path:
    """The folder of this version's entries inside the cache folder ``folder``."""
    return folder / f"v-{_fingerprint()[:16]}"


def _mark_used(version: Path) -> None:
    """Mark ``version`` as in use (once per process); when it is new, prune the others."""
    if version in _USED:
        return
    _USED.add(version)
    try:
        if version.is_dir():
            os.utime(version)
            return
        version.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    prune(version.parent, keep=version)


def prune(folder: Path, keep: Path, now: float | None = None) -> list[Path]:
    """Remove the version folders (and old-layout folders) of ``folder`` but ``keep`` that
    have not been used for ``RETAIN_SECONDS``; anything else there is left alone.

    Returns:
        the folders removed.
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry == keep or not (entry.name.startswith("v-") or entry.name in _LEGACY):
            continue
        try:
            if entry.is_symlink() or not entry.is_dir():
                continue
            if now - entry.stat().st_mtime < RETAIN_SECONDS:
                continue
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _store(path: Path, text: str) -> None:
    temporary: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", newline="", dir=path.parent, delete=False, suffix=".tmp"
        ) as fh:
            temporary = Path(fh.name)
            fh.write(text)
        temporary.replace(path)
    except OSError:
        # a read-only home or a full disk costs the next run a compile, nothing more; a
        # half-written temporary file is removed rather than left to pile up
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)


def clear_memo() -> None:
    """Forget the entries held in memory, and which folders were marked used (tests)."""
    _MEMO.clear()
    _USED.clear()
