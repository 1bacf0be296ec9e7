"""The CA that issued a certificate, named from its issuer, and whether it issues for free.

Free and automated CAs come from two lists matched by the issuer's organisation (O=): the
certificate intelligence's free CAs (``content/certs/free_cas.yaml``: Let's Encrypt, ISRG,
ZeroSSL) and the CT scan's own (``content/ct/cas.yaml``: Google Trust Services, Buypass, SSL.com,
cPanel, Cloudflare, AWS). ``free``: anyone gets one at no cost; ``automated``: ACME is offered,
but paid certificates share the issuer.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from trustwatch import yamlio
from trustwatch.certs.intel import shipped_intel
from trustwatch.certs.names import normalise, parse_dn
from trustwatch.errors import InputError

KINDS = ("free", "automated")


@dataclass(frozen=True, slots=True)
class AutomatedCa:
    """A CA that issues certificates automatically: who runs it, and whether they are free."""

    operator: str
    kind: str  # "free" or "automated"
    source: str  # the list it comes from, with its date


@dataclass(frozen=True, slots=True)
class Issuer:
    """A certificate's issuer: its name as logged, organisation, common name, and the free or
    automated CA it belongs to (None: not one of them)."""

    name: str
    organisation: str
    common_name: str
    automated: AutomatedCa | None = None

    @property
    def label(self) -> str:
        """The CA as a person names it: ``Let's Encrypt (R3)``, else the issuer name."""
        if self.organisation and self.common_name:
            return f"{self.organisation} ({self.common_name})"
        return self.organisation or self.common_name or self.name


@functools.cache
def automated_cas() -> Mapping[str, AutomatedCa]:
    """Normalised organisation -> its CA, from both lists (read once per process).

    Raises:
        InputError: a shipped list is malformed.
    """
    shipped = shipped_intel()
    found: dict[str, AutomatedCa] = {
        normalise(ca.organisation): AutomatedCa(ca.operator, "free", ca.source.label)
        for ca in shipped.free_cas
    }
    where = "trustwatch/content/ct/cas.yaml"
    doc = yamlio.load_shipped("ct", "cas.yaml")
    if not isinstance(doc, dict) or not isinstance(doc.get("cas"), list):
        raise InputError(f"{where}: expected 'cas', a list")
    source = f"trustwatch ct/cas.yaml ({doc.get('as_of', '')})"
    for raw in doc["cas"]:
        if not isinstance(raw, dict) or raw.get("kind") not in KINDS or not raw.get("operator"):
            raise InputError(f"{where}: every CA needs 'organisation', 'operator', 'kind': {raw!r}")
        ca = AutomatedCa(str(raw["operator"]), str(raw["kind"]), source)
        for organisation in raw.get("organisation") or ():
            found[normalise(str(organisation))] = ca
    return found


def issuer_of(name: str, organisation: str = "", common_name: str = "") -> Issuer:
    """The issuer, from its name as text (``C=US, O=Let's Encrypt, CN=R3``, or certstream's
    ``/C=US/O=Let's Encrypt/CN=R3``) and/or its organisation and common name given apart."""
    if name and not (organisation or common_name):
        pairs = parse_dn(_slashed_to_commas(name))
        organisation = next((v for a, v in pairs if a == "O"), "")
        common_name = next((v for a, v in pairs if a == "CN"), "")
    ca = automated_cas().get(normalise(organisation)) if organisation else None
    return Issuer(name=name, organisation=organisation, common_name=common_name, automated=ca)


def _slashed_to_commas(name: str) -> str:
    """OpenSSL's one-line form (``/C=US/O=X/CN=Y``, certstream's ``aggregated``) as RFC 4514
    text; other text is returned as it is."""
    if not name.startswith("/"):
        return name
    parts = [p for p in name.split("/") if p]
    return ",".join(p.replace(",", "\\,") for p in parts)
