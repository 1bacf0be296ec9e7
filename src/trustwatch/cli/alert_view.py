"""The hunt's terminal view: incidents, each with its alerts under it, laid out for the width.

Columns are chosen by the width they need (``choose_columns``): time, severity, rule and "why"
(what fired: the registry key, file or command line) always; device, thumbprint, account,
process, store and certificate as room allows, in that order. A token column (time,
thumbprint, device, account, process, store) is never wrapped, so a thumbprint, a time or a
path is never split across lines; a rule name wraps between words; "why" is shortened in the
middle, whole space-separated tokens kept from both ends (``shorten_middle``); "certificate"
is the verdict with the certificate's CN, or the verdict alone when that does not fit (the
incident's header names each certificate's verdict and CN). ``wide`` shows
every column at full width (the layout used into a pipe or file); ``columns`` names them.

Every value comes from the logs or rule files and is shown inert (``render.cell``: escapes
visible, no markup).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from trustwatch.incidents import parse_time, thumbprints_of
from trustwatch.inert import visible
from trustwatch.records import SecurityAlert, SecurityIncident

ELLIPSIS = "…"
GAP = 2  # the space between two columns (one cell of padding each side, no box)
INDENT = 2  # alerts are indented under their incident
WIDE = 100_000  # the width a wide table may take


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the alert table: how to get its text and how it may be laid out."""

    get: Callable[[SecurityAlert, bool], str]  # (alert, full date?) -> raw text
    # "token": never wrapped; "words": wraps between words; "why": middle-shortened; "verdict":
    # never wrapped, the verdict alone when "verdict (CN)" is wider than the column
    kind: str
    cap: int = 0  # words: the width it grows to at most (0: its widest value)
    least: int = 0  # the narrowest it is shown at
    comfort: int = 0  # the width it gets before optional columns are added


def _first(row: Mapping[str, object], *names: str) -> str:
    for name in names:
        value = row.get(name)
        if value not in (None, ""):
            return str(value)
    return ""


def _time(alert: SecurityAlert, full: bool) -> str:
    at = parse_time(alert.start_time)
    return at.strftime("%Y-%m-%d %H:%M:%S" if full else "%H:%M:%S")


def _account(alert: SecurityAlert, _: bool) -> str:
    row = alert.main_row
    name = _first(row, "AccountName", "InitiatingProcessAccountName")
    domain = _first(row, "AccountDomain", "InitiatingProcessAccountDomain")
    return f"{domain}\\{name}" if domain and name else name


def _process(alert: SecurityAlert, _: bool) -> str:
    # the whole image path: a name cut at its last backslash could hide what precedes it
    return _first(
        alert.main_row, "ProcessPath", "InitiatingProcessFolderPath", "InitiatingProcessFileName"
    )


def _store(alert: SecurityAlert, _: bool) -> str:
    return _first(alert.main_row, "CertStore", "CertStoreType")


def _certificate(alert: SecurityAlert, _: bool) -> str:
    """The worst certificate verdict, with that certificate's subject CN when it has one."""
    worst = alert.certificate_verdict
    if not alert.certificates:
        return ""
    chosen = next((c for c in alert.certificates if c.get("verdict") == worst), None)
    chosen = chosen or alert.certificates[0]
    subject = str(chosen.get("subject") or "")
    cn = subject.split("CN=", 1)[1].split(",")[0] if "CN=" in subject else ""
    return f"{worst} ({cn})" if cn else worst


def why(alert: SecurityAlert) -> str:
    """What made the alert fire: the registry key written, the file written, the command, or
    (rules over Security-log changes, with no process) the change's detail."""
    row = alert.main_row
    if row.get("RegistryKey"):
        return str(row["RegistryKey"])
    if row.get("FileActions") and row.get("FolderPath"):
        return str(row["FolderPath"])
    return _first(row, "ProcessCommandLine", "ScriptExcerpt", "SearchedText", "RemoteUrl", "Detail")


COLUMNS: Mapping[str, Column] = {
    "time": Column(_time, "token"),
    "severity": Column(lambda a, _: a.alert_severity, "token"),
    "rule": Column(lambda a, _: a.alert_name, "words", cap=40, least=24, comfort=40),
    "device": Column(lambda a, _: a.compromised_entity or "(no device name)", "token"),
    "account": Column(_account, "token"),
    "process": Column(_process, "token"),
    "store": Column(_store, "token"),
    "thumbprint": Column(lambda a, _: ", ".join(thumbprints_of(a)), "token"),
    "certificate": Column(_certificate, "verdict", cap=40, least=len("certificate")),
    "why": Column(lambda a, _: why(a), "why", least=48, comfort=64),
}
ALWAYS = ("time", "severity", "rule", "why")
OPTIONAL = ("thumbprint", "certificate", "store", "account", "process", "device")
# narrower than this (time, severity, rule and why at their least), "why" goes on a line of its
# own under the rule: time, severity and rule side by side, the rest of the width the rule's
STACK_BELOW = 8 + 8 + 24 + 48 + 3 * 2
ORDER = tuple(COLUMNS)  # the order columns are shown in


_SEPARATOR = re.compile(r"([\\/])")


def _compact_path(token: str, drop_head: bool = False) -> str | None:
    """``token`` with one more middle component of its path replaced by ``…``; ``None``
    when nothing is left to take out (``C:\\a\\b\\c.exe`` -> ``C:\\…\\b\\c.exe`` ->
    ``C:\\…\\c.exe``; with ``drop_head``, then ``…\\c.exe``)."""
    parts = _SEPARATOR.split(token)  # [part, sep, part, sep, ...]
    names = parts[0::2]
    seps = parts[1::2]
    if len(names) < 3:
        return None
    if names[1] != ELLIPSIS:
        names[1] = ELLIPSIS
    elif len(names) > 3:
        del names[2]
        del seps[2]
    elif drop_head and names[0] != ELLIPSIS:
        quote = '"' if names[0].startswith('"') else ""
        return quote + ELLIPSIS + seps[1] + names[2]
    else:
        return None
    return "".join(n + (seps[i] if i < len(seps) else "") for i, n in enumerate(names))


def _compact_tokens(tokens: list[str], width: int) -> None:
    """Shorten the longest path tokens, middle folders first, until the tokens fit."""
    for drop_head in (False, True):
        while len(" ".join(tokens)) > width:
            for i in sorted(range(len(tokens)), key=lambda i: -len(tokens[i])):
                compacted = _compact_path(tokens[i], drop_head)
                if compacted is not None:
                    tokens[i] = compacted
                    break
            else:
                break


def shorten_middle(text: str, width: int) -> str:
    """``text`` in ``width`` characters, shortened in the middle with ``…``.

    First the longest path tokens lose their middle folders (``C:\\…\\Temp\\x.cer``, a
    thumbprint or file name at the end kept whole), then whole space-separated tokens are
    left out from the middle, the first (the program) and the last kept longest. A text whose
    first token still does not fit is cut inside, keeping its start and end.
    """
    if len(text) <= width:
        return text
    tokens = text.split(" ")
    _compact_tokens(tokens, width)
    if len(" ".join(tokens)) <= width:
        return " ".join(tokens)
    head: list[str] = []
    tail: list[str] = []
    low, high = 0, len(tokens) - 1
    turn_head = True
    while low <= high:
        candidate = tokens[low] if turn_head else tokens[high]
        trial_head = [*head, candidate] if turn_head else head
        trial_tail = tail if turn_head else [candidate, *tail]
        if len(" ".join([*trial_head, ELLIPSIS, *trial_tail])) > width:
            break
        head, tail = trial_head, trial_tail
        if turn_head:
            low += 1
        else:
            high -= 1
        turn_head = not turn_head
    if head:
        return " ".join([*head, ELLIPSIS, *tail])
    keep = max(width - 1, 0)
    return text[: keep - keep // 2] + ELLIPSIS + (text[len(text) - keep // 2 :] if keep else "")


def _natural(name: str, alerts: Sequence[SecurityAlert], full: bool) -> int:
    widest = max((len(visible(COLUMNS[name].get(a, full))) for a in alerts), default=0)
    return max(widest, len(name))


def choose_columns(
    alerts: Sequence[SecurityAlert],
    width: int,
    full: bool,
    required: Sequence[str] = ALWAYS,
    optional: Sequence[str] = OPTIONAL,
) -> dict[str, int]:
    """Columns and their widths for a table ``width`` characters wide (module docstring).

    The ``required`` columns come first, a token column at its widest value, a text column at
    its least; each ``optional`` column with a value follows if it fits; what is left widens
    rule, certificate and why, in that order, up to their widest value (rule's up to 40).
    """
    natural = {n: _natural(n, alerts, full) for n in (*required, *optional)}

    def least(name: str) -> int:
        column = COLUMNS[name]
        return natural[name] if column.kind == "token" else min(natural[name], column.least)

    widths = {name: least(name) for name in required}

    def grow(names: Sequence[str], limit: Callable[[str], int]) -> None:
        for name in names:
            spare = width - _total(widths)
            if name in widths and spare > 0:
                widths[name] += min(max(limit(name) - widths[name], 0), spare)

    grow(("rule", "why"), lambda n: min(COLUMNS[n].comfort, natural[n]))
    for name in optional:
        fits = _total(widths) + GAP + least(name) <= width
        if fits and any(COLUMNS[name].get(a, full) for a in alerts):
            widths[name] = least(name)
    grow(("why", "certificate", "rule"), lambda n: min(COLUMNS[n].cap or natural[n], natural[n]))
    return {n: widths[n] for n in ORDER if n in widths}


def _total(widths: Mapping[str, int]) -> int:
    return sum(widths.values()) + GAP * max(len(widths) - 1, 0)


@dataclass(frozen=True, slots=True)
class Layout:
    """The columns of an alert table and their widths; ``widths=None``: all, unbounded."""

    widths: Mapping[str, int] | None
    stacked: bool = False  # "why" on its own line under the rule
    beyond: bool = False  # wider than the screen (--columns that do not fit): never cropped
    # no incident header above (--no-grouping): the device is a column, or starts the line
    # under a stacked rule
    flat: bool = False


# the narrowest a shortened or wrapped column becomes when chosen columns do not fit
FLOOR = {"why": 12, "rule": 12, "certificate": len("certificate")}


def _fitted(widths: dict[str, int], width: int) -> Layout:
    """Chosen columns in ``width``: "why", then rule and certificate, narrowed down to their
    floor; tokens (times, thumbprints, paths) keep their full width, so a table that still
    does not fit is laid out wider than the screen instead of cutting them."""
    for name in ("why", "rule", "certificate"):
        excess = _total(widths) - width
        if excess > 0 and name in widths:
            widths[name] = max(widths[name] - excess, min(widths[name], FLOOR[name]))
    return Layout(widths, beyond=_total(widths) > width)


def layout(
    alerts: Sequence[SecurityAlert],
    width: int,
    full: bool,
    *,
    wide: bool = False,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    flat: bool = False,
) -> Layout:
    """How to lay the alerts out in ``width`` characters (module docstring)."""
    if columns:
        if wide:
            return Layout({n: _natural(n, alerts, full) for n in columns})
        chosen = choose_columns(alerts, width, full, required=columns, optional=())
        return _fitted({n: chosen[n] for n in columns}, width)  # in the order asked for
    if wide:
        return Layout(None)
    required = (*ALWAYS, "device") if flat else ALWAYS  # flat: no header names the device
    optional = [n for n in OPTIONAL if n not in exclude and n not in required]
    side = choose_columns(alerts, width, full, required=required, optional=optional)
    if _total(side) <= width:
        return Layout(side, flat=flat)
    widths = {n: _natural(n, alerts, full) for n in ("time", "severity")}
    rest = max(width - _total(widths) - GAP, COLUMNS["rule"].least)
    return Layout({**widths, "rule": rest}, stacked=True, flat=flat)


def alert_table(alerts: Sequence[SecurityAlert], plan: Layout, full: bool) -> Table:
    """The alerts as a table laid out by ``plan``."""
    grid = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    widths = plan.widths
    names = list(widths) if widths is not None else list(ORDER)
    for name in names:
        kind = COLUMNS[name].kind
        grid.add_column(
            "rule / why" if plan.stacked and name == "rule" else name,
            width=widths[name] if widths is not None else None,
            no_wrap=kind != "words" or widths is None,
            overflow="ellipsis",
        )
    for alert in alerts:
        cells = []
        for name in names:
            text = visible(COLUMNS[name].get(alert, full))
            if widths is not None and COLUMNS[name].kind == "why":
                text = shorten_middle(text, widths[name])
            elif (
                widths is not None and COLUMNS[name].kind == "verdict" and len(text) > widths[name]
            ):  # the CN is in the incident's header (--no-grouping: --wide or --columns shows it)
                text = visible(alert.certificate_verdict)
            cells.append(Text(text))
        grid.add_row(*cells)
        if plan.stacked and widths is not None:
            room = widths["rule"]
            device = visible(alert.compromised_entity or "(no device name)") if plan.flat else ""
            if device and len(device) + GAP + 12 <= room:
                reason = (
                    f"{device}  {shorten_middle(visible(why(alert)), room - len(device) - GAP)}"
                )
            else:
                reason = device or shorten_middle(visible(why(alert)), room)
            grid.add_row(*([Text("")] * (len(names) - 1)), Text(reason, style="dim"))
    return grid


def _span(incident: SecurityIncident) -> tuple[str, bool]:
    first, last = parse_time(incident.first_activity_time), parse_time(incident.last_activity_time)
    same_day = first.date() == last.date()
    end = last.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
    return f"{first:%Y-%m-%d %H:%M:%S} to {end} UTC", not same_day


def _classified(thumbprint: str, alerts: Sequence[SecurityAlert]) -> str:
    """``thumbprint (verdict: CN)`` as enrichment classified it; the thumbprint alone if not."""
    for alert in alerts:
        for cert in alert.certificates or ():
            if str(cert.get("thumbprint") or "").upper() == thumbprint.upper() and cert.get(
                "verdict"
            ):
                subject = str(cert.get("subject") or "")
                cn = subject.split("CN=", 1)[1].split(",")[0] if "CN=" in subject else ""
                return f"{thumbprint} ({cert['verdict']}{': ' + cn if cn else ''})"
    return thumbprint


def incident_header(incident: SecurityIncident) -> list[Text]:
    """The lines above an incident's alerts: number, severity, title, id, chain, story."""
    span, _ = _span(incident)
    count = len(incident.alerts)
    entities = incident.entities
    lines = [
        Text.assemble(
            (f"Incident {incident.incident_number}", "bold"),
            "  ",
            (incident.severity, "bold red" if incident.severity == "High" else "bold"),
            f"  {count} alert{'s' if count != 1 else ''}  {span}",
        ),
        Text(visible(incident.title), style="bold"),
        Text(f"id {incident.incident_name}", style="dim"),
    ]
    chain = " -> ".join(
        f"{s.technique} {s.phase}".strip() if s.phase else s.technique for s in incident.chain
    )
    if chain:
        lines.append(Text(f"ATT&CK: {visible(chain)}"))
    for label, values in (
        ("devices", entities.devices),
        ("accounts", entities.accounts),
        ("certificates", [_classified(t, incident.alerts) for t in entities.certificates]),
        ("files", entities.files),
    ):
        if values:
            lines.append(Text(f"{label}: " + "  ".join(visible(v) for v in values)))
    lines.append(Text(visible(incident.description)))
    return lines


def _print_table(console: Console, table: Padding | Table, wide: bool) -> None:
    """A table; a wide one at its full width, past the console's (lines are not cut)."""
    if wide:  # Console.print never goes past the console's width: a wider one, same file
        wider = Console(
            file=console.file,
            width=WIDE,
            force_terminal=console.is_terminal,
            color_system=console.color_system,  # type: ignore[arg-type]
            no_color=console.no_color,
            emoji=False,
        )
        wider.print(table, crop=False)
    else:
        console.print(table)


def print_incidents(
    console: Console,
    incidents: Sequence[SecurityIncident],
    *,
    wide: bool = False,
    columns: Sequence[str] | None = None,
) -> None:
    """Each incident's header, then its alerts' table, indented; then the count."""
    for incident in incidents:
        _, full = _span(incident)
        alone = () if len(incident.entities.devices) > 1 else ("device",)
        plan = layout(
            incident.alerts, console.width - INDENT, full, wide=wide, columns=columns, exclude=alone
        )
        console.print(Group(*incident_header(incident)))
        _print_table(
            console,
            Padding(alert_table(incident.alerts, plan, full), (0, 0, 1, INDENT), expand=False),
            wide or plan.beyond,
        )
    alerts = sum(len(i.alerts) for i in incidents)
    console.print(
        f"{alerts} alert{'s' if alerts != 1 else ''} in {len(incidents)} "
        f"incident{'s' if len(incidents) != 1 else ''}",
        style="dim",
    )


def print_alerts(
    console: Console,
    alerts: Sequence[SecurityAlert],
    *,
    wide: bool = False,
    columns: Sequence[str] | None = None,
) -> None:
    """The alerts as one table, without grouping (``hunt --no-grouping``)."""
    plan = layout(alerts, console.width, True, wide=wide, columns=columns, flat=True)
    _print_table(console, alert_table(alerts, plan, True), wide or plan.beyond)
    console.print(f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}", style="dim")


CSV_COLUMNS = (
    "time",
    "rule",
    "severity",
    "device",
    "account",
    "process",
    "store",
    "thumbprint",
    "certificate",
    "incident",
    "why",
)


def csv_cells(alert: SecurityAlert, incident: str = "") -> dict[str, str]:
    """One alert's CSV row: its summary columns (exact values, full paths) and its incident."""
    row = alert.main_row
    return {
        "time": alert.start_time,
        "rule": alert.alert_name,
        "severity": alert.alert_severity,
        "device": _first(row, "DeviceName") or "(no device name)",
        "account": _account(alert, True),
        "process": _first(
            row,
            "ProcessPath",
            "InitiatingProcessFolderPath",
            "InitiatingProcessFileName",
            "FolderPath",
        ),
        "store": _store(alert, True),
        "thumbprint": _first(row, "CertThumbprint"),
        "certificate": _certificate(alert, True),
        "incident": incident,
        "why": why(alert),
    }
