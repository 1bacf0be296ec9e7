"""KQL literal text: datetime and timespan forms, their canonical output, and type names."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from trustwatch.kql.tokens import TIMESPAN_UNITS

# KQL type names and their aliases -> the canonical name.
# https://learn.microsoft.com/kusto/query/scalar-data-types/
TYPE_NAMES = {
    "string": "string",
    "int": "int",
    "long": "long",
    "real": "real",
    "double": "real",
    "decimal": "real",
    "bool": "bool",
    "boolean": "bool",
    "datetime": "datetime",
    "date": "datetime",
    "timespan": "timespan",
    "time": "timespan",
    "dynamic": "dynamic",
    "guid": "guid",
    "uniqueid": "guid",
}


def ticks_to_timedelta(ticks: int) -> timedelta:
    return timedelta(microseconds=ticks / 10)


def parse_datetime_text(raw: str) -> datetime:
    """Parse the text of a ``datetime(...)`` literal (ISO 8601 and RFC 822 forms) to aware UTC.

    https://learn.microsoft.com/kusto/query/scalar-data-types/datetime
    """
    text = raw.strip()
    m = re.fullmatch(
        r"(\d{4})-(\d{1,2})-(\d{1,2})"
        r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?",
        text,
    )
    if m:
        year, month, day, hh, mm, ss, frac, tz = m.groups()
        micro = int((frac or "0").ljust(7, "0")[:6])
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hh or 0),
            int(mm or 0),
            int(ss or 0),
            micro,
            tzinfo=UTC,
        )
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            digits = tz[1:].replace(":", "")
            value -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return value
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", text)
    if m:
        return datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
    try:
        value = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        raise ValueError(raw) from None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def parse_timespan_text(raw: str) -> timedelta:
    """Parse a ``timespan(...)`` literal: ``2d``, ``15 seconds``, ``0.12:34:56.7``, ``2``."""
    text = raw.strip()
    m = re.fullmatch(r"(-)?(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?", text)
    if m:
        neg, days, hh, mm, ss, frac = m.groups()
        ticks = int((frac or "0").ljust(7, "0"))
        value = timedelta(
            days=int(days or 0),
            hours=int(hh),
            minutes=int(mm),
            seconds=int(ss or 0),
            microseconds=ticks / 10,
        )
        return -value if neg else value
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)", text)
    if m:
        number, unit = m.groups()
        unit = unit.lower() or "d"
        if unit in TIMESPAN_UNITS:
            return ticks_to_timedelta(round(float(number) * TIMESPAN_UNITS[unit]))
    raise ValueError(raw)


def format_datetime_value(value: datetime) -> str:
    """ISO 8601 UTC with ``Z``; the fraction only when non-zero, without trailing zeros."""
    value = value.astimezone(UTC) if value.tzinfo else value
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        base += "." + f"{value.microsecond:06d}".rstrip("0")
    return base + "Z"


def format_timespan_value(value: timedelta) -> str:
    """Kusto's timespan text ``[-][d.]hh:mm:ss[.fffffff]``."""
    total_us = value // timedelta(microseconds=1)
    sign = "-" if total_us < 0 else ""
    total_us = abs(total_us)
    days, rem = divmod(total_us, 86_400_000_000)
    hours, rem = divmod(rem, 3_600_000_000)
    minutes, rem = divmod(rem, 60_000_000)
    seconds, micros = divmod(rem, 1_000_000)
    text = f"{sign}{str(days) + '.' if days else ''}{hours:02d}:{minutes:02d}:{seconds:02d}"
    if micros:
        text += f".{micros * 10:07d}"
    return text
