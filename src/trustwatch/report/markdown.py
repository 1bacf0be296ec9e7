"""The report as Markdown for a ticket: the same content as the HTML, every value neutralised.

CommonMark and GitHub-flavoured renderers turn raw HTML, links, autolinks, emphasis and table
pipes in text into markup, and log values may hold any of them. So:

- a value from the logs (device, path, command line, thumbprint, id) is a **code span**
  (:func:`code`): nothing inside one is markup. Its backtick fence is longer than any run of
  backticks in the value; in a table cell ``|`` is written ``\\|`` (GFM splits cells on it even
  in code spans, and reads ``\\|`` as the character);
- prose (a rule name, a narrative, a tuning description) is **escaped text** (:func:`text`):
  every ASCII punctuation character gets a backslash, so ``<b>``, ``[x](y)``, ``*``, ``&amp;`` and
  ``https://`` (the ``:``) render as the characters they are;
- queries, commands and narratives are **fenced blocks** (:func:`fence`) with a fence longer
  than any backtick run in them.

Line breaks in a value are shown as ``\\n`` where a single line is needed (table cells, spans),
and control or invisible characters as escapes (:func:`trustwatch.inert.visible`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence

from trustwatch.inert import visible
from trustwatch.report.model import AlertView, Grid, IncidentView, Report, Summary

_PUNCTUATION = frozenset(string.punctuation)
_BACKTICKS = re.compile(r"`+")
# a step's shell -> the fenced block's info string (a fixed set: the shell names come from files)
_INFO = {"kql": "kql", "powershell": "powershell", "cmd": "bat", "sh": "sh"}


def _line(value: object) -> str:
    """One line: line breaks shown as ``\\n``, tabs as spaces, unsafe characters visible."""
    raw = str(value).replace("\r\n", "\n").replace("\n", "\\n").replace("\t", " ")
    return visible(raw)


def text(value: object) -> str:
    """Prose, escaped: no character of it can start markup."""
    return "".join("\\" + c if c in _PUNCTUATION else c for c in _line(value))


def code(value: object, *, cell: bool = False) -> str:
    """A code span holding ``value`` exactly (on one line); ``""`` for an empty value."""
    body = _line(value)
    if not body.strip():
        return ""
    if cell:
        body = body.replace("|", "\\|")
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(body)), default=0)
    ticks = "`" * (longest + 1)
    return f"{ticks} {body} {ticks}"


def fence(value: str, info: str = "") -> str:
    """A fenced block holding ``value``'s lines as they are (unsafe characters visible)."""
    body = visible(value.replace("\r\n", "\n").rstrip("\n"), keep="\n\t")
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(body)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{body}\n{ticks}"


def table(columns: Sequence[str], rows: Iterable[Sequence[str]], *, prose: int = 0) -> str:
    """A GFM table; the first ``prose`` columns as escaped text, the others as code spans."""

    def cells(row: Sequence[str]) -> list[str]:
        return [text(v) if n < prose else code(v, cell=True) for n, v in enumerate(row)]

    lines = ["| " + " | ".join(text(c) for c in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def _grid(grid: Grid) -> list[str]:
    out = [table(grid.columns, grid.rows)]
    if grid.cut > 0:
        out.append(f"{grid.total} rows; the first {len(grid.rows)} shown.")
    return out


def _summary(s: Summary, incidents: Sequence[IncidentView]) -> list[str]:
    span = f"{s.span[0]} to {s.span[1]}" if s.span else "no timed rows"
    suppressed = sum(x.total for x in s.suppressions)
    severities = ", ".join(f"{n} {text(sev)}" for sev, n in s.severities)
    out = [
        f"# {text(s.title)}",
        "",
        f"Generated {text(s.generated)} by {code(s.command)}",
        "",
        "## Summary",
        "",
        f"- **Incidents**: {s.incidents}",
        f"- **Alerts**: {s.alerts}" + (f" ({severities})" if severities else ""),
        f"- **Data span**: {text(span)} ({text(s.mode)})",
        f"- **Devices in the data**: {len(s.devices)}",
        "- **Tables**: " + (", ".join(f"{text(n)} {rows}" for n, rows in s.tables) or "none"),
        f"- **Tuning**: {code(s.tuning)}, {suppressed} result(s) suppressed",
        "",
    ]
    if s.sources.rows:
        out += ["### Sources", "", *_grid(s.sources), ""]
    rules = [(r.name, str(r.runs), str(r.alerts), str(r.suppressed)) for r in s.rules]
    out += ["### Rules", "", table(("rule", "runs", "alerts", "suppressed"), rules, prose=1), ""]
    if s.suppressions:
        rows = [
            (
                x.exclusion,
                str(x.total),
                "; ".join(f"{n} x {rule}" for rule, n in x.detail),
                x.description,
            )
            for x in s.suppressions
        ]
        out += ["### Suppressed by tuning", ""]
        out += [table(("exclusion", "suppressed", "of rules", "why"), rows), ""]
    if incidents:
        out += ["### Incidents", ""]
        out += [
            f"{i.number}. {text(i.severity)}: {text(i.title)} ({len(i.alerts)} alert(s))"
            for i in incidents
        ]
        out.append("")
    return out


def _alert(a: AlertView) -> list[str]:
    out = [
        f"#### {text(a.severity)}: {text(a.name)}",
        "",
        f"- **Alert id**: {code(a.alert_id)}",
        f"- **Time**: {code(a.start)}",
        f"- **Device**: {code(a.device)}",
        f"- **ATT&CK**: {text(', '.join(a.techniques))} ({text(', '.join(a.tactics))})",
        f"- **Description**: {text(a.description)}",
    ]
    if a.verdict:
        out.append(f"- **Certificate verdict**: {text(a.verdict)}")
    if a.severity_reason:
        out.append(f"- **Severity**: {text(a.severity_reason)}")
    out.append("")
    for c in a.certificates:
        out += [f"Certificate {code(c.thumbprint)}: **{text(c.verdict)}**", ""]
        if c.subject:
            out.append(f"- Subject: {code(c.subject)}")
        out += [f"- {text(f.label)}: {text(f.evidence)}" for f in c.findings]
        out.append("")
    for n, grid in enumerate(a.evidence, 1):
        out += [f"Evidence row {n}:", "", table(("column", "value"), grid.rows, prose=1), ""]
    if a.triage:
        out += ["Triage questions:", ""]
        out += [f"{n}. {text(q)}" for n, q in enumerate(a.triage, 1)]
        out.append("")
    if a.steps:
        out += ["Playbook:", ""]
        for step in a.steps:
            out.append(f"- **{text(step.phase)}**: {text(step.title)}")
            if step.text:
                out += ["", fence(step.text, "text"), ""]
            if step.unfilled:
                out.append(f"  - not filled in: {text(step.unfilled)}")
            elif step.command:
                out += ["", fence(step.command, _INFO.get(step.shell, "text")), ""]
        out.append("")
    return out


def _incident(i: IncidentView) -> list[str]:
    chain = " -> ".join(f"{t} {p or tactic}" for t, tactic, p in i.chain)
    out = [
        f"## {i.number}. {text(i.title)}",
        "",
        f"- **Severity**: {text(i.severity)}, {len(i.alerts)} alert(s)",
        f"- **Incident id**: {code(i.incident_id)}",
        f"- **Activity**: {code(i.first)} to {code(i.last)}",
        f"- **ATT&CK chain**: {text(chain)}",
    ]
    for label, values in (
        ("Devices", i.devices),
        ("Accounts", i.accounts),
        ("Certificates", i.certificates),
        ("Files", i.files),
    ):
        if values:
            out.append(f"- **{label}**: " + ", ".join(code(v) for v in values))
    out += ["", "What happened:", "", fence(i.narrative, "text"), "", "### Alerts", ""]
    for a in i.alerts:
        out += _alert(a)
    if i.pivots:
        out += ["### Pivots", ""]
        for p in i.pivots:
            ids = ", ".join(code(short) for _, short in p.alert_anchors)
            out += [f"#### {text(p.title)} (alerts {ids})", ""]
            if p.skipped:
                out += [f"Not run: {text(p.skipped)}", ""]
                continue
            out += [fence(p.query, "kql"), ""]
            if p.grid is None or not p.grid.rows:
                out += ["No rows.", ""]
            else:
                out += [*_grid(p.grid), ""]
    return out


def render_markdown(report: Report) -> str:
    """The report as Markdown text."""
    out = _summary(report.summary, report.incidents)
    for incident in report.incidents:
        out += _incident(incident)
    out += ["## Noise: alerts per day per rule", ""]
    if report.noise is None:
        out += ["No rule raised an alert on any day.", ""]
    else:
        out += [table(report.noise.grid.columns, report.noise.grid.rows, prose=2), ""]
    out += [text(note) for note in report.notes]
    return "\n".join(out).rstrip("\n") + "\n"
