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


def _json_extract(args: list[exp.Expr]) -> exp.Expr:
    value, path = args
    if isinstance(path, exp.Literal) and path.this == "$[*]":
        # DuckDB: the elements of a JSON array as a list of JSON values (NULL if not an array)
        elements = call("try_variant_get", _variant(value), _lit("$"), _lit("array<variant>"))
        e = exp.to_identifier("e")
        lam = exp.Lambda(this=call("to_json", e), expressions=[e.copy()])
        return call("transform", elements, lam)
    got = call("try_variant_get", _variant(value), _spark_path(path))
    return call("to_json", got)


def _json_extract_string(args: list[exp.Expr]) -> exp.Expr:
    value, path = args
    got = call("try_variant_get", _variant(value), _spark_path(path))
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


def _epoch_us(args: list[exp.Expr]) -> exp.Expr:
    return call("unix_micros", exp.Cast(this=args[0], to=exp.DataType.build("TIMESTAMP")))


def _to_microseconds(args: list[exp.Expr]) -> exp.Expr:
    # a day-time interval of n microseconds, exactly (n is a BIGINT)
    return exp.Mul(
        this=exp.Interval(this=_lit("0.000001"), unit=exp.var("SECOND")),
        expression=args[0],
    )


def _unit_interval(count: str, unit: str) -> Rewrite:
    def build(args: list[exp.Expr]) -> exp.Expr:
        return exp.Mul(this=exp.Interval(this=_lit(count), unit=exp.var(unit)), expression=args[0])

    return build


def _regexp_matches(args: list[exp.Expr]) -> exp.Expr:
    if len(args) != 2:
        raise UnsupportedKql("not supported on the spark engine: regexp_matches with options")
    return exp.RegexpLike(this=args[0], expression=args[1])


def _string_split(args: list[exp.Expr]) -> exp.Expr:
    # Spark's split takes a regular expression: the separator quoted (\Q...\E), all pieces kept
    text, sep = args
    if isinstance(sep, exp.Literal) and "\\E" in sep.this:
        raise UnsupportedKql("not supported on the spark engine: a separator containing \\E")
    pattern = call("concat", _lit("\\Q"), sep, _lit("\\E"))
    return call("split", text, pattern, exp.Literal.number(-1))


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
    (value,) = args
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


def _regexp_extract(args: list[exp.Expr]) -> exp.Expr:
    if len(args) == 2:  # DuckDB's default is the whole match; Spark's is group 1
        return call("regexp_extract", *args, exp.Literal.number(0))
    if len(args) == 3:
        return call("regexp_extract", *args)
    raise UnsupportedKql("not supported on the spark engine: regexp_extract with options")


def _is_json_list(node: exp.Expr) -> bool:
    """Is ``node`` (DuckDB) a list of JSON values: aggregated ``to_json``s or array elements?"""
    while True:
        if isinstance(node, exp.Coalesce | exp.Filter | exp.Order):
            node = node.this
        elif isinstance(node, exp.Anonymous) and node.name.lower() == "list_distinct":
            node = node.expressions[0]
        else:
            break
    if isinstance(node, exp.ArrayAgg):
        element = node.this.this if isinstance(node.this, exp.Order) else node.this
        return isinstance(element, exp.Anonymous) and element.name.lower() == "to_json"
    if isinstance(node, exp.Anonymous) and node.name.lower() == "json_extract":
        path = node.expressions[1]
        return isinstance(path, exp.Literal) and path.this == "$[*]"
    return False


def _json_list_text(spark_list: exp.Expr) -> exp.Expr:
    """A Spark array of JSON texts written as one JSON array (DuckDB: ``to_json(LIST<JSON>)``)."""
    joined = call("array_join", spark_list, _lit(","), _lit("null"))
    return call("concat", _lit("["), joined, _lit("]"))


REWRITES: dict[str, Rewrite] = {
    # strings
    "contains": _same("contains"),
    "split_part": _same("split_part"),
    "translate": _same("translate"),
    "lower": _same("lower"),
    "upper": _same("upper"),
    "concat": _same("concat"),
    "concat_ws": _same("concat_ws"),
    "replace": _same("replace"),
    "starts_with": _renamed("startswith"),
    "ends_with": _renamed("endswith"),
    "length": _renamed("char_length"),
    "len": _renamed("char_length"),
    "lpad": _same("lpad"),
    "trim": _same("trim"),
    "regexp_matches": _regexp_matches,
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
    # time
    "epoch_us": _epoch_us,
    "to_microseconds": _to_microseconds,
    "to_seconds": _unit_interval("1", "SECOND"),
    "to_minutes": _unit_interval("1", "MINUTE"),
    "to_hours": _unit_interval("1", "HOUR"),
    "to_days": _unit_interval("1", "DAY"),
    "to_weeks": _unit_interval("7", "DAY"),
    "hour": _same("hour"),
    # lists
    "list_extract": _list_extract,
    "list_value": _renamed("array"),
    "list_contains": _renamed("array_contains"),
    "list_distinct": _renamed("array_distinct"),
    "generate_series": _sequence,
    "list_transform": _renamed("transform"),
    "trunc": _trunc,
    "round": _same("round"),
    "date_trunc": _same("date_trunc"),
    "make_timestamp": _make_timestamp,
    "regexp_extract": _regexp_extract,
    # JSON (dynamic)
    "to_json": _to_json,
    "json_extract": _json_extract,
    "json_extract_string": _json_extract_string,
    "json_type": _json_type,
    "json_valid": _json_valid,
    # Spark's own, put in by this module (the order of row numbers)
    "monotonically_increasing_id": _same("monotonically_increasing_id"),
    # trustwatch's Python functions, registered as pandas UDFs by engines.spark
    "tw_parse_command_line": _same("tw_parse_command_line"),
    "tw_parse_url": _same("tw_parse_url"),
    "tw_parse_urlquery": _same("tw_parse_urlquery"),
    "tw_parse_path": _same("tw_parse_path"),
    "tw_todatetime_us": _same("tw_todatetime_us"),
    "tw_totimespan_us": _same("tw_totimespan_us"),
}

# DuckDB types -> Spark types (JSON travels as text; TIMESTAMP is UTC wall time)
_TYPES: dict[object, str] = {
    exp.DataType.Type.JSON: "STRING",
    exp.DataType.Type.TIMESTAMPTZ: "TIMESTAMP",
    exp.DataType.Type.TIMESTAMP: "TIMESTAMP",
}


def _unordered_row_number(window: exp.Window) -> bool:
    return isinstance(window.this, exp.RowNumber) and not window.args.get("order")


def _rewrite_node(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        rewrite = REWRITES.get(name)
        if rewrite is None:
            raise UnsupportedKql(
                f"not supported on the spark engine: the SQL function {name}",
                hint="run this query with --engine duckdb",
            )
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
    return tree.copy().transform(_rewrite_node, copy=False)


def spark_sql(tree: exp.Expr) -> str:
    """Spark SQL text for a compiled tree."""
    return sql_text(to_spark(tree), "spark")
