"""Sigma rules as trustwatch rules: convert, check that each compiles, account for the rest.

``load_sigma(paths)`` converts every Sigma file named and makes each converted rule a
``Rule`` of pack ``sigma``; :func:`runnable` then keeps the rules whose KQL compiles against a
hunt's catalog. Every rule left out is a :class:`~trustwatch.sigma.convert.Failure`, so a
caller can say how many failed for each reason (:func:`reason_counts`) and list each one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from trustwatch.errors import RuleFileError, TrustwatchError
from trustwatch.rules.model import Rule
from trustwatch.rules.runner import Hunter
from trustwatch.sigma import coverage
from trustwatch.sigma.convert import Failure, convert_file, sigma_files
from trustwatch.sigma.document import to_rule

_QUOTED = re.compile(r"'[^']{4,}'")  # names and values; short quotes are operators ('in')


@dataclass(slots=True)
class SigmaSet:
    """Converted Sigma rules, and every rule that was left out with its reason."""

    rules: list[Rule] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    files: int = 0

    def unfilled(self) -> dict[str, tuple[str, list[str]]]:
        """Rule id -> (table, columns it reads that ingest of Windows logs never fills)."""
        out: dict[str, tuple[str, list[str]]] = {}
        for rule in self.rules:
            table, columns = coverage.unfilled(rule.query)
            if columns:
                out[rule.id] = (table, columns)
        return out


def load_sigma(selectors: Iterable[str | Path]) -> SigmaSet:
    """Convert the Sigma rules in these files and folders (recursively, *.yml / *.yaml).

    Raises:
        RuleFileError: a path that does not exist, or a folder without Sigma files. What
            goes wrong inside a file is a failure of the set, never an exception.
    """
    found = SigmaSet()
    owners: dict[str, Path] = {}
    for path in sigma_files(selectors):
        found.files += 1
        result = convert_file(path)
        found.failures.extend(result.failures)
        for converted in result.converted:
            try:
                rule = to_rule(converted)
            except RuleFileError as exc:  # a value rule_from_doc refuses
                reason = "not a valid Sentinel rule once converted"
                detail = exc.diagnostic.message
                found.failures.append(
                    Failure(path, "convert", reason, detail, converted.title, converted.sigma_id)
                )
                continue
            owner = owners.setdefault(rule.id, path)
            if owner != path or any(r.id == rule.id for r in found.rules if r.path == path):
                found.failures.append(
                    Failure(
                        path,
                        "convert",
                        "a Sigma id used twice",
                        f"id {rule.id} is also the id of a rule in {owner}",
                        converted.title,
                    )
                )
                continue
            found.rules.append(rule)
    return found


def runnable(hunter: Hunter, found: SigmaSet) -> SigmaSet:
    """The rules of ``found`` whose query compiles for this hunter's session; the others
    join the failures (stage ``compile``). The compiled form is kept by the hunter's cache."""
    kept = SigmaSet([], list(found.failures), found.files)
    for rule in found.rules:
        try:
            hunter.compile(rule)
        except TrustwatchError as exc:
            message = exc.diagnostic.message
            reason = "KQL does not compile here: " + _QUOTED.sub("'...'", message)
            kept.failures.append(Failure(rule.path, "compile", reason, message, rule.name))
            continue
        kept.rules.append(rule)
    return kept


def reason_counts(failures: Iterable[Failure]) -> list[tuple[str, int]]:
    """(reason, rules) for each distinct reason, the most frequent first."""
    counts = Counter(f.reason for f in failures)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def report_lines(found: SigmaSet, verbose: bool = False) -> list[str]:
    """What a hunt says about its Sigma rules (stderr): how many run, one line per reason
    the others do not (with ``verbose``, one line per rule), and the columns read that the
    ingest of Windows logs never fills."""
    failed = len(found.failures)
    lines = [
        f"sigma: {found.files} file(s), {len(found.rules)} rule(s) converted and compiled, "
        f"{failed} not run" + (":" if failed else "")
    ]
    for reason, count in reason_counts(found.failures):
        lines.append(f"  {count} x {reason}")
        if verbose:
            lines.extend(
                f"    {f.path}" + (f" ({f.title})" if f.title else "") + f": {f.detail}"
                for f in found.failures
                if f.reason == reason
            )
    unfilled = found.unfilled()
    if unfilled:
        columns = Counter(c for _, names in unfilled.values() for c in names)
        common = ", ".join(f"{c} ({n})" for c, n in columns.most_common(5))
        lines.append(
            f"sigma: {len(unfilled)} rule(s) read columns that trustwatch's ingest of Windows "
            f"event logs never fills (such a condition can hold only on Defender or Sentinel "
            f"exports): {common}" + (", ..." if len(columns) > 5 else "")
        )
        if verbose:
            by_id = {rule.id: rule for rule in found.rules}
            for rule_id, (table, names) in unfilled.items():
                rule = by_id[rule_id]
                lines.append(f"    {rule.path} ({rule.name}): {table} {', '.join(names)}")
    return lines
