"""Scanning CT records for look-alikes of protected domains: one scored result per certificate.

A certificate is logged more than once (crt.sh lists the precertificate and the certificate;
feeds repeat), so records are merged by issuer and serial number (else fingerprint, else crt.sh
id) and every sighting is kept as evidence. Each name of a certificate is judged
(``trustwatch.ct.lookalike``); a certificate with at least one finding becomes a
:class:`Lookalike`, scored:

    score = the highest finding's weight
          + EXTRA_TECHNIQUE for each other technique found (at most EXTRA_MAX)
          + CA_BONUS[kind] when a free or automated CA issued it      (at most 100)

and given a severity by ``SEVERITY_FLOORS``. Nothing here reads files or the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from trustwatch.ct.cas import Issuer
from trustwatch.ct.lookalike import Finding, Protected, find_lookalikes, is_own
from trustwatch.ct.names import Name, NameData, name_data, parse_name
from trustwatch.ct.readers import CtEntry, Item, Passed, Skipped

EXTRA_TECHNIQUE = 5
EXTRA_MAX = 10
CA_BONUS = {"free": 15, "automated": 10}
# lowest score of each severity, highest first
SEVERITY_FLOORS = (("High", 80), ("Medium", 60), ("Low", 0))


@dataclass(frozen=True, slots=True)
class NameFinding:
    """A finding for one name of a certificate."""

    name: Name
    finding: Finding


@dataclass(frozen=True, slots=True)
class Lookalike:
    """A certificate for look-alike names: its findings, score, CA and sightings."""

    key: str
    findings: tuple[NameFinding, ...]
    score: int
    severity: str
    issuer: Issuer
    sightings: tuple[CtEntry, ...]
    score_parts: tuple[str, ...]  # how the score adds up, in words

    @property
    def first(self) -> CtEntry:
        """The first sighting."""
        return self.sightings[0]

    @property
    def domains(self) -> tuple[str, ...]:
        """The protected domains it imitates, each once."""
        return tuple(dict.fromkeys(f.finding.domain for f in self.findings))

    @property
    def techniques(self) -> tuple[str, ...]:
        """The techniques found, strongest first, each once."""
        ranked = sorted(self.findings, key=lambda f: -f.finding.weight)
        return tuple(dict.fromkeys(f.finding.technique for f in ranked))

    @property
    def names(self) -> tuple[str, ...]:
        """The look-alike names as logged (``xn--`` labels kept: what DNS and proxies see),
        lower case, each once."""
        return tuple(dict.fromkeys(f.name.raw.lower() for f in self.findings))


@dataclass(slots=True)
class SourceAccount:
    """What one file (or fetch) gave: certificates, names, records skipped or passed over."""

    origin: str
    records: int = 0  # certificate records read (before merging)
    names: int = 0
    own: int = 0  # names that are a protected domain or under one
    not_dns: int = 0  # names that are not DNS names (an organisation in a CN, an IP)
    passed: int = 0  # certstream messages that are not certificates
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def failed(self) -> Skipped | None:
        """The reason the whole file could not be read, if it could not."""
        return next((s for s in self.skipped if s.ref_kind == "file"), None)


@dataclass(slots=True)
class Scan:
    """A scan in progress: feed it sources, then take ``lookalikes()``.

    ``allowed`` are names you own that are not protected (``contoso.sharepoint.com``): they and
    the names under them never alert, and no look-alikes of them are looked for.
    """

    protected: tuple[Protected, ...]
    allowed: tuple[str, ...] = ()
    data: NameData = field(default_factory=name_data)
    accounts: list[SourceAccount] = field(default_factory=list)
    _sightings: dict[str, list[CtEntry]] = field(default_factory=dict)
    _findings: dict[str, dict[tuple[str, str, str], NameFinding]] = field(default_factory=dict)
    _judged: dict[str, tuple[Name | None, list[Finding], bool]] = field(default_factory=dict)

    def add_source(self, origin: str, items: Iterable[Item]) -> SourceAccount:
        """Read one source's records; returns its account (also kept in ``accounts``)."""
        account = SourceAccount(origin)
        self.accounts.append(account)
        for item in items:
            if isinstance(item, Skipped):
                account.skipped.append(item)
            elif isinstance(item, Passed):
                account.passed += 1
            else:
                self._add(item, account)
        return account

    def _add(self, entry: CtEntry, account: SourceAccount) -> None:
        account.records += 1
        found: list[NameFinding] = []
        for raw in entry.names:
            account.names += 1
            name, findings, own = self._judge(raw)
            if name is None:
                account.not_dns += 1
                continue
            account.own += own
            found.extend(NameFinding(name, f) for f in findings)
        if not found:
            return
        key = certificate_key(entry)
        self._sightings.setdefault(key, []).append(entry)
        kept = self._findings.setdefault(key, {})
        for item in found:
            kept.setdefault((item.name.text, item.finding.domain, item.finding.technique), item)

    def _judge(self, raw: str) -> tuple[Name | None, list[Finding], bool]:
        """A name's parse, findings and whether it is yours, once per distinct name (feeds
        repeat names a lot)."""
        key = raw.strip().lower()
        known = self._judged.get(key)
        if known is None:
            name = parse_name(raw, self.data)
            if name is None:
                known = (None, [], False)
            elif is_own(name, self.protected) or _under(name, self.allowed):
                known = (name, [], True)
            else:
                known = (name, find_lookalikes(name, self.protected, self.data), False)
            if len(self._judged) < 1_000_000:  # memory stays bounded on a long feed
                self._judged[key] = known
        return known

    def lookalikes(self, min_score: int = 0) -> list[Lookalike]:
        """The certificates with look-alike names, highest score first, then first logged."""
        results = [
            _scored(key, tuple(self._findings[key].values()), tuple(sightings))
            for key, sightings in self._sightings.items()
        ]
        kept = [r for r in results if r.score >= min_score]
        kept.sort(key=lambda r: (-r.score, _when(r.first), r.key))
        return kept


def _under(name: Name, domains: tuple[str, ...]) -> bool:
    return any(name.text == d or name.text.endswith("." + d) for d in domains)


def certificate_key(entry: CtEntry) -> str:
    """What one certificate is known by across logs: issuer and serial, else fingerprint, else
    the crt.sh id, else where it was read."""
    if entry.serial:
        return f"serial:{entry.issuer.name.casefold()}|{entry.serial}"
    if entry.fingerprint:
        return f"sha1:{entry.fingerprint}"
    if entry.crtsh_id is not None:
        return f"crtsh:{entry.crtsh_id}"
    return f"at:{entry.origin}:{entry.ref_kind}:{entry.ref}"


def _when(entry: CtEntry) -> str:
    moment = entry.logged or entry.not_before
    return moment.isoformat() if moment else "~"


def _scored(
    key: str, findings: tuple[NameFinding, ...], sightings: tuple[CtEntry, ...]
) -> Lookalike:
    ranked = sorted(findings, key=lambda f: -f.finding.weight)
    best = ranked[0].finding
    parts = [f"{best.technique} {best.weight}"]
    techniques = dict.fromkeys(f.finding.technique for f in ranked)
    extra = min(EXTRA_MAX, EXTRA_TECHNIQUE * (len(techniques) - 1))
    if extra:
        parts.append(f"other techniques +{extra}")
    issuer = next((s.issuer for s in sightings if s.issuer.automated), sightings[0].issuer)
    bonus = CA_BONUS[issuer.automated.kind] if issuer.automated else 0
    if issuer.automated:
        parts.append(f"{issuer.automated.kind} CA +{bonus}")
    score = min(100, best.weight + extra + bonus)
    severity = next(name for name, floor in SEVERITY_FLOORS if score >= floor)
    return Lookalike(
        key=key,
        findings=tuple(ranked),
        score=score,
        severity=severity,
        issuer=issuer,
        sightings=sightings,
        score_parts=tuple(parts),
    )
