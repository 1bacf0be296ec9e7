"""``rules export --format F``: one function per format, from rules to files (a table of them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trustwatch.errors import InputError
from trustwatch.export import defender, sentinel
from trustwatch.export.exclusions import rule_columns, with_exclusions
from trustwatch.export.guides import guide_files
from trustwatch.export.model import ExportFile, ExportResult, Note
from trustwatch.export.names import unique_stems
from trustwatch.export.platforms import FORMAT_TARGETS, TARGETS, convert, query_text
from trustwatch.export.playbook import export_playbooks
from trustwatch.export.sigma import sigma_export, sigma_text
from trustwatch.export.watchlists import builtin_watchlists_data, tuning_watchlists
from trustwatch.rules.model import COMPANION_SUFFIXES, Rule
from trustwatch.rules.sentinel_schema import TEXT_LIMITS
from trustwatch.rules.tuning import Tuning

PACK_TEMPLATE = "trustwatch-pack.json"


def _stems(rules: Sequence[Rule]) -> list[str]:
    return unique_stems((r.name, r.id) for r in rules)


def export_sentinel_yaml(rules: Sequence[Rule], tuning: Tuning) -> ExportResult:
    result = ExportResult()
    for rule, stem in zip(rules, _stems(rules), strict=True):
        result.files += sentinel.sentinel_files(rule, stem)
        result.files += guide_files(rule, stem)
    result.stdout = "".join(
        "---\n" + f.text for f in result.files if not f.name.endswith(COMPANION_SUFFIXES)
    )
    return result


def export_arm(rules: Sequence[Rule], tuning: Tuning) -> ExportResult:
    watchlists = [*builtin_watchlists_data(rules), *tuning_watchlists(tuning)]
    result = ExportResult()
    kept = []
    for rule, stem in zip(rules, _stems(rules), strict=True):
        if not sentinel.GUID.match(rule.id):  # written into the template's expressions
            message = f"id '{rule.id}' is not a GUID, which Sentinel names alert rules by"
            result.notes.append(Note(rule.name, message, "skipped"))
            continue
        kept.append(rule)
        template = sentinel.arm_template([rule], watchlists)
        result.files.append(ExportFile(f"{stem}.json", sentinel.json_text(template)))
    pack = sentinel.json_text(sentinel.arm_template(kept, watchlists))
    result.files.append(ExportFile(PACK_TEMPLATE, pack))
    result.stdout = pack
    return result


def export_defender(rules: Sequence[Rule], tuning: Tuning) -> ExportResult:
    from trustwatch.api import Session

    session = Session(tuning.tables())
    result = ExportResult()
    bodies = []
    for rule, stem in zip(rules, _stems(rules), strict=True):
        columns = defender.output_columns(rule, session)
        body = defender.detection_rule(rule, columns or ())
        bodies.append(body)
        result.files.append(ExportFile(f"{stem}.json", sentinel.json_text(body)))
        result.notes += defender.detection_notes(rule, columns)
    result.stdout = sentinel.json_text(bodies)
    return result


def export_sigma(rules: Sequence[Rule], tuning: Tuning) -> ExportResult:
    result = ExportResult()
    everything = []
    for rule, stem in zip(rules, _stems(rules), strict=True):
        export = sigma_export(rule)
        result.notes += export.notes
        if export.documents:
            result.files.append(ExportFile(f"{stem}.yml", sigma_text(export.documents)))
            everything += export.documents
    result.stdout = sigma_text(everything) if everything else ""
    return result


def _platform(fmt: str) -> Callable[[Sequence[Rule], Tuning], ExportResult]:
    def export(rules: Sequence[Rule], tuning: Tuning) -> ExportResult:
        result = ExportResult()
        for rule, stem in zip(rules, _stems(rules), strict=True):
            sigma = sigma_export(rule)
            result.notes += [n for n in sigma.notes if n.kind == "skipped"]
            for target in FORMAT_TARGETS[fmt]:
                queries, notes = convert(sigma, target)
                result.notes += notes
                if queries:
                    text = query_text(queries, target)
                    result.files.append(ExportFile(stem + TARGETS[target].suffix, text))
                    result.stdout += text
        return result

    return export


FORMATS: Mapping[str, Callable[[Sequence[Rule], Tuning], ExportResult]] = {
    "sentinel-yaml": export_sentinel_yaml,
    "arm": export_arm,
    "defender": export_defender,
    "sigma": export_sigma,
    "splunk": _platform("splunk"),
    "elastic": _platform("elastic"),
    "playbook": export_playbooks,
}


# the formats whose rules carry their KQL query: the tuning exclusions can be written into it
KQL_FORMATS = ("sentinel-yaml", "arm", "defender")


def export_rules(
    rules: Sequence[Rule],
    fmt: str,
    tuning: Tuning | None = None,
    *,
    apply_exclusions: bool = False,
) -> ExportResult:
    """Every rule in format ``fmt`` (a key of :data:`FORMATS`); tuning for the ARM watchlists,
    and, with ``apply_exclusions``, written into each rule's query (:mod:`.exclusions`).

    Raises:
        InputError: ``apply_exclusions`` for a format that does not carry KQL.
    """
    tuning = tuning or Tuning()
    if apply_exclusions:
        if fmt not in KQL_FORMATS:
            raise InputError(
                f"--apply-exclusions writes the exclusions into KQL queries: not for {fmt}",
                hint=f"use it with --format {', '.join(KQL_FORMATS)}",
            )
        from trustwatch.api import Session

        rules, notes = _with_exclusions(rules, tuning, Session(tuning.tables()))
        result = FORMATS[fmt](rules, tuning)
        result.notes[:0] = notes
        return result
    return FORMATS[fmt](rules, tuning)


def _with_exclusions(
    rules: Sequence[Rule], tuning: Tuning, session: Any
) -> tuple[list[Rule], list[Note]]:
    """Each rule with the exclusions in its query (each compiled once in ``session``: the
    columns it returns); a rule the exclusions would take past Sentinel's query length keeps
    its query as it is, with a note."""
    limit = TEXT_LIMITS["query"][1]
    out, notes = [], []
    for rule in rules:
        excluded = with_exclusions(rule, tuning, rule_columns(rule, session))
        if len(excluded.query) > limit:
            message = (
                f"the tuning exclusions would make the query {len(excluded.query)} characters "
                f"long, over Sentinel's {limit}: written without them (apply them in Sentinel, "
                "e.g. with the TrustwatchExclusions watchlist of the arm format)"
            )
            notes.append(Note(rule.name, message))
            excluded = rule
        out.append(excluded)
    return out, notes
