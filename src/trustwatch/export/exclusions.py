"""Tuning exclusions written into a rule's KQL, for a platform that runs the query alone.

``trustwatch hunt`` applies a tuning file's exclusions to each rule's result rows
(:mod:`trustwatch.rules.tuning`). ``rules export --apply-exclusions`` writes the same test
into the exported query instead, one ``| where not(...)`` line per exclusion that applies to
the rule, so that Sentinel or Defender raise what ``hunt`` raises. Each line says, in KQL,
what :meth:`Tuning.suppressing` does in Python:

* the row's time (TimeGenerated, else Timestamp) inside one of the change windows, if any;
* every condition holds: one of its patterns (a case-insensitive glob, written as the anchored
  RE2 expression of :func:`~trustwatch.rules.tuning.glob_regex`, or ``watchlist:NAME``,
  matched against the watchlist's SearchKey in any case) matches one of its values;
* a condition's value comes from the first of its columns (``FIELDS``) that the row has and
  that is not empty (KQL's ``coalesce`` skips empty strings): the file name of a path for
  ``process_name``; the name, DOMAIN\\name and SID for ``account``; for ``signer``, the
  trusted signers DeviceFileCertificateInfo lists for the process's SHA1.

The columns a rule returns are known from compiling it (``columns``), so only those are
named; without them each is read with ``column_ifexists``. A condition's patterns make one
regular expression. Sentinel takes a query of at most 10,000 characters: the text stays short.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from trustwatch.kql.printer import quote_string
from trustwatch.rules.model import Rule
from trustwatch.rules.tuning import FIELDS, TIME_COLUMNS, Exclusion, Tuning, glob_regex

WATCHLIST = "watchlist:"
TIME = "tw_time"
ACCOUNT_DOMAIN = ("AccountDomain", "InitiatingProcessAccountDomain")
ACCOUNT_SID = ("AccountSid", "InitiatingProcessAccountSid")
Columns = Mapping[str, str]  # a rule's output columns: name -> KQL type


def with_exclusions(rule: Rule, tuning: Tuning, columns: Columns | None = None) -> Rule:
    """``rule`` whose query ends with the exclusions of ``tuning`` that apply to it.

    ``columns``: the columns the rule's query returns (name -> KQL type), if known (else each
    is read if it exists).
    """
    applying = [e for e in tuning.exclusions if e.applies_to(rule)]
    text = exclusions_kql(applying, columns)
    if not text:
        return rule
    return dataclasses.replace(rule, query=rule.query.rstrip() + "\n" + text)


def rule_columns(rule: Rule, session: Any) -> Columns | None:
    """The columns ``rule``'s query returns (name -> KQL type), compiled in ``session``; None
    when it does not compile there."""
    from trustwatch.errors import TrustwatchError

    try:
        statements, _ = session.compile(rule.runnable_query, source_name=str(rule.path))
    except TrustwatchError:
        return None
    return dict(statements[-1].columns) if statements else {}


def exclusions_kql(exclusions: list[Exclusion], columns: Columns | None = None) -> str:
    """The lines that leave out the rows ``exclusions`` suppress ("" for none).

    A value a condition reads that is not simply a text column of the row is computed once,
    as a ``tw_``-prefixed column; then one ``| where not(...)`` per exclusion; then the
    ``tw_`` columns are dropped again: the rule's output keeps its columns.
    """
    if not exclusions:
        return ""
    reader = _Reader(columns)
    lines = []
    for exclusion in exclusions:
        terms = []
        if exclusion.windows:
            when = reader.named(TIME, reader.first(TIME_COLUMNS, "datetime(null)"))
            spans = [f"{when} between ({_dt(w.start)} .. {_dt(w.end)})" for w in exclusion.windows]
            terms.append(_any(spans))
        terms += [reader.condition(c, patterns) for c, patterns in exclusion.when.items()]
        body = " and ".join(f"({t})" for t in terms) if terms else "true"
        lines += [f"// tuning exclusion {exclusion.id}", f"| where not({body})"]
    if not reader.values:
        return "\n".join([*lines, ""])
    extend = ", ".join(f"{name} = {value}" for name, value in reader.values.items())
    drop = f"| project-away {', '.join(reader.values)}"
    return "\n".join([f"| extend {extend}", *lines, drop, ""])


class _Reader:
    """What the conditions read; the ``tw_`` columns they need (``values``: name -> KQL)."""

    def __init__(self, columns: Columns | None) -> None:
        self.columns = columns
        self.values: dict[str, str] = {}

    def first(self, names: tuple[str, ...], empty: str = '""') -> str:
        """The first of ``names`` the row has that is not empty, or ``empty``."""
        text = empty == '""'
        if self.columns is None:
            found = [f"column_ifexists({quote_string(n)}, {empty})" for n in names]
            found = [f"tostring({f})" for f in found] if text else found
        else:
            found = [n for n in names if n in self.columns]
            if text:
                found = [n if self.columns[n] == "string" else f"tostring({n})" for n in found]
        if not found:
            return empty
        return found[0] if len(found) == 1 else f"coalesce({', '.join(found)})"

    def named(self, name: str, value: str) -> str:
        """``value`` by a name: itself when it is a column, else a ``tw_`` column."""
        if value.isidentifier() or value == '""':
            return value
        self.values[name] = value
        return name

    def condition(self, condition: str, patterns: tuple[str, ...]) -> str:
        """Some pattern matches some non-empty value of the row for ``condition``."""
        value = self.first(FIELDS[condition])
        if condition == "process_name":
            value = f'extract(@"([^\\\\/]*)$", 1, {value})'
        name = self.named(f"tw_{condition}", value)
        if condition == "signer":
            signed = (
                "DeviceFileCertificateInfo | where isnotempty(Signer) and IsTrusted"
                f" | where {_matches('Signer', patterns)} | project tolower(SHA1)"
            )
            return f"isnotempty({name}) and tolower({name}) in ({signed})"
        if condition != "account":
            return f"isnotempty({name}) and {_matches(name, patterns)}"
        # the name, DOMAIN\name and the SID: the last two beside a name only
        domain = self.named("tw_domain", self.first(ACCOUNT_DOMAIN))
        sid = self.named("tw_sid", self.first(ACCOUNT_SID))
        full = f'iff(isnotempty({domain}), strcat({domain}, @"\\", {name}), "")'
        return f"isnotempty({name}) and " + _any(
            [_matches(name, patterns), _matches(full, patterns), _matches(sid, patterns)]
        )


def _matches(value: str, patterns: tuple[str, ...]) -> str:
    """``value`` matches one of the glob patterns (one expression) or is in a watchlist."""
    globs = [p for p in patterns if not p.lower().startswith(WATCHLIST)]
    tests = []
    if globs:
        regexes = [glob_regex(p).removeprefix("(?is)^").removesuffix("$") for p in globs]
        joined = regexes[0] if len(regexes) == 1 else "(?:" + "|".join(regexes) + ")"
        tests.append(f"{value} matches regex {quote_string('(?is)^' + joined + '$')}")
    for pattern in patterns:
        if pattern.lower().startswith(WATCHLIST):
            name = quote_string(pattern[len(WATCHLIST) :])
            tests.append(f"{value} in~ (_GetWatchlist({name}) | project SearchKey)")
    return _any(tests)


def _any(terms: list[str]) -> str:
    return terms[0] if len(terms) == 1 else "(" + " or ".join(terms) + ")"


def _dt(value: datetime) -> str:
    return "datetime(" + value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + ")"
