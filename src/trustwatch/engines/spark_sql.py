"""The compiler's SQL trees (written for DuckDB) rewritten for Spark SQL, function by function.

The KQL compiler builds sqlglot trees with DuckDB's functions and types. sqlglot generates
Spark SQL for its typed nodes (``Cast``, ``Coalesce``, ``Case``...); the functions the
compiler names itself (``exp.Anonymous``) are DuckDB's, and each has an entry in ``REWRITES``
giving its Spark equivalent. A function without an entry is refused with
``UnsupportedKql`` naming it: a query never runs with a function Spark reads differently.

Values of KQL's ``dynamic`` type are JSON text on Spark (DuckDB's JSON is text too); the JSON
functions parse it as a VARIANT (Spark 4) and write it back as JSON text.
https://spark.apache.org/docs/latest/sql-ref-functions-builtin.html
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from trustwatch.engines.spark_regex import java_regex, refuse_regex
from trustwatch.errors import UnsupportedKql
from trustwatch.kql.deep import sql_text

Rewrite = Callable[[list[exp.Expr]], exp.Expr]


def call(name: str, *args: exp.Expr) -> exp.Expr:
    """A Spark function call, kept verbatim by sqlglot."""
    return exp.Anonymous(this=name, expressions=list(args))


def _lit(value: str) -> exp.Expr:
    return exp.Literal.string(value)


def _same(name: str) -> Rewrite:
    """A function Spark has under the same name, with the same meaning for these arguments."""

    def build(args: list[exp.Expr]) -> exp.Expr:
        return call(name, *args)

    return build


def _renamed(name: str) -> Rewrite:
    return _same(name)


def _variant(json_text: exp.Expr) -> exp.Expr:
    # try_parse_json: invalid JSON text is NULL, as DuckDB's json functions give on bad input
    return call("try_parse_json", json_text)


def _spark_path(path: exp.Expr) -> exp.Expr:
    """DuckDB's ``$."key"`` member paths as Spark's ``$['key']`` (other paths are the same)."""
    if isinstance(path, exp.Literal) and path.is_string:
        text = path.this
        if text.startswith('$."') and text.endswith('"'):
            key = text[3:-1].replace('\\"', '"')
            if "'" in key:
                raise UnsupportedKql(
                    f"not supported on the spark engine: a member name with ' ({key})"
                )
            return _lit(f"$['{key}']")
        return path
    if (
        isinstance(path, exp.Anonymous)
        and path.name.lower() == "concat"
        and len(path.expressions) == 3
    ):
        head, key, tail = path.expressions
        if (
            isinstance(head, exp.Literal)
            and head.this == '$."'
            and isinstance(tail, exp.Literal)
            and tail.this == '"'
        ):
            return call("concat", _lit("$['"), key, _lit("']"))
    raise UnsupportedKql("not supported on the spark engine: a computed JSON path")


def _computed_key(path: exp.Expr) -> exp.Expr | None:
    """The key of DuckDB's computed member path ``'$."' || key || '"'`` (rewritten), or None."""
    if isinstance(path, exp.Anonymous) and path.name.lower() in ("concat", "concat_ws"):
        parts = path.expressions[1:] if path.name.lower() == "concat_ws" else path.expressions
        if len(parts) == 3:
            head, key, tail = parts
            if (
                isinstance(head, exp.Literal)
                and head.this == '$."'
                and isinstance(tail, exp.Literal)
                and tail.this == '"'
            ):
                copied: exp.Expr = _unescaped_key(key).copy()
                return copied
    return None


def _unescaped_key(key: exp.Expr) -> exp.Expr:
    """The key itself, without the ``replace(key, '"', '\\"')`` that escapes it for DuckDB."""
    if (
        isinstance(key, exp.Anonymous)
        and key.name.lower() == "replace"
        and len(key.expressions) == 3
        and isinstance(key.expressions[1], exp.Literal)
        and key.expressions[1].this == '"'
        and isinstance(key.expressions[2], exp.Literal)
        and key.expressions[2].this == '\\"'
    ):
        unescaped: exp.Expr = key.expressions[0]
        return unescaped
    return key


def _member(value: exp.Expr, path: exp.Expr) -> exp.Expr:
    """The VARIANT at DuckDB's JSON ``path`` of JSON text ``value`` (NULL where absent)."""
    key = _computed_key(path)
    if key is not None:
        # a key of any text (quotes, brackets) through the object as a map, not a path
        members = call("try_variant_get", _variant(value), _lit("$"), _lit("map<string,variant>"))
        return call("try_element_at", members, key)
    return call("try_variant_get", _variant(value), _spark_path(path))


def _json_extract(args: list[exp.Expr]) -> exp.Expr:
    value, path = args
    if isinstance(path, exp.Literal) and path.this == "$[*]":
        # DuckDB: the elements of a JSON array as a list of JSON values (NULL if not an array)
        elements = call("try_variant_get", _variant(value), _lit("$"), _lit("array<variant>"))
        e = exp.to_identifier("e")
        lam = exp.Lambda(this=call("to_json", e), expressions=[e.copy()])
        return call("transform", elements, lam)
    return call("to_json", _member(value, path))


def _json_extract_string(args: list[exp.Expr]) -> exp.Expr:
    value, path = args
    if isinstance(path, exp.Literal) and path.this == "$[*]":
        # DuckDB: the elements of a JSON array each as text, [] for any other JSON value, NULL
        # for NULL
        elements = call("try_variant_get", _variant(value), _lit("$"), _lit("array<variant>"))
        e = exp.to_identifier("e")
        lam = exp.Lambda(this=_variant_text(e), expressions=[e.copy()])
        listed = exp.Coalesce(this=call("transform", elements, lam), expressions=[call("array")])
        return exp.Case(
            ifs=[exp.If(this=exp.Is(this=value.copy(), expression=exp.null()), true=exp.null())],
            default=listed,
        )
    return _variant_text(_member(value, path))


def _variant_text(got: exp.Expr) -> exp.Expr:
    # a JSON string's text unquoted; anything else as JSON text (DuckDB's json_extract_string)
    return exp.Case(
        ifs=[
            exp.If(
                this=exp.EQ(this=call("schema_of_variant", got), expression=_lit("STRING")),
                true=exp.Cast(this=got.copy(), to=exp.DataType.build("STRING")),
            ),
            exp.If(
                this=exp.EQ(this=call("schema_of_variant", got.copy()), expression=_lit("VOID")),
                true=exp.null(),
            ),
        ],
        default=call("to_json", got.copy()),
    )


# schema_of_variant's type names (prefixes) -> DuckDB's json_type names
_JSON_TYPES = [
    ("OBJECT", "OBJECT"),
    ("ARRAY", "ARRAY"),
    ("STRING", "VARCHAR"),
    ("BIGINT", "BIGINT"),
    ("DOUBLE", "DOUBLE"),
    ("DECIMAL", "DOUBLE"),
    ("BOOLEAN", "BOOLEAN"),
    ("VOID", "NULL"),
]


def _json_type(args: list[exp.Expr]) -> exp.Expr:
    schema = call("schema_of_variant", _variant(args[0]))
    return exp.Case(
        ifs=[
            exp.If(
                this=call("startswith", schema.copy(), _lit(prefix)),
                true=_lit(name),
            )
            for prefix, name in _JSON_TYPES
        ]
    )


def _json_valid(args: list[exp.Expr]) -> exp.Expr:
    return exp.Not(this=exp.Is(this=_variant(args[0]), expression=exp.null()))


def _to_json(args: list[exp.Expr]) -> exp.Expr:
    # Spark's to_json takes structs, arrays and variants: a scalar is written as a one-element
    # array and the brackets taken off
    text = call("to_json", call("array", args[0]))
    return exp.Case(
        ifs=[exp.If(this=exp.Is(this=args[0].copy(), expression=exp.null()), true=exp.null())],
        default=call(
            "substring",
            text,
            exp.Literal.number(2),
            exp.Sub(this=call("length", text.copy()), expression=exp.Literal.number(2)),
        ),
    )


def _p(node: exp.Expr) -> exp.Expr:
    """``node`` in brackets where an operator built around it could bind into it."""
    return exp.paren(node) if isinstance(node, exp.Binary | exp.Unary | exp.Case) else node


def _concat(args: list[exp.Expr]) -> exp.Expr:
    return call("concat_ws", _lit(""), *args)


def _trim(args: list[exp.Expr]) -> exp.Expr:
    if len(args) == 2:  # DuckDB trim(s, characters) is Spark's btrim (Spark's trim(a, b) is not)
        return call("btrim", *args)
    return call("trim", *args)


def _epoch_us(args: list[exp.Expr]) -> exp.Expr:
    return call("unix_micros", exp.Cast(this=args[0], to=exp.DataType.build("TIMESTAMP")))


def _to_microseconds(args: list[exp.Expr]) -> exp.Expr:
    # a day-time interval of n microseconds, exactly (n is a BIGINT)
    return exp.Mul(
        this=exp.Interval(this=_lit("0.000001"), unit=exp.var("SECOND")),
        expression=_p(args[0]),
    )


def _unit_interval(count: str, unit: str) -> Rewrite:
    def build(args: list[exp.Expr]) -> exp.Expr:
        interval = exp.Interval(this=_lit(count), unit=exp.var(unit))
        return exp.Mul(this=interval, expression=_p(args[0]))

    return build


def _regexp_matches(args: list[exp.Expr]) -> exp.Expr:
    if len(args) != 2:
        raise UnsupportedKql("not supported on the spark engine: regexp_matches with options")
    return exp.RegexpLike(this=args[0], expression=_regex_arg(args[1]))


def _string_split(args: list[exp.Expr]) -> exp.Expr:
    # Spark's split takes a regular expression: the separator quoted (\Q...\E), all pieces kept
    text, sep = args
    if isinstance(sep, exp.Literal) and "\\E" in sep.this:
        raise UnsupportedKql("not supported on the spark engine: a separator containing \\E")
    pattern = call("concat", _lit("\\Q"), sep, _lit("\\E"))
    return call("split", text, pattern, exp.Literal.number(-1))


def _array_to_string(args: list[exp.Expr]) -> exp.Expr:
    # both skip NULL elements, give NULL for a NULL list and "" for an empty one; DuckDB writes
    # any element as text, Spark's array_join takes strings
    array, sep = args
    text = exp.Cast(this=array, to=exp.DataType.build("ARRAY<STRING>", dialect="spark"))
    return call("array_join", text, sep)


# DuckDB's try() around a decoding, as trustwatch's Python function with its meaning (udfs)
_TRIED = {("decode", "from_base64"): "tw_base64_text", ("url_decode",): "tw_url_text"}


def _try(args: list[exp.Expr]) -> exp.Expr:
    """``try(decode(from_base64(x)))`` and ``try(url_decode(x))``, what the compiler wraps in
    try(); any other expression is refused (Spark has no general try). Given the arguments
    before they are rewritten (:func:`_rewrite_node`): the decoding functions are DuckDB's."""
    (inner,) = args
    names: list[str] = []
    node = inner
    while isinstance(node, exp.Anonymous) and len(node.expressions) == 1:
        names.append(node.name.lower())
        node = node.expressions[0]
    udf = _TRIED.get(tuple(names))
    if udf is None:
        raise UnsupportedKql(
            "not supported on the spark engine: try() of this expression",
            hint="run this query with --engine duckdb",
        )
    return call(udf, node.transform(_rewrite_node, copy=False))


def _list_extract(args: list[exp.Expr]) -> exp.Expr:
    array, index = args
    # DuckDB: 1-based, negative from the end, NULL out of range and at 0
    return exp.Case(
        ifs=[exp.If(this=exp.EQ(this=index, expression=exp.Literal.number(0)), true=exp.null())],
        default=call("try_element_at", array, index.copy()),
    )


def _sequence(args: list[exp.Expr]) -> exp.Expr:
    # DuckDB's generate_series and Spark's sequence both include the stop value
    return call("sequence", *args)


def _trunc(args: list[exp.Expr]) -> exp.Expr:
    # numeric truncation toward zero, keeping the type (Spark's trunc is for dates):
    # x - x % 1 (Java's remainder takes the dividend's sign); infinities stay as they are
    value = _p(args[0])
    infinite = exp.EQ(
        this=call("abs", value),
        expression=exp.Cast(this=_lit("Infinity"), to=exp.DataType.build("DOUBLE")),
    )
    return exp.Case(
        ifs=[exp.If(this=infinite, true=value.copy())],
        default=exp.Sub(
            this=value.copy(),
            expression=exp.Mod(this=value.copy(), expression=exp.Literal.number(1)),
        ),
    )


def _make_timestamp(args: list[exp.Expr]) -> exp.Expr:
    if len(args) == 1:  # DuckDB: microseconds since the epoch
        return call("timestamp_micros", args[0])
    return call("make_timestamp", *args)


def _extracting(name: str) -> Rewrite:
    """``regexp_extract`` / ``regexp_extract_all``: the same arguments on both engines, but
    DuckDB's default group is the whole match and Spark's group 1."""

    def build(args: list[exp.Expr]) -> exp.Expr:
        if len(args) == 2:
            return call(name, args[0], _regex_arg(args[1]), exp.Literal.number(0))
        if len(args) == 3:
            return call(name, args[0], _regex_arg(args[1]), args[2])
        raise UnsupportedKql(f"not supported on the spark engine: {name} with options")

    return build


# DuckDB list functions whose result holds elements of their first argument
_SAME_ELEMENTS = {"list_distinct", "list_sort", "list_filter", "list_slice"}


def _is_json_list(node: exp.Expr) -> bool:
    """Is ``node`` (DuckDB) a list of JSON values: aggregated ``to_json``s or array elements?"""
    while True:
        if isinstance(node, exp.Coalesce | exp.Filter | exp.Order):
            node = node.this
        elif isinstance(node, exp.Anonymous) and node.name.lower() in _SAME_ELEMENTS:
            node = node.expressions[0]
        elif isinstance(node, exp.Anonymous) and node.name.lower() == "list_concat":
            return all(_is_json_list(part) for part in node.expressions)
        else:
            break
    if isinstance(node, exp.ArrayAgg):
        element = node.this.this if isinstance(node.this, exp.Order) else node.this
        return isinstance(element, exp.Anonymous) and element.name.lower() == "to_json"
    if isinstance(node, exp.Anonymous) and node.name.lower() == "json_extract":
        path = node.expressions[1]
        return isinstance(path, exp.Literal) and path.this == "$[*]"
    if isinstance(node, exp.Anonymous) and node.name.lower() == "list_transform":
        # a list built element by element (array_iff): JSON when every element is
        function = node.expressions[1]
        return isinstance(function, exp.Lambda) and _json_valued(function.this)
    if isinstance(node, exp.Anonymous) and node.name.lower() == "list_value":
        kinds = {_json_valued(element) for element in node.expressions}
        if len(kinds) > 1:
            raise UnsupportedKql(
                "not supported on the spark engine: a list of JSON and other values"
            )
        return kinds == {True}
    return False


_JSON_FUNCTIONS = {"to_json", "json_extract", "json_object", "json_array"}


def _json_valued(node: exp.Expr) -> bool:
    """Is ``node`` (DuckDB) a JSON value? A bare column is: the compiler puts a value in a list
    of JSON values (pack_array) as it is only when it is dynamic, else through ``to_json``."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "list_extract":
        return _is_json_list(node.expressions[0])  # an element of a list of JSON values
    if isinstance(node, exp.Anonymous):
        return node.name.lower() in _JSON_FUNCTIONS
    if isinstance(node, exp.Cast):
        return bool(node.to.this == exp.DataType.Type.JSON)
    if isinstance(node, exp.Column | exp.Null):
        return True
    if isinstance(node, exp.Case):
        branches = [i.args["true"] for i in node.args.get("ifs") or []]
        branches += [node.args["default"]] if node.args.get("default") is not None else []
        return all(_json_valued(b) for b in branches)
    return False


def _json_list_text(spark_list: exp.Expr) -> exp.Expr:
    """A Spark array of JSON texts written as one JSON array (DuckDB: ``to_json(LIST<JSON>)``)."""
    joined = call("array_join", spark_list, _lit(","), _lit("null"))
    return call("concat", _lit("["), joined, _lit("]"))


def _regexp_escape(args: list[exp.Expr]) -> exp.Expr:
    """Text matched literally: Java's \\Q...\\E quoting (a \\E inside ends and restarts it).

    Only a regular expression argument may take it (``_regex_arg``): it is Java's syntax.
    """
    (text,) = args
    inner = call("replace", text, _lit("\\E"), _lit("\\E\\\\E\\Q"))
    quoted = call("concat_ws", _lit(""), _lit("\\Q"), inner, _lit("\\E"))
    quoted.meta["java_regex"] = True
    return quoted


def _java_fragment(node: exp.Expr) -> exp.Expr | None:
    """A piece of a pattern built by the query, in Java's syntax; None if not understood."""
    if isinstance(node, exp.Literal) and node.is_string:
        return _lit(java_regex(node.this).removeprefix("(?d)"))
    if node.meta.get("java_regex"):
        return node
    if isinstance(node, exp.If):
        true, false = _java_fragment(node.args["true"]), _java_fragment(node.args["false"])
        if true is not None and false is not None:
            return exp.If(this=node.this, true=true, false=false)
    return None


def _regex_arg(pattern: exp.Expr) -> exp.Expr:
    """A regular expression argument (RE2, DuckDB's) as Java's; refused if not understood.

    A constant pattern is translated (``java_regex``); a pattern the query builds is taken
    when it joins constant pieces and quoted text (``regexp_escape``).
    """
    if isinstance(pattern, exp.Literal) and pattern.is_string:
        return _lit(java_regex(pattern.this))
    pieces = [pattern]
    if pattern.meta.get("java_regex"):
        return call("concat_ws", _lit(""), _lit("(?d)"), pattern)
    if isinstance(pattern, exp.Anonymous) and pattern.name.lower() == "concat_ws":
        sep, *pieces = pattern.expressions
        if not (isinstance(sep, exp.Literal) and sep.this == ""):
            pieces = [pattern]
    java = [_java_fragment(piece) for piece in pieces]
    if any(piece is None for piece in java):
        raise UnsupportedKql(
            "not supported on the spark engine: a regular expression computed by the query",
            hint="run this query with --engine duckdb",
        )
    return call("concat_ws", _lit(""), _lit("(?d)"), *[p for p in java if p is not None])


def _java_replacement(rewrite: exp.Expr) -> exp.Expr:
    """RE2's replacement text (``\\1`` a group, ``\\\\`` a backslash) in Java's (``$1``)."""
    if not (isinstance(rewrite, exp.Literal) and rewrite.is_string):
        raise UnsupportedKql(
            "not supported on the spark engine: a replacement computed by the query",
            hint="run this query with --engine duckdb",
        )
    text, out, i = rewrite.this, [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and (text[i + 1].isdigit() or text[i + 1] == "\\"):
            out.append("$" + text[i + 1] if text[i + 1].isdigit() else "\\\\")
            i += 2
            continue
        if ch == "\\":
            raise UnsupportedKql(
                f"not supported on the spark engine: the replacement {text!r}",
                hint="run this query with --engine duckdb",
            )
        out.append("\\$" if ch == "$" else ch)
        i += 1
    return _lit("".join(out))


def _regexp_replace(args: list[exp.Expr]) -> exp.Expr:
    text, pattern, rewrite, *options = args
    java = _regex_arg(pattern)
    replacement = _java_replacement(rewrite)
    if options == [] or (
        len(options) == 1 and isinstance(options[0], exp.Literal) and options[0].this == "g"
    ):
        anchored = isinstance(java, exp.Literal) and (
            java.this.startswith("(?d)^") or java.this.endswith("\\z")
        )
        if not options and not anchored:
            # DuckDB replaces the first match only without 'g'; Spark replaces every match,
            # the same only when the pattern can match once (anchored)
            raise refuse_regex(pattern.sql(), "the first match only")
        return call("regexp_replace", text, java, replacement)
    raise UnsupportedKql("not supported on the spark engine: regexp_replace with options")


def _arg_by(name: str) -> Rewrite:
    def build(args: list[exp.Expr]) -> exp.Expr:
        # DuckDB's arg_max/arg_min and Spark's max_by/min_by both skip rows whose key is null
        return call(name, *args)

    return build


def _any_value(args: list[exp.Expr]) -> exp.Expr:
    # DuckDB's any_value skips nulls; Spark's does when asked to
    (value,) = args
    return call("any_value", value, exp.true())


def _sha256(args: list[exp.Expr]) -> exp.Expr:
    return call("sha2", args[0], exp.Literal.number(256))


def _dayofweek(args: list[exp.Expr]) -> exp.Expr:
    # DuckDB: Sunday is 0; Spark: Sunday is 1
    return exp.paren(exp.Sub(this=call("dayofweek", args[0]), expression=exp.Literal.number(1)))


def _list_sort(args: list[exp.Expr]) -> exp.Expr:
    # DuckDB sorts nulls last either way; Spark's array_sort ascends with nulls last and
    # sort_array(..., false) descends with nulls last
    lst, *order = args
    if not order or (isinstance(order[0], exp.Literal) and order[0].this.upper() == "ASC"):
        return call("array_sort", lst)
    if isinstance(order[0], exp.Literal) and order[0].this.upper() == "DESC":
        return call("sort_array", lst, exp.false())
    raise UnsupportedKql("not supported on the spark engine: list_sort with a computed order")


def _substring(args: list[exp.Expr]) -> exp.Expr:
    text, start, *length = args
    # the compiler's starts are 1 or more, where DuckDB's and Spark's substring agree; a
    # negative length (DuckDB: characters before the start) is refused at run time
    if not length:
        return call("substring", text, start)
    (count,) = length
    negative = exp.LT(this=count, expression=exp.Literal.number(0))
    return exp.Case(
        ifs=[exp.If(this=negative, true=call("raise_error", _lit("substring of negative length")))],
        default=call("substring", text, start.copy(), count.copy()),
    )


def _list_concat(args: list[exp.Expr]) -> exp.Expr:
    # DuckDB reads a NULL list as empty (two NULLs give []); Spark's concat would be NULL
    return call("concat", *[exp.Coalesce(this=a, expressions=[call("array")]) for a in args])


def _json_key(key: exp.Expr) -> exp.Expr:
    """A string as a JSON string (quoted and escaped)."""
    return _to_json([key])


def _json_object(args: list[exp.Expr]) -> exp.Expr:
    # keys are strings, values JSON text (the compiler's json_object); a NULL value is null
    pieces: list[exp.Expr] = [_lit("{")]
    for i in range(0, len(args), 2):
        value = exp.Coalesce(this=args[i + 1], expressions=[_lit("null")])
        pieces += [_lit(",")] if i else []
        pieces += [_json_key(args[i]), _lit(":"), value]
    return call("concat", *pieces, _lit("}"))


def _json_array(args: list[exp.Expr]) -> exp.Expr:
    # the compiler's json_array: [string] (split with an index) or [string (a key), JSON text]
    pieces: list[exp.Expr] = [_json_key(args[0])]
    if len(args) == 2:
        pieces += [_lit(","), exp.Coalesce(this=args[1], expressions=[_lit("null")])]
    elif len(args) != 1:
        raise UnsupportedKql("not supported on the spark engine: json_array of these values")
    return call("concat", _lit("["), *pieces, _lit("]"))


# DuckDB strftime specifiers (those the compiler writes) -> Spark datetime pattern letters
_STRFTIME = {
    "Y": "yyyy",
    "y": "yy",
    "m": "MM",
    "-m": "M",
    "d": "dd",
    "-d": "d",
    "H": "HH",
    "-H": "H",
    "I": "hh",
    "-I": "h",
    "M": "mm",
    "-M": "m",
    "S": "ss",
    "-S": "s",
    "p": "a",
    "f": "SSSSSS",
    "g": "SSS",
}


def _spark_datetime_pattern(fmt: str) -> str:
    """A DuckDB strftime format as a Spark datetime pattern (literal text quoted)."""
    out: list[str] = []
    literal: list[str] = []
    i = 0

    def flush() -> None:
        if literal:
            out.append("'" + "".join(literal).replace("'", "''") + "'")
            literal.clear()

    while i < len(fmt):
        if fmt[i] != "%":
            literal.append(fmt[i])
            i += 1
            continue
        spec = fmt[i + 1 : i + 3] if fmt[i + 1 : i + 2] == "-" else fmt[i + 1 : i + 2]
        if spec == "%":
            literal.append("%")
        elif spec in _STRFTIME:
            flush()
            out.append(_STRFTIME[spec])
        else:
            raise UnsupportedKql(f"not supported on the spark engine: the date format %{spec}")
        i += 1 + len(spec)
    flush()
    return "".join(out)


def _strftime(args: list[exp.Expr]) -> exp.Expr:
    value, fmt = args
    if not (isinstance(fmt, exp.Literal) and fmt.is_string):
        raise UnsupportedKql(
            "not supported on the spark engine: a date format computed by the query"
        )
    formatted = call("date_format", value, _lit(_spark_datetime_pattern(fmt.this)))
    if "%Y" not in fmt.this:
        return formatted
    # yyyy pads to four digits; DuckDB's %Y does not: only the years where both agree
    year = call("year", value.copy())
    outside = exp.Not(
        this=exp.paren(
            exp.Between(this=year, low=exp.Literal.number(1000), high=exp.Literal.number(9999))
        )
    )
    refusal = call("raise_error", _lit("format_datetime of a year before 1000 or after 9999"))
    return exp.Case(ifs=[exp.If(this=outside, true=refusal)], default=formatted)


def _year_month_interval(months_per_unit: int, limit: int) -> Rewrite:
    def build(args: list[exp.Expr]) -> exp.Expr:
        # DuckDB: n years or months as a month count (int32), out of range an error
        (count,) = args
        out_of_range = exp.GT(this=call("abs", count), expression=exp.Literal.number(limit))
        as_int = exp.Cast(this=count.copy(), to=exp.DataType.build("INT"))
        interval = (
            call("make_ym_interval", as_int, exp.Literal.number(0))
            if months_per_unit == 12
            else call("make_ym_interval", exp.Literal.number(0), as_int)
        )
        refusal = call("raise_error", _lit("an interval of months out of range"))
        return exp.Case(ifs=[exp.If(this=out_of_range, true=refusal)], default=interval)

    return build


_MICROS_PER = {
    "day": 86_400_000_000,
    "hour": 3_600_000_000,
    "minute": 60_000_000,
    "second": 1_000_000,
    "millisecond": 1_000,
    "microsecond": 1,
}


def _floor_units(value: exp.Expr, unit: int) -> exp.Expr:
    # whole units since the epoch, rounded down (exact in BIGINT: x - pmod(x, u) div u)
    micros = call("unix_micros", exp.Cast(this=value, to=exp.DataType.build("TIMESTAMP")))
    floor = exp.Sub(this=micros, expression=call("pmod", micros.copy(), exp.Literal.number(unit)))
    return exp.IntDiv(this=exp.paren(floor), expression=exp.Literal.number(unit))


def _calendar_index(value: exp.Expr, part: str) -> exp.Expr:
    year = call("year", value)
    if part == "year":
        return year
    per_year, within = (
        (12, call("month", value.copy())) if part == "month" else (4, call("quarter", value.copy()))
    )
    return exp.Add(
        this=exp.Mul(this=year, expression=exp.Literal.number(per_year)), expression=within
    )


def _date_diff(args: list[exp.Expr]) -> exp.Expr:
    # DuckDB: the number of part boundaries between start and end (end - start)
    part, start, end = args
    name = part.this if isinstance(part, exp.Literal) and part.is_string else None
    if name in _MICROS_PER:
        unit = _MICROS_PER[name]
        return exp.paren(
            exp.Sub(this=_floor_units(end, unit), expression=_floor_units(start, unit))
        )
    if name in ("year", "quarter", "month"):
        return exp.paren(
            exp.Sub(
                this=_p(_calendar_index(end, name)), expression=_p(_calendar_index(start, name))
            )
        )
    raise UnsupportedKql(f"not supported on the spark engine: date_diff of {part.sql()}")


def _list_slice(args: list[exp.Expr]) -> exp.Expr:
    """DuckDB's ``list_slice(l, a, b)`` (1-based, both ends in) as Spark's ``slice(l, a, n)``
    (``n`` elements from ``a``): the first ``maxSize`` of a make_list / make_set."""
    if len(args) != 3:
        raise UnsupportedKql("not supported on the spark engine: list_slice with a step")
    items, start, end = args
    length = exp.Add(
        this=exp.Sub(this=end, expression=start.copy()), expression=exp.Literal.number(1)
    )
    return call("slice", items, start, exp.Paren(this=length))


REWRITES: dict[str, Rewrite] = {
    # strings
    "contains": _same("contains"),
    "split_part": _same("split_part"),
    # 1-based position, 0 when absent, 1 for "" and NULL of NULL on both
    "strpos": _renamed("instr"),
    "array_to_string": _array_to_string,
    "translate": _same("translate"),
    "lower": _same("lower"),
    "upper": _same("upper"),
    # DuckDB's concat skips NULLs (strings); Spark's would be NULL
    "concat": _concat,
    "concat_ws": _same("concat_ws"),
    "replace": _same("replace"),
    "starts_with": _renamed("startswith"),
    "ends_with": _renamed("endswith"),
    "length": _renamed("char_length"),
    "len": _renamed("array_size"),  # the compiler's len is of lists (NULL of NULL, as DuckDB)
    "lpad": _same("lpad"),
    "trim": _trim,
    "regexp_matches": _regexp_matches,
    "regexp_replace": _regexp_replace,
    "regexp_escape": _regexp_escape,
    "regexp_extract_all": _extracting("regexp_extract_all"),
    "substring": _substring,
    "substr": _substring,
    "sha256": _sha256,
    # the hex digest of the text's UTF-8 bytes on both
    "sha1": _same("sha1"),
    "string_split": _string_split,
    # numbers
    "coalesce": _same("coalesce"),
    "least": _same("least"),
    "greatest": _same("greatest"),
    "pow": _same("pow"),
    "floor": _same("floor"),
    "ceil": _same("ceil"),
    "abs": _same("abs"),
    "sign": _same("sign"),
    "ln": _same("ln"),
    "exp": _same("exp"),
    "sqrt": _same("sqrt"),
    "sum": _same("sum"),
    "avg": _same("avg"),
    "min": _same("min"),
    "max": _same("max"),
    "stddev_samp": _same("stddev_samp"),
    "any_value": _any_value,
    "arg_max": _arg_by("max_by"),
    "arg_min": _arg_by("min_by"),
    # time
    "epoch_us": _epoch_us,
    "to_microseconds": _to_microseconds,
    "to_seconds": _unit_interval("1", "SECOND"),
    "to_minutes": _unit_interval("1", "MINUTE"),
    "to_hours": _unit_interval("1", "HOUR"),
    "to_days": _unit_interval("1", "DAY"),
    "to_weeks": _unit_interval("7", "DAY"),
    "hour": _same("hour"),
    "strftime": _strftime,
    "dayofweek": _dayofweek,
    "date_diff": _date_diff,
    "to_months": _year_month_interval(1, 2_147_483_647),
    "to_years": _year_month_interval(12, 178_956_970),
    # lists
    "list_extract": _list_extract,
    "list_value": _renamed("array"),
    "list_contains": _renamed("array_contains"),
    "list_distinct": _renamed("array_distinct"),
    "list_slice": _list_slice,
    "list_sort": _list_sort,
    "list_concat": _list_concat,
    "generate_series": _sequence,
    "list_transform": _renamed("transform"),
    # the elements whose condition is true (false and NULL dropped) on both
    "list_filter": _renamed("filter"),
    "trunc": _trunc,
    "round": _same("round"),
    "date_trunc": _same("date_trunc"),
    "make_timestamp": _make_timestamp,
    "regexp_extract": _extracting("regexp_extract"),
    # JSON (dynamic)
    "to_json": _to_json,
    "json_extract": _json_extract,
    "json_extract_string": _json_extract_string,
    "json_type": _json_type,
    "json_valid": _json_valid,
    # keys of an object in their order (the compiler asks only of objects)
    "json_keys": _same("json_object_keys"),
    "json_object": _json_object,
    "json_array": _json_array,
    "json_array_length": _same("json_array_length"),
    # new_guid(): a random version-4 UUID as text on both engines
    "uuid": _same("uuid"),
    # Spark's own, put in by this module (the order of row numbers)
    "monotonically_increasing_id": _same("monotonically_increasing_id"),
    "inline": _same("inline"),
    "arrays_zip": _same("arrays_zip"),
    # trustwatch's Python functions, registered as pandas UDFs by engines.spark
    "tw_parse_command_line": _same("tw_parse_command_line"),
    "tw_parse_url": _same("tw_parse_url"),
    "tw_parse_urlquery": _same("tw_parse_urlquery"),
    "tw_parse_path": _same("tw_parse_path"),
    "tw_todatetime_us": _same("tw_todatetime_us"),
    "tw_totimespan_us": _same("tw_totimespan_us"),
    "try": _try,
}

# DuckDB types -> Spark types (JSON travels as text; TIMESTAMP is UTC wall time)
_TYPES: dict[object, str] = {
    exp.DataType.Type.JSON: "STRING",
    exp.DataType.Type.TIMESTAMPTZ: "TIMESTAMP",
    exp.DataType.Type.TIMESTAMP: "TIMESTAMP",
}


def _unordered_row_number(window: exp.Window) -> bool:
    return isinstance(window.this, exp.RowNumber) and not window.args.get("order")


def _zipped_lists(select: exp.Select, unnests: list[exp.Unnest]) -> bool:
    """``SELECT UNNEST(a) AS x, UNNEST(b) AS y`` (nothing else, no FROM: the replay's runs,
    rules.schedule.Window.bind_runs) as Spark's ``SELECT inline(arrays_zip(a, b)) AS (x, y)``,
    in place: both give a row per position of the longest list, NULL past a shorter one's
    end. False (unchanged) for any other SELECT."""
    names = [u.alias for u in unnests]
    if (
        select.args.get("from_") is not None
        or len(unnests) != len(select.expressions)
        or not all(names)
        or any(len(u.expressions) != 1 for u in unnests)
    ):
        return False
    # the lists are rewritten after, as the new node's children
    rows = call("inline", call("arrays_zip", *[u.expressions[0] for u in unnests]))
    select.set(
        "expressions", [exp.Aliases(this=rows, expressions=[exp.to_identifier(n) for n in names])]
    )
    return True


def _rewrite_node(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        rewrite = REWRITES.get(name)
        if rewrite is None:
            raise UnsupportedKql(
                f"not supported on the spark engine: the SQL function {name}",
                hint="run this query with --engine duckdb",
            )
        if name == "try":  # reads its argument as DuckDB wrote it
            return _try(node.expressions)
        # the arguments first: a rewritten node's children are not visited again
        json_list = name == "to_json" and _is_json_list(node.expressions[0])
        args = [arg.transform(_rewrite_node, copy=False) for arg in node.expressions]
        if json_list:
            return _json_list_text(args[0])
        if name == "generate_series" and isinstance(node.parent, exp.Table):
            return call("explode", rewrite(args))  # a table function: Spark's generator
        return rewrite(args)
    if isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order):
        # sqlglot's Spark SQL drops the ORDER BY inside ARRAY_AGG: the list would lose its order
        raise UnsupportedKql(
            "not supported on the spark engine: make_list over sorted input (keeping the order)",
            hint="run this query with --engine duckdb",
        )
    if isinstance(node, exp.Select):
        unnests = [e for e in node.expressions if isinstance(e, exp.Unnest)]
        if len(unnests) > 1 and _zipped_lists(node, unnests):
            return node
        if len(unnests) > 1:
            # DuckDB zips several UNNESTs of one SELECT (padding with NULL); Spark takes one
            # generator per SELECT
            raise UnsupportedKql(
                "not supported on the spark engine: mv-expand of several columns or with_itemindex",
                hint="run this query with --engine duckdb",
            )
        for unnest in unnests:
            # one list's elements as rows; no row for a NULL or empty list, as DuckDB
            alias_name = unnest.args.get("alias")
            explode = exp.Explode(this=unnest.expressions[0])
            unnest.replace(exp.alias_(explode, alias_name) if alias_name is not None else explode)
        return node
    if isinstance(node, exp.CTE) and node.args.get("materialized"):
        if any(_unordered_row_number(w) for w in node.this.find_all(exp.Window)):
            # DuckDB computes a MATERIALIZED CTE once; Spark inlines it at each use, and row
            # numbers of no order could pair one use's rows with another's (mv-apply)
            raise UnsupportedKql(
                "not supported on the spark engine: row numbers read twice (mv-apply)",
                hint="run this query with --engine duckdb",
            )
        return node
    if isinstance(node, exp.Window) and _unordered_row_number(node):
        # Spark needs an order for ROW_NUMBER: the rows' order as read (DuckDB's OVER () numbers
        # them as scanned too); used only where KQL promises no order (serialize of unsorted
        # input, take, innerunique's arbitrary row, range's and datatable's own order)
        order = exp.Ordered(this=call("monotonically_increasing_id"))
        node.set("order", exp.Order(expressions=[order]))
        return node
    if isinstance(node, exp.Limit) and isinstance(node.expression, exp.Cast):
        # Spark takes an INT literal as LIMIT, not a cast to BIGINT
        inner = node.expression.this
        if isinstance(inner, exp.Literal) and inner.is_int:
            node.set("expression", inner.copy())
        return node
    if isinstance(node, exp.DataType):
        spark_type = _TYPES.get(node.this)
        if spark_type is not None:
            return exp.DataType.build(spark_type, dialect="spark")
        if node.this == exp.DataType.Type.INTERVAL and not node.expressions:
            raise UnsupportedKql("not supported on the spark engine: a cast to timespan")
    return node


def to_spark(tree: exp.Expr) -> exp.Expr:
    """A copy of a compiled DuckDB tree in Spark's functions and types.

    Raises:
        UnsupportedKql: the tree uses a function with no Spark equivalent here.
    """
    return _defined_once(tree.copy().transform(_rewrite_node, copy=False))


def _defined_once(tree: exp.Expr) -> exp.Expr:
    """Each CTE name defined once: Spark SQL has WITH at the top only (sqlglot's Spark writer
    moves every nested WITH there), and refuses two definitions of one name, which a query
    reading one ``let`` in several places holds (one WITH per subquery, the same bodies).

    Raises:
        UnsupportedKql: one name with two different bodies.
    """
    bodies: dict[str, exp.Expr] = {}  # compared as trees (sqlglot's structural equality)
    for cte in list(tree.find_all(exp.CTE)):
        name, body = cte.alias_or_name, cte.this
        if name not in bodies:
            bodies[name] = body
            continue
        if bodies[name] != body:
            raise UnsupportedKql(
                f"not supported on the spark engine: two definitions of {name}",
                hint="run this query with --engine duckdb",
            )
        holder = cte.parent
        cte.pop()
        if isinstance(holder, exp.With) and not holder.expressions:
            holder.pop()
    return tree


def spark_sql(tree: exp.Expr) -> str:
    """Spark SQL text for a compiled tree."""
    return sql_text(to_spark(tree), "spark")
