"""Hypothesis strategies for KQL text: grammar-generated queries, mutations, and huge ones.

Queries are generated against the shipped table schemas (``builtin_schemas``), carrying the
columns in scope through each pipe stage so that most of them compile and run; the rest are
semantic errors, which must be located too. Mutations delete, insert, swap and duplicate
tokens of those queries (or of the conformance suite's), and the stress strategy builds the
shapes that overflow a recursive front end: long ``or``/``in`` chains, deep parentheses and
calls, many pipe stages, wide unions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from trustwatch.kql.aggregates import AGGREGATES
from trustwatch.kql.functions import FUNCTIONS, KNOWN_UNSUPPORTED
from trustwatch.schema.model import builtin_schemas

CONFORMANCE_DIR = Path(__file__).resolve().parents[1] / "kql" / "conformance"
BAD_QUERIES = Path(__file__).resolve().parents[1] / "kql" / "diagnostics" / "bad_queries.yaml"

# the tables generated queries read most: the ones loaded with rows by properties.session()
MAIN_TABLES = (
    "DeviceProcessEvents",
    "DeviceRegistryEvents",
    "DeviceNetworkEvents",
    "DeviceFileEvents",
    "DeviceEvents",
    "SecurityEvent",
)
TYPES = ("string", "long", "real", "bool", "datetime", "timespan", "dynamic")
_TYPE_OF_COLUMN = {"int": "long", "decimal": "real", "guid": "string", "boolean": "bool"}


@cache
def table_columns() -> dict[str, dict[str, str]]:
    """Table name -> column name -> the generator's type family, from the shipped schemas."""
    out: dict[str, dict[str, str]] = {}
    for name, schema in builtin_schemas().items():
        out[name] = {c.name: _TYPE_OF_COLUMN.get(c.type, c.type) for c in schema.columns}
    return out


@dataclass
class Scope:
    """The columns a stage sees (name -> type) and the scalar ``let`` names in force."""

    columns: dict[str, str]
    scalars: dict[str, str] = field(default_factory=dict)
    fresh: list[int] = field(default_factory=lambda: [0])

    def new_name(self, draw: DrawFn) -> str:
        self.fresh[0] += 1
        if draw(st.integers(0, 9)) == 0:  # now and then a name that needs quoting
            return draw(st.sampled_from(["['a b']", "['x-y']", '["c.d"]', "['let']"]))
        return f"c{self.fresh[0]}"

    def of_type(self, ktype: str) -> list[str]:
        return sorted(n for n, t in self.columns.items() if t == ktype)


# --- literals ------------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=12
)
_WORDS = st.sampled_from(
    ["certutil", "-addstore", "root", "cmd.exe", "a b", "", "\\", "%", "x*y", "C:\\Temp\\c.cer"]
)


def quote(text: str, style: int) -> str:
    """``text`` as a KQL string literal in one of its written forms."""
    if style == 1 and "'" not in text and "\n" not in text:
        return "'" + text.replace("\\", "\\\\") + "'"
    if style == 2 and '"' not in text and "\n" not in text:
        return '@"' + text + '"'
    if style == 3 and '"' not in text and "\n" not in text:
        return 'h"' + text.replace("\\", "\\\\") + '"'
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\r", "\\r").replace("\t", "\\t").replace("\0", "\\0") + '"'


@st.composite
def string_literal(draw: DrawFn) -> str:
    text = draw(st.one_of(_WORDS, _TEXT))
    assert isinstance(text, str)
    return quote(text, draw(st.integers(0, 3)))


def literal(draw: DrawFn, ktype: str) -> str:
    """A literal of ``ktype`` (null, extremes and odd spellings included)."""
    choices: dict[str, list[str]] = {
        "long": ["0", "1", "-1", "42", "9223372036854775807", "long(null)", "int(7)", "0x1F"],
        "real": ["1.5", "0.0", "-2.5e3", "1e308", "real(nan)", "real(+inf)", "real(null)"],
        "bool": ["true", "false", "bool(null)", "True"],
        "datetime": [
            "datetime(2024-05-01)",
            "datetime(2024-05-01T10:00:00Z)",
            "datetime(2024-05-01 10:00:00.1234567)",
            "datetime(null)",
            "datetime(1601-01-01)",
            "now()",
            "ago(1h)",
            "ago(-1d)",
        ],
        "timespan": ["1h", "30m", "2d", "10ms", "1.5s", "time(1.02:03:04)", "timespan(null)", "0s"],
        "dynamic": [
            'dynamic({"a": [1, 2, {"b": "c"}], "k": "v"})',
            'dynamic([1, "x", true, null])',
            "dynamic(null)",
            "dynamic({})",
            "dynamic([])",
            "dynamic(7)",
        ],
    }
    if ktype == "string":
        return draw(string_literal())
    if ktype == "long" and draw(st.booleans()):
        return str(draw(st.integers(-(2**63), 2**63 - 1)))
    return draw(st.sampled_from(choices[ktype]))


# --- scalar expressions --------------------------------------------------------------------------

# template -> argument types; `{}` placeholders take expressions of those types in order
_COMPOSITES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "string": [
        ("tolower({})", ("string",)),
        ("toupper({})", ("string",)),
        ("strcat({}, {})", ("string", "string")),
        ("substring({}, {}, {})", ("string", "long", "long")),
        ("tostring({})", ("long",)),
        ("tostring({})", ("dynamic",)),
        ("trim(@'\\s', {})", ("string",)),
        ("replace_string({}, {}, {})", ("string", "string", "string")),
        ("iff({}, {}, {})", ("bool", "string", "string")),
        ('extract("(\\\\w+)", 1, {})', ("string",)),
        ("coalesce({}, {})", ("string", "string")),
        ('strcat_delim("-", {}, {})', ("string", "string")),
        ('format_datetime({}, "yyyy-MM-dd HH:mm")', ("datetime",)),
        ("tostring({}.a)", ("dynamic",)),
        ('case({}, {}, {}, "x", {})', ("bool", "string", "bool", "string")),
        ('tostring(split({}, "\\\\")[0])', ("string",)),
        ("url_decode({})", ("string",)),
        ("base64_decode_tostring({})", ("string",)),
        ("hash_sha256({})", ("string",)),
        ("reverse({})", ("string",)),
    ],
    "long": [
        ("{} + {}", ("long", "long")),
        ("{} - {}", ("long", "long")),
        ("{} * {}", ("long", "long")),
        ("{} / {}", ("long", "long")),
        ("{} % {}", ("long", "long")),
        ("strlen({})", ("string",)),
        ("abs({})", ("long",)),
        ("toint({})", ("string",)),
        ("tolong({})", ("string",)),
        ("bin({}, 10)", ("long",)),
        ('countof({}, "a")', ("string",)),
        ("indexof({}, {})", ("string", "string")),
        ("array_length({})", ("dynamic",)),
        ("hourofday({})", ("datetime",)),
        ("-{}", ("long",)),
        ("({})", ("long",)),
        ("datetime_diff('day', {}, {})", ("datetime", "datetime")),
        ("binary_and({}, {})", ("long", "long")),
        ("max_of({}, {})", ("long", "long")),
    ],
    "real": [
        ("todouble({})", ("string",)),
        ("{} * 1.5", ("real",)),
        ("round({}, 2)", ("real",)),
        ("sqrt({})", ("real",)),
        ("log({})", ("real",)),
        ("pow({}, 2)", ("real",)),
        ("{} / {}", ("real", "long")),
        ("exp({})", ("real",)),
    ],
    "bool": [
        ("{} and {}", ("bool", "bool")),
        ("{} or {}", ("bool", "bool")),
        ("not({})", ("bool",)),
        ("({})", ("bool",)),
        ("isempty({})", ("string",)),
        ("isnotempty({})", ("string",)),
        ("isnull({})", ("long",)),
        ("isnotnull({})", ("datetime",)),
        ("ipv4_is_private({})", ("string",)),
        ("{} between ({} .. {})", ("long", "long", "long")),
        ("{} between ({} .. {})", ("datetime", "datetime", "datetime")),
        ("{} !between ({} .. {})", ("datetime", "datetime", "timespan")),
        ("{} > {}", ("datetime", "datetime")),
        ("{} <= {}", ("real", "long")),
        ("{} == {}", ("long", "long")),
        ("{} != {}", ("bool", "bool")),
        ("{} > {}", ("timespan", "timespan")),
        ("set_has_element({}, {})", ("dynamic", "string")),
        ("tobool({})", ("string",)),
    ],
    "datetime": [
        ("{} + {}", ("datetime", "timespan")),
        ("{} - {}", ("datetime", "timespan")),
        ("startofday({})", ("datetime",)),
        ("endofmonth({})", ("datetime",)),
        ("bin({}, {})", ("datetime", "timespan")),
        ("todatetime({})", ("string",)),
        ('datetime_add("day", {}, {})', ("long", "datetime")),
        ("make_datetime(2024, 1, {})", ("long",)),
        ("unixtime_seconds_todatetime({})", ("long",)),
    ],
    "timespan": [
        ("{} - {}", ("datetime", "datetime")),
        ("{} * {}", ("timespan", "long")),
        ("{} + {}", ("timespan", "timespan")),
        ("totimespan({})", ("string",)),
        ("-{}", ("timespan",)),
    ],
    "dynamic": [
        ("pack_array({}, {})", ("long", "string")),
        ('bag_pack("k", {})', ("string",)),
        ('split({}, ",")', ("string",)),
        ("parse_json({})", ("string",)),
        ("{}.a", ("dynamic",)),
        ('{}["k"]', ("dynamic",)),
        ("{}[0]", ("dynamic",)),
        ("todynamic({})", ("string",)),
        ('extract_all("(\\\\d)", {})', ("string",)),
        ('parse_command_line({}, "windows")', ("string",)),
        ("parse_path({})", ("string",)),
        ("array_concat({}, {})", ("dynamic", "dynamic")),
    ],
}

_STRING_OPS = (
    "==",
    "!=",
    "=~",
    "!~",
    "has",
    "!has",
    "has_cs",
    "contains",
    "!contains",
    "contains_cs",
    "startswith",
    "!startswith",
    "endswith",
    "hasprefix",
    "hassuffix",
    "matches regex",
)
_LIST_OPS = ("in", "!in", "in~", "!in~", "has_any", "has_all")


def expr(draw: DrawFn, scope: Scope, ktype: str, depth: int) -> str:
    """A scalar expression of ``ktype`` over the columns in ``scope``, ``depth`` levels deep."""
    leaves = scope.of_type(ktype) + [n for n, t in scope.scalars.items() if t == ktype]
    kind = draw(st.integers(0, 9))
    if depth <= 0 or kind < 3:
        if leaves and kind % 2 == 0:
            return draw(st.sampled_from(leaves))
        return literal(draw, ktype)
    if ktype == "bool" and kind < 6:
        return predicate(draw, scope, depth)
    if kind == 9 and draw(st.integers(0, 3)) == 0:
        return any_call(draw, scope, depth)
    template, args = draw(st.sampled_from(_COMPOSITES[ktype]))
    return str(template).format(*(expr(draw, scope, t, depth - 1) for t in args))


def predicate(draw: DrawFn, scope: Scope, depth: int) -> str:
    """A string or list comparison: ``has``, ``in~ (...)``, ``matches regex`` and the rest."""
    left = expr(draw, scope, "string", depth - 1)
    if draw(st.booleans()):
        op = draw(st.sampled_from(_LIST_OPS))
        items = [expr(draw, scope, "string", 0) for _ in range(draw(st.integers(1, 4)))]
        return f"{left} {op} ({', '.join(items)})"
    op = draw(st.sampled_from(_STRING_OPS))
    right = draw(string_literal()) if op == "matches regex" else expr(draw, scope, "string", 0)
    return f"{left} {op} {right}"


def any_call(draw: DrawFn, scope: Scope, depth: int) -> str:
    """Any registered (or refused) function with arguments of any type: mostly wrong calls."""
    names = sorted(FUNCTIONS) + sorted(KNOWN_UNSUPPORTED)
    name = draw(st.sampled_from(names))
    n = draw(st.integers(0, 4))
    args = [expr(draw, scope, draw(st.sampled_from(TYPES)), depth - 1) for _ in range(n)]
    return f"{name}({', '.join(args)})"


# --- pipe operators ------------------------------------------------------------------------------


def _typed(draw: DrawFn, scope: Scope, depth: int) -> tuple[str, str]:
    ktype = draw(st.sampled_from(TYPES))
    return expr(draw, scope, ktype, depth), ktype


def _column(draw: DrawFn, scope: Scope) -> str:
    if not scope.columns:
        return "NoSuchColumn"
    return draw(st.sampled_from(sorted(scope.columns)))


def op_where(draw: DrawFn, scope: Scope, depth: int) -> str:
    return f"where {expr(draw, scope, 'bool', depth)}"


def op_extend(draw: DrawFn, scope: Scope, depth: int) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        text, ktype = _typed(draw, scope, depth)
        name = scope.new_name(draw)
        parts.append(f"{name} = {text}")
        scope.columns[name] = ktype
    return "extend " + ", ".join(parts)


def op_project(draw: DrawFn, scope: Scope, depth: int) -> str:
    kept: dict[str, str] = {}
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()) and scope.columns:
            name = _column(draw, scope)
            parts.append(name)
            kept[name] = scope.columns[name]
        else:
            text, ktype = _typed(draw, scope, depth)
            name = scope.new_name(draw)
            parts.append(f"{name} = {text}")
            kept[name] = ktype
    scope.columns = kept
    return "project " + ", ".join(parts)


def op_project_variants(draw: DrawFn, scope: Scope, depth: int) -> str:
    name = _column(draw, scope)
    which = draw(st.sampled_from(["away", "keep", "rename", "reorder"]))
    if which == "away" and len(scope.columns) > 1:
        scope.columns.pop(name, None)
        return f"project-away {name}"
    if which == "keep":
        scope.columns = {name: scope.columns.get(name, "string")}
        return f"project-keep {name}"
    if which == "rename":
        new = scope.new_name(draw)
        scope.columns[new] = scope.columns.pop(name, "string")
        return f"project-rename {new} = {name}"
    return f"project-reorder {name} desc"


_AGGS = [
    ("count()", None, "long"),
    ("dcount({})", "string", "long"),
    ("sum({})", "long", "long"),
    ("avg({})", "real", "real"),
    ("min({})", "datetime", "datetime"),
    ("max({})", "long", "long"),
    ("make_set({})", "string", "dynamic"),
    ("make_list({}, 5)", "long", "dynamic"),
    ("countif({})", "bool", "long"),
    ("take_any({})", "string", "string"),
    ("arg_max({}, *)", "datetime", None),
    ("percentile({}, 50)", "long", "long"),
    ("stdev({})", "real", "real"),
    ("make_bag({})", "dynamic", "dynamic"),
]


def op_summarize(draw: DrawFn, scope: Scope, depth: int) -> str:
    out: dict[str, str] = {}
    aggs = []
    star = False
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 9)) == 0:  # any aggregate with any argument
            arg, _ktype = _typed(draw, scope, 0)
            name = scope.new_name(draw)
            aggs.append(f"{name} = {draw(st.sampled_from(sorted(AGGREGATES)))}({arg})")
            out[name] = "dynamic"
            continue
        template, arg_type, result = draw(st.sampled_from(_AGGS))
        arg = expr(draw, scope, str(arg_type), depth - 1) if arg_type else ""
        name = scope.new_name(draw)
        if result is None:
            aggs.append(str(template).format(arg))
            star = True
        else:
            aggs.append(f"{name} = {str(template).format(arg)}")
            out[name] = str(result)
    keys = []
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()) and scope.columns:
            key = _column(draw, scope)
            keys.append(key)
            out[key] = scope.columns[key]
        else:
            unit = draw(st.sampled_from(["1h", "1d", "5m"]))
            key = f"bin({expr(draw, scope, 'datetime', 0)}, {unit})"
            name = scope.new_name(draw)
            keys.append(f"{name} = {key}")
            out[name] = "datetime"
    if star:
        out = {**scope.columns, **out}
    scope.columns = out
    return "summarize " + ", ".join(aggs) + (" by " + ", ".join(keys) if keys else "")


def op_take(draw: DrawFn, scope: Scope, depth: int) -> str:
    word = draw(st.sampled_from(["take", "limit", "sample"]))
    count = literal(draw, "long") if draw(st.integers(0, 5)) == 0 else draw(st.integers(0, 20))
    return f"{word} {count}"


def op_sort(draw: DrawFn, scope: Scope, depth: int) -> str:
    word = draw(st.sampled_from(["sort", "order"]))
    keys = []
    for _ in range(draw(st.integers(1, 2))):
        key = _column(draw, scope) if draw(st.booleans()) else _typed(draw, scope, depth)[0]
        order = draw(st.sampled_from(["", " asc", " desc", " desc nulls first", " asc nulls last"]))
        keys.append(f"{key}{order}")
    return f"{word} by {', '.join(keys)}"


def op_top(draw: DrawFn, scope: Scope, depth: int) -> str:
    key = _column(draw, scope) if draw(st.booleans()) else _typed(draw, scope, depth)[0]
    order = draw(st.sampled_from(["", " asc", " desc"]))
    return f"top {draw(st.integers(0, 10))} by {key}{order}"


def op_distinct(draw: DrawFn, scope: Scope, depth: int) -> str:
    if draw(st.integers(0, 4)) == 0:
        return "distinct *"
    names = sorted({_column(draw, scope) for _ in range(draw(st.integers(1, 3)))})
    scope.columns = {n: scope.columns.get(n, "string") for n in names}
    return "distinct " + ", ".join(names)


def op_count(draw: DrawFn, scope: Scope, depth: int) -> str:
    scope.columns = {"Count": "long"}
    return "count"


def op_serialize(draw: DrawFn, scope: Scope, depth: int) -> str:
    name = scope.new_name(draw)
    scope.columns[name] = "long"
    return f"serialize {name} = row_number()"


def op_join(draw: DrawFn, scope: Scope, depth: int) -> str:
    kind = draw(
        st.sampled_from(
            [
                "",
                "kind=inner ",
                "kind=innerunique ",
                "kind=leftouter ",
                "kind=leftanti ",
                "kind=leftsemi ",
                "kind=rightouter ",
                "kind=fullouter ",
                "kind=rightanti ",
                "kind=rightsemi ",
            ]
        )
    )
    key = _column(draw, scope)
    ktype = scope.columns.get(key, "string")
    right = Scope(dict(table_columns()[draw(st.sampled_from(MAIN_TABLES))]))
    right.fresh = scope.fresh
    other = expr(draw, right, ktype, 1)
    right_text = f"{draw(st.sampled_from(MAIN_TABLES))} | project {key} = {other}, Extra = 1"
    if draw(st.integers(0, 3)) == 0:
        right_text += f" | {op_where(draw, Scope({key: ktype, 'Extra': 'long'}), 1)}"
    if draw(st.booleans()):
        on = f"on {key}"
    else:
        on = f"on $left.{key} == $right.{key}"
    if "anti" not in kind and "semi" not in kind:
        scope.columns = {**scope.columns, f"{key}1": ktype, "Extra": "long"}
    elif "right" in kind:
        scope.columns = {key: ktype, "Extra": "long"}
    return f"join {kind}({right_text}) {on}"


def op_lookup(draw: DrawFn, scope: Scope, depth: int) -> str:
    key = _column(draw, scope)
    ktype = scope.columns.get(key, "string")
    value = literal(draw, ktype)
    kind = draw(st.sampled_from(["", "kind=leftouter ", "kind=inner "]))
    scope.columns = {**scope.columns, "Looked": "string"}
    return f'lookup {kind}(datatable({key}: {ktype}, Looked: string) [{value}, "x"]) on {key}'


def op_union(draw: DrawFn, scope: Scope, depth: int) -> str:
    tables = [draw(st.sampled_from(MAIN_TABLES)) for _ in range(draw(st.integers(1, 3)))]
    kind = draw(st.sampled_from(["", "kind=outer ", "kind=inner ", "withsource=Src "]))
    if "withsource" in kind:
        scope.columns = {**scope.columns, "Src": "string"}
    return f"union {kind}" + ", ".join(tables)


def op_parse(draw: DrawFn, scope: Scope, depth: int) -> str:
    strings = scope.of_type("string")
    source = draw(st.sampled_from(strings)) if strings else '"a=1"'
    a, b = scope.new_name(draw), scope.new_name(draw)
    ta = draw(st.sampled_from(["string", "long", "datetime", "real"]))
    kind = draw(st.sampled_from(["", "kind=simple ", "kind=regex ", "kind=relaxed "]))
    scope.columns = {**scope.columns, a: str(ta), b: "string"}
    sep = draw(string_literal())
    return f'parse {kind}{source} with * {sep} {a}:{ta} " " {b} *'


def op_mv_expand(draw: DrawFn, scope: Scope, depth: int) -> str:
    name = scope.new_name(draw)
    value = expr(draw, scope, "dynamic", 1)
    to = draw(st.sampled_from(["", " to typeof(string)", " to typeof(long)"]))
    limit = draw(st.sampled_from(["", " limit 3"]))
    scope.columns[name] = "string" if "string" in str(to) else "dynamic"
    return f"mv-expand {name} = {value}{to}{limit}"


def op_misc(draw: DrawFn, scope: Scope, depth: int) -> str:
    choice = draw(
        st.sampled_from(
            [
                "as T1",
                "getschema",
                "render timechart",
                "evaluate bag_unpack(x)",
                "invoke nosuchfunction()",
                "make-series n = count() default = 0 on Timestamp from datetime(2024-01-01) "
                "to datetime(2024-01-02) step 1h",
                "project-smart",
                "fork (take 1)",
                "mv-apply x = pack_array(1, 2) to typeof(long) on (where x > 1)",
                "top-nested 3 of DeviceName by count()",
                "scan with (step s: true;)",
            ]
        )
    )
    text = str(choice)
    if text == "getschema":
        scope.columns = {"ColumnName": "string", "ColumnOrdinal": "long", "DataType": "string"}
    return text


OPERATORS: list[tuple[int, Callable[[DrawFn, Scope, int], str]]] = [
    (6, op_where),
    (4, op_extend),
    (3, op_project),
    (2, op_project_variants),
    (3, op_summarize),
    (2, op_take),
    (2, op_sort),
    (2, op_top),
    (1, op_distinct),
    (1, op_count),
    (1, op_serialize),
    (2, op_join),
    (1, op_lookup),
    (1, op_union),
    (1, op_parse),
    (1, op_mv_expand),
    (1, op_misc),
]
_WEIGHTED = [fn for weight, fn in OPERATORS for _ in range(weight)]


def source(draw: DrawFn, scope: Scope) -> str:
    """A tabular source; sets ``scope.columns`` to its columns."""
    kind = draw(st.integers(0, 19))
    if kind < 14:
        name = draw(st.sampled_from(MAIN_TABLES))
    elif kind < 16:
        name = draw(st.sampled_from(sorted(table_columns())))
    elif kind == 16:
        scope.columns = {"a": "string", "b": "long"}
        rows = ", ".join(f"{literal(draw, 'string')}, {literal(draw, 'long')}" for _ in range(2))
        return f"datatable(a: string, b: long) [{rows}]"
    elif kind == 17:
        scope.columns = {"x": "long"}
        return f"range x from 1 to {draw(st.integers(0, 20))} step {draw(st.integers(1, 3))}"
    elif kind == 18:
        scope.columns = {}
        text, ktype = _typed(draw, scope, 2)
        scope.columns = {"p": ktype}
        return f"print p = {text}"
    else:
        tables = sorted({draw(st.sampled_from(MAIN_TABLES)) for _ in range(2)})
        scope.columns = dict(table_columns()[tables[0]])
        return "union " + ", ".join(tables)
    scope.columns = dict(table_columns()[name])
    return name


@st.composite
def queries(draw: DrawFn, max_stages: int = 6, max_depth: int = 3) -> str:
    """A KQL query from the grammar: ``let`` statements, a source and pipe stages."""
    scope = Scope({})
    lets = []
    for i in range(draw(st.integers(0, 2))):
        text, ktype = _typed(draw, Scope({}), 1)
        lets.append(f"let v{i} = {text};")
        scope.scalars[f"v{i}"] = ktype
    if draw(st.integers(0, 5)) == 0:
        lets.append("let f = (s: string) { strlen(s) + 1 };")
    head = source(draw, scope)
    stages = []
    for _ in range(draw(st.integers(0, max_stages))):
        op = draw(st.sampled_from(_WEIGHTED))
        stages.append(op(draw, scope, draw(st.integers(0, max_depth))))
    sep = draw(st.sampled_from([" | ", "\n| ", "\n  | ", " //c\n| "]))
    body = head + "".join(sep + s for s in stages)
    return "\n".join([*lets, body])


# --- mutations -----------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s+|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|\w+|.', re.DOTALL)
POOL = [
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    '"',
    "'",
    '@"',
    "h'",
    "```",
    "|",
    ",",
    ";",
    ".",
    "..",
    "=",
    "==",
    "=~",
    "!",
    "!has",
    "in~",
    "$left.",
    "$right",
    "*",
    "//",
    "\n",
    "\\",
    "let",
    "where",
    "project",
    "summarize",
    "by",
    "on",
    "with",
    "kind=",
    "join",
    "datetime(",
    "dynamic(",
    "timespan(",
    "guid(",
    "typeof(",
    "1h",
    "1e999",
    "-",
    "99999999999999999999999",
    "0x",
    "\x00",
    "\x1b[2J",
    "\u202e",
    "\ufeff",
    "\ud7ff",
    "é",
    "𝔘",
    "null",
    "=>",
    "{}",
    "to",
    "step",
]


def tokens(text: str) -> list[str]:
    """``text`` split into rough tokens (words, strings, punctuation, spaces)."""
    return _TOKEN.findall(text)


@st.composite
def mutated(draw: DrawFn, base: st.SearchStrategy[str]) -> str:
    """A query from ``base`` with 1-4 token edits: delete, insert, swap, duplicate, cut."""
    parts = tokens(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        if not parts:
            parts = [draw(st.sampled_from(POOL))]
        i = draw(st.integers(0, len(parts) - 1))
        j = draw(st.integers(0, len(parts) - 1))
        edit = draw(st.integers(0, 6))
        if edit == 0:
            del parts[i]
        elif edit == 1:
            parts.insert(i, draw(st.sampled_from(POOL)))
        elif edit == 2:
            parts[i], parts[j] = parts[j], parts[i]
        elif edit == 3:
            parts.insert(j, parts[i])
        elif edit == 4:
            parts = parts[:i]
        elif edit == 5:
            parts.insert(i, draw(st.text(max_size=4)))
        else:
            word = parts[i]
            k = draw(st.integers(0, max(0, len(word) - 1)))
            parts[i] = word[:k] + draw(st.characters()) + word[k + 1 :]
    return "".join(parts)


@cache
def corpus() -> tuple[str, ...]:
    """The queries of the conformance suite and of the bad-query corpus (both in the repo)."""
    texts: list[str] = []
    for path in sorted(CONFORMANCE_DIR.glob("*.yaml")):
        texts += [case["kql"] for case in yaml.safe_load(path.read_text(encoding="utf-8"))]
    texts += [case["kql"] for case in yaml.safe_load(BAD_QUERIES.read_text(encoding="utf-8"))]
    return tuple(texts)


def corpus_queries() -> st.SearchStrategy[str]:
    return st.sampled_from(corpus())


SHARED_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "kql-corpus"


@cache
def shared_corpus() -> tuple[str, ...]:
    """The real-world queries of ``../shared/kql-corpus`` (none when it is absent)."""
    paths = sorted(SHARED_CORPUS.glob("*/*.kql")) if SHARED_CORPUS.is_dir() else []
    return tuple(p.read_text(encoding="utf-8", errors="replace") for p in paths)


# --- huge queries --------------------------------------------------------------------------------

T = "DeviceProcessEvents"


def _or_chain(n: int) -> str:
    return f"{T} | where " + " or ".join(f'FileName == "f{i}.exe"' for i in range(n))


def _and_chain(n: int) -> str:
    return f"{T} | where " + " and ".join(f'ProcessCommandLine !has "x{i}"' for i in range(n))


def _in_list(n: int) -> str:
    return f"{T} | where SHA1 in~ (" + ", ".join(f'"{i:040x}"' for i in range(n)) + ")"


def _parens(n: int) -> str:
    return f"{T} | where " + "(" * n + "ProcessId > 0" + ")" * n


def _calls(n: int) -> str:
    return f"{T} | extend x = " + "abs(" * n + "ProcessId" + ")" * n


def _stages(n: int) -> str:
    return T + "".join(f"\n| where ProcessId != {i}" for i in range(n))


def _plus_chain(n: int) -> str:
    return f"{T} | extend x = " + " + ".join("1" for _ in range(n))


def _unary(n: int) -> str:
    return f"{T} | extend x = " + "-" * n + "1"


def _dynamic(n: int) -> str:
    return "print d = dynamic(" + "[" * n + "]" * n + ")"


def _union(n: int) -> str:
    return "union " + ", ".join(MAIN_TABLES[i % len(MAIN_TABLES)] for i in range(n))


def _lets(n: int) -> str:
    lets = "".join(f"let v{i} = v{i - 1} + 1;\n" if i else "let v0 = 1;\n" for i in range(n))
    return lets + f"print x = v{n - 1}"


def _iff(n: int) -> str:
    return f"{T} | extend x = " + "iff(ProcessId > 1, " * n + "1" + ", 2)" * n


def _subqueries(n: int) -> str:
    return "(" * n + T + ")" * n + " | take 1"


def _joins(n: int) -> str:
    text = T + " | project DeviceId"
    for _ in range(n):
        text = f"{T} | project DeviceId | join ({text}) on DeviceId"
    return text


def _string(n: int) -> str:
    return f'{T} | where ProcessCommandLine has "{"a" * n}"'


def _number(n: int) -> str:
    return "print x = " + "9" * n


def _case(n: int) -> str:
    arms = ", ".join(f'ProcessId == {i}, "{i}"' for i in range(n))
    return f'{T} | extend x = case({arms}, "none")'


def _strcat(n: int) -> str:
    return f"{T} | extend x = strcat(" + ", ".join("FileName" for _ in range(n)) + ")"


def _brackets(n: int) -> str:
    return f"{T} | extend x = AdditionalFields" + '["a"]' * n


STRESS: dict[str, Callable[[int], str]] = {
    "or-chain": _or_chain,
    "and-chain": _and_chain,
    "in-list": _in_list,
    "parentheses": _parens,
    "nested-calls": _calls,
    "pipe-stages": _stages,
    "plus-chain": _plus_chain,
    "unary-minus": _unary,
    "nested-dynamic": _dynamic,
    "union-fan-out": _union,
    "let-chain": _lets,
    "nested-iff": _iff,
    "nested-subqueries": _subqueries,
    "nested-joins": _joins,
    "long-string": _string,
    "long-number": _number,
    "case-arms": _case,
    "strcat-args": _strcat,
    "member-chain": _brackets,
}


@st.composite
def huge(draw: DrawFn, sizes: tuple[int, ...] = (10, 200, 1_100, 2_500)) -> str:
    """One of the :data:`STRESS` shapes at one of ``sizes`` (nesting shapes stay below 60)."""
    shape = draw(st.sampled_from(sorted(STRESS)))
    size = draw(st.sampled_from(sizes))
    if shape == "nested-joins":
        size = min(size, 60)  # each level is a whole join: the SQL grows with the square
    return STRESS[shape](size)
