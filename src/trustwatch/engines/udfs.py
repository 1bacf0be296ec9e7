"""KQL functions too intricate for SQL, written in Python and registered with the engine."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, unquote, urlsplit

from trustwatch.kql.literals import parse_datetime_text, parse_timespan_text


def parse_command_line(command_line: str | None, parser: str | None = "windows") -> str | None:
    """Split a command line into arguments with Windows' CommandLineToArgvW rules.

    https://learn.microsoft.com/kusto/query/parse-command-line-function
    """
    if command_line is None:
        return None
    args: list[str] = []
    current: list[str] = []
    in_quotes = False
    have_arg = False
    i = 0
    text = command_line
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            j = i
            while j < len(text) and text[j] == "\\":
                j += 1
            n = j - i
            if j < len(text) and text[j] == '"':
                current.append("\\" * (n // 2))
                if n % 2:
                    current.append('"')
                    i = j + 1
                else:
                    i = j
                have_arg = True
                continue
            current.append("\\" * n)
            have_arg = True
            i = j
            continue
        if ch == '"':
            if in_quotes and i + 1 < len(text) and text[i + 1] == '"':
                current.append('"')
                i += 2
                continue
            in_quotes = not in_quotes
            have_arg = True
            i += 1
            continue
        if ch in " \t" and not in_quotes:
            if have_arg:
                args.append("".join(current))
                current, have_arg = [], False
            i += 1
            continue
        current.append(ch)
        have_arg = True
        i += 1
    if have_arg:
        args.append("".join(current))
    return json.dumps(args, ensure_ascii=False)


def parse_url(url: str | None) -> str | None:
    """Split a URL into Kusto's parse_url() property bag.

    https://learn.microsoft.com/kusto/query/parse-url-function
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        port = str(parts.port) if parts.port is not None else ""
    except ValueError:
        return json.dumps({})
    if not parts.scheme:
        return json.dumps({})
    return json.dumps(
        {
            "Scheme": parts.scheme,
            "Host": parts.hostname or "",
            "Port": port,
            "Path": parts.path,
            "Username": parts.username or "",
            "Password": parts.password or "",
            "Query Parameters": dict(parse_qsl(parts.query, keep_blank_values=True)),
            "Fragment": parts.fragment,
        },
        ensure_ascii=False,
    )


def base64_text(text: str | None) -> str | None:
    """Base64 text decoded to UTF-8 text, None where either is invalid: DuckDB's
    ``try(decode(from_base64(x)))`` (padding required, no whitespace or URL-safe letters)."""
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def url_text(text: str | None) -> str | None:
    """%-escapes decoded, None where they make invalid UTF-8: DuckDB's ``try(url_decode(x))``
    (``+`` stays, an escape that is not two hex digits is kept as it is)."""
    if text is None:
        return None
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return None


def parse_urlquery(query: str | None) -> str | None:
    if query is None:
        return None
    return json.dumps(
        {"Query Parameters": dict(parse_qsl(query.lstrip("?"), keep_blank_values=True))}
    )


def parse_path(path: str | None) -> str | None:
    """Split a file path into Kusto's parse_path() property bag.

    https://learn.microsoft.com/kusto/query/parse-path-function
    """
    if path is None:
        return None
    scheme = ""
    rest = path
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]+)://", path)
    if m:
        scheme, rest = m.group(1), path[m.end() :]
    stream = ""
    sep = "/" if "/" in rest and "\\" not in rest else "\\"
    directory, _, filename = rest.rpartition(sep)
    if ":" in filename:
        filename, _, stream = filename.partition(":")
    root = ""
    rm = re.match(r"^([A-Za-z]:)[\\/]?", rest) or re.match(r"^(\\\\[^\\]+)", rest)
    if rm:
        root = rm.group(1)
    ext = filename.rpartition(".")[2] if "." in filename else ""
    return json.dumps(
        {
            "Scheme": scheme,
            "RootPath": root,
            "DirectoryPath": directory,
            "DirectoryName": directory.rpartition(sep)[2],
            "Filename": filename,
            "Extension": ext,
            "AlternateDataStreamName": stream,
        },
        ensure_ascii=False,
    )


def todatetime(text: str | None) -> int | None:
    """A datetime text in any form Kusto accepts (ISO 8601, RFC 822, RFC 850) as microseconds."""
    if not text:
        return None
    try:
        value = parse_datetime_text(text)
    except ValueError:
        return None
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(microseconds=1)


def totimespan(text: str | None) -> int | None:
    """A timespan text as microseconds (the engine turns them into an interval); None if invalid."""
    if text is None:
        return None
    try:
        value = parse_timespan_text(text)
    except ValueError:
        return None
    return int(value.total_seconds() * 1_000_000)
