"""Classifying one certificate, or a bare thumbprint, against the reference lists.

Each check is a small function returning findings (code, label, weight, evidence naming the list
and its date, or the field and its value). The verdict is the highest-ranked verdict any finding
implies (``model.RANK``): known-bad > lookalike > suspicious > unknown > free-ca > public-root >
microsoft-root; ``unknown`` when no finding implies one. Thresholds and weights are data, below,
and documented in docs/certificates.md ("Classification").
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from trustwatch.certs.intel import Intel
from trustwatch.certs.model import (
    RANK,
    SEVERITY_ADJUSTMENT,
    TRUSTED,
    IntelEntry,
    Verdict,
    digest_kind,
    fingerprint,
    normalise_thumbprint,
    serial_of,
    sha1_of,
    spki_sha256_of,
)
from trustwatch.certs.names import NameKeys, keys_of_name, keys_of_text, normalise, pairs_of_name
from trustwatch.errors import InputError

# --- thresholds (docs/certificates.md, "Classification") ---------------------------------------

# CA/Browser Forum Baseline Requirements: TLS leaf certificates issued since 2020-09-01 last at most
# 398 days. Longer leaves are made by hand (or by C2 kits: Cobalt Strike's default is 10 years).
LEAF_MAX_DAYS = 398
# The longest root in certifi's bundle (2026) runs 35 years (Certum Trusted Network CA 2); six
# more run 30 years and a few leap days. Hand-made roots often use 100 years (-days 36500).
CA_MAX_DAYS = 40 * 365 + 10
# A CA certificate valid for under a week is a throw-away; leaves get a day, because Let's Encrypt
# issues opt-in short-lived leaves of about six days.
CA_MIN_DAYS = 7
LEAF_MIN = timedelta(days=1)
RSA_MIN_BITS = 2048
EC_MIN_BITS = 256


@dataclass(frozen=True, slots=True)
class FindingKind:
    """What a finding means: its label, weight (0-100) and the verdict it implies.

    ``genuine_weight`` is used when the certificate itself is a listed public or Microsoft root:
    such a finding then implies no verdict (a genuine old root with a SHA-1 self-signature is
    not suspicious). ``None`` keeps the normal weight and verdict.
    """

    code: str
    label: str
    weight: int
    verdict: Verdict | None = None
    genuine_weight: int | None = None


_KIND_LIST = (
    # code, label, weight, verdict implied, weight when the certificate is a listed root
    FindingKind("known-bad-hash", "Known-bad (by hash)", 100, Verdict.KNOWN_BAD),
    FindingKind("known-bad-serial", "Known-bad (serial and subject)", 95, Verdict.KNOWN_BAD),
    FindingKind("known-bad-name", "Known-bad (subject name)", 85, Verdict.KNOWN_BAD),
    FindingKind("lookalike", "Imitates a known root", 90, Verdict.LOOKALIKE),
    FindingKind("lookalike-issuer", "Issuer imitates a known root", 80, Verdict.LOOKALIKE),
    FindingKind("lookalike-name-only", "Microsoft root name (unverified)", 60, Verdict.SUSPICIOUS),
    FindingKind("same-key-as-root", "Re-issue of a known root (same key)", 10, None),
    FindingKind("issued-by-known-root", "Signed by a known root", 0, None),
    FindingKind("issuer-unverified", "Issuer named like a known root", 10, None),
    FindingKind("self-signed", "Self-signed", 50, Verdict.SUSPICIOUS, 0),
    FindingKind("self-issued-unsigned", "Self-issued, not self-signed", 40, Verdict.SUSPICIOUS, 0),
    FindingKind("ca", "CA certificate", 10, None, 0),
    FindingKind("free-ca", "Issued by a free/automated CA", 30, Verdict.FREE_CA),
    FindingKind("not-yet-valid", "Not yet valid", 40, Verdict.SUSPICIOUS, 10),
    FindingKind("expired", "Expired", 20, Verdict.SUSPICIOUS, 5),
    FindingKind("long-validity", "Very long validity", 20, Verdict.SUSPICIOUS, 0),
    FindingKind("short-validity", "Very short validity", 30, Verdict.SUSPICIOUS, 0),
    FindingKind("weak-key", "Weak key", 40, Verdict.SUSPICIOUS, 10),
    FindingKind("weak-signature", "Weak signature hash", 40, Verdict.SUSPICIOUS, 0),
    FindingKind("public-root", "Public root", 0, Verdict.PUBLIC_ROOT),
    FindingKind("microsoft-root", "Microsoft root", 0, Verdict.MICROSOFT_ROOT),
    FindingKind("not-listed", "In no list", 10, None),
)
KINDS: dict[str, FindingKind] = {k.code: k for k in _KIND_LIST}


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One reason behind a verdict, with the evidence a person can check."""

    code: str
    label: str
    weight: int
    evidence: str
    verdict: Verdict | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "code": self.code,
            "label": self.label,
            "weight": self.weight,
            "verdict": str(self.verdict) if self.verdict else None,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Classification:
    """A verdict on one certificate or thumbprint, and the findings behind it."""

    verdict: Verdict
    findings: tuple[Finding, ...]  # heaviest first
    sha1: str
    sha256: str = ""
    subject: str = ""
    issuer: str = ""
    at: datetime | None = None  # the time validity was judged at (None: thumbprint only)

    @property
    def suspicious(self) -> bool:
        """True unless it is a listed public or Microsoft root (``certs audit`` exits 1 on it).

        Unknown certificates count: in a trust store, a root nobody can vouch for is the finding.
        """
        return self.verdict not in TRUSTED

    @property
    def severity_adjustment(self) -> int:
        """Severity steps to move an alert about this certificate: +2 known-bad or lookalike,
        +1 suspicious, 0 unknown or free-ca, -1 public or Microsoft root."""
        return SEVERITY_ADJUSTMENT[self.verdict]

    def codes(self) -> tuple[str, ...]:
        """The finding codes, heaviest first."""
        return tuple(f.code for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (datetimes ISO 8601 UTC with ``Z``)."""
        return {
            "verdict": str(self.verdict),
            "suspicious": self.suspicious,
            "severity_adjustment": self.severity_adjustment,
            "sha1": self.sha1,
            "sha256": self.sha256,
            "subject": self.subject,
            "issuer": self.issuer,
            "at": self.at.isoformat().replace("+00:00", "Z") if self.at else None,
            "findings": [f.to_dict() for f in self.findings],
        }


# --- facts computed once per certificate --------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Facts:
    cert: x509.Certificate
    sha1: str
    sha256: str
    md5: str
    spki: str
    serial: str
    subject: NameKeys
    issuer: NameKeys
    issuer_org: str
    self_issued: bool
    is_ca: bool
    listed: tuple[IntelEntry, ...]  # entries naming one of its hashes

    @property
    def genuine(self) -> bool:
        """Listed by hash as a public or Microsoft root."""
        return any(e.verdict in TRUSTED for e in self.listed)


def _facts(cert: x509.Certificate, intel: Intel) -> _Facts:
    sha1 = sha1_of(cert)
    sha256 = fingerprint(cert, hashes.SHA256())
    md5 = fingerprint(cert, hashes.MD5())  # noqa: S303 - matching published MD5 fingerprints
    listed = tuple(dict.fromkeys(e for d in (sha1, sha256, md5) for e in intel.by_hash.get(d, ())))
    return _Facts(
        cert=cert,
        sha1=sha1,
        sha256=sha256,
        md5=md5,
        spki=_spki(cert),
        serial=serial_of(cert),
        subject=keys_of_name(cert.subject),
        issuer=keys_of_name(cert.issuer),
        issuer_org=next((normalise(v) for a, v in pairs_of_name(cert.issuer) if a == "O"), ""),
        self_issued=cert.subject == cert.issuer,
        is_ca=_is_ca(cert),
        listed=listed,
    )


def _spki(cert: x509.Certificate) -> str:
    try:
        return spki_sha256_of(cert)
    except (ValueError, UnsupportedAlgorithm):
        return ""


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        # v1 certificates (old roots) have no extensions: self-signed ones act as CAs
        return cert.version is x509.Version.v1 and cert.subject == cert.issuer


def _make(
    code: str, evidence: str, facts: _Facts | None = None, weight: int | None = None
) -> Finding:
    kind = KINDS[code]
    verdict, final = kind.verdict, kind.weight if weight is None else weight
    if facts is not None and facts.genuine and kind.genuine_weight is not None:
        verdict, final = None, kind.genuine_weight
    return Finding(code=code, label=kind.label, weight=final, evidence=evidence, verdict=verdict)


def _sources(entries: Iterable[IntelEntry]) -> str:
    return ", ".join(dict.fromkeys(e.source.label for e in entries))


# --- list membership ---------------------------------------------------------------------------


def _listing_findings(digest_of: dict[str, str], listed: Sequence[IntelEntry]) -> list[Finding]:
    """Findings for entries that list the certificate by hash (also used for bare thumbprints)."""
    findings = []
    public = [e for e in listed if e.verdict is Verdict.PUBLIC_ROOT]
    microsoft = [e for e in listed if e.verdict is Verdict.MICROSOFT_ROOT]
    if public:
        sha1 = digest_of.get("SHA-1") or public[0].sha1
        findings.append(_make("public-root", f"SHA-1 {sha1} is in {_sources(public)}"))
    if microsoft:
        entry = microsoft[0]
        extra = (
            "; ATT&CK T1553.004 lists it as consistent across Windows systems"
            if "attack-t1553.004-consistent" in entry.labels
            else ""
        )
        text = f"SHA-1 {entry.sha1} is Microsoft's '{entry.name}' in {_sources(microsoft)}{extra}"
        findings.append(_make("microsoft-root", text))
    for entry in (e for e in listed if e.verdict is Verdict.KNOWN_BAD):
        findings.append(_make("known-bad-hash", _bad_hash_evidence(entry, digest_of)))
    return findings


def _bad_hash_evidence(entry: IntelEntry, digest_of: dict[str, str]) -> str:
    matched = next(
        (
            f"{kind} {d}"
            for kind, d in digest_of.items()
            if d in {entry.sha1, entry.sha256, entry.md5}
        ),
        "its hash",
    )
    when = f" on {entry.listed}" if entry.listed else ""
    what = entry.name if not entry.name.startswith("SSLBL:") else "listed"
    return f"{matched}: {what} in {entry.source.label}{when}: {entry.reason}"


def _check_lists(facts: _Facts, intel: Intel, at: datetime) -> list[Finding]:
    digests = {"SHA-1": facts.sha1, "SHA-256": facts.sha256, "MD5": facts.md5}
    findings = _listing_findings(digests, facts.listed)
    if not facts.listed:
        names = ", ".join(s.label for s in intel.hash_sources)
        findings.append(_make("not-listed", f"SHA-1 {facts.sha1} is in none of: {names}"))
    return findings


def _check_known_bad_by_name(facts: _Facts, intel: Intel, at: datetime) -> list[Finding]:
    """Known-bad by serial + subject, else by subject CN: regenerated keys keep the name."""
    findings: list[Finding] = []
    done = set(facts.listed)
    for entry in intel.bad_by_serial.get(facts.serial, ()):
        if entry in done or not _same_subject(facts.subject, entry.subject):
            continue
        done.add(entry)
        text = (
            f"serial {facts.serial} and subject '{facts.cert.subject.rfc4514_string()}' are "
            f"those of {entry.name} ({entry.source.label}), although SHA-1 {facts.sha1} differs "
            f"from its {entry.sha1 or 'listed hash'}: {entry.reason}"
        )
        findings.append(_make("known-bad-serial", text))
    cn = facts.subject.cn
    for entry in intel.bad_by_cn.get(cn, ()) if cn else ():
        if entry in done:
            continue
        text = (
            f"subject CN '{facts.subject.display}' is that of {entry.name} "
            f"({entry.source.label}); such tools regenerate the key per install: {entry.reason}"
        )
        findings.append(_make("known-bad-name", text))
    return findings


def _same_subject(keys: NameKeys, subject_text: str) -> bool:
    other = keys_of_text(subject_text)
    return keys.dn == other.dn or (bool(keys.cn_o) and keys.cn_o == other.cn_o)


# --- lookalikes --------------------------------------------------------------------------------

_LEVEL_TEXT = {
    "dn": "the same whole name",
    "cn+o": "the same common name and organisation",
    "cn": "the same common name",
}


def _check_lookalike(facts: _Facts, intel: Intel, at: datetime) -> list[Finding]:
    """Same subject name as a known root, different thumbprint and key: a clone."""
    if facts.genuine:
        return []
    level, roots = intel.roots_named(facts.subject)
    if not roots:
        return []
    same_key = [r for r in roots if r.spki_sha256 and r.spki_sha256 == facts.spki]
    if same_key:
        text = (
            f"subject and public key are those of {_describe(same_key)}: a re-issued or "
            f"cross-signed form of that root, not a clone"
        )
        return [_make("same-key-as-root", text, facts)]
    with_hash = [r for r in roots if r.sha1]
    name_only = [r for r in roots if not r.sha1]
    subject = facts.cert.subject.rfc4514_string()
    findings = []
    if with_hash:
        microsoft = any(r.verdict is Verdict.MICROSOFT_ROOT for r in with_hash)
        weight = (90 if microsoft else 80) - (10 if level == "cn" else 0)
        text = (
            f"subject '{subject}' has {_LEVEL_TEXT[level]} as {_describe(with_hash)}, but "
            f"SHA-1 {facts.sha1} and its key differ: it imitates the genuine root"
        )
        findings.append(_make("lookalike", text, facts, weight))
    if name_only:
        text = (
            f"subject '{subject}' has {_LEVEL_TEXT[level]} as Microsoft's "
            f"'{name_only[0].name}' ({_sources(name_only)}), whose genuine thumbprint trustwatch "
            f"does not ship: compare SHA-1 {facts.sha1} with Microsoft's published one"
        )
        findings.append(_make("lookalike-name-only", text, facts))
    return findings


def _describe(roots: Sequence[IntelEntry], limit: int = 3) -> str:
    parts = []
    for r in roots[:limit]:
        kind = "Microsoft root" if r.verdict is Verdict.MICROSOFT_ROOT else "public root"
        parts.append(f"{kind} '{r.name}' (SHA-1 {r.sha1 or 'not shipped'}, {r.source.label})")
    more = f" and {len(roots) - limit} more" if len(roots) > limit else ""
    return "; ".join(parts) + more


def _check_issuer(facts: _Facts, intel: Intel, at: datetime) -> list[Finding]:
    """An issuer named like a known root must be signed with that root's key."""
    if facts.self_issued:
        return []
    level, roots = intel.roots_named(facts.issuer)
    if not roots:
        return []
    issuer = facts.cert.issuer.rfc4514_string()
    checked = {r: _signed_by(facts.cert, r.certificate) for r in roots if r.certificate}
    signers = [r for r, ok in checked.items() if ok]
    if signers:
        text = f"signature verifies with the key of {_describe(signers)}"
        return [_make("issued-by-known-root", text, facts)]
    keyed = list(checked)
    # a forgery only when every root of that name has a key here and none verifies
    if keyed and len(keyed) == len(roots) and None not in checked.values():
        text = (
            f"issuer '{issuer}' has {_LEVEL_TEXT[level]} as {_describe(keyed)}, but the "
            f"signature does not verify with its key: a forged issuer"
        )
        return [_make("lookalike-issuer", text, facts)]
    text = (
        f"issuer '{issuer}' has {_LEVEL_TEXT[level]} as {_describe(roots)}; trustwatch has no "
        f"copy of that root's key, so the signature could not be checked"
    )
    return [_make("issuer-unverified", text, facts)]


# --- the certificate itself --------------------------------------------------------------------


def _check_self_signed(facts: _Facts, intel: Intel, at: datetime) -> list[Finding]:
    findings = []
    if facts.self_issued:
        verified = _signed_by(facts.cert, facts.cert)
        if verified is False:
            text = (
                "subject equals issuer but its own key does not verify the signature: signed "
                "by another key of that name (a cross-certificate or a forgery)"
            )
            findings.append(_make("self-issued-unsigned", text, facts))
        else:
            how = "verifies with its own key" if verified else "could not be checked (algorithm)"
            role = "a root CA" if facts.is_ca else "not a CA (a self-signed leaf)"
            text = f"subject equals issuer and the signature {how}; {role}"
            findings.append(_make("self-signed", text, facts))
    if facts.is_ca:
        text = "BasicConstraints CA=true: once trusted it can vouch for any name"
        if facts.cert.version is x509.Version.v1:
            text = "a v1 self-signed certificate (no extensions), which Windows treats as a CA"
        findings.append(_make("ca", text, facts))
    return findings


def _check_free_ca(facts: _Facts, intel: Intel, at: datetime) -> list[Finding]:
    ca = intel.free_by_org.get(facts.issuer_org)
    if ca is None or facts.genuine:
        return []
    known = facts.issuer.display in ca.issuers
    which = (
        f"'{facts.issuer.display}' is one of its issuing CAs"
        if known
        else f"issuer CN '{facts.issuer.display}' is not one of the CAs listed; the O= matches"
    )
    text = (
        f"issuer '{facts.cert.issuer.rfc4514_string()}' belongs to {ca.operator}, which issues "
        f"free/automated certificates ({which}; {ca.source.label})"
    )
    return [_make("free-ca", text, facts)]


def _check_validity(facts: _Facts, intel: Intel, at: datetime) -> list[Finding]:
    cert = facts.cert
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    span = end - start
    stamp = at.isoformat().replace("+00:00", "Z")
    findings = []
    if at < start:
        text = f"notBefore {start:%Y-%m-%d %H:%M:%SZ} is after {stamp}"
        findings.append(_make("not-yet-valid", text, facts))
    if at > end:
        text = f"notAfter {end:%Y-%m-%d %H:%M:%SZ} is before {stamp}"
        findings.append(_make("expired", text, facts))
    limit = CA_MAX_DAYS if facts.is_ca else LEAF_MAX_DAYS
    if span.days > limit:
        role = "a CA" if facts.is_ca else "a leaf"
        text = f"valid {span.days} days ({span.days / 365.25:.1f} years), over {limit} for {role}"
        findings.append(_make("long-validity", text, facts))
    shortest = timedelta(days=CA_MIN_DAYS) if facts.is_ca else LEAF_MIN
    if span < shortest:
        text = f"valid only {span} (under {shortest} for {'a CA' if facts.is_ca else 'a leaf'})"
        findings.append(_make("short-validity", text, facts))
    return findings


def _check_key(facts: _Facts, intel: Intel, at: datetime) -> list[Finding]:
    try:
        key = facts.cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return []
    problem = ""
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < RSA_MIN_BITS:
        problem = f"RSA {key.key_size}-bit key (under {RSA_MIN_BITS})"
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < EC_MIN_BITS:
        problem = f"EC key on {key.curve.name} ({key.curve.key_size} bits, under {EC_MIN_BITS})"
    elif isinstance(key, dsa.DSAPublicKey):
        problem = f"DSA {key.key_size}-bit key (DSA is deprecated for certificates)"
    return [_make("weak-key", problem, facts)] if problem else []


def _check_signature(facts: _Facts, intel: Intel, at: datetime) -> list[Finding]:
    try:
        algorithm = facts.cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return []
    if not isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        return []
    name = "MD5" if isinstance(algorithm, hashes.MD5) else "SHA-1"
    weight = 50 if name == "MD5" else 25
    note = ""
    if facts.self_issued:
        # a trust anchor's own signature is not what makes it trusted: half weight
        weight //= 2
        note = "; on a self-signed certificate this matters less (its signature is not checked)"
    text = f"signed with {name} (OID {facts.cert.signature_algorithm_oid.dotted_string}){note}"
    return [_make("weak-signature", text, facts, weight)]


Check = Callable[[_Facts, Intel, datetime], list[Finding]]
CHECKS: tuple[Check, ...] = (
    _check_lists,
    _check_known_bad_by_name,
    _check_lookalike,
    _check_issuer,
    _check_self_signed,
    _check_free_ca,
    _check_validity,
    _check_key,
    _check_signature,
)


# --- signatures ---------------------------------------------------------------------------------


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool | None:
    """Whether ``issuer``'s key made ``cert``'s signature; None when it cannot be checked.

    ``verify_directly_issued_by`` first (it also checks the names); cryptography refuses SHA-1
    and MD5 there, and some genuine roots are SHA-1 self-signed, so those are checked with the
    public key directly.
    """
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return _verify_with_key(cert, issuer)
    return True


def _verify_with_key(cert: x509.Certificate, issuer: x509.Certificate) -> bool | None:
    try:
        key = issuer.public_key()
        algorithm = cert.signature_hash_algorithm
        signature, data = cert.signature, cert.tbs_certificate_bytes
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            params = cert.signature_algorithm_parameters
            pad = params if isinstance(params, padding.PSS) else padding.PKCS1v15()
            key.verify(signature, data, pad, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, dsa.DSAPublicKey) and algorithm is not None:
            key.verify(signature, data, algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return None
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return True


# --- entry point -------------------------------------------------------------------------------


def classify(
    cert: x509.Certificate | None = None,
    thumbprint: str | None = None,
    *,
    intel: Intel,
    at: datetime | None = None,
) -> Classification:
    """Classify a certificate, or a bare thumbprint when no certificate is at hand.

    A bare thumbprint (SHA-1, SHA-256 or MD5) can only be a listed root, known-bad, or unknown;
    the certificate itself allows every check.

    Args:
        cert: the certificate.
        thumbprint: its thumbprint; with ``cert`` it must be one of the certificate's hashes.
        intel: the reference lists (``intel.load_intel()``).
        at: when to judge validity (default: now); naive datetimes are taken as UTC.

    Raises:
        InputError: neither given, a malformed thumbprint, or one that is not the certificate's.
    """
    if cert is None:
        if thumbprint is None:
            raise InputError("classify needs a certificate or a thumbprint")
        return _classify_thumbprint(normalise_thumbprint(thumbprint), intel)
    when = _utc(at)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography's deprecation warnings on odd old roots
        facts = _facts(cert, intel)
        if thumbprint is not None:
            _check_thumbprint(normalise_thumbprint(thumbprint), facts)
        findings = [f for check in CHECKS for f in check(facts, intel, when)]
    return Classification(
        verdict=_verdict(findings),
        findings=_ordered(findings),
        sha1=facts.sha1,
        sha256=facts.sha256,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        at=when,
    )


def _classify_thumbprint(digest: str, intel: Intel) -> Classification:
    listed = intel.by_hash.get(digest, ())
    findings = _listing_findings({digest_kind(digest): digest}, listed)
    if not listed:
        text = (
            f"unknown: {digest_kind(digest)} {digest} is not in any list "
            f"({', '.join(s.label for s in intel.hash_sources)}); give the certificate for more"
        )
        findings.append(_make("not-listed", text))
    sha1 = digest if len(digest) == 40 else next((e.sha1 for e in listed if e.sha1), "")
    sha256 = digest if len(digest) == 64 else next((e.sha256 for e in listed if e.sha256), "")
    subject = next((e.subject for e in listed if e.subject), "")
    return Classification(
        verdict=_verdict(findings),
        findings=_ordered(findings),
        sha1=sha1,
        sha256=sha256,
        subject=subject,
    )


def _check_thumbprint(digest: str, facts: _Facts) -> None:
    if digest not in (facts.sha1, facts.sha256, facts.md5):
        raise InputError(
            f"thumbprint {digest} is not this certificate's (its SHA-1 is {facts.sha1})"
        )


def _verdict(findings: Iterable[Finding]) -> Verdict:
    implied = [f.verdict for f in findings if f.verdict is not None]
    return max(implied, key=RANK.__getitem__) if implied else Verdict.UNKNOWN


def _ordered(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: -f.weight))


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
