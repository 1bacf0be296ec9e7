"""KQL's meaning in one place: types, null rules, case folding and the string-operator family.

Every rule here links to the Kusto documentation it follows; `docs/kql-semantics.md` in the
repository and `../shared/reference/kql-semantics.md` explain the measured edge cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from trustwatch.errors import KqlSemanticError, Span

# --- types ------------------------------------------------------------------------------------

# KQL scalar type -> DuckDB/Spark SQL type. guid travels as text.
# https://learn.microsoft.com/kusto/query/scalar-data-types/
SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "long": "BIGINT",
    "real": "DOUBLE",
    "bool": "BOOLEAN",
    "datetime": "TIMESTAMP",
    "timespan": "INTERVAL",
    "dynamic": "JSON",
    "guid": "VARCHAR",
}

NUMERIC = frozenset({"int", "long", "real"})
TEXTUAL = frozenset({"string", "guid"})


@dataclass(frozen=True, slots=True)
class Typed:
    """A compiled scalar: its SQL tree and KQL type.

    Invariant: a ``string`` never evaluates to SQL NULL. KQL strings have no null (a missing
    string is ``""``), so every place that can produce NULL text (loaded data, outer joins, JSON
    extraction) coalesces to ``''``. Negated string predicates then keep empty-string rows
    without three-valued-logic surprises.
    https://learn.microsoft.com/kusto/query/scalar-data-types/null-values
    """

    sql: exp.Expr
    type: str
    constant: object = None  # the Python value when the expression is a literal
    is_constant: bool = False


def sql_type(ktype: str) -> exp.DataType:
    """The SQL data type of a KQL type."""
    return exp.DataType.build(SQL_TYPES[ktype], dialect="duckdb")


def lit_string(value: str) -> exp.Expr:
    return exp.Literal.string(value)


def func(name: str, *args: exp.Expr) -> exp.Expr:
    """An anonymous SQL function call (kept verbatim by sqlglot for the DuckDB dialect)."""
    return exp.Anonymous(this=name, expressions=list(args))


def not_null_string(sql: exp.Expr) -> exp.Expr:
    """COALESCE(sql, '') — restore the string invariant after an operation that can yield NULL."""
    return exp.Coalesce(this=sql, expressions=[lit_string("")])


# --- case folding ----------------------------------------------------------------------------

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = "abcdefghijklmnopqrstuvwxyz"


def ascii_fold(value: str) -> str:
    """Lower-case ASCII letters only, as Kusto's case-insensitive operators do.

    https://learn.microsoft.com/kusto/query/in-operator ("case-insensitive ... ASCII only")
    """
    return value.translate(str.maketrans(_UPPER, _LOWER))


def fold_sql(sql: exp.Expr) -> exp.Expr:
    """SQL for :func:`ascii_fold`: translate() maps A-Z only and leaves other letters alone."""
    return func("translate", sql, lit_string(_UPPER), lit_string(_LOWER))


# Unicode lower() agrees with ASCII-only folding, as far as an ASCII needle can tell (ASCII
# letters fold the same; other letters stay non-ASCII letters), except for two letters whose lower
# case is ASCII: KELVIN SIGN (U+212A -> "k") and CAPITAL I WITH DOT ABOVE (U+0130 -> "i").
_LOWER_TRAPS = ("\u212a", "\u0130")


def folded(
    haystack: exp.Expr, build: Callable[[exp.Expr], exp.Expr], *, ascii_needles: bool
) -> exp.Expr:
    """``build(fold(haystack))`` with ASCII-only case folding, fast where that is exact.

    With ASCII needles, rows without a trap letter use lower() (about 25 times faster than
    translate() in DuckDB, measured on 2M rows); the rare rows with one use translate(). The
    two branches are AND/OR, not CASE: DuckDB's filters then run each branch only on its rows.
    """
    if not ascii_needles:
        return build(fold_sql(haystack))
    trap = exp.paren(
        exp.or_(*(func("contains", haystack.copy(), lit_string(ch)) for ch in _LOWER_TRAPS))
    )
    fast = exp.and_(exp.Not(this=trap), exp.paren(build(func("lower", haystack.copy()))))
    exact = exp.and_(trap.copy(), exp.paren(build(fold_sql(haystack.copy()))))
    return exp.paren(exp.or_(exp.paren(fast), exp.paren(exact)))


def fold_column_sql(column: exp.Column) -> exp.Expr:
    """A column folded as :func:`folded` folds it, as one value: lower(), translate() on traps."""
    trap = exp.or_(*(func("contains", column.copy(), lit_string(ch)) for ch in _LOWER_TRAPS))
    return exp.Case(
        ifs=[exp.If(this=trap, true=fold_sql(column.copy()))],
        default=func("lower", column.copy()),
    )


def unfold(node: exp.Expr) -> tuple[exp.Column, exp.Expr] | None:
    """``(column, build(lower(column)))`` when ``node`` is :func:`folded`'s output over a column.

    Such a node equals ``build(f) AND (column IS NOT NULL OR NULL)`` with ``f`` the column's
    :func:`fold_column_sql`: both branches build the same expression, on lower() where no trap
    letter is present and on translate() where one is; for a NULL column both are NULL or
    FALSE, as ``build(NULL)`` is. So many predicates over one column can share one fold per
    row (``rules.fusion``). None for anything else, including a ``build`` that reads lower()
    of the column elsewhere too (the two branches then differ by more than the fold).
    """
    outer = _unparen(node)
    if not isinstance(outer, exp.Or):
        return None
    fast, exact = _unparen(outer.this), _unparen(outer.expression)
    if not isinstance(fast, exp.And) or not isinstance(exact, exp.And):
        return None
    if not isinstance(fast.this, exp.Not):
        return None
    column = _trapped(fast.this.this)
    if column is None or _trapped(exact.this) != column:
        return None
    lowered, translated = func("lower", column.copy()), fold_sql(column.copy())
    build = _unparen(fast.expression)
    swapped = build.copy().transform(lambda n: translated.copy() if n == lowered else n)
    if swapped != _unparen(exact.expression):
        return None
    return column, build


def _unparen(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _trapped(node: exp.Expr) -> exp.Column | None:
    """The column of a trap test ``contains(col, KELVIN) OR contains(col, I WITH DOT)``."""
    test = _unparen(node)
    if not isinstance(test, exp.Or):
        return None
    calls = [_unparen(test.this), _unparen(test.expression)]
    columns = []
    for call, ch in zip(calls, _LOWER_TRAPS, strict=True):
        if not (
            isinstance(call, exp.Anonymous)
            and str(call.this).lower() == "contains"
            and len(call.expressions) == 2
            and call.expressions[1] == lit_string(ch)
            and isinstance(call.expressions[0], exp.Column)
        ):
            return None
        columns.append(call.expressions[0])
    return columns[0] if columns[0] == columns[1] else None


# --- terms: the has family -------------------------------------------------------------------

# A term is a maximal run of alphanumeric characters; anything else delimits.
# https://learn.microsoft.com/kusto/query/datatypes-string-operators
_TERM_CHAR = r"[\p{L}\p{N}]"
_NOT_TERM_CHAR = r"[^\p{L}\p{N}]"


def _is_term_char(ch: str) -> bool:
    return ch.isalnum()


def has_regex(needle: str, *, leading: bool = True, trailing: bool = True) -> str | None:
    """The RE2 pattern that makes ``needle`` match on term boundaries, or None for plain substring.

    A boundary is required only where the needle's own edge character is alphanumeric: so
    ``has "Root\\"`` needs a delimiter (or the start) before ``Root`` but nothing after the
    backslash, and a needle made only of delimiters is a substring test.
    https://learn.microsoft.com/kusto/query/has-operator
    """
    if not needle:
        return None
    need_before = leading and _is_term_char(needle[0])
    need_after = trailing and _is_term_char(needle[-1])
    if not need_before and not need_after:
        return None
    pattern = re.escape(needle)
    if need_before:
        pattern = f"(^|{_NOT_TERM_CHAR}){pattern}"
    if need_after:
        pattern = f"{pattern}($|{_NOT_TERM_CHAR})"
    return pattern


def term_match_all(
    haystack: exp.Expr, needles: list[str], *, case_sensitive: bool, require_all: bool
) -> exp.Expr:
    """``has_any`` / ``has_all`` over constant needles, folding the haystack once for all.

    For has_any, needles with the same boundary needs share one regular expression (an
    alternation) behind a cheap substring prefilter: DuckDB compiles each pattern at planning
    time, and Unicode classes make that costly.
    https://learn.microsoft.com/kusto/query/has-any-operator
    """
    probes = [n if case_sensitive else ascii_fold(n) for n in needles]

    def build(text: exp.Expr) -> exp.Expr:
        if require_all or len(probes) == 1:
            parts = [_term_in(text.copy(), p) for p in probes]
            return exp.and_(*parts) if require_all else parts[0]
        if any(not p for p in probes):
            return exp.true()
        groups: dict[tuple[bool, bool], list[str]] = {}
        for p in probes:
            groups.setdefault((_is_term_char(p[0]), _is_term_char(p[-1])), []).append(p)
        alternatives = []
        for (before, after), group in groups.items():
            prefilter = exp.or_(*(func("contains", text.copy(), lit_string(p)) for p in group))
            if not before and not after:
                alternatives.append(exp.paren(prefilter))
                continue
            pattern = "(?:" + "|".join(re.escape(p) for p in group) + ")"
            if before:
                pattern = f"(^|{_NOT_TERM_CHAR}){pattern}"
            if after:
                pattern = f"{pattern}($|{_NOT_TERM_CHAR})"
            regex = func("regexp_matches", text.copy(), lit_string(pattern))
            alternatives.append(exp.paren(exp.and_(exp.paren(prefilter), regex)))
        return exp.or_(*alternatives)

    if case_sensitive:
        return build(haystack)
    return folded(haystack, build, ascii_needles=all(p.isascii() for p in probes))


def _term_in(text: exp.Expr, probe: str, leading: bool = True, trailing: bool = True) -> exp.Expr:
    if not probe:
        return exp.true()
    substring = func("contains", text, lit_string(probe))
    pattern = has_regex(probe, leading=leading, trailing=trailing)
    if pattern is None:
        return substring
    return exp.paren(exp.and_(substring, func("regexp_matches", text.copy(), lit_string(pattern))))


def term_match(
    haystack: exp.Expr,
    needle: str,
    *,
    case_sensitive: bool,
    leading: bool = True,
    trailing: bool = True,
) -> exp.Expr:
    """SQL for ``haystack has needle`` (and hasprefix/hassuffix via ``leading``/``trailing``).

    A cheap substring test runs first so that the regular expression only sees candidate rows.
    """
    probe = needle if case_sensitive else ascii_fold(needle)
    if not probe:
        return exp.true()

    def build(text: exp.Expr) -> exp.Expr:
        return _term_in(text, probe, leading, trailing)

    if case_sensitive:
        return build(haystack)
    return folded(haystack, build, ascii_needles=probe.isascii())


def term_match_dynamic(
    haystack: exp.Expr,
    needle: exp.Expr,
    *,
    case_sensitive: bool,
    leading: bool = True,
    trailing: bool = True,
) -> exp.Expr:
    """:func:`term_match` for a needle known only at run time (a column or expression)."""
    text = haystack if case_sensitive else fold_sql(haystack)
    probe = needle if case_sensitive else fold_sql(needle)
    escaped = func("regexp_escape", probe)
    first_is_term = func("regexp_matches", probe.copy(), lit_string(f"^{_TERM_CHAR}"))
    last_is_term = func("regexp_matches", probe.copy(), lit_string(f"{_TERM_CHAR}$"))
    before = (
        exp.If(this=first_is_term, true=lit_string(f"(^|{_NOT_TERM_CHAR})"), false=lit_string(""))
        if leading
        else lit_string("")
    )
    after = (
        exp.If(this=last_is_term, true=lit_string(f"($|{_NOT_TERM_CHAR})"), false=lit_string(""))
        if trailing
        else lit_string("")
    )
    pattern = func("concat", before, escaped, after)
    return exp.or_(
        exp.EQ(this=probe.copy(), expression=lit_string("")),
        func("regexp_matches", text, pattern),
    )


STRING_PREDICATES = frozenset(
    {
        "has",
        "has_cs",
        "hasprefix",
        "hasprefix_cs",
        "hassuffix",
        "hassuffix_cs",
        "contains",
        "contains_cs",
        "startswith",
        "startswith_cs",
        "endswith",
        "endswith_cs",
        "==",
        "=~",
        "matches regex",
    }
)


def string_predicate(op: str, left: exp.Expr, right: Typed, span: Span | None = None) -> exp.Expr:
    """SQL for a positive string predicate ``left op right`` (both non-null strings).

    https://learn.microsoft.com/kusto/query/datatypes-string-operators
    """
    cs = op.endswith("_cs")
    base = op.removesuffix("_cs")
    needle = right.constant if right.is_constant and isinstance(right.constant, str) else None
    if base in ("has", "hasprefix", "hassuffix"):
        leading = base != "hassuffix"
        trailing = base != "hasprefix"
        if needle is not None:
            return term_match(left, needle, case_sensitive=cs, leading=leading, trailing=trailing)
        return term_match_dynamic(
            left, right.sql, case_sensitive=cs, leading=leading, trailing=trailing
        )
    if base == "matches regex":
        if needle is not None:
            check_regex(needle, span)
        return func("regexp_matches", left, right.sql)
    if base == "==":
        return exp.EQ(this=left, expression=right.sql)
    compare = _FOLDABLE[base]
    rhs: exp.Expr
    if needle is not None:
        rhs = lit_string(needle if cs else ascii_fold(needle))
    else:
        rhs = right.sql if cs else fold_sql(right.sql)
    if cs:
        return compare(left, rhs)
    return folded(
        left,
        lambda text: compare(text, rhs.copy()),
        ascii_needles=bool(needle and needle.isascii()),
    )


_FOLDABLE: dict[str, Callable[[exp.Expr, exp.Expr], exp.Expr]] = {
    "=~": lambda a, b: exp.EQ(this=a, expression=b),
    "contains": lambda a, b: func("contains", a, b),
    "startswith": lambda a, b: func("starts_with", a, b),
    "endswith": lambda a, b: func("ends_with", a, b),
}

_RE2_UNSUPPORTED = (
    (re.compile(r"\(\?<?[=!]"), "lookaround assertions"),
    (re.compile(r"(?<!\\)\\[1-9]"), "backreferences"),
)


def check_regex(pattern: str, span: Span | None) -> None:
    """Refuse, where it is written, a regular expression RE2 (Kusto's and DuckDB's engine) rejects.

    https://learn.microsoft.com/kusto/query/re2
    """
    for probe, what in _RE2_UNSUPPORTED:
        if probe.search(pattern):
            raise KqlSemanticError(f"invalid regex: RE2 has no {what}", span=span, code="KQL205")
    try:
        re.compile(pattern)
    except re.error as exc:
        if "global flags not at the start" in exc.msg:  # RE2 allows (?i) anywhere
            return
        raise KqlSemanticError(f"invalid regex: {exc.msg}", span=span, code="KQL205") from None


def negate(predicate: exp.Expr) -> exp.Expr:
    """``NOT p`` that is TRUE when p is NULL: KQL's negated predicates keep such rows.

    https://learn.microsoft.com/kusto/query/scalar-data-types/null-values
    """
    # NOT (p IS TRUE), not NOT COALESCE(p, FALSE): the same values, but DuckDB's optimizer
    # takes seconds on a few thousand COALESCEs in one AND chain (generated IOC exclusions)
    is_true = exp.Is(this=exp.paren(predicate, copy=False), expression=exp.true())
    return exp.Not(this=exp.paren(is_true, copy=False))
