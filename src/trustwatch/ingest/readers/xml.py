"""Windows event XML: one ``<Event>``, an ``<Events>`` export (wevtutil ``/f:xml``, Event
Viewer) or ``<Event>`` elements concatenated without a root (Splunk ``.raw``).

The file is decoded in chunks (UTF-8, UTF-16 by BOM or NUL pattern, or the encoding the XML
declaration names; bad bytes become U+FFFD) and cut at ``<Event ...>`` / ``</Event>``; each
event is parsed on its own, so memory holds one event and a bad event costs only itself. Text
outside any event that is not XML prolog / root tags / comments is reported, not parsed. No DTD
ever reaches the parser (an event fragment cannot hold one), so entity tricks do not apply.

Limits (``trustwatch.limits``): an event longer than event-bytes is not collected (its start is
kept for the excerpt while the reader looks for its end); an event nesting deeper than depth,
or with more elements and attributes than fields, is refused before it is turned into JSON.
"""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from trustwatch.ingest.readers.evtxjson import (
    EVENT_NS,
    Batcher,
    Doc,
    detect_encoding,
    head_text,
    open_file,
    required_event_id,
    time_text,
    to_int,
)
from trustwatch.ingest.readers.guard import size_problem, xml_problem
from trustwatch.ingest.records import EXCERPT, Item, Rejected, excerpt
from trustwatch.limits import current, exceeded

_CHUNK = 1 << 20
_NAME = r"(?:[A-Za-z_][\w.-]*:)?"
_TOKEN = re.compile(rf"<(?:!--|\?|{_NAME}Event(?=[\s/>]))")
_EVENT_START = re.compile(rf"<{_NAME}Event(?=[\s/>])")
_EVENT_END = re.compile(rf"</{_NAME}Event\s*>")
_ROOT_TAG = re.compile(rf"<{_NAME}Events\b[^>]*>")
_NOISE = re.compile(rf"</?{_NAME}Events\b[^>]*>|<!DOCTYPE[^>]*>")
_NS_DECL = re.compile(r"""\sxmlns:[A-Za-z_][\w.-]*\s*=\s*(?:"[^"]*"|'[^']*')""")
_DECLARED = re.compile(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
# characters XML 1.0 forbids, raw or as references: replaced with U+FFFD on a second try
_BAD_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f]|&#(?:x0*(?:[0-8bcefBCEF]|1[0-9a-fA-F])|0*(?:[0-8]|1[124-9]|2\\d|3[01]));"
)
_INT_FIELDS = frozenset({"EventID", "Version", "Level", "Task", "Opcode", "EventRecordID"})
_INT_ATTRS = frozenset({"ProcessID", "ThreadID", "Qualifiers"})


# -- element -> evtx JSON ----------------------------------------------------------------------


def local_name(tag: str) -> str:
    """A tag or attribute name without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def parse_xml(text: str) -> ET.Element:
    """Parse an XML fragment (an event, an EventData / DataItem string from a Sentinel row).

    Raises:
        ET.ParseError: not well-formed XML.
        ValueError: deeper, or with more elements and attributes, than the limits allow.
    """
    try:
        root = ET.fromstring(text)  # noqa: S314 - fragments only: no DTD, so no entity expansion
    except ET.ParseError:
        cleaned = _BAD_CHARS.sub("\ufffd", text)
        if cleaned == text:
            raise
        root = ET.fromstring(cleaned)  # noqa: S314 - as above
    problem = xml_problem(root, current())
    if problem:
        raise ValueError(problem)
    return root


def element_json(elem: ET.Element) -> Any:
    """An element as evtx renders it: text, ``{"#attributes", "#text", children}`` or null."""
    attrs = {local_name(key): value for key, value in elem.attrib.items()}
    children = list(elem)
    if not children:
        if not attrs:
            return elem.text or None
        return {"#attributes": attrs, **({"#text": elem.text} if elem.text else {})}
    out: Doc = {"#attributes": attrs} if attrs else {}
    repeated: set[str] = set()
    for child in children:
        name, value = local_name(child.tag), element_json(child)
        if name not in out:
            out[name] = value
        elif name in repeated:
            out[name].append(value)
        else:
            out[name] = [out[name], value]
            repeated.add(name)
    if elem.text and elem.text.strip():
        out["#text"] = elem.text.strip()
    return out


def _unique(out: Doc, name: str) -> str:
    key, n = name, 0
    while key in out:
        n += 1
        key = f"{name}_{n}"
    return key


def event_data_json(elem: ET.Element) -> Doc | None:
    """``<EventData>``: named Data -> {name: text}; unnamed -> ``{"Data": {"#text": ...}}``.

    A name that repeats keeps its first value; later ones get ``_1``, ``_2`` ... suffixes.
    """
    out: Doc = {}
    unnamed: list[str] = []
    for child in elem:
        name = local_name(child.tag)
        if name != "Data":
            out[_unique(out, name)] = element_json(child)
            continue
        text = "".join(child.itertext())
        key = child.get("Name")
        if key is None:
            out.setdefault("Data", None)
            unnamed.append(text)
        else:
            out[_unique(out, key)] = text
    if unnamed:
        out["Data"] = {"#text": unnamed[0] if len(unnamed) == 1 else unnamed}
    return out or None


def _system_value(name: str, elem: ET.Element) -> Any:
    attrs: Doc = {}
    for key, raw in elem.attrib.items():
        attr = local_name(key)
        if attr in _INT_ATTRS and not raw.strip():
            continue  # Qualifiers="" and the like: no value, as evtx leaves them out
        number = to_int(raw) if attr in _INT_ATTRS else None
        attrs[attr] = number if number is not None else raw
        if attr == "SystemTime":
            attrs[attr] = time_text(raw)
    text = (elem.text or "").strip()
    number = to_int(text) if name in _INT_FIELDS else None
    value: Any = number if number is not None else (text or None)
    if not attrs:
        return value
    return {"#attributes": attrs, **({"#text": value} if value is not None else {})}


def event_element_doc(elem: ET.Element) -> Doc:
    """The evtx JSON document for an ``<Event>`` element; ValueError if it is not usable."""
    if local_name(elem.tag) != "Event":
        raise ValueError(f"<{local_name(elem.tag)}> is not an <Event> element")
    namespace = elem.tag[1:].split("}", 1)[0] if elem.tag.startswith("{") else EVENT_NS
    event: Doc = {"#attributes": {"xmlns": namespace}}
    system: Doc | None = None
    for child in elem:
        name = local_name(child.tag)
        if name == "System":
            system = {local_name(c.tag): _system_value(local_name(c.tag), c) for c in child}
            event["System"] = system
        elif name == "EventData":
            event["EventData"] = event_data_json(child)
        else:
            event[name] = element_json(child)
    if system is None:
        raise ValueError("no <System> element")
    event_id = system.get("EventID")
    required_event_id(event_id.get("#text") if isinstance(event_id, dict) else event_id)
    return {"Event": event}


# -- the file, cut into events -----------------------------------------------------------------


class _Source:
    """The decoded text of a file, read in chunks; counts bytes and lines of what was dropped."""

    def __init__(self, raw: IO[bytes], encoding: str, skipped: int) -> None:
        self.raw = raw
        self.decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self.unit = "utf-16-le" if encoding.startswith("utf-16") else encoding.replace("-sig", "")
        self.buf = ""
        self.dropped_bytes = skipped
        self.dropped_lines = 0
        self.eof = False
        self.cap = current().event_bytes  # characters of one event held at most
        self.fill()

    def fill(self) -> None:
        data = self.raw.read(_CHUNK)
        self.eof = not data
        self.buf += self.decoder.decode(data, final=self.eof)

    def more(self, keep: int) -> int:
        """Drop the text before ``keep``, read the next chunk; returns keep's new index (0)."""
        head = self.buf[:keep]
        self.dropped_bytes += self.nbytes(head)
        self.dropped_lines += head.count("\n")
        self.buf = self.buf[keep:]
        self.fill()
        return 0

    def nbytes(self, text: str) -> int:
        if self.unit == "utf-8" and text.isascii():
            return len(text)
        return len(text.encode(self.unit, "surrogatepass" if "utf" in self.unit else "replace"))

    def locate(self, index: int) -> tuple[int, int]:
        """Byte offset and 1-based line of ``buf[index]`` in the file."""
        head = self.buf[:index]
        return self.dropped_bytes + self.nbytes(head), self.dropped_lines + head.count("\n") + 1

    def where(self, index: int) -> str:
        offset, line = self.locate(index)
        return f"byte offset {offset}, line {line}"


def _pieces(src: _Source) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) spans of ``src.buf``: "text" between events, "event", "unclosed"."""
    pos = 0
    while True:
        match = _TOKEN.search(src.buf, pos)
        if match is None:
            keep = len(src.buf) if src.eof else max(pos, len(src.buf) - 64)
            if keep > pos:
                yield "text", pos, keep
            if src.eof:
                return
            pos = src.more(keep)
            continue
        if match.start() > pos:
            yield "text", pos, match.start()
        pos = match.start()
        opener = match.group()
        if opener in ("<!--", "<?"):
            close = "-->" if opener == "<!--" else "?>"
            end = src.buf.find(close, match.end())
            if end >= 0:
                pos = end + len(close)
            elif src.eof:
                yield "text", pos, len(src.buf)
                return
            elif len(src.buf) - pos > src.cap:  # an endless comment: reported as text
                yield "text", pos, len(src.buf)
                pos = len(src.buf)
            else:
                pos = src.more(pos)
            continue
        tag_end = src.buf.find(">", match.end())
        if tag_end > 0 and src.buf[tag_end - 1] == "/":
            yield "event", pos, tag_end + 1
            pos = tag_end + 1
            continue
        close_match = _EVENT_END.search(src.buf, match.end())
        limit = close_match.start() if close_match else len(src.buf)
        following = _EVENT_START.search(src.buf, match.end(), limit)
        if following is not None:
            yield "unclosed", pos, following.start()
            pos = following.start()
        elif close_match is not None:
            yield "event", pos, close_match.end()
            pos = close_match.end()
        elif src.eof:
            yield "unclosed", pos, len(src.buf)
            return
        elif len(src.buf) - pos > src.cap:
            yield "toolong", pos, pos + EXCERPT
            pos = _skip_event(src, match.end())
        else:
            pos = src.more(pos)


def _skip_event(src: _Source, start: int) -> int:
    """Read past an event too long to hold, to its ``</Event>`` or the next ``<Event``."""
    pos = start
    while True:
        close = _EVENT_END.search(src.buf, pos)
        following = _EVENT_START.search(src.buf, pos)
        if close is not None and (following is None or close.start() < following.start()):
            return close.end()
        if following is not None:
            return following.start()
        if src.eof:
            return len(src.buf)
        pos = src.more(max(pos, len(src.buf) - 64))


@dataclass(slots=True)
class _Junk:
    where: str
    offset_ref: int
    chars: int
    text: str


def xml_encoding(head: bytes) -> tuple[str, int]:
    """The codec for an XML file and the length of its BOM."""
    encoding = detect_encoding(head)
    if encoding == "utf-8":
        declared = _DECLARED.match(head)
        if declared:
            try:
                name = codecs.lookup(declared[1].decode("ascii")).name
            except LookupError:
                name = "utf-8"
            if not name.startswith(("utf-16", "utf-32")):
                encoding = name
    return encoding, {"utf-8-sig": 3, "utf-16": 2}.get(encoding, 0)


def read_xml(path: Path) -> Iterator[Item]:
    """Yield the file's events in batches; refs count ``<Event>`` elements from 1."""
    with open_file(path) as raw:
        encoding, bom = xml_encoding(raw.read(4096))
        raw.seek(0)
        src = _Source(raw, encoding, bom)
        limits = current()
        batcher = Batcher("event", raw.tell)
        number = 0
        junk: _Junk | None = None
        decls = ""
        for kind, start, end in _pieces(src):
            text = src.buf[start:end]
            if kind == "text":
                for root in _ROOT_TAG.findall(text):
                    decls += "".join(_NS_DECL.findall(root))
                if not _NOISE.sub("", text).strip():
                    continue
                if junk is None:
                    first = start + len(text) - len(text.lstrip())
                    junk = _Junk(src.where(first), src.locate(first)[0], 0, "")
                junk.chars += len(text)
                if len(junk.text) < 200:
                    junk.text = (junk.text + text).lstrip()[:200]
                continue
            if junk is not None:
                yield _junk_rejected(junk)
                junk = None
            number += 1
            if kind == "toolong":
                what = f"event {number} ({src.where(start)}): an event"
                reason = exceeded("event_bytes", src.cap, what)
                yield Rejected("event", number, reason, excerpt(text))
                continue
            problem = size_problem(text, limits)
            if problem:
                where = f"event {number} ({src.where(start)}): "
                yield Rejected("event", number, where + problem, excerpt(text))
                continue
            if kind == "unclosed":
                at_end = src.eof and end == len(src.buf)
                reason = f"event {number} ({src.where(start)}): no </Event> before " + (
                    "the end of the file" if at_end else "the next <Event>"
                )
                yield Rejected("event", number, reason, excerpt(text))
                continue
            try:
                element = parse_xml(f"<_tw{decls}>{text}</_tw>")[0] if decls else parse_xml(text)
                doc = event_element_doc(element)
            except ET.ParseError as exc:
                reason = f"event {number} ({src.where(start)}): invalid XML: {exc}"
                yield Rejected("event", number, reason, excerpt(text))
                continue
            except (ValueError, RecursionError) as exc:
                reason = f"event {number} ({src.where(start)}): {exc}"
                yield Rejected("event", number, reason, excerpt(text))
                continue
            full = batcher.add(number, doc)
            if full is not None:
                yield full
        if junk is not None:
            yield _junk_rejected(junk)
        last = batcher.flush()
        if last is not None:
            yield last


def _junk_rejected(junk: _Junk) -> Rejected:
    reason = f"{junk.chars} characters of text outside any <Event> element ({junk.where}) skipped"
    return Rejected("offset", junk.offset_ref, reason, excerpt(junk.text))


_XML_HEAD = re.compile(rf"<{_NAME}Events?[\s/>]")


def sniff_xml(path: Path, head: bytes) -> bool:
    """Markup first (after BOM / whitespace) and an ``<Event>`` / ``<Events>`` tag in the head."""
    text = head_text(head).lstrip()
    return text.startswith("<") and _XML_HEAD.search(text) is not None
