"""Read the certificate stores of an offline registry hive (SOFTWARE, NTUSER.DAT) via regipy.

Hive parsing is regipy's job (the optional ``hives`` extra: ``pip install 'trustwatch[hives]'``);
this module only walks the keys that can hold certificates and turns them into the same
entries a ``.reg`` export gives, so :mod:`trustwatch.certs.stores` reads both alike. Only the
store subtrees are walked, not the whole hive: a SOFTWARE hive has hundreds of thousands of
keys and a pure-Python walk of all of them would take minutes.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trustwatch.certs.regfile import RegEntry, RegistrySnapshot, RegistryValue, RegKey, RegProblem
from trustwatch.errors import InputError

HIVE_MAGIC = b"regf"
INSTALL_HINT = "pip install 'trustwatch[hives]'  (or: pip install 'regipy>=6')"

# store roots relative to each hive's root: SOFTWARE (HKLM\SOFTWARE) and NTUSER.DAT (HKCU)
STORE_ROOTS = (
    "Microsoft\\SystemCertificates",
    "Policies\\Microsoft\\SystemCertificates",
    "Microsoft\\EnterpriseCertificates",
    "Software\\Microsoft\\SystemCertificates",
    "Software\\Policies\\Microsoft\\SystemCertificates",
)

# regipy reports value types by name; the registry's numbers are what entries carry
_TYPE_NUMBERS = {
    "REG_NONE": 0,
    "REG_SZ": 1,
    "REG_EXPAND_SZ": 2,
    "REG_EXPAND": 2,
    "REG_BINARY": 3,
    "REG_DWORD": 4,
    "REG_DWORD_BIG_ENDIAN": 5,
    "REG_LINK": 6,
    "REG_MULTI_SZ": 7,
    "REG_RESOURCE_LIST": 8,
    "REG_FULL_RESOURCE_DESCRIPTOR": 9,
    "REG_RESOURCE_REQUIREMENTS_LIST": 10,
    "REG_QWORD": 11,
}


def is_hive(head: bytes) -> bool:
    """Whether a file's first bytes are a registry hive's base block signature."""
    return head[:4] == HIVE_MAGIC


def read_hive(path: Path | str, *, root: str | None = None) -> RegistrySnapshot:
    """The certificate store keys and values of an offline hive.

    Args:
        path: a SOFTWARE or NTUSER.DAT hive file (or any hive holding store keys).
        root: put before every key path, e.g. ``HKEY_USERS\\S-1-5-21-...`` for a user's
            NTUSER.DAT so results carry the SID; by default paths stay relative to the hive
            root and :mod:`trustwatch.certs.stores` tells SOFTWARE from NTUSER by their shape.

    Returns:
        Key and value entries (``source`` is the file, ``line`` None) and any keys that could
        not be read, as problems.

    Raises:
        InputError: regipy is not installed (the message says what to install), the file is
            not a hive, or regipy cannot open it.
    """
    p = Path(path)
    hive, errors = _open_hive(p)
    entries: list[RegEntry] = []
    problems: list[RegProblem] = []
    for store_root in STORE_ROOTS:
        nk = _find_key(hive, store_root, errors)
        if nk is None:
            continue
        key = root.rstrip("\\") + "\\" + store_root if root else store_root
        for item in _walk(nk, key, str(p), errors):
            if isinstance(item, RegProblem):
                problems.append(item)
            else:
                entries.append(item)
    return RegistrySnapshot(str(p), "regf", tuple(entries), tuple(problems))


def _open_hive(p: Path) -> tuple[Any, tuple[type[Exception], ...]]:
    """regipy's hive object, and the exceptions that mean "damaged hive" while reading it."""
    registry = _regipy_module("regipy.registry")
    exceptions = _regipy_module("regipy.exceptions")
    construct = _regipy_module("construct")  # regipy's parser library
    # what a cut or damaged hive makes regipy raise (its compiled parsers raise struct.error)
    errors: tuple[type[Exception], ...] = (
        exceptions.RegipyException,
        construct.ConstructError,
        struct.error,
        EOFError,
        ValueError,
    )
    try:
        with p.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}") from exc
    if not is_hive(head):
        raise InputError(f"{p}: not a registry hive (no 'regf' signature at the start)")
    try:
        return registry.RegistryHive(str(p)), errors
    except errors + (OSError,) as exc:
        raise InputError(f"{p}: regipy cannot read the hive: {type(exc).__name__}: {exc}") from exc


def _regipy_module(name: str) -> Any:
    """Import a regipy module, or say exactly what to install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise InputError(
            f"reading offline registry hives needs the optional 'regipy' package: {INSTALL_HINT}",
            hint=INSTALL_HINT,
        ) from exc


def _find_key(hive: Any, relative: str, errors: tuple[type[Exception], ...]) -> Any:
    """The key at a hive-relative path, or None when the hive has no such key."""
    try:
        return hive.get_key("\\" + relative)
    except errors:
        return None


def _walk(
    nk: Any, key: str, source: str, errors: tuple[type[Exception], ...]
) -> Iterator[RegEntry | RegProblem]:
    """The key, its values, then its subkeys, depth first; a damaged key costs only itself."""
    yield RegKey(key, source)
    try:
        values = list(nk.iter_values(trim_values=False)) if nk.values_count else []
        subkeys = list(nk.iter_subkeys()) if nk.subkey_count else []
    except errors as exc:
        yield RegProblem(source, None, f"{key}: cannot read this key: {exc}")
        return
    for value in values:
        name = "" if value.name == "(default)" else str(value.name)
        yield RegistryValue(key, name, *_value_bytes(value), source=source)
    for subkey in subkeys:
        yield from _walk(subkey, f"{key}\\{subkey.name}", source, errors)


def _value_bytes(value: Any) -> tuple[int, bytes]:
    """Back to the registry's bytes: regipy decodes strings and numbers for display."""
    type_name = str(value.value_type)
    number = _TYPE_NUMBERS.get(type_name, 3)
    data = value.value
    if isinstance(data, bytes):
        return number, data
    if isinstance(data, list):  # REG_MULTI_SZ
        return number, ("\x00".join(str(s) for s in data) + "\x00\x00").encode("utf-16-le")
    if isinstance(data, int):
        return number, data.to_bytes(8 if number == 11 else 4, "little")
    return number, (str(data) + "\x00").encode("utf-16-le")
