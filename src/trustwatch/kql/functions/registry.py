"""The scalar function table and the helpers every function module shares.

Semantics follow https://learn.microsoft.com/kusto/query/scalar-functions ; a function missing
from :data:`FUNCTIONS` is an error naming it, never a silent NULL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.semantics import (
    Typed,
    check_regex,
)

if TYPE_CHECKING:
    from trustwatch.kql.expressions import ExprCompiler

Handler = Callable[["ExprCompiler", ast.Call], Typed]
FUNCTIONS: dict[str, Handler] = {}

# Defender XDR's enrichment functions answer from Microsoft's cloud; nothing local can.
# https://learn.microsoft.com/defender-xdr/advanced-hunting-fileprofile-function
DEFENDER_CLOUD_FUNCTIONS = frozenset(
    {"FileProfile", "DeviceFromIP", "AssignedIPAddresses", "SeenBy"}
)

# Documented Kusto functions we refuse with a clear error rather than guess at.
KNOWN_UNSUPPORTED = frozenset(
    {
        "geo_info_from_ip_address",
        "parse_user_agent",
        "hash",
        "hash_xxhash64",
        "hash_many",
        "hash_combine",
        "series_decompose_forecast",
        "series_fit_line",
        "series_fit_2lines",
        "series_fit_poly",
        "series_fft",
        "series_ifft",
        "series_periods_detect",
        "series_periods_validate",
        "extentid",
        "weekofyear",
        "current_cursor",
        "series_decompose_anomalies",
        "series_decompose",
        "series_stats",
        "series_fir",
        "datetime_local_to_utc",
        "datetime_utc_to_local",
        "parse_xml",
        "dcount_hll",
        "hll_merge",
        "estimate_data_size",
        "cursor_after",
        "current_cluster_endpoint",
        "extent_id",
        "geo_distance_2points",
        "zip",
        "treepath",
        "bag_unpack",
        "cursor_current",
        "percentile_tdigest",
    }
)

# Why some of them are refused, given as the error's hint.
UNSUPPORTED_REASONS = {
    # Microsoft documents xxhash64, but its published values (hash("World") is
    # 1846988464401551951, https://learn.microsoft.com/kusto/query/hash-function) are not XXH64
    # of the text's UTF-8 or UTF-16 bytes under any small seed: Kusto hashes its own encoding of
    # the value, which trustwatch cannot reproduce, and a different hash would silently change
    # every sampling and bucketing query built on it
    "hash": "Kusto's hash values come from its own encoding of the value, which trustwatch "
    "cannot reproduce; use hash_sha256() or hash_md5() when any stable hash will do",
}
# Kusto matches the user agent against "a huge number of predefined patterns"
# (https://learn.microsoft.com/kusto/query/parse-user-agent-function); its fields (Family,
# MajorVersion, ..., Brand, Model) are those of the uap-core rule set, but which version and
# order of patterns it uses is not published, and trustwatch ships no such table
UNSUPPORTED_REASONS["parse_user_agent"] = (
    "Kusto names browsers, operating systems and devices from a large table of patterns it "
    "does not publish, and trustwatch ships none; extract() on the user agent string can "
    "stand in for a known pattern"
)
# weekofyear() is week_of_year()'s deprecated name but not the same numbering: "the first week
# of a year was defined as the week with the year's first Wednesday in it", not ISO 8601's first
# Thursday (https://learn.microsoft.com/kusto/query/week-of-year-function); the page does not
# say on which day its weeks began, so its numbers cannot be reproduced (with Monday weeks, every
# week of a year starting on a Thursday, 2026 among them, would differ by one)
UNSUPPORTED_REASONS["weekofyear"] = (
    "the deprecated weekofyear() numbered weeks from the year's first Wednesday, in weeks "
    "Microsoft does not describe; week_of_year() gives ISO 8601 week numbers"
)
for _name in ("hash_xxhash64", "hash_many", "hash_combine"):
    UNSUPPORTED_REASONS[_name] = UNSUPPORTED_REASONS["hash"]

# Functions that return several columns, assigned as ``extend (a, b, c) = f(...)``
# (Microsoft's analyzer, Functions.cs in github.com/microsoft/Kusto-Query-Language).
TUPLE_FUNCTIONS = frozenset(
    {
        "series_decompose",
        "series_decompose_anomalies",
        "series_decompose_forecast",
        "series_fit_line",
        "series_fit_2lines",
        "series_fit_poly",
        "series_stats",
        "series_fft",
        "series_ifft",
        "series_periods_detect",
        "series_periods_validate",
    }
)

_EPOCH_0001_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z in microseconds since 1970


def register(*names: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for name in names:
            FUNCTIONS[name] = fn
        return fn

    return deco


def _error(node: ast.Node, message: str, code: str = "KQL205") -> KqlSemanticError:
    return KqlSemanticError(message, span=node.span, code=code)


def _regex_arg(t: Typed, node: ast.Node) -> None:
    """Validate a constant regular expression argument where it is written."""
    if t.is_constant and isinstance(t.constant, str):
        check_regex(t.constant, node.span)


def _const_str(t: Typed, node: ast.Node, what: str) -> str:
    if not (t.is_constant and isinstance(t.constant, str)):
        raise _error(node, f"{what} must be a constant string")
    return t.constant
