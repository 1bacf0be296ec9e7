"""Asking crt.sh for the certificates whose names hold a brand (``ct scan --fetch``).

crt.sh's public JSON endpoint (``https://crt.sh/?q=QUERY&output=json``) searches the names of every
certificate it has logged; ``%`` is its wildcard. :func:`brand_query` asks for names that hold the
brand anywhere (``%contoso%``): that finds added words, other suffixes and impersonation, not
homoglyphs or typos (no text search can: scan a feed, certstream, for those). The answer is
streamed to the crt.sh reader (``trustwatch.ct.readers``), record by record, with its limits.

Only this module goes to the network, only when the user asks, with a timeout; tests give it a
recorded answer through ``opener``.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, BinaryIO, cast

from trustwatch.ct.lookalike import Protected
from trustwatch.ct.readers import Item, read_ct_stream
from trustwatch.errors import InputError

ENDPOINT = "https://crt.sh/"
TIMEOUT = 60.0  # seconds; crt.sh answers a broad query slowly, or with 502/503 when it gives up
USER_AGENT = "trustwatch-ct-scan (certificate look-alike monitoring)"

Opener = Callable[..., AbstractContextManager[Any]]


def brand_query(target: Protected) -> str:
    """The crt.sh identity query for names holding the brand: ``%contoso%``."""
    return f"%{target.brand}%"


def query_url(query: str) -> str:
    """The JSON endpoint's URL for one query (``%`` written ``%25``)."""
    return ENDPOINT + "?" + urllib.parse.urlencode({"q": query, "output": "json"})


def fetch_crtsh(
    query: str, *, timeout: float = TIMEOUT, opener: Opener | None = None
) -> Iterator[Item]:
    """The records crt.sh returns for ``query``, read as a crt.sh export.

    Raises:
        InputError: crt.sh cannot be reached (no network, DNS, TLS, timeout) or answers with an
            HTTP error; the message names the URL and says what to do instead.
    """
    url = query_url(query)
    request = urllib.request.Request(  # noqa: S310 - a fixed https URL, built above
        url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"}
    )
    open_url = opener or urllib.request.urlopen
    try:
        with open_url(request, timeout=timeout) as response:
            stream: BinaryIO = response
            yield from read_ct_stream(cast(BinaryIO, _Rewindable(stream)), url)
    except urllib.error.HTTPError as exc:
        raise InputError(
            f"crt.sh answered HTTP {exc.code} ({exc.reason}) for {url}",
            hint="crt.sh gives up on broad queries (502/503) and limits clients (429): retry "
            "later, or export the results from https://crt.sh and scan the file",
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise InputError(
            f"cannot reach crt.sh ({reason}) for {url}",
            hint="without a network, save crt.sh's JSON (or a certstream capture) elsewhere and "
            "scan the file: trustwatch ct scan --domain D FILE",
        ) from exc


class _Rewindable:
    """A response read as a file: the reader peeks at the first bytes and seeks back to 0 once,
    which an HTTP response cannot; the peeked bytes are replayed instead."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._head = b""
        self._replay = 0  # bytes of the head still to give back

    def read(self, size: int = -1) -> bytes:
        if self._replay:
            start = len(self._head) - self._replay
            if size < 0:
                out = self._head[start:] + self._stream.read()
                self._replay = 0
                return out
            out = self._head[start : start + size]
            self._replay -= len(out)
            return out
        data = self._stream.read(size)
        if not self._head:
            self._head = data
        return data

    def readline(self, size: int = -1) -> bytes:
        if not self._replay:
            return self._stream.readline(size)
        start = len(self._head) - self._replay
        end = self._head.find(b"\n", start)
        stop = len(self._head) if end < 0 else end + 1
        if size >= 0:
            stop = min(stop, start + size)
        out = self._head[start:stop]
        self._replay -= len(out)
        if self._replay or out.endswith(b"\n") or (size >= 0 and len(out) >= size):
            return out
        return out + self._stream.readline(-1 if size < 0 else size - len(out))

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset != 0 or whence != 0:
            raise OSError("a crt.sh answer can only be rewound to its start")
        self._replay = len(self._head)
        return 0
