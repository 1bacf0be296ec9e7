"""Command words quoted for the shell a person will paste them into, or refused.

A playbook command is a list of words; each word that holds an alert value (from hostile logs)
is quoted so that the shell reads it back as that one word and nothing else:

- ``powershell``: single quotes, each quote character doubled. PowerShell also reads the
  typographic single quotes (U+2018..U+201B) as quotes, so they are doubled too.
- ``cmd``: double quotes, which make ``& | < > ^ ( )`` plain. cmd.exe has no escape for ``"``
  inside quotes, and expands ``%VAR%`` (and ``!VAR!`` under delayed expansion) even there: a
  word with ``"``, ``%`` or ``!`` cannot be quoted and is refused.
- ``liveresponse`` (Defender live response console): double quotes, no escape: ``"`` refused.
- ``sh`` (POSIX shells, where trustwatch runs): :func:`shlex.quote`.

Any control or invisible character (line breaks included: a pasted line break runs the line)
is refused in every shell. A refused word makes the step "not filled", with the reason, and
nothing of it is printed as a command.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence

from trustwatch.inert import UNSAFE

_UNSAFE = re.compile(f"[{UNSAFE}]")
_PLAIN = re.compile(r"^[A-Za-z0-9_.:\\/-]+$")  # safe bare in cmd, live response and PowerShell
_PS_QUOTES = "'\u2018\u2019\u201a\u201b"


class Unquotable(ValueError):
    """A word the shell cannot be made to read back as itself."""


def _powershell(word: str) -> str:
    if _PLAIN.match(word) and not word.startswith("-"):
        return word
    return "'" + "".join(c * 2 if c in _PS_QUOTES else c for c in word) + "'"


def _cmd(word: str) -> str:
    for bad in '"%!':
        if bad in word:
            raise Unquotable(f"cmd.exe cannot quote {bad!r} safely")
    return word if _PLAIN.match(word) else f'"{word}"'


def _liveresponse(word: str) -> str:
    if '"' in word:
        raise Unquotable("the live response console cannot quote '\"'")
    return word if _PLAIN.match(word) else f'"{word}"'


def _sh(word: str) -> str:
    return shlex.quote(word)


QUOTERS: Mapping[str, Callable[[str], str]] = {
    "powershell": _powershell,
    "cmd": _cmd,
    "liveresponse": _liveresponse,
    "sh": _sh,
}


def quote_word(word: str, shell: str) -> str:
    """One word as ``shell`` must be given it.

    Raises:
        Unquotable: it has a control or invisible character, or one ``shell`` cannot quote.
    """
    found = _UNSAFE.search(word)
    if found:
        raise Unquotable(f"U+{ord(found.group()):04X} (a control or invisible character)")
    return QUOTERS[shell](word)


def command_line(words: Sequence[str], shell: str, literal: Sequence[bool]) -> str:
    """The words joined for ``shell``; a word marked literal (the playbook's own text, no
    alert value in it) is written as it is.

    Raises:
        Unquotable: a word with an alert value in it cannot be quoted for the shell.
    """
    return " ".join(
        w if lit else quote_word(w, shell) for w, lit in zip(words, literal, strict=True)
    )
