"""The watchlists a Sentinel deployment needs: ``CertificateIntel``, the brand and CA lists
when a deployed rule reads them, and the tuning file's.

The tuning exclusions become the ``TrustwatchExclusions`` watchlist: one row per exclusion,
condition and pattern, with the columns the condition reads and the glob as an anchored,
case-insensitive RE2 regular expression (Sentinel's ``matches regex``), so a query or an
automation rule can apply them with ``_GetWatchlist('TrustwatchExclusions')``.
"""

from __future__ import annotations

from collections.abc import Sequence

from trustwatch.export.sentinel import WatchlistData
from trustwatch.rules.model import Rule
from trustwatch.rules.tuning import FIELDS, Tuning, glob_regex

EXCLUSIONS_ALIAS = "TrustwatchExclusions"
EXCLUSION_COLUMNS = (
    "ExclusionId",
    "Rules",
    "Condition",
    "Columns",
    "Pattern",
    "Regex",
    "Watchlist",
    "WindowStart",
    "WindowEnd",
    "Description",
)


def intel_watchlist_data() -> WatchlistData:
    """The reference lists as ``CertificateIntel`` (SearchKey: Thumbprint), as
    ``trustwatch certs watchlist`` writes them."""
    from trustwatch.certs.intel import WATCHLIST_NAME, intel_watchlist, load_intel

    table = intel_watchlist(load_intel()).drop_columns(["SearchKey", "_DTItemId"])
    rows = tuple({k: str(v) for k, v in row.items()} for row in table.to_pylist())
    return WatchlistData(
        WATCHLIST_NAME,
        "Certificate reference lists of trustwatch: Microsoft roots, known-bad and free CAs",
        "Thumbprint",
        tuple(table.column_names),
        rows,
    )


def builtin_watchlists_data(rules: Sequence[Rule]) -> list[WatchlistData]:
    """``CertificateIntel``, then ``CertificateBrands`` and ``AutomatedCertificateAuthorities``
    when one of ``rules`` reads them (the look-alike network rule). ``ProtectedDomains`` is the
    tuning file's (``tuning_watchlists``)."""
    from trustwatch.certs import brands

    out = [intel_watchlist_data()]
    extra = {
        brands.BRANDS_WATCHLIST: (brands.brands_watchlist, "Key", "Brands look-alikes imitate"),
        brands.CAS_WATCHLIST: (
            brands.cas_watchlist,
            "Organisation",
            "Free and automated certificate authorities, by issuer organisation",
        ),
    }
    for alias, (build, key, description) in extra.items():
        if any(alias.lower() in rule.query.lower() for rule in rules):
            table = build().drop_columns(["SearchKey", "_DTItemId"])
            rows = tuple({k: str(v) for k, v in row.items()} for row in table.to_pylist())
            out.append(
                WatchlistData(
                    alias, f"trustwatch {description}", key, tuple(table.column_names), rows
                )
            )
    return out


def tuning_watchlists(tuning: Tuning) -> list[WatchlistData]:
    """The tuning file's own watchlists, then its exclusions as ``TrustwatchExclusions``."""
    out = [
        WatchlistData(
            w.name,
            f"trustwatch tuning watchlist {w.name}",
            w.search_key,
            tuple(w.rows[0]) if w.rows else (w.search_key,),
            w.rows,
        )
        for w in tuning.watchlists.values()
    ]
    if tuning.exclusions:
        out.append(_exclusions(tuning))
    return out


def _exclusions(tuning: Tuning) -> WatchlistData:
    rows: list[dict[str, str]] = []
    for exclusion in tuning.exclusions:
        windows = exclusion.windows or ()
        spans = [(w.start.isoformat(), w.end.isoformat()) for w in windows] or [("", "")]
        conditions = exclusion.when or {"": ("",)}
        for condition, patterns in conditions.items():
            for pattern in patterns:
                watchlist = pattern[10:] if pattern.lower().startswith("watchlist:") else ""
                for start, end in spans:
                    rows.append(
                        {
                            "ExclusionId": exclusion.id,
                            "Rules": ";".join(exclusion.rules),
                            "Condition": condition,
                            "Columns": ";".join(FIELDS.get(condition, ())),
                            "Pattern": pattern,
                            "Regex": "" if watchlist or not pattern else glob_regex(pattern),
                            "Watchlist": watchlist,
                            "WindowStart": start,
                            "WindowEnd": end,
                            "Description": exclusion.description,
                        }
                    )
    return WatchlistData(
        EXCLUSIONS_ALIAS,
        "trustwatch tuning exclusions: a row matches when every condition of its ExclusionId "
        "holds on one of its Columns",
        "ExclusionId",
        EXCLUSION_COLUMNS,
        tuple(rows),
    )
