"""Parsers for the pipe operators (``| where``, ``| summarize``...), dispatched by name.

Each takes the parser positioned after the operator's name and returns its syntax node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trustwatch.errors import KqlSyntaxError
from trustwatch.kql import ast
from trustwatch.kql.tokens import Token, TokenType

if TYPE_CHECKING:
    from trustwatch.kql.parser import Parser

T = TokenType

# https://learn.microsoft.com/kusto/query/join-operator
_JOIN_KINDS = frozenset(
    {
        "innerunique",
        "inner",
        "leftouter",
        "rightouter",
        "fullouter",
        "leftanti",
        "rightanti",
        "leftsemi",
        "rightsemi",
        "anti",
        "leftantisemi",
        "rightantisemi",
    }
)


def parse_where(p: Parser, tok: Token) -> ast.Where:
    pred = p.parse_expr()
    return ast.Where(predicate=pred, span=tok.span.to(pred.span))


def parse_extend(p: Parser, tok: Token) -> ast.Extend:
    return ast.Extend(items=p.parse_assignments(), span=tok.span.to(p.prev_span()))


def parse_project(p: Parser, tok: Token) -> ast.Project:
    return ast.Project(items=p.parse_assignments(), span=tok.span.to(p.prev_span()))


def parse_patterns(p: Parser) -> tuple[ast.ColumnPattern, ...]:
    patterns = [p.parse_pattern()]
    while p.match(T.COMMA):
        patterns.append(p.parse_pattern())
    return tuple(patterns)


def parse_project_away(p: Parser, tok: Token) -> ast.ProjectAway:
    return ast.ProjectAway(patterns=parse_patterns(p), span=tok.span.to(p.prev_span()))


def parse_project_keep(p: Parser, tok: Token) -> ast.ProjectKeep:
    return ast.ProjectKeep(patterns=parse_patterns(p), span=tok.span.to(p.prev_span()))


def parse_project_rename(p: Parser, tok: Token) -> ast.ProjectRename:
    pairs = []
    spans = []
    while True:
        new = p.expect_name("the new column name")
        p.expect(T.ASSIGN, "'=' in project-rename New = Old")
        old_tok = p.tok
        old = p.expect_name("the existing column name")
        pairs.append((new, old))
        spans.append(old_tok.span.to(p.prev_span()))
        if not p.match(T.COMMA):
            break
    return ast.ProjectRename(
        pairs=tuple(pairs), old_spans=tuple(spans), span=tok.span.to(p.prev_span())
    )


def parse_project_reorder(p: Parser, tok: Token) -> ast.ProjectReorder:
    patterns: list[ast.ColumnPattern] = []
    orders: list[str | None] = []
    while True:
        patterns.append(p.parse_pattern())
        word = p.match_word("asc", "desc", "granny-asc", "granny-desc")
        orders.append(word.text if word else None)
        if not p.match(T.COMMA):
            break
    return ast.ProjectReorder(
        patterns=tuple(patterns), orders=tuple(orders), span=tok.span.to(p.prev_span())
    )


def parse_sort_key(p: Parser) -> ast.SortKey:
    expr = p.parse_expr()
    descending = True
    nulls_first: bool | None = None
    if word := p.match_word("asc", "desc"):
        descending = word.text == "desc"
    if p.match_word("nulls"):
        nulls_first = p.expect_word("first", "last").text == "first"
    return ast.SortKey(
        expr=expr,
        descending=descending,
        nulls_first=nulls_first,
        span=expr.span.to(p.prev_span()),
    )


def parse_sort(p: Parser, tok: Token) -> ast.Sort:
    p.skip_hints()
    p.expect_word("by")
    keys = [parse_sort_key(p)]
    while p.match(T.COMMA):
        keys.append(parse_sort_key(p))
    return ast.Sort(keys=tuple(keys), span=tok.span.to(p.prev_span()))


def parse_top(p: Parser, tok: Token) -> ast.Top:
    count = p.parse_expr()
    p.expect_word("by")
    key = parse_sort_key(p)
    return ast.Top(count=count, key=key, span=tok.span.to(p.prev_span()))


def parse_top_nested(p: Parser, tok: Token) -> ast.TopNested:
    """https://learn.microsoft.com/kusto/query/top-nested-operator"""
    levels = []
    start = tok
    while True:
        count = None if p.at_word("of") else p.parse_expr()
        p.expect_word("of")
        value = p.parse_assignment()
        others = None
        if p.match_word("with"):
            p.expect_word("others")
            p.expect(T.ASSIGN, "'=' after 'others'")
            others = p.parse_expr()
        p.expect_word("by")
        aggregate = p.parse_assignment()
        descending = True
        order = p.match_word("asc", "desc")
        if order is not None:
            descending = order.text == "desc"
        levels.append(
            ast.TopNestedLevel(
                count=count,
                value=value,
                others=others,
                aggregate=aggregate,
                descending=descending,
                span=start.span.to(p.prev_span()),
            )
        )
        if not (p.at(T.COMMA) and p.peek().is_word("top")):
            break
        p.advance()
        start = p.read_operator_name()
        if start.text != "top-nested":
            raise KqlSyntaxError("expected 'top-nested' after ','", span=start.span)
    return ast.TopNested(levels=tuple(levels), span=tok.span.to(p.prev_span()))


def parse_take(p: Parser, tok: Token) -> ast.Take:
    p.skip_hints()
    count = p.parse_expr()
    return ast.Take(count=count, span=tok.span.to(count.span))


def parse_sample(p: Parser, tok: Token) -> ast.Sample:
    count = p.parse_expr()
    return ast.Sample(count=count, span=tok.span.to(count.span))


def parse_distinct(p: Parser, tok: Token) -> ast.Distinct:
    p.skip_hints()
    if p.match(T.STAR):
        return ast.Distinct(items=(), star=True, span=tok.span.to(p.prev_span()))
    items = p.parse_assignments()
    return ast.Distinct(items=items, span=tok.span.to(p.prev_span()))


def parse_count(p: Parser, tok: Token) -> ast.Count:
    if p.match_word("as"):
        return ast.Count(name=p.expect_name(), span=tok.span.to(p.prev_span()))
    return ast.Count(span=tok.span)


def parse_summarize(p: Parser, tok: Token) -> ast.Summarize:
    p.skip_hints()
    if p.tok.type in (T.PIPE, T.SEMI, T.EOF, T.RPAREN):
        raise p.error(
            "summarize needs an aggregation or a 'by' clause",
            tok,
            hint="for example: summarize count() by DeviceName",
        )
    aggs: tuple[ast.Assignment, ...] = ()
    if not p.at_word("by"):
        aggs = p.parse_assignments()
    by: tuple[ast.Assignment, ...] = ()
    if p.match_word("by"):
        by = p.parse_assignments()
    if not aggs and not by:
        raise p.error("summarize needs an aggregation or a 'by' clause", tok)
    return ast.Summarize(aggregates=aggs, by=by, span=tok.span.to(p.prev_span()))


def parse_join_conditions(p: Parser) -> tuple[ast.JoinCondition, ...]:
    conds = []
    while True:
        start = p.tok
        left = p.parse_expr()
        conds.extend(join_conditions(p, left, start))
        if not p.match(T.COMMA):
            break
        if p.at_word("and"):
            p.advance()
    return tuple(conds)


def join_conditions(p: Parser, expr: ast.Expr, start: Token) -> list[ast.JoinCondition]:
    """One condition, or several joined by ``and`` (``$left.a == $right.b and $left.c ==
    $right.d``), as Microsoft's parser accepts them: each is one more equality of the join."""
    if isinstance(expr, ast.BinaryOp) and expr.op == "and":
        return join_conditions(p, expr.left, start) + join_conditions(p, expr.right, start)
    return [join_condition(p, expr, start)]


def join_condition(p: Parser, expr: ast.Expr, start: Token) -> ast.JoinCondition:
    if isinstance(expr, ast.Name):
        return ast.JoinCondition(left=expr.name, right=expr.name, span=expr.span)
    if isinstance(expr, ast.BinaryOp) and expr.op == "==":
        sides: dict[str, str] = {}
        for side in (expr.left, expr.right):
            if (
                isinstance(side, ast.Member)
                and isinstance(side.target, ast.Name)
                and side.target.name in ("$left", "$right")
            ):
                sides[side.target.name] = side.name
        if len(sides) == 2:
            return ast.JoinCondition(left=sides["$left"], right=sides["$right"], span=expr.span)
    raise KqlSyntaxError(
        "a join condition is a column name or '$left.A == $right.B'", span=expr.span
    )


def parse_join(p: Parser, tok: Token) -> ast.Join:
    kind = "innerunique"
    hints: list[tuple[str, str]] = []
    while True:
        hints += p.skip_hints()
        k = p.parse_kind(_JOIN_KINDS)
        if k is None:
            break
        kind = k
    hints += p.skip_hints()
    right = p.parse_join_side()
    p.expect_word("on")
    on = parse_join_conditions(p)
    return ast.Join(
        kind=kind, right=right, on=on, hints=tuple(hints), span=tok.span.to(p.prev_span())
    )


def parse_lookup(p: Parser, tok: Token) -> ast.Lookup:
    kind = p.parse_kind(frozenset({"leftouter", "inner"})) or "leftouter"
    right = p.parse_join_side()
    p.expect_word("on")
    on = parse_join_conditions(p)
    return ast.Lookup(kind=kind, right=right, on=on, span=tok.span.to(p.prev_span()))


def parse_union(p: Parser, tok: Token) -> ast.Union:
    return p.parse_union_body(tok)


def parse_mv_expand_items(p: Parser) -> tuple[ast.MvExpandItem, ...]:
    items = []
    while True:
        a = p.parse_assignment()
        to_type = None
        if p.match_word("to"):
            p.expect_word("typeof")
            p.expect(T.LPAREN, "'('")
            to_type = p.parse_type_name()
            p.expect(T.RPAREN, "')'")
        items.append(
            ast.MvExpandItem(
                name=a.name, expr=a.expr, to_type=to_type, span=a.span.to(p.prev_span())
            )
        )
        if not p.match(T.COMMA):
            break
    return tuple(items)


def _expand_head(
    p: Parser,
) -> tuple[str | None, str | None, tuple[ast.MvExpandItem, ...], ast.Expr | None]:
    """What mv-expand and mv-apply share: options, the items, and ``limit``."""
    bagexpansion = itemindex = None
    while (
        p.tok.type is T.IDENT
        and p.peek().type is T.ASSIGN
        and p.tok.text in ("bagexpansion", "with_itemindex", "kind")
    ):
        key = p.advance().text
        p.advance()
        value = p.expect_name()
        if key == "with_itemindex":
            itemindex = value
        else:
            bagexpansion = value
    p.skip_hints()
    items = parse_mv_expand_items(p)
    limit = p.parse_expr() if p.match_word("limit") else None
    return bagexpansion, itemindex, items, limit


def parse_mv_expand(p: Parser, tok: Token) -> ast.MvExpand:
    bagexpansion, itemindex, items, limit = _expand_head(p)
    return ast.MvExpand(
        items=items,
        limit=limit,
        bagexpansion=bagexpansion,
        with_itemindex=itemindex,
        span=tok.span.to(p.prev_span()),
    )


def _row_subquery(p: Parser, source: str, opening: str) -> tuple[ast.Pipeline, Token]:
    """``( op | op ... )``: a subquery over ``source`` (mv-apply's and partition's rows), and
    its closing token."""
    open_tok = p.expect(T.LPAREN, opening)
    ops = [p.parse_pipe_op()]
    while p.match(T.PIPE):
        ops.append(p.parse_pipe_op())
    close = p.expect(T.RPAREN, "')' after the subquery")
    sub = ast.Pipeline(
        source=ast.TableRef(name=source, span=open_tok.span),
        ops=tuple(ops),
        span=open_tok.span.to(close.span),
    )
    return sub, close


def parse_mv_apply(p: Parser, tok: Token) -> ast.MvApply:
    bagexpansion, itemindex, items, limit = _expand_head(p)
    p.expect_word("on")
    sub, close = _row_subquery(p, "$mvapply", "'(' with the subquery")
    return ast.MvApply(
        items=items,
        subquery=sub,
        limit=limit,
        with_itemindex=itemindex,
        bagexpansion=bagexpansion,
        span=tok.span.to(close.span),
    )


def parse_partition(p: Parser, tok: Token) -> ast.Partition:
    """https://learn.microsoft.com/kusto/query/partition-operator"""
    hints = p.skip_hints()
    p.expect_word("by")
    column = p.expect_name("the partition column")
    if p.at(T.LBRACE):
        p.advance()
        source_query = p.parse_tabular()
        close = p.expect(T.RBRACE, "'}' after the subquery")
        return ast.Partition(
            column=column,
            subquery=None,
            source_query=source_query,
            hints=tuple(hints),
            span=tok.span.to(close.span),
        )
    sub, close = _row_subquery(p, "$partition", "'(' or '{' with the subquery")
    return ast.Partition(
        column=column, subquery=sub, hints=tuple(hints), span=tok.span.to(close.span)
    )


def parse_parse(p: Parser, tok: Token) -> ast.Parse:
    kind, flags = "simple", ""
    while p.tok.type is T.IDENT and p.peek().type is T.ASSIGN and p.tok.text in ("kind", "flags"):
        key = p.advance().text
        p.advance()
        value = p.expect_name()
        if key == "kind":
            kinds = (
                ("simple", "regex") if tok.text == "parse-where" else ("simple", "relaxed", "regex")
            )
            if value not in kinds:
                raise p.error(
                    f"unknown {tok.text} kind '{value}'",
                    p.tokens[p.i - 1],
                    hint=f"kinds are {', '.join(kinds[:-1])} and {kinds[-1]}",
                )
            kind = value
        else:
            flags = value
    source = p.parse_expr()
    p.expect_word("with")
    parts: list[str | ast.ParseColumn] = []
    while True:
        if p.at(T.STRING):
            parts.append(str(p.advance().value))
        elif p.at(T.STAR):
            p.advance()
            parts.append(ast.ParseColumn(name="*", span=p.prev_span()))
        elif p.at(T.IDENT) or p.at(T.LBRACK):
            ptok = p.tok
            name = p.expect_name("a column name")
            ptype = "string"
            if p.match(T.COLON):
                ptype = p.parse_type_name()
            parts.append(ast.ParseColumn(name=name, type=ptype, span=ptok.span))
        else:
            break
        if p.at(T.PIPE) or p.at(T.SEMI) or p.at(T.EOF) or p.at(T.RPAREN):
            break
    if not parts:
        raise p.error("parse needs a pattern after 'with'")
    return ast.Parse(
        kind=kind,
        source=source,
        parts=tuple(parts),
        flags=flags,
        filter_rows=tok.text == "parse-where",
        span=tok.span.to(p.prev_span()),
    )


def parse_as(p: Parser, tok: Token) -> ast.As:
    p.skip_hints()
    name = p.expect_name("a name after 'as'")
    return ast.As(name=name, span=tok.span.to(p.prev_span()))


def parse_serialize(p: Parser, tok: Token) -> ast.Serialize:
    items: tuple[ast.Assignment, ...] = ()
    if p.at(T.IDENT) and p.peek().type is T.ASSIGN:
        items = p.parse_assignments()
    return ast.Serialize(items=items, span=tok.span.to(p.prev_span()))


def parse_render(p: Parser, tok: Token) -> ast.Render:
    vis = p.expect_name("a visualization")
    if p.match_word("with"):
        p.expect(T.LPAREN, "'('")
        p.skip_to_closing_paren()
    return ast.Render(visualization=vis, span=tok.span.to(p.prev_span()))


def parse_getschema(p: Parser, tok: Token) -> ast.Getschema:
    return ast.Getschema(span=tok.span)


def parse_invoke(p: Parser, tok: Token) -> ast.Invoke:
    call = p.parse_expr()
    if not isinstance(call, ast.Call):
        raise KqlSyntaxError("invoke needs a function call", span=call.span)
    return ast.Invoke(call=call, span=tok.span.to(call.span))


def parse_evaluate(p: Parser, tok: Token) -> ast.Evaluate:
    hints = p.skip_hints()
    call = p.parse_expr()
    if not isinstance(call, ast.Call):
        raise KqlSyntaxError(
            "evaluate needs a plugin call such as bag_unpack(Column)", span=call.span
        )
    schema: tuple[tuple[str, str], ...] | None = None
    star = False
    if p.match(T.COLON):  # an output schema: evaluate pivot(X) : (*, A:string, B:long)
        p.expect(T.LPAREN, "'(' with the output schema")
        star = p.match(T.STAR) is not None
        if star and not p.at(T.RPAREN):
            p.expect(T.COMMA, "',' after '*'")
        columns: list[tuple[str, str]] = []
        while not p.at(T.RPAREN):
            name = p.expect_name("a column name")
            p.expect(T.COLON, "':' and a type")
            columns.append((name, p.parse_type_name()))
            if not p.match(T.COMMA):
                break
        p.expect(T.RPAREN, "')' after the output schema")
        schema = tuple(columns)
    return ast.Evaluate(
        call=call,
        hints=tuple(hints),
        schema=schema,
        schema_star=star,
        span=tok.span.to(p.prev_span()),
    )


def parse_make_series(p: Parser, tok: Token) -> ast.MakeSeries:
    p.skip_hints()
    aggs = []
    defaults: list[ast.Expr | None] = []
    while True:
        a = p.parse_assignment()
        default = None
        if p.match_word("default"):
            p.expect(T.ASSIGN, "'='")
            default = p.parse_expr()
        aggs.append(a)
        defaults.append(default)
        if not p.match(T.COMMA):
            break
    p.expect_word("on")
    parsed = p.parse_expr()
    start = stop = None
    rng: ast.Node | None = None
    on: ast.Expr = parsed
    if isinstance(parsed, ast.InList) and parsed.op == "in" and len(parsed.items) == 1:
        on, rng = (
            parsed.target,
            parsed.items[0],
        )  # "on T in range(a, b, s)": "in" read as an operator
    elif p.match_word("in"):
        rng = p.parse_expr()
    if rng is not None:
        if not (isinstance(rng, ast.Call) and rng.name == "range" and len(rng.args) == 3):
            raise KqlSyntaxError("expected range(start, stop, step)", span=rng.span)
        start, stop, step = (a for a in rng.args if isinstance(a, ast.Expr))
    else:
        if p.match_word("from"):
            start = p.parse_expr()
        if p.match_word("to"):
            stop = p.parse_expr()
        p.expect_word("step")
        step = p.parse_expr()
    by: tuple[ast.Assignment, ...] = ()
    if p.match_word("by"):
        by = p.parse_assignments()
    return ast.MakeSeries(
        aggregates=tuple(aggs),
        defaults=tuple(defaults),
        on=on,
        start=start,
        stop=stop,
        step=step,
        by=by,
        span=tok.span.to(p.prev_span()),
    )


def parse_search(p: Parser, tok: Token) -> ast.Search:
    return p.parse_search_body(tok)


PIPE_OPERATORS: dict[str, Callable[[Parser, Token], ast.PipeOp]] = {
    "where": parse_where,
    "filter": parse_where,
    "extend": parse_extend,
    "project": parse_project,
    "project-away": parse_project_away,
    "project-keep": parse_project_keep,
    "project-rename": parse_project_rename,
    "project-reorder": parse_project_reorder,
    "sort": parse_sort,
    "order": parse_sort,
    "top": parse_top,
    "top-nested": parse_top_nested,
    "take": parse_take,
    "limit": parse_take,
    "sample": parse_sample,
    "distinct": parse_distinct,
    "count": parse_count,
    "summarize": parse_summarize,
    "join": parse_join,
    "lookup": parse_lookup,
    "union": parse_union,
    "mv-expand": parse_mv_expand,
    "mvexpand": parse_mv_expand,
    "mv-apply": parse_mv_apply,
    "partition": parse_partition,
    "parse": parse_parse,
    # https://learn.microsoft.com/kusto/query/parse-where-operator
    "parse-where": parse_parse,
    "as": parse_as,
    "serialize": parse_serialize,
    "render": parse_render,
    "getschema": parse_getschema,
    "invoke": parse_invoke,
    "evaluate": parse_evaluate,
    "make-series": parse_make_series,
    "search": parse_search,
}
