"""RE2 patterns (DuckDB's regular expressions) written for java.util.regex (Spark's).

Pure text translation, no Spark: ``java_regex`` rewrites what Java reads differently and
refuses what it does not understand. https://github.com/google/re2/wiki/Syntax and
https://docs.oracle.com/en/java/javase/17/docs/api/java.base/java/util/regex/Pattern.html
"""

from __future__ import annotations

import re

from trustwatch.errors import UnsupportedKql

_WORD = "[0-9A-Za-z_]"
_REPEAT = re.compile(r"\{[0-9]+(,[0-9]*)?\}")
_ASCII_SPACE = "\\t\\n\\f\\r "
# RE2 escapes whose Java reading differs, outside a character class (inside: _IN_CLASS)
_OUTSIDE = {
    "s": f"[{_ASCII_SPACE}]",
    "S": f"[^{_ASCII_SPACE}]",
    "v": "\\x0B",
    "b": f"(?:(?<={_WORD})(?!{_WORD})|(?<!{_WORD})(?={_WORD}))",
    "B": f"(?:(?<={_WORD})(?={_WORD})|(?<!{_WORD})(?!{_WORD}))",
}
_IN_CLASS = {"s": _ASCII_SPACE, "v": "\\x0B"}
# escapes read the same by both (letters and digits not listed are refused)
_SAME_ESCAPES = set("dDwWAzntfrpPxQ")


def refuse_regex(pattern: str, why: str) -> UnsupportedKql:
    return UnsupportedKql(
        f"not supported on the spark engine: the regular expression {pattern!r} ({why})",
        hint="run this query with --engine duckdb",
    )


def java_regex(pattern: str) -> str:
    """An RE2 pattern (DuckDB's) written for java.util.regex (Spark's) with the same matches.

    Java reads some RE2 text differently: ``$`` also matches before a final newline, ``.``
    and ``^``/``$`` know other line terminators, ``\\s`` takes \\x0B, ``\\b`` is Unicode-aware on
    Java 17, ``(?i)`` folds only ASCII, ``[a&&b]`` and ``[a[b]]`` are class operators, and
    named groups are written ``(?<n>``. Those are rewritten; what is not understood here is
    refused rather than guessed.

    Raises:
        UnsupportedKql: a construct this translation does not handle.
    """
    out = ["(?d)"]  # UNIX_LINES: only \n ends a line, as in RE2
    i, n, in_class, negated = 0, len(pattern), False, False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise refuse_regex(pattern, "a trailing backslash")
            nxt = pattern[i + 1]
            if nxt == "Q":  # \Q...\E: literal text, the same in both
                end = pattern.find("\\E", i + 2)
                end = n if end < 0 else end + 2
                out.append(pattern[i:end])
                i = end
                continue
            table = _IN_CLASS if in_class else _OUTSIDE
            if in_class and nxt == "S" and not negated:
                # a union with the class of what is not RE2's space ([\s\S]: any character);
                # in a negated class Java's reading of a nested class is not RE2's: refused
                out.append(f"[^{_ASCII_SPACE}]")
                i += 2
                continue
            if in_class and nxt in "SbB":
                raise refuse_regex(pattern, f"\\{nxt} in a character class")
            if nxt in table:
                out.append(table[nxt])
            elif nxt.isalnum() and nxt not in _SAME_ESCAPES:
                raise refuse_regex(pattern, f"the escape \\{nxt}")
            elif nxt in ("p", "P") and i + 2 < n and pattern[i + 2] == "{":
                end = pattern.find("}", i + 2)
                if end < 0:
                    raise refuse_regex(pattern, "an unclosed \\p{")
                out.append(pattern[i : end + 1])
                i = end + 1
                continue
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
                out.append(ch)
            elif ch == "[":
                if pattern.startswith("[:", i):
                    raise refuse_regex(pattern, "a POSIX class")
                out.append("\\[")
            elif ch == "&":
                out.append("\\&")
            else:
                out.append(ch)
            i += 1
            continue
        if ch == "[":
            start = "[^" if pattern.startswith("[^", i) else "["
            out.append(start)
            in_class, negated = True, start == "[^"
            i += len(start)
            if i < n and pattern[i] == "]":  # a leading ] is a literal in both
                out.append("\\]")
                i += 1
            continue
        if ch == "$":
            out.append("\\z")
        elif ch == "{" and not _REPEAT.match(pattern, i):
            out.append("\\{")  # RE2 reads a { that starts no repetition as itself
        elif ch == "(" and pattern.startswith("(?", i):
            i = _group_start(pattern, i, out)
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _group_start(pattern: str, i: int, out: list[str]) -> int:
    """Copy the ``(?...`` group opening at ``i`` in Java's syntax; the index after it."""
    rest = pattern[i + 2 :]
    if rest.startswith(":"):
        out.append("(?:")
        return i + 3
    if rest.startswith("P<"):
        end = rest.find(">")
        name = rest[2:end]
        if end < 0 or not name.isalnum() or not name.isascii():
            raise refuse_regex(pattern, "a group name Java does not take")
        out.append(f"(?<{name}>")
        return i + 2 + end + 1
    j = 0
    while j < len(rest) and (rest[j].isalpha() or rest[j] == "-"):
        j += 1
    flags = rest[:j]
    if j >= len(rest) or rest[j] not in ":)" or set(flags) - set("is-"):
        raise refuse_regex(pattern, "a group or flag Java reads differently")
    # Java's (?i) folds ASCII only; with u it folds Unicode case as RE2 does
    if "i" in flags.split("-")[0]:
        flags = flags.replace("i", "iu", 1)
    out.append(f"(?{flags}{rest[j]}")
    return i + 2 + j + 1
