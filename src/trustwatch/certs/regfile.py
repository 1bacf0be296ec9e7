"""Read and write ``reg export`` files (regedit's ``.reg``), keeping every line's number.

Both formats regedit knows are read: "Windows Registry Editor Version 5.00" (UTF-16LE with a
BOM as regedit writes it; UTF-8 is accepted too) and "REGEDIT4" (ANSI). A bad line becomes a
:class:`RegProblem` naming ``file:line`` and the rest of the file is still read, so one damaged
value in a triage export never hides the certificates around it.

Value data is kept as the bytes the registry holds: strings are UTF-16LE with their NUL (a
REGEDIT4 file's ANSI strings are converted), DWORDs are 4 bytes little-endian. Syntax, from
regedit's own exports: ``[key]`` / ``[-key]``, ``"name"=`` or ``@=`` then ``"string"``,
``dword:XXXXXXXX``, ``hex:..`` (REG_BINARY), ``hex(N):..`` (any type N) or ``-`` (delete);
a line ending in ``\\`` continues on the next (indented) line; ``;`` starts a comment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from trustwatch.errors import Diagnostic, InputError, Source, Span

REG_NONE = 0
REG_SZ = 1
REG_EXPAND_SZ = 2
REG_BINARY = 3
REG_DWORD = 4
REG_DWORD_BIG_ENDIAN = 5
REG_LINK = 6
REG_MULTI_SZ = 7
REG_QWORD = 11

REG_TYPE_NAMES = {
    0: "REG_NONE",
    1: "REG_SZ",
    2: "REG_EXPAND_SZ",
    3: "REG_BINARY",
    4: "REG_DWORD",
    5: "REG_DWORD_BIG_ENDIAN",
    6: "REG_LINK",
    7: "REG_MULTI_SZ",
    8: "REG_RESOURCE_LIST",
    9: "REG_FULL_RESOURCE_DESCRIPTOR",
    10: "REG_RESOURCE_REQUIREMENTS_LIST",
    11: "REG_QWORD",
}

HEADER_5 = "Windows Registry Editor Version 5.00"
HEADER_4 = "REGEDIT4"
_STRING_TYPES = frozenset({REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ})  # ANSI bytes in REGEDIT4
_WRAP = 77  # regedit wraps hex data so that a line with its ",\" stays within 80 columns
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class RegKey:
    """A ``[key]`` line: the key exists (it may hold no values)."""

    key: str
    source: str = "<reg>"
    line: int | None = None


@dataclass(frozen=True, slots=True)
class RegistryValue:
    """One value: its key, name (``""`` for the default ``@``), REG_* type and raw bytes."""

    key: str
    name: str
    type: int
    data: bytes
    source: str = "<reg>"
    line: int | None = None  # the line the value starts on; None for values read from a hive

    @property
    def location(self) -> str:
        """``file:line`` (or just the file, for hives)."""
        return f"{self.source}:{self.line}" if self.line is not None else self.source


@dataclass(frozen=True, slots=True)
class ValueDeletion:
    """A ``"name"=-`` line: the export deletes this value."""

    key: str
    name: str
    source: str = "<reg>"
    line: int | None = None


@dataclass(frozen=True, slots=True)
class KeyDeletion:
    """A ``[-key]`` line: the export deletes this key and everything under it."""

    key: str
    source: str = "<reg>"
    line: int | None = None


RegEntry = RegKey | RegistryValue | ValueDeletion | KeyDeletion


@dataclass(frozen=True, slots=True)
class RegProblem:
    """A line (or hive key) that could not be read, and why."""

    source: str
    line: int | None
    message: str
    span: Span | None = None  # character offsets into the decoded text, for rendering

    @property
    def location(self) -> str:
        """``file:line`` (or just the file)."""
        return f"{self.source}:{self.line}" if self.line is not None else self.source

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """What a ``.reg`` export or an offline hive held: entries in file order, and problems."""

    source: str
    format: str  # "5.00", "REGEDIT4" or "regf"
    entries: tuple[RegEntry, ...]
    problems: tuple[RegProblem, ...] = ()
    text: str = ""  # the decoded .reg text (empty for hives), for rendering problems

    @property
    def values(self) -> tuple[RegistryValue, ...]:
        """Only the values (not key lines or deletions)."""
        return tuple(e for e in self.entries if isinstance(e, RegistryValue))

    def error(self) -> InputError | None:
        """Every problem as one located error (rendered with the offending lines), or None."""
        if not self.problems:
            return None
        diagnostics = [Diagnostic("REG001", str(p), p.span) for p in self.problems]
        return InputError(
            diagnostics[0].message,
            diagnostics=diagnostics,
            source=Source(self.text, name=self.source),
        )


class _LineError(Exception):
    """A problem in one logical line (internal: becomes a RegProblem)."""


@dataclass(frozen=True, slots=True)
class _Line:
    number: int  # 1-based line of the first physical line
    start: int  # offset of that line in the text
    end: int  # offset of its end (without the newline)
    text: str  # the logical line: continuations joined
    error: str | None = None  # a problem found while joining continuation lines


# -- reading ------------------------------------------------------------------------------------


def read_reg(path: Path | str) -> RegistrySnapshot:
    """Read a ``.reg`` file.

    Raises:
        InputError: the file cannot be read, cannot be decoded or has no regedit header.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}") from exc
    return parse_reg(decode_reg_bytes(data, str(p)), str(p))


def decode_reg_bytes(data: bytes, source: str = "<reg>") -> str:
    """Decode a ``.reg`` file: UTF-16 by BOM (or NUL pattern), UTF-8, else ANSI (cp1252).

    Raises:
        InputError: a UTF-16 file with an odd byte or an invalid code unit.
    """
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        if len(data) > 1 and data[1] == 0 and data[0] != 0:  # UTF-16LE without its BOM
            return data.decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: not valid UTF-16 at byte {exc.start}: {exc.reason}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # REGEDIT4 files are in the ANSI code page; cp1252 leaves five bytes undefined
        return data.decode("cp1252", errors="replace")


def parse_reg(text: str, source: str = "<reg>") -> RegistrySnapshot:
    """Parse the text of a ``.reg`` export.

    Args:
        text: the decoded file.
        source: the file name used in locations.

    Returns:
        Entries in file order, and one problem per line that could not be read.

    Raises:
        InputError: the text does not start with a regedit header.
    """
    lines = _physical_lines(text)
    version, first = _header(lines, source)
    entries: list[RegEntry] = []
    problems: list[RegProblem] = []
    key: str | None = None
    no_key = "value before any [key] line"  # why a value line has no key to go under
    for line in _logical_lines(lines[first:]):
        try:
            entry = _parse_line(line, key, no_key, version, source)
        except _LineError as exc:
            problems.append(RegProblem(source, line.number, str(exc), Span(line.start, line.end)))
            if line.text.lstrip().startswith("["):
                key = None
                no_key = f"value under the unreadable key of line {line.number} was not read"
            continue
        if isinstance(entry, RegKey):
            key = entry.key
        elif isinstance(entry, KeyDeletion):
            key = None
            no_key = f"value after the [-key] of line {line.number}: it has no key"
        entries.append(entry)
    return RegistrySnapshot(source, version, tuple(entries), tuple(problems), text)


def _physical_lines(text: str) -> list[_Line]:
    # split on "\n" only: str.splitlines() would also cut at characters a string value may hold
    out: list[_Line] = []
    offset = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        body = raw[:-1] if raw.endswith("\r") else raw
        out.append(_Line(number, offset, offset + len(body), body))
        offset += len(raw) + 1
    return out


def _header(lines: list[_Line], source: str) -> tuple[str, int]:
    for index, line in enumerate(lines):
        head = line.text.strip().lstrip("\ufeff")
        if not head:
            continue
        if head == HEADER_5:
            return "5.00", index + 1
        if head == HEADER_4:
            return HEADER_4, index + 1
        raise InputError(
            f"{source}:{line.number}: not a registry export: expected '{HEADER_5}' or "
            f"'{HEADER_4}', found {head[:60]!r}",
            span=Span(line.start, line.end),
        )
    raise InputError(f"{source}: empty registry export (no '{HEADER_5}' header)")


def _logical_lines(lines: list[_Line]) -> Iterator[_Line]:
    """Skip blanks and comments; join a line ending in ``\\`` with the indented lines after it."""
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        stripped = line.text.strip()
        if not stripped or stripped.startswith(";"):
            continue
        text = line.text.rstrip()
        error = None
        while text.endswith("\\") and not stripped.startswith("["):
            after = lines[index].text.strip() if index < len(lines) else ""
            if not after or after.startswith(("[", '"', "@", ";")):
                # a cut-off value: keeping the part before the cut would be wrong data
                error = "the value data continues ('\\' at the end) but the next line does not"
                break
            text = text[:-1] + after
            index += 1
        yield _Line(line.number, line.start, line.end, text, error)


def _parse_line(line: _Line, key: str | None, no_key: str, version: str, source: str) -> RegEntry:
    """One logical line as an entry; ``key`` is the current key (None: ``no_key`` says why)."""
    stripped = line.text.strip()
    if line.error is not None:
        raise _LineError(line.error)
    if stripped.startswith("["):
        return _parse_key_line(stripped, source, line.number)
    if not stripped.startswith(('"', "@")):
        raise _LineError(f"not a key, value or comment: {stripped[:60]!r}")
    if key is None:
        raise _LineError(no_key)
    return _parse_value_line(stripped, key, version, source, line.number)


def _parse_key_line(stripped: str, source: str, number: int) -> RegKey | KeyDeletion:
    if not stripped.endswith("]"):
        raise _LineError(f"key line does not end with ']': {stripped[:60]!r}")
    path = stripped[1:-1]
    if path.startswith("-"):
        path = path[1:].strip()
        if not path:
            raise _LineError("empty key name in [-...]")
        return KeyDeletion(path, source, number)
    path = path.strip()
    if not path:
        raise _LineError("empty key name in [...]")
    return RegKey(path, source, number)


def _parse_value_line(
    stripped: str, key: str, version: str, source: str, number: int
) -> RegistryValue | ValueDeletion:
    name, pos = ("", 1) if stripped.startswith("@") else _read_quoted(stripped, 0)
    rest = stripped[pos:].lstrip()
    if not rest.startswith("="):
        raise _LineError(f"expected '=' after the value name {name!r}")
    data = rest[1:].strip()
    if data == "-" or (data.startswith("-") and _is_comment(data[1:])):
        return ValueDeletion(key, name, source, number)
    value_type, raw = _parse_data(data, version)
    return RegistryValue(key, name, value_type, raw, source, number)


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read a ``"..."`` string at ``start``; returns its text and the offset after the quote."""
    out: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\\" and pos + 1 < len(text) and text[pos + 1] in '\\"':
            out.append(text[pos + 1])
            pos += 2
            continue
        # regedit keeps any other backslash as it is (paths like C:\Temp are written unescaped
        # by hand-made files); only \\ and \" are escapes
        out.append(char)
        pos += 1
    raise _LineError("unterminated string (no closing '\"')")


def _is_comment(rest: str) -> bool:
    tail = rest.strip()
    return not tail or tail.startswith(";")


def _parse_data(data: str, version: str) -> tuple[int, bytes]:
    lowered = data.lower()
    if data.startswith('"'):
        text, end = _read_quoted(data, 0)
        if not _is_comment(data[end:]):
            raise _LineError(f"unexpected text after the string: {data[end:].strip()[:40]!r}")
        return REG_SZ, (text + "\x00").encode("utf-16-le")
    if lowered.startswith("dword:"):
        return REG_DWORD, _parse_dword(data[6:])
    if lowered.startswith("hex:"):
        return REG_BINARY, _parse_hex_list(data[4:])
    if lowered.startswith("hex("):
        close = data.find("):")
        type_text = data[4:close] if close > 0 else ""
        if not type_text or len(type_text) > 8 or not set(type_text) <= _HEX_DIGITS:
            raise _LineError(f"bad value type in {data[:16]!r}: expected hex(N): with N in hex")
        value_type = int(type_text, 16)
        raw = _parse_hex_list(data[close + 2 :])
        if version == HEADER_4 and value_type in _STRING_TYPES:
            raw = raw.decode("cp1252", errors="replace").encode("utf-16-le")
        return value_type, raw
    raise _LineError(f'unknown value data {data[:40]!r}: expected "...", dword:, hex: or hex(N):')


def _parse_dword(text: str) -> bytes:
    body = text.split(";", 1)[0].strip()
    if not body or len(body) > 8 or not set(body) <= _HEX_DIGITS:
        raise _LineError(f"bad dword {body[:20]!r}: expected up to 8 hex digits")
    return int(body, 16).to_bytes(4, "little")


def _parse_hex_list(text: str) -> bytes:
    body = text.split(";", 1)[0]
    parts = [p.strip() for p in body.split(",")]
    if parts and not parts[-1]:
        parts.pop()  # a trailing comma (left by a continuation) ends the list
    out = bytearray()
    for index, part in enumerate(parts):
        if not part or len(part) > 2 or not set(part) <= _HEX_DIGITS:
            raise _LineError(f"bad hex byte {part!r} (byte {index + 1} of the value data)")
        out.append(int(part, 16))
    return bytes(out)


# -- writing ------------------------------------------------------------------------------------


def write_reg(entries: Iterable[RegEntry], *, regedit4: bool = False) -> str:
    """Write entries as a ``.reg`` export, in regedit's layout (CRLF, wrapped hex).

    A key line is written for each :class:`RegKey`, and before a value whose key differs from
    the last one written. Encode the result with :func:`encode_reg`.

    Args:
        entries: what to write, in order.
        regedit4: write the REGEDIT4 (ANSI) format instead of 5.00.

    Returns:
        The text of the file.
    """
    lines = [HEADER_4 if regedit4 else HEADER_5, ""]
    current: str | None = None
    for entry in entries:
        if isinstance(entry, KeyDeletion):
            lines += [f"[-{entry.key}]", ""]
            current = None
            continue
        if isinstance(entry, RegKey) or entry.key != current:
            if current is not None:
                lines.append("")
            lines.append(f"[{entry.key}]")
            current = entry.key
        if isinstance(entry, ValueDeletion):
            lines.append(f"{_quote_name(entry.name)}=-")
        elif isinstance(entry, RegistryValue):
            lines.extend(_value_lines(entry, regedit4))
    if current is not None:
        lines.append("")
    return "\r\n".join(lines) + "\r\n"


def encode_reg(text: str) -> bytes:
    """The bytes regedit would write: UTF-16LE with a BOM for 5.00, cp1252 for REGEDIT4.

    Raises:
        ValueError: REGEDIT4 text with a character cp1252 cannot hold.
    """
    if text.startswith(HEADER_4):
        return text.encode("cp1252")
    return b"\xff\xfe" + text.encode("utf-16-le")


def _quote_name(name: str) -> str:
    if name == "":
        return "@"
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value_lines(value: RegistryValue, regedit4: bool) -> list[str]:
    head = _quote_name(value.name) + "="
    text = _as_plain_string(value)
    if text is not None:
        return [head + '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"']
    if value.type == REG_DWORD and len(value.data) == 4:
        return [head + f"dword:{int.from_bytes(value.data, 'little'):08x}"]
    data = value.data
    if regedit4 and value.type in _STRING_TYPES and len(data) % 2 == 0:
        data = data.decode("utf-16-le").encode("cp1252")
    prefix = "hex:" if value.type == REG_BINARY else f"hex({value.type:x}):"
    return _wrap_hex(head + prefix, data)


def _as_plain_string(value: RegistryValue) -> str | None:
    """The text of a REG_SZ that a ``"..."`` can hold exactly (one NUL at the end, no other)."""
    if value.type != REG_SZ or len(value.data) % 2 or not value.data.endswith(b"\x00\x00"):
        return None
    try:
        text = value.data[:-2].decode("utf-16-le")
    except UnicodeDecodeError:
        return None
    if "\x00" in text or "\r" in text or "\n" in text:
        return None
    return text


def _wrap_hex(head: str, data: bytes) -> list[str]:
    lines: list[str] = []
    current = head
    for index, byte in enumerate(data):
        piece = f"{byte:02x}" + ("," if index < len(data) - 1 else "")
        if len(current) + len(piece) > _WRAP and current.strip():
            lines.append(current + "\\")
            current = "  "
        current += piece
    lines.append(current)
    return lines
