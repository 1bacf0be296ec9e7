"""Find every certificate of every Windows trust store in registry values (.reg or hive).

A certificate lives at ``<root>\\<Store>\\Certificates\\<SHA-1 thumbprint>``, value ``Blob``,
where ``<root>`` is one of

* ``HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\SystemCertificates`` (machine),
* ``HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\SystemCertificates`` (group policy),
* ``HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\EnterpriseCertificates`` (enterprise / AD),
* ``HKEY_CURRENT_USER\\Software\\Microsoft\\SystemCertificates`` (user) and its ``Policies``
  twin (user policy), also as ``HKEY_USERS\\<SID>\\...``, ``HKEY_CURRENT_USER\\<SID>\\...``
  (Defender's spelling) and ``\\REGISTRY\\USER\\<SID>\\...``,

or the same paths relative to an offline hive's root: ``Microsoft\\SystemCertificates`` in a
SOFTWARE hive (machine) and ``Software\\Microsoft\\SystemCertificates`` in an NTUSER.DAT (user).
Any store name is accepted (Root, AuthRoot, CA, Disallowed, TrustedPublisher, ...). Nothing is
dropped: a Blob that does not decode, or a certificate key without a Blob, is kept with its
problem, since a damaged entry in a trust store is itself worth a look.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from trustwatch.certs.blob import BlobFormatError, decode_blob, normalize_thumbprint
from trustwatch.certs.regfile import RegEntry, RegistryValue, RegKey

Location = Literal["machine", "policy", "enterprise", "user", "user-policy"]
Scope = Literal["machine", "user"]

# canonical spellings of well-known store names (hives say "ROOT", HKCU says "Root")
_STORE_NAMES = {
    name.casefold(): name
    for name in (
        "Root",
        "AuthRoot",
        "CA",
        "Disallowed",
        "TrustedPublisher",
        "TrustedPeople",
        "My",
        "Trust",
        "SmartCardRoot",
        "ClientAuthIssuer",
        "FlightRoot",
        "TestSignRoot",
        "AddressBook",
        "Remote Desktop",
        "TrustedDevices",
        "WebHosting",
        "Windows Live ID Token Issuer",
        "eSIM Certification Authorities",
        "PasspointTrustedRoots",
        "Homegroup Machine Certificates",
        "Local NonRemovable Certificates",
        "Shielded VM Local Certificates",
        "MSIEHistoryJournal",
        "Request",
        "UserDS",
        "ACRS",
        "OemEsim",
    )
}
_SID = re.compile(r"^(?:S-1-\d+(?:-\d+)*(?:_Classes)?|\.DEFAULT)$", re.IGNORECASE)
_MACHINE_ROOTS = frozenset({"hkey_local_machine", "hklm"})
_USER_ROOTS = frozenset({"hkey_current_user", "hkcu"})
_USERS_ROOTS = frozenset({"hkey_users", "hku"})


@dataclass(frozen=True, slots=True)
class CertificateKey:
    """Where a certificate key sits: location, user SID, store and the key's thumbprint."""

    location: Location
    sid: str | None
    store: str
    thumbprint: str  # the key name, upper-case (not checked to be hex here)


@dataclass(frozen=True, slots=True)
class StoreCertificate:
    """One certificate found in a trust store, or the remains of one that could not be read."""

    location: Location
    sid: str | None  # the user's SID when the path names one
    store: str
    thumbprint: str  # from the key name, upper-case
    der: bytes | None  # None when the Blob is missing or does not decode
    thumbprint_matches: bool | None  # SHA-1 of ``der`` == key name; None without a DER
    problem: str | None
    source: str  # file:line (.reg) or file (hive)
    key: str = ""  # the full registry key path as read
    friendly_name: str | None = None


def parse_certificate_key(
    key: str, *, relative_scope: Scope | None = None
) -> CertificateKey | None:
    """Recognise a certificate key path, or return None for any other key.

    Args:
        key: a registry key path (a full path, a Defender path or a hive-relative one).
        relative_scope: for hive-relative paths, whether the hive is a machine (SOFTWARE) or
            user (NTUSER.DAT) hive; by default ``Software\\...`` means user, anything else
            machine, as each hive's root holds them.

    Returns:
        The location, SID, store and thumbprint, or None.
    """
    parts = [p for p in key.strip().split("\\") if p]
    folded = [p.casefold() for p in parts]
    for index in range(len(parts) - 3):
        if folded[index] not in ("systemcertificates", "enterprisecertificates"):
            continue
        if folded[index + 2] != "certificates" or len(parts) != index + 4:
            continue
        if index == 0 or folded[index - 1] != "microsoft":
            continue
        scope, sid, middle = _scope(parts[: index - 1], relative_scope)
        if scope is None:
            continue
        location = _location(scope, folded[index], [m.casefold() for m in middle])
        store = _STORE_NAMES.get(folded[index + 1], parts[index + 1])
        return CertificateKey(location, sid, store, parts[index + 3].upper())
    return None


def _scope(
    prefix: list[str], relative_scope: Scope | None
) -> tuple[Scope | None, str | None, list[str]]:
    """Machine or user, the SID, and what lies between the hive root and ``Microsoft``."""
    folded = [p.casefold() for p in prefix]
    if folded[:1] and folded[0] in _MACHINE_ROOTS:
        return "machine", None, prefix[1:]
    if folded[:2] == ["registry", "machine"]:
        return "machine", None, prefix[2:]
    if folded[:1] and folded[0] in _USER_ROOTS:
        if len(prefix) > 1 and _SID.match(prefix[1]):  # Defender: HKEY_CURRENT_USER\<SID>\...
            return "user", prefix[1], prefix[2:]
        return "user", None, prefix[1:]
    if folded[:1] and folded[0] in _USERS_ROOTS:
        return ("user", prefix[1], prefix[2:]) if len(prefix) > 1 else (None, None, [])
    if folded[:2] == ["registry", "user"]:
        return ("user", prefix[2], prefix[3:]) if len(prefix) > 2 else (None, None, [])
    if relative_scope is not None:
        return relative_scope, None, prefix
    return ("user" if folded[:1] == ["software"] else "machine"), None, prefix


def _location(scope: Scope, container: str, middle: list[str]) -> Location:
    if container == "enterprisecertificates":
        return "enterprise"
    if middle[-1:] == ["policies"]:
        return "policy" if scope == "machine" else "user-policy"
    return scope


def find_store_certificates(
    entries: Iterable[RegEntry], *, relative_scope: Scope | None = None
) -> list[StoreCertificate]:
    """Every certificate in every trust store that the entries hold.

    Each ``Blob`` value under a certificate key gives one result, in file order; a certificate
    key with no ``Blob`` anywhere gives one result with a problem, after them.

    Args:
        entries: values and key lines from a ``.reg`` export or a hive.
        relative_scope: see :func:`parse_certificate_key`.

    Returns:
        The certificates, each with its location, the DER (when it decodes) and any problem.
    """
    found: list[StoreCertificate] = []
    with_blob: set[str] = set()
    bare_keys: dict[str, tuple[CertificateKey, RegKey]] = {}
    for entry in entries:
        if not isinstance(entry, RegistryValue | RegKey):
            continue
        where = parse_certificate_key(entry.key, relative_scope=relative_scope)
        if where is None:
            continue
        folded = entry.key.casefold()
        if isinstance(entry, RegKey):
            bare_keys.setdefault(folded, (where, entry))
        elif entry.name.casefold() == "blob":
            with_blob.add(folded)
            found.append(certificate_from_blob(where, entry))
    for folded, (where, key_line) in bare_keys.items():
        if folded not in with_blob:
            found.append(_without_blob(where, key_line))
    return found


def certificate_from_blob(where: CertificateKey, value: RegistryValue) -> StoreCertificate:
    """Decode one ``Blob`` value and check it against its key name and its own SHA-1."""
    try:
        blob = decode_blob(value.data)
    except BlobFormatError as exc:
        return _result(where, value.key, value.location, problem=str(exc))
    problems: list[str] = []
    key_thumbprint = normalize_thumbprint(where.thumbprint)
    if key_thumbprint is None:
        problems.append(f"key name {where.thumbprint!r} is not a SHA-1 thumbprint")
    elif key_thumbprint != blob.sha1:
        problems.append(f"the certificate's SHA-1 is {blob.sha1}, not the key name")
    if blob.stored_sha1 is not None and blob.stored_sha1 != blob.sha1:
        problems.append(f"the Blob's cached SHA-1 property says {blob.stored_sha1}")
    parse_problem = _x509_problem(blob.der)
    if parse_problem:
        problems.append(parse_problem)
    return StoreCertificate(
        location=where.location,
        sid=where.sid,
        store=where.store,
        thumbprint=where.thumbprint,
        der=blob.der,
        thumbprint_matches=key_thumbprint == blob.sha1,
        problem="; ".join(problems) or None,
        source=value.location,
        key=value.key,
        friendly_name=blob.friendly_name,
    )


def _x509_problem(der: bytes) -> str | None:
    """Why the certificate property is not an X.509 certificate, or None if it is one."""
    with warnings.catch_warnings():
        # odd-but-real roots (a non-positive serial) only warn; they are still certificates
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        try:
            x509.load_der_x509_certificate(der)
        except ValueError as exc:
            return f"the certificate property is not a valid X.509 certificate: {exc}"
    return None


def _without_blob(where: CertificateKey, key_line: RegKey) -> StoreCertificate:
    source = f"{key_line.source}:{key_line.line}" if key_line.line else key_line.source
    return _result(where, key_line.key, source, problem="certificate key has no Blob value")


def _result(where: CertificateKey, key: str, source: str, *, problem: str) -> StoreCertificate:
    return StoreCertificate(
        location=where.location,
        sid=where.sid,
        store=where.store,
        thumbprint=where.thumbprint,
        der=None,
        thumbprint_matches=None,
        problem=problem,
        source=source,
        key=key,
    )
