"""The brand list and the free or automated CAs as KQL watchlists, for the look-alike rule.

Three built-in watchlists (docs/network.md, "Rules"), as ``_GetWatchlist`` returns them:

- ``CertificateBrands``: one row per key of ``content/certs/brands.yaml`` (the brand, the key,
  its own registrable domains ``|``-joined);
- ``AutomatedCertificateAuthorities``: one row per issuer organisation of the free and automated
  CAs that ``trustwatch.ct.cas`` reads from the certificate intelligence (``free_cas.yaml``) and
  the CT scan's list (``ct/cas.yaml``): the same data, not a second list;
- ``ProtectedDomains``: empty; a tuning file's watchlist of that name (column ``Domain``: the
  registrable domains you own) replaces it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from trustwatch import yamlio
from trustwatch.certs.intel import WATCHLIST_NAME, watchlist_tables
from trustwatch.ct.cas import automated_cas
from trustwatch.errors import InputError

BRANDS_WATCHLIST = "CertificateBrands"
CAS_WATCHLIST = "AutomatedCertificateAuthorities"
PROTECTED_WATCHLIST = "ProtectedDomains"
WHERE = "trustwatch/content/certs/brands.yaml"


@dataclass(frozen=True, slots=True)
class Brand:
    """A brand: its name, the words that stand for it in a host name, and its own domains."""

    name: str
    keys: tuple[str, ...]
    domains: tuple[str, ...]


@functools.cache
def shipped_brands() -> tuple[tuple[Brand, ...], str]:
    """The shipped brands and the list's source label (read once per process).

    Raises:
        InputError: the shipped list is malformed.
    """
    doc = yamlio.load_shipped("certs", "brands.yaml")
    if not isinstance(doc, dict) or not isinstance(doc.get("brands"), list) or not doc.get("as_of"):
        raise InputError(f"{WHERE}: expected 'source', 'as_of' and 'brands', a list")
    brands = []
    for raw in doc["brands"]:
        if not isinstance(raw, dict) or not raw.get("brand") or not raw.get("keys"):
            raise InputError(f"{WHERE}: every brand needs 'brand', 'keys' and 'domains': {raw!r}")
        keys = tuple(str(k).lower() for k in raw["keys"])
        if any(len(k) < 4 or not k.isascii() or not k.isalnum() for k in keys):
            raise InputError(f"{WHERE}: {raw['brand']}: a key is 4+ ASCII letters or digits")
        domains = tuple(str(d).lower() for d in raw.get("domains") or ())
        brands.append(Brand(str(raw["brand"]), keys, domains))
    return tuple(brands), f"trustwatch brands.yaml ({doc['as_of']})"


def _text_table(name: str, columns: dict[str, list[str]], search_key: str) -> pa.Table:
    """Columns as Sentinel returns a watchlist: text, ``SearchKey`` and ``_DTItemId``."""
    rows = len(columns[search_key])
    data = {**columns, "SearchKey": columns[search_key]}
    data["_DTItemId"] = [f"{name}-{i + 1}" for i in range(rows)]
    return pa.table({k: pa.array(v, pa.string()) for k, v in data.items()})


def brands_watchlist() -> pa.Table:
    """``CertificateBrands``: Brand, Key, Domains (``|``-joined), Source; SearchKey: Key."""
    brands, source = shipped_brands()
    rows = [(b, k) for b in brands for k in b.keys]
    columns = {
        "Brand": [b.name for b, _ in rows],
        "Key": [k for _, k in rows],
        "Domains": ["|".join(b.domains) for b, _ in rows],
        "Source": [source for _ in rows],
    }
    return _text_table(BRANDS_WATCHLIST, columns, "Key")


def cas_watchlist() -> pa.Table:
    """``AutomatedCertificateAuthorities``: Organisation (case-folded, as the issuer's O= is
    compared), Kind (``free`` or ``automated``), Operator, Source; SearchKey: Organisation."""
    cas = sorted(automated_cas().items())
    columns = {
        "Organisation": [org for org, _ in cas],
        "Kind": [ca.kind for _, ca in cas],
        "Operator": [ca.operator for _, ca in cas],
        "Source": [ca.source for _, ca in cas],
    }
    return _text_table(CAS_WATCHLIST, columns, "Organisation")


def protected_domains_watchlist() -> pa.Table:
    """``ProtectedDomains`` with no rows, for a tuning file that does not give one."""
    return _text_table(PROTECTED_WATCHLIST, {"Domain": []}, "Domain")


BUILTIN_WATCHLISTS = (WATCHLIST_NAME, BRANDS_WATCHLIST, CAS_WATCHLIST, PROTECTED_WATCHLIST)


def builtin_watchlist_tables(data_dir: str | Path | None = None) -> dict[str, pa.Table]:
    """Every built-in watchlist as a catalog table (``_GetWatchlist`` names them): the
    certificate intelligence (``data_dir``: its imported lists), the brands, the free and
    automated CAs, and the empty protected domains a tuning file's replaces."""
    from trustwatch.kql.compiler import WATCHLIST_PREFIX

    return {**watchlist_tables(data_dir), **{WATCHLIST_PREFIX + n: t for n, t in _lists().items()}}


@functools.cache
def _lists() -> dict[str, pa.Table]:
    return {
        BRANDS_WATCHLIST: brands_watchlist(),
        CAS_WATCHLIST: cas_watchlist(),
        PROTECTED_WATCHLIST: protected_domains_watchlist(),
    }
