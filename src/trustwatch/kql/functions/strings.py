"""String functions: lengths, case, concatenation, search and replace, extraction, encodings."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlglot import exp

from trustwatch.errors import KqlSemanticError
from trustwatch.kql import ast
from trustwatch.kql.semantics import (
    TEXTUAL,
    Typed,
    check_regex,
    func,
    lit_string,
    not_null_string,
    sql_type,
    term_match,
)

if TYPE_CHECKING:
    from trustwatch.kql.expressions import ExprCompiler
from trustwatch.kql.functions.conversions import convert, to_string, typeof_argument
from trustwatch.kql.functions.dynamic import _dyn
from trustwatch.kql.functions.registry import (
    FUNCTIONS,
    Handler,
    _const_str,
    _error,
    _regex_arg,
    register,
)


def _strings(ec: ExprCompiler, node: ast.Call, low: int, high: int | None = None) -> list[Typed]:
    return [to_string(a) if a.type not in TEXTUAL else a for a in ec.args(node, low, high)]


@register("strlen")
def _strlen(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("length", s.sql), "long")


@register("string_size")
def _string_size(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("octet_length", func("encode", s.sql)), "long")


@register("tolower")
def _tolower(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("lower", s.sql), "string")


@register("toupper")
def _toupper(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("upper", s.sql), "string")


@register("reverse")
def _reverse(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("reverse", s.sql), "string")


@register("strcat")
def _strcat(ec: ExprCompiler, node: ast.Call) -> Typed:
    parts = _strings(ec, node, 1, 64)
    return Typed(func("concat", *[p.sql for p in parts]), "string")


@register("strcat_delim")
def _strcat_delim(ec: ExprCompiler, node: ast.Call) -> Typed:
    parts = _strings(ec, node, 3, 65)
    return Typed(func("concat_ws", *[p.sql for p in parts]), "string")


@register("strcat_array")
def _strcat_array(ec: ExprCompiler, node: ast.Call) -> Typed:
    arr, delim = ec.args(node, 2)
    elements = func("json_extract_string", _dyn(arr), lit_string("$[*]"))
    return Typed(not_null_string(func("array_to_string", elements, to_string(delim).sql)), "string")


@register("strrep")
def _strrep(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 3)
    s = to_string(args[0]).sql
    if len(args) == 3:
        d = to_string(args[2]).sql
        body = func("repeat", func("concat", s, d), args[1].sql)
        return Typed(
            func(
                "left",
                body,
                exp.Sub(this=func("length", body.copy()), expression=func("length", d.copy())),
            ),
            "string",
        )
    return Typed(func("repeat", s, args[1].sql), "string")


@register("substring")
def _substring(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 3)
    s = to_string(args[0]).sql
    # a negative start counts from the end: substring("123456", -2, 2) == "56"
    raw = args[1].sql
    from_end = exp.Add(this=func("length", s.copy()), expression=raw.copy())
    start0 = exp.If(
        this=exp.LT(this=raw, expression=exp.Literal.number(0)),
        true=func("greatest", from_end, exp.Literal.number(0)),
        false=raw.copy(),
    )
    start = exp.Add(this=start0, expression=exp.Literal.number(1))
    if len(args) == 3:
        return Typed(not_null_string(func("substring", s, start, args[2].sql)), "string")
    return Typed(not_null_string(func("substring", s, start)), "string")


@register("indexof")
def _indexof(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 4)
    s, lookup = to_string(args[0]).sql, to_string(args[1]).sql
    if len(args) >= 3:
        start = args[2].sql
        tail = func("substring", s, exp.Add(this=start, expression=exp.Literal.number(1)))
        if len(args) == 4:  # length: -1 means to the end
            tail = exp.If(
                this=exp.EQ(this=args[3].sql, expression=exp.Literal.number(-1)),
                true=tail,
                false=func(
                    "substring",
                    s.copy(),
                    exp.Add(this=start.copy(), expression=exp.Literal.number(1)),
                    args[3].sql.copy(),
                ),
            )
        pos = func("strpos", tail, lookup)
        return Typed(
            exp.If(
                this=exp.GT(this=pos, expression=exp.Literal.number(0)),
                true=exp.Add(
                    this=exp.Sub(this=pos.copy(), expression=exp.Literal.number(1)),
                    expression=start.copy(),
                ),
                false=exp.Literal.number(-1),
            ),
            "long",
        )
    return Typed(exp.Sub(this=func("strpos", s, lookup), expression=exp.Literal.number(1)), "long")


@register("replace_string", "replace")
def _replace_string(ec: ExprCompiler, node: ast.Call) -> Typed:
    if node.name == "replace":
        regex, rewrite, text = _strings(ec, node, 3)
        return Typed(
            not_null_string(
                func("regexp_replace", text.sql, regex.sql, rewrite.sql, lit_string("g"))
            ),
            "string",
        )
    text, lookup, rewrite = _strings(ec, node, 3)
    return Typed(func("replace", text.sql, lookup.sql, rewrite.sql), "string")


@register("replace_regex")
def _replace_regex(ec: ExprCompiler, node: ast.Call) -> Typed:
    text, regex, rewrite = _strings(ec, node, 3)
    _regex_arg(regex, node.args[1])
    return Typed(
        not_null_string(func("regexp_replace", text.sql, regex.sql, rewrite.sql, lit_string("g"))),
        "string",
    )


def _trim(ec: ExprCompiler, node: ast.Call, leading: bool, trailing: bool) -> Typed:
    regex, text = _strings(ec, node, 2)
    pattern = _const_str(regex, node.args[0], "the trim regex")
    check_regex(pattern, node.args[0].span)
    out = text.sql
    if leading:
        out = func("regexp_replace", out, lit_string(f"^(?:{pattern})+"), lit_string(""))
    if trailing:
        out = func("regexp_replace", out, lit_string(f"(?:{pattern})+$"), lit_string(""))
    return Typed(out, "string")


@register("trim")
def _trim_both(ec: ExprCompiler, node: ast.Call) -> Typed:
    return _trim(ec, node, True, True)


@register("trim_start")
def _trim_start(ec: ExprCompiler, node: ast.Call) -> Typed:
    return _trim(ec, node, True, False)


@register("trim_end")
def _trim_end(ec: ExprCompiler, node: ast.Call) -> Typed:
    return _trim(ec, node, False, True)


@register("extract")
def _extract(ec: ExprCompiler, node: ast.Call) -> Typed:
    ktype = typeof_argument(node.args[3]) if len(node.args) == 4 else None
    if len(node.args) == 4 and ktype is None:
        raise _error(node.args[3], "the fourth argument of extract() is typeof(type)")
    regex, group, source = (
        (ec.compile(a) for a in node.args[:3]) if len(node.args) >= 3 else ec.args(node, 3, 4)
    )
    check_regex(_const_str(regex, node.args[0], "the extract regex"), node.args[0].span)
    text = to_string(source).sql
    value = func("regexp_extract", text, regex.sql, exp.Cast(this=group.sql, to=sql_type("int")))
    if ktype and ktype not in TEXTUAL:
        return convert(Typed(exp.Nullif(this=value, expression=lit_string("")), "string"), ktype)
    return Typed(not_null_string(value), "string")


@register("extract_all", "extractall")
def _extract_all(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 3)
    regex = args[0]
    pattern = _const_str(regex, node.args[0], "the extract_all regex")
    check_regex(pattern, node.args[0].span)
    source = to_string(args[-1]).sql
    groups = re.compile(pattern).groups if _re_ok(pattern) else 1
    if len(args) == 3 or groups > 1:
        raise KqlSemanticError(
            "extract_all() with several capture groups is not supported yet",
            span=node.span,
            code="KQL301",
        )
    group = exp.Literal.number(1 if groups else 0)
    matches = func(
        "regexp_extract_all", source, regex.sql, exp.Cast(this=group, to=sql_type("int"))
    )
    return Typed(
        exp.If(
            this=exp.GT(this=func("len", matches), expression=exp.Literal.number(0)),
            true=func("to_json", matches.copy()),
            false=exp.Cast(this=exp.null(), to=sql_type("dynamic")),
        ),
        "dynamic",
    )


def _re_ok(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


@register("split")
def _split(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 3)
    parts = func("string_split", to_string(args[0]).sql, to_string(args[1]).sql)
    if len(args) == 3:
        # with an index, split returns a one-element array
        # https://learn.microsoft.com/kusto/query/split-function
        idx = exp.Add(this=args[2].sql, expression=exp.Literal.number(1))
        element = func("list_extract", parts, idx)
        return Typed(
            exp.If(
                this=exp.Is(this=element, expression=exp.null()),
                true=exp.Cast(this=lit_string("[]"), to=sql_type("dynamic")),
                false=func("json_array", element.copy()),
            ),
            "dynamic",
        )
    return Typed(func("to_json", parts), "dynamic")


@register("countof")
def _countof(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = ec.args(node, 2, 3)
    text, search = to_string(args[0]).sql, to_string(args[1])
    kind = "normal"
    if len(args) == 3:
        kind = _const_str(args[2], node.args[2], "the countof kind")
    pattern = search.sql if kind == "regex" else func("regexp_escape", search.sql)
    return Typed(func("len", func("regexp_extract_all", text, pattern)), "long")


@register("base64_decode_tostring", "base64_decodestring")
def _b64decode(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(not_null_string(func("try", func("decode", func("from_base64", s.sql)))), "string")


@register("base64_encode_tostring", "base64_encodestring")
def _b64encode(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("to_base64", func("encode", s.sql)), "string")


@register("url_decode")
def _url_decode(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(not_null_string(func("try", func("url_decode", s.sql))), "string")


@register("url_encode", "url_encode_component")
def _url_encode(ec: ExprCompiler, node: ast.Call) -> Typed:
    (s,) = _strings(ec, node, 1)
    return Typed(func("url_encode", s.sql), "string")


def _hash(sql_name: str) -> Handler:
    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        (s,) = _strings(ec, node, 1)
        return Typed(func(sql_name, s.sql), "string")

    return handler


FUNCTIONS["hash_sha256"] = _hash("sha256")
FUNCTIONS["hash_md5"] = _hash("md5")
FUNCTIONS["hash_sha1"] = _hash("sha1")


def _udf(sql_name: str, ktype: str, nargs: tuple[int, int]) -> Handler:
    """A function implemented in Python and registered with the engine (see engines/udfs.py)."""

    def handler(ec: ExprCompiler, node: ast.Call) -> Typed:
        args = _strings(ec, node, *nargs)
        return Typed(func(sql_name, *[a.sql for a in args]), ktype)

    return handler


@register("parse_command_line")
def _parse_command_line(ec: ExprCompiler, node: ast.Call) -> Typed:
    args = _strings(ec, node, 1, 2)
    parser = args[1].sql if len(args) == 2 else lit_string("windows")
    return Typed(func("tw_parse_command_line", args[0].sql, parser), "dynamic")


FUNCTIONS["parse_url"] = FUNCTIONS["parseurl"] = _udf("tw_parse_url", "dynamic", (1, 1))
FUNCTIONS["parse_urlquery"] = FUNCTIONS["parseurlquery"] = _udf(
    "tw_parse_urlquery", "dynamic", (1, 1)
)
FUNCTIONS["parse_path"] = _udf("tw_parse_path", "dynamic", (1, 1))


@register("unicode_codepoints_from_string", "to_utf8")
def _unicode_codepoints(ec: ExprCompiler, node: ast.Call) -> Typed:
    """The code points of a string as a dynamic array of numbers."""
    (s,) = _strings(ec, node, 1)
    chars = func("string_split", s.sql, lit_string(""))
    points = func(
        "list_transform",
        chars,
        exp.Lambda(this=func("unicode", exp.column("c")), expressions=[exp.to_identifier("c")]),
    )
    empty = exp.EQ(this=s.sql.copy(), expression=lit_string(""))
    return Typed(
        exp.If(
            this=empty,
            true=exp.Cast(this=lit_string("[]"), to=sql_type("dynamic")),
            false=func("to_json", points),
        ),
        "dynamic",
    )


@register("unicode_codepoints_to_string", "make_string")
def _unicode_codepoints_to_string(ec: ExprCompiler, node: ast.Call) -> Typed:
    """The string of code points given as numbers or dynamic arrays of numbers, in order.

    ``make_string()`` is the deprecated name of the same function (Microsoft's analyzer,
    ``Functions.cs`` in github.com/microsoft/Kusto-Query-Language, declares both alike);
    https://learn.microsoft.com/kusto/query/unicode-codepoints-to-string-function
    """
    args = ec.args(node, 1, 64)
    parts: list[exp.Expr] = []
    for arg, t in zip(node.args, args, strict=True):
        if t.type == "dynamic":
            points = exp.Cast(
                this=func("json_extract", t.sql, lit_string("$[*]")),
                to=exp.DataType.build("INTEGER[]", dialect="duckdb"),
            )
            chars = func(
                "list_transform",
                points,
                exp.Lambda(this=func("chr", exp.column("c")), expressions=[exp.to_identifier("c")]),
            )
            parts.append(func("array_to_string", chars, lit_string("")))
        elif t.type in ("int", "long"):
            parts.append(func("chr", exp.Cast(this=t.sql, to=sql_type("int"))))
        else:
            raise _error(arg, f"{node.name}() takes numbers or dynamic arrays of numbers")
    joined = parts[0] if len(parts) == 1 else exp.Concat(expressions=parts, safe=False)
    return Typed(not_null_string(joined), "string")


@register("jaccard_index")
def _jaccard_index(ec: ExprCompiler, node: ast.Call) -> Typed:
    """|A ∩ B| / |A ∪ B| over the distinct elements of two arrays.

    https://learn.microsoft.com/kusto/query/jaccard-index-function
    """
    a, b = (
        func("list_distinct", func("json_extract", _dyn(t), lit_string("$[*]")))
        for t in ec.args(node, 2)
    )
    union = func("len", func("list_distinct", func("list_concat", a.copy(), b.copy())))
    common = exp.Cast(this=func("len", func("list_intersect", a, b)), to=sql_type("real"))
    return Typed(
        exp.Div(this=common, expression=exp.Nullif(this=union, expression=exp.Literal.number(0))),
        "real",
    )


@register("has_any_index")
def _has_any_index(ec: ExprCompiler, node: ast.Call) -> Typed:
    """The index of the first value the source ``has``, or -1.

    https://learn.microsoft.com/kusto/query/has-any-index-function
    """
    source, values = ec.args(node, 2)
    if not (values.is_constant and isinstance(values.constant, list)):
        raise KqlSemanticError(
            "has_any_index() needs a constant array of values",
            span=node.args[1].span,
            code="KQL301",
        )
    text = to_string(source).sql
    ifs = [
        exp.If(
            this=term_match(text.copy(), str(v), case_sensitive=False), true=exp.Literal.number(i)
        )
        for i, v in enumerate(values.constant)
        if v is not None
    ]
    if not ifs:
        return Typed(exp.Literal.number(-1), "long")
    return Typed(exp.Case(ifs=ifs, default=exp.Literal.number(-1)), "long")


@register("tohex")
def _tohex(ec: ExprCompiler, node: ast.Call) -> Typed:
    """``tohex(value[, minLength])``: lower-case hex, zero-padded on the left to minLength
    (at most 16; a longer hex text is kept whole), as Kusto's ``tohex`` documents."""
    args = ec.args(node, 1, 2)
    digits = func("lower", func("hex", args[0].sql))
    if len(args) == 1:
        return Typed(digits, "string")
    width = func("least", args[1].sql, exp.Literal.number(16))
    padded = exp.cast(func("greatest", func("length", digits.copy()), width), "int")
    return Typed(func("lpad", digits.copy(), padded, lit_string("0")), "string")


@register("hextolong")
def _hextolong(ec: ExprCompiler, node: ast.Call) -> Typed:
    """trustwatch extension (not in Kusto): ``hextolong("0x3e7") == 999``; null if not hex.

    Windows logs write logon ids, process ids and registry DWORDs in hex; the ingest field maps
    need them as numbers. Queries meant for Sentinel should not use it.
    """
    (s,) = _strings(ec, node, 1)
    prefixed = exp.Case(
        ifs=[
            exp.If(
                this=func("starts_with", func("lower", s.sql), lit_string("0x")),
                true=s.sql.copy(),
            )
        ],
        default=exp.DPipe(this=lit_string("0x"), expression=s.sql.copy(), safe=True),
    )
    return Typed(exp.TryCast(this=prefixed, to=sql_type("long")), "long")
