"""The brand list and the CA list as the built-in watchlists the look-alike network rule reads."""

from __future__ import annotations

from trustwatch.certs.brands import (
    brands_watchlist,
    cas_watchlist,
    protected_domains_watchlist,
    shipped_brands,
)
from trustwatch.ct.cas import automated_cas
from trustwatch.kql.compiler import WATCHLIST_PREFIX
from trustwatch.rules.tuning import default_tuning_path, load_tuning


def test_every_brand_key_is_one_row_and_every_brand_has_its_domains() -> None:
    brands, source = shipped_brands()
    rows = brands_watchlist().to_pylist()
    keys = [r["Key"] for r in rows]
    assert len(keys) == len(set(keys)) == sum(len(b.keys) for b in brands)
    assert all(b.domains for b in brands) and source.startswith("trustwatch brands.yaml")
    microsoft = next(r for r in rows if r["Key"] == "office365")
    assert microsoft["Brand"] == "Microsoft" and "microsoftonline.com" in microsoft["Domains"]
    assert rows[0]["SearchKey"] == rows[0]["Key"]


def test_the_ca_watchlist_is_the_ct_scan_data_not_a_second_list() -> None:
    rows = {r["Organisation"]: r for r in cas_watchlist().to_pylist()}
    assert set(rows) == set(automated_cas())
    assert rows["let's encrypt"]["Kind"] == "free"
    assert rows["google trust services"]["Kind"] == "automated"
    assert "buypass as-983163327" in rows and "zerossl" in rows


def test_protected_domains_is_empty_built_in_and_the_tunings_replaces_it() -> None:
    assert protected_domains_watchlist().num_rows == 0
    assert "Domain" in protected_domains_watchlist().column_names
    tables = load_tuning(default_tuning_path()).tables()
    shipped = tables[WATCHLIST_PREFIX + "ProtectedDomains"].to_pylist()
    assert [r["Domain"] for r in shipped] == ["contoso.com"]  # the shipped example row
    assert WATCHLIST_PREFIX + "CertificateBrands" in tables
