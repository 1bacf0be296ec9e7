"""Recursive-descent parser for KQL statements and pipe operators, Pratt loop for expressions."""

from __future__ import annotations

import difflib
import re
from datetime import datetime, timedelta

from trustwatch import limits
from trustwatch.errors import KqlSyntaxError, Source, Span, UnsupportedKql
from trustwatch.kql import ast, deep
from trustwatch.kql.deep import limit_error
from trustwatch.kql.lexer import tokenize
from trustwatch.kql.literals import (
    TYPE_NAMES,
    format_datetime_value,
    format_timespan_value,
    parse_datetime_text,
    parse_timespan_text,
    ticks_to_timedelta,
)
from trustwatch.kql.tokens import Token, TokenType

T = TokenType

# Binary operator precedence (higher binds tighter). String and comparison operators share a level.
# https://learn.microsoft.com/kusto/query/operators
_OR, _AND, _CMP, _ADD, _MUL = 1, 2, 3, 4, 5

_PUNCT_BINARY: dict[TokenType, tuple[str, int]] = {
    T.EQ: ("==", _CMP),
    T.NEQ: ("!=", _CMP),
    T.LT: ("<", _CMP),
    T.LE: ("<=", _CMP),
    T.GT: (">", _CMP),
    T.GE: (">=", _CMP),
    T.EQ_TILDE: ("=~", _CMP),
    T.BANG_TILDE: ("!~", _CMP),
    T.PLUS: ("+", _ADD),
    T.MINUS: ("-", _ADD),
    T.STAR: ("*", _MUL),
    T.SLASH: ("/", _MUL),
    T.PERCENT: ("%", _MUL),
}

_STRING_OP_WORDS = frozenset(
    stem + suffix
    for stem in ("has", "hasprefix", "hassuffix", "contains", "startswith", "endswith")
    for suffix in ("", "_cs")
)
_LIST_OP_WORDS = frozenset({"in", "has_any", "has_all"})
_DEPRECATED_NEGATIONS = {
    "notcontains": "!contains",
    "notcontainscs": "!contains_cs",
    "containscs": "contains_cs",
    "nothas": "!has",
    "notstartswith": "!startswith",
    "notendswith": "!endswith",
    "notbetween": "!between",
}


class Parser:
    """Parses one token list. Use :func:`parse_query` or :func:`parse_expression`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.paren_depth = 0  # open '(' around the expression being parsed
        self.in_search = False
        self.limits = limits.current()
        self.depth = 0  # nesting of parentheses, calls, brackets and unary operators

    def nest(self) -> None:
        """Enter one level of nesting; past the ``query-depth`` limit, refuse here."""
        self.depth += 1
        if self.depth > self.limits.query_depth:
            raise limit_error(
                "query_depth", self.limits.query_depth, "the nesting here", self.tok.span
            )

    # --- token helpers ------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.type is not T.EOF:
            self.i += 1
        return tok

    def at(self, ttype: TokenType) -> bool:
        return self.tok.type is ttype

    def at_word(self, *words: str) -> bool:
        return self.tok.is_word(*words)

    def match(self, ttype: TokenType) -> Token | None:
        if self.tok.type is ttype:
            return self.advance()
        return None

    def match_word(self, *words: str) -> Token | None:
        if self.tok.is_word(*words):
            return self.advance()
        return None

    def error(
        self, message: str, tok: Token | None = None, hint: str | None = None
    ) -> KqlSyntaxError:
        tok = tok or self.tok
        if tok.type is T.EOF:
            # point at the last token (what the query ended on), not into trailing comments
            last = self.tokens[-2].span if len(self.tokens) > 1 else Span(0, 0)
            return KqlSyntaxError(message, span=last, hint=hint)
        return KqlSyntaxError(message, span=tok.span, hint=hint)

    def found(self) -> str:
        return "end of query" if self.tok.type is T.EOF else f"'{self.tok.text}'"

    def expect(self, ttype: TokenType, what: str) -> Token:
        if self.tok.type is ttype:
            return self.advance()
        raise self.error(f"expected {what}, found {self.found()}")

    def expect_word(self, *words: str) -> Token:
        if self.tok.is_word(*words):
            return self.advance()
        listed = " or ".join(f"'{w}'" for w in words)
        raise self.error(f"expected {listed}, found {self.found()}")

    def expect_name(self, what: str = "a name") -> str:
        """A plain identifier or a bracketed one: ``['My Column']``."""
        if self.at(T.IDENT):
            return self.advance().text
        if self.at(T.LBRACK) and self.peek().type is T.STRING:
            self.advance()
            name = str(self.advance().value)
            self.expect(T.RBRACK, "']'")
            return name
        raise self.error(f"expected {what}, found {self.found()}")

    def adjacent(self, a: Token, b: Token) -> bool:
        return a.span.end == b.span.start

    def bang_word(self, words: frozenset[str]) -> str | None:
        """``!has``-style operators: a '!' immediately followed by one of ``words``."""
        if (
            self.at(T.BANG)
            and self.peek().type is T.IDENT
            and self.peek().text in words
            and self.adjacent(self.tok, self.peek())
        ):
            return self.peek().text
        return None

    # --- statements ---------------------------------------------------------------------------

    def parse_query(self) -> ast.Query:
        lets: list[ast.Let] = []
        body: list[ast.TabularExpr] = []
        start = self.tok.span
        while not self.at(T.EOF):
            if self.match(T.SEMI):
                continue
            if self.at_word("let") and self.peek().type in (T.IDENT, T.LBRACK):
                lets.append(self.parse_let())
            elif (
                self.at_word("set")
                and self.peek().type is T.IDENT
                and self.peek(2).type in (T.SEMI, T.ASSIGN)
            ):
                self.skip_set_statement()
            elif self.at_word("declare") and self.peek().is_word("query_parameters"):
                raise UnsupportedKql(
                    "'declare query_parameters' is not supported by trustwatch's KQL engine",
                    span=self.tok.span.to(self.peek().span),
                    hint="bind the values with 'let' statements instead",
                )
            else:
                body.append(self.parse_tabular())
            if not self.at(T.EOF):
                self.expect_statement_end()
        if not body and not lets:
            raise KqlSyntaxError(
                "the query is empty",
                span=Span(start.start, max(start.end, len(self.text))),
                hint="write a table name, for example DeviceProcessEvents | take 10",
            )
        return ast.Query(lets=tuple(lets), body=tuple(body), span=start.to(self.tok.span))

    def expect_statement_end(self) -> None:
        """After a statement: ';' or the end. Explain the usual causes of a stray token."""
        if self.at(T.SEMI):
            self.advance()
            return
        tok = self.tok
        if tok.type is T.ASSIGN:
            raise self.error(
                "'=' cannot compare values", tok, "use '==' to compare; '=' only names a column"
            )
        if tok.type is T.IDENT:
            words = sorted(
                _STRING_OP_WORDS | _LIST_OP_WORDS | {"and", "or", "asc", "desc", "between"}
            )
            raise self.error(
                f"unexpected word '{tok.text}' after a complete expression",
                tok,
                _suggest(tok.text, words) or "a pipe '|' may be missing before an operator",
            )
        if tok.type is T.RPAREN:
            raise self.error("this ')' has no matching '('", tok)
        raise self.error(
            f"unexpected {self.found()}: expected '|', ';' or the end of the query", tok
        )

    def skip_set_statement(self) -> None:
        while not self.at(T.SEMI) and not self.at(T.EOF):
            self.advance()

    def parse_let(self) -> ast.Let:
        start = self.expect_word("let")
        name = self.expect_name("a name after 'let'")
        self.expect(T.ASSIGN, "'=' after the let name")
        value: ast.Node
        lam = self.try_parse_lambda()
        if lam is not None:
            value = lam
        else:
            value = self.parse_tabular_or_expr()
        return ast.Let(name=name, value=value, span=start.span.to(value.span))

    def try_parse_lambda(self) -> ast.Lambda | None:
        """``(params) { body }`` or ``view (params) { body }``; backtracks if it is not one."""
        save = self.i
        start = self.tok
        self.match_word("view")
        if not self.at(T.LPAREN):
            self.i = save
            return None
        # Quick shape check: () { ... } or (name: ... ) { ... }
        if not (
            (self.peek().type is T.RPAREN and self.peek(2).type is T.LBRACE)
            or (self.peek().type is T.IDENT and self.peek(2).type is T.COLON)
        ):
            self.i = save
            return None
        self.advance()
        params: list[ast.Parameter] = []
        while not self.at(T.RPAREN):
            params.append(self.parse_parameter())
            if not self.match(T.COMMA):
                break
        self.expect(T.RPAREN, "')' after the parameters")
        self.expect(T.LBRACE, "'{' to start the function body")
        lets: list[ast.Let] = []
        body: ast.Node | None = None
        while not self.at(T.RBRACE):
            if self.match(T.SEMI):
                continue
            if self.at_word("let") and self.peek().type in (T.IDENT, T.LBRACK):
                lets.append(self.parse_let())
            else:
                body = self.parse_tabular_or_expr()
            if not self.at(T.RBRACE):
                self.expect(T.SEMI, "';' or '}'")
        end = self.expect(T.RBRACE, "'}'")
        if body is None:
            raise self.error("the function body has no result expression", end)
        return ast.Lambda(
            params=tuple(params), lets=tuple(lets), body=body, span=start.span.to(end.span)
        )

    def parse_parameter(self) -> ast.Parameter:
        tok = self.tok
        name = self.expect_name("a parameter name")
        self.expect(T.COLON, "':' and a type after the parameter name")
        if self.match(T.LPAREN):  # tabular parameter: (*) or (Col:type, ...)
            self.skip_to_closing_paren()
            return ast.Parameter(name=name, type=None, tabular=True, span=tok.span)
        ptype = self.parse_type_name()
        default = None
        if self.match(T.ASSIGN):
            default = self.parse_expr()
        return ast.Parameter(name=name, type=ptype, default=default, span=tok.span)

    def parse_type_name(self) -> str:
        tok = self.tok
        if tok.type is T.TYPED_RAW:  # "datetime" followed by "(" cannot happen here; keep safe
            raise self.error("expected a type name", tok)
        word = self.expect_name("a type name")
        if word not in TYPE_NAMES:
            raise self.error(
                f"unknown type '{word}'",
                tok,
                hint="types are string, int, long, real, bool, datetime, timespan, dynamic, guid",
            )
        return TYPE_NAMES[word]

    # --- tabular expressions ------------------------------------------------------------------

    def parse_tabular(self) -> ast.TabularExpr:
        node = self.parse_tabular_or_expr()
        if isinstance(node, ast.TabularExpr):
            return node
        return self.as_tabular(node)

    def as_tabular(self, node: ast.Node) -> ast.TabularExpr:
        if isinstance(node, ast.TabularExpr):
            return node
        if isinstance(node, _TabularAsExpr):  # (union A, B) | where ...
            return node.query
        if isinstance(node, ast.Member) and isinstance(node.target, ast.Call):
            # database("x").T, cluster("c").database("d").T, arg("").Resources
            return ast.QualifiedTable(path=node, span=node.span)
        if isinstance(node, ast.Name):
            return ast.TableRef(name=node.name, span=node.span)
        if isinstance(node, ast.Call):
            return ast.FunctionSource(call=node, span=node.span)
        raise KqlSyntaxError(
            "expected a tabular expression (a table, or a query in parentheses)", span=node.span
        )

    def parse_tabular_or_expr(self) -> ast.Node:
        """A scalar expression or a tabular expression, decided by what follows."""
        self.nest()
        try:
            return self.parse_tabular_or_expr_nested()
        finally:
            self.depth -= 1

    def parse_tabular_or_expr_nested(self) -> ast.Node:
        start = self.tok
        source: ast.Node
        if self.at_word("datatable") and self.peek().type is T.LPAREN:
            source = self.parse_datatable()
        elif self.at_word("externaldata") and self.peek().type is T.LPAREN:
            source = self.parse_externaldata()
        elif self.at_word("range") and self.peek().type is T.IDENT and self.peek(2).is_word("from"):
            source = self.parse_range_source()
        elif self.at_word("print"):
            source = self.parse_print()
        elif self.at_word("union"):
            self.advance()
            u = self.parse_union_body(start)
            source = ast.UnionSource(union=u, span=u.span)
        elif self.at_word("find") and self.peek().type in (T.STRING, T.IDENT):
            source = self.parse_find()
        elif self.at_word("search") and self.peek().type in (T.STRING, T.IDENT, T.STAR):
            self.advance()
            s = self.parse_search_body(start)
            source = ast.SearchSource(search=s, span=s.span)
        else:
            source = self.parse_expr()
        if self.at(T.PIPE):
            if not isinstance(source, ast.TabularExpr | ast.Name | ast.Call) and self.paren_depth:
                raise self.error(
                    "expected ')' before '|'", hint="close the parenthesis opened earlier"
                )
            tab = self.as_tabular(source)
            ops: list[ast.PipeOp] = []
            while self.at(T.PIPE):
                if len(ops) >= self.limits.query_stages:
                    raise limit_error(
                        "query_stages",
                        self.limits.query_stages,
                        "the number of pipe stages",
                        self.tok.span,
                    )
                self.advance()
                ops.append(self.parse_pipe_op())
            return ast.Pipeline(
                source=tab, ops=tuple(ops), span=start.span.to(self.tokens[self.i - 1].span)
            )
        return source

    def skip_to_closing_paren(self) -> None:
        """Skip tokens up to the ')' that closes an already consumed '(' (options we ignore).

        Raises:
            KqlSyntaxError: the query ends first (at the '(' left open).
        """
        opened = self.tokens[self.i - 1]
        depth = 1
        while depth and not self.at(T.EOF):
            depth += {T.LPAREN: 1, T.RPAREN: -1}.get(self.advance().type, 0)
        if depth:
            raise self.error("this '(' has no matching ')'", opened)

    def parse_column_list(self, what: str) -> list[tuple[str, str]]:
        """``(Name:type, ...)`` after datatable or externaldata."""
        self.expect(T.LPAREN, f"'(' after {what}")
        columns: list[tuple[str, str]] = []
        while not self.at(T.RPAREN):
            name = self.expect_name("a column name")
            self.expect(T.COLON, "':' and a type")
            columns.append((name, self.parse_type_name()))
            if not self.match(T.COMMA):
                break
        self.expect(T.RPAREN, f"')' after the {what} columns")
        return columns

    def parse_datatable(self) -> ast.Datatable:
        start = self.expect_word("datatable")
        columns = self.parse_column_list("datatable")
        self.expect(T.LBRACK, "'[' with the datatable values")
        values: list[ast.Expr] = []
        while not self.at(T.RBRACK):
            values.append(self.parse_expr())
            if not self.match(T.COMMA):
                break
        end = self.expect(T.RBRACK, "']' after the datatable values")
        if columns and len(values) % len(columns):
            raise KqlSyntaxError(
                f"datatable has {len(values)} values, not a multiple of its {len(columns)} columns",
                span=start.span.to(end.span),
            )
        return ast.Datatable(
            columns=tuple(columns), values=tuple(values), span=start.span.to(end.span)
        )

    def parse_externaldata(self) -> ast.ExternalData:
        """``externaldata(A:string, ...) [ "url", ... ] with (format="csv", ...)``."""
        start = self.expect_word("externaldata")
        columns = self.parse_column_list("externaldata")
        self.expect(T.LBRACK, "'[' with the externaldata URLs")
        while not self.at(T.RBRACK) and not self.at(T.EOF):
            self.advance()
        end = self.expect(T.RBRACK, "']' after the URLs")
        if self.match_word("with"):
            self.expect(T.LPAREN, "'(' after with")
            self.skip_to_closing_paren()
            end = self.tokens[self.i - 1]
        span = start.span.to(end.span)
        return ast.ExternalData(
            columns=tuple(columns), text=self.text[span.start : span.end], span=span
        )

    def parse_range_source(self) -> ast.RangeSource:
        start = self.expect_word("range")
        column = self.expect_name("the range column name")
        self.expect_word("from")
        lo = self.parse_expr()
        self.expect_word("to")
        hi = self.parse_expr()
        self.expect_word("step")
        step = self.parse_expr()
        return ast.RangeSource(
            column=column, start=lo, stop=hi, step=step, span=start.span.to(step.span)
        )

    def parse_print(self) -> ast.PrintSource:
        start = self.expect_word("print")
        items = self.parse_assignments()
        return ast.PrintSource(items=items, span=start.span.to(self.prev_span()))

    def prev_span(self) -> Span:
        return self.tokens[max(0, self.i - 1)].span

    # --- pipe operators -----------------------------------------------------------------------

    def read_operator_name(self) -> Token:
        tok = self.tok
        if tok.type is not T.IDENT:
            raise self.error(
                f"expected an operator name after '|', found {self.found()}",
                hint="for example: where, extend, project, summarize",
            )
        self.advance()
        name, end = tok.text, tok.span.end
        while (
            self.at(T.MINUS)
            and self.tok.span.start == end
            and self.peek().type is T.IDENT
            and self.peek().span.start == self.tok.span.end
        ):
            self.advance()
            word = self.advance()
            name, end = f"{name}-{word.text}", word.span.end
        return Token(T.IDENT, name, Span(tok.span.start, end))

    def parse_pipe_op(self) -> ast.PipeOp:
        tok = self.read_operator_name()
        from trustwatch.kql.parse_operators import PIPE_OPERATORS

        handler = PIPE_OPERATORS.get(tok.text)
        if handler is None:
            if tok.text in LOOSE_OPERATORS:
                return self.parse_loose_operator(tok)
            raise self.error(
                f"unknown query operator '{tok.text}'",
                tok,
                hint=_suggest(tok.text, list(PIPE_OPERATORS)),
            )
        return handler(self, tok)

    def parse_loose_operator(self, tok: Token) -> ast.OtherOp:
        start = self.i
        depth = 0
        while not self.at(T.EOF):
            if depth == 0 and self.tok.type in (T.PIPE, T.SEMI, T.RPAREN):
                break
            depth += {
                T.LPAREN: 1,
                T.RPAREN: -1,
                T.LBRACE: 1,
                T.RBRACE: -1,
                T.LBRACK: 1,
                T.RBRACK: -1,
            }.get(self.tok.type, 0)
            self.advance()
        text = (
            self.text[self.tokens[start].span.start : self.prev_span().end]
            if self.i > start
            else ""
        )
        return ast.OtherOp(name=tok.text, text=text, span=tok.span.to(self.prev_span()))

    def parse_assignments(self) -> tuple[ast.Assignment, ...]:
        items = [self.parse_assignment()]
        while self.match(T.COMMA):
            items.append(self.parse_assignment())
        return tuple(items)

    def parse_assignment(self) -> ast.Assignment:
        tok = self.tok
        if tok.type is T.IDENT and self.peek().type is T.ASSIGN:
            self.advance()
            self.advance()
            expr = self.parse_expr()
            return ast.Assignment(name=tok.text, expr=expr, span=tok.span.to(expr.span))
        if (
            tok.type is T.LBRACK
            and self.peek().type is T.STRING
            and self.peek(2).type is T.RBRACK
            and self.peek(3).type is T.ASSIGN
        ):
            name = self.expect_name()
            self.advance()
            expr = self.parse_expr()
            return ast.Assignment(name=name, expr=expr, span=tok.span.to(expr.span))
        if tok.type is T.LPAREN and self.is_tuple_assignment():
            self.advance()
            names = [self.expect_name("a column name")]
            while self.match(T.COMMA):
                names.append(self.expect_name("a column name"))
            self.expect(T.RPAREN, "')'")
            self.expect(T.ASSIGN, "'='")
            expr = self.parse_expr()
            return ast.Assignment(
                name=None, names=tuple(names), expr=expr, span=tok.span.to(expr.span)
            )
        expr = self.parse_expr()
        return ast.Assignment(name=None, expr=expr, span=expr.span)

    def is_tuple_assignment(self) -> bool:
        j = self.i + 1
        while self.tokens[j].type in (T.IDENT, T.COMMA):
            j += 1
        return self.tokens[j].type is T.RPAREN and self.tokens[j + 1].type is T.ASSIGN

    def parse_pattern(self) -> ast.ColumnPattern:
        first = self.tok
        if first.type is T.LBRACK:
            name = self.expect_name()
            return ast.ColumnPattern(pattern=name, span=first.span.to(self.prev_span()))
        if first.type not in (T.IDENT, T.STAR):
            raise self.error(f"expected a column name or wildcard, found {self.found()}")
        parts = [self.advance()]
        while self.tok.type in (T.IDENT, T.STAR, T.INT) and self.adjacent(parts[-1], self.tok):
            parts.append(self.advance())
        text = "".join(p.text for p in parts)
        return ast.ColumnPattern(pattern=text, span=first.span.to(parts[-1].span))

    def skip_hints(self) -> list[tuple[str, str]]:
        """``hint.strategy=shuffle`` and similar: accepted, recorded, and ignored by the engine."""
        hints = []
        while self.at_word("hint") and self.peek().type is T.DOT:
            self.advance()
            self.advance()
            key = self.expect_name("a hint name")
            self.expect(T.ASSIGN, "'=' after the hint name")
            value = self.advance()
            hints.append((key, str(value.value if value.value is not None else value.text)))
        return hints

    def parse_kind(self, allowed: frozenset[str] | None) -> str | None:
        if self.at_word("kind") and self.peek().type is T.ASSIGN:
            self.advance()
            self.advance()
            tok = self.expect(T.IDENT, "a kind")
            if allowed is not None and tok.text not in allowed:
                raise self.error(
                    f"unknown kind '{tok.text}'", tok, hint=_suggest(tok.text, sorted(allowed))
                )
            return tok.text
        return None

    def parse_join_side(self) -> ast.TabularExpr:
        if self.at(T.LPAREN):
            self.advance()
            inner = self.parse_tabular()
            self.expect(T.RPAREN, "')' after the joined table")
            return inner
        name_tok = self.tok
        name = self.expect_name("a table or '(' query ')'")
        if self.at(T.LPAREN):
            args = self.parse_call_args()
            return ast.FunctionSource(
                call=ast.Call(
                    name=name,
                    args=args,
                    span=name_tok.span.to(self.prev_span()),
                    name_span=name_tok.span,
                ),
                span=name_tok.span,
            )
        # the whole name, also a bracketed ['T'] (the export splices table names at this span)
        return ast.TableRef(name=name, span=name_tok.span.to(self.prev_span()))

    def parse_union_body(self, tok: Token) -> ast.Union:
        kind, withsource, isfuzzy = "outer", None, False
        while (
            self.tok.type is T.IDENT
            and self.peek().type is T.ASSIGN
            and self.tok.text in ("kind", "withsource", "isfuzzy")
        ):
            key = self.advance().text
            self.advance()
            if key == "kind":
                kind = self.expect_word("inner", "outer").text
            elif key == "withsource":
                withsource = self.expect_name("the withsource column name")
            else:
                isfuzzy = self.expect_word("true", "false").text == "true"
        self.skip_hints()
        tables = [self.parse_union_table()]
        while self.match(T.COMMA):
            tables.append(self.parse_union_table())
        return ast.Union(
            tables=tuple(tables),
            kind=kind,
            withsource=withsource,
            isfuzzy=isfuzzy,
            span=tok.span.to(self.prev_span()),
        )

    def parse_union_table(self) -> ast.TabularExpr:
        if self.at(T.STAR):  # union * : every table
            star = self.advance()
            return ast.TableRef(name="*", span=star.span)
        if self.at(T.LPAREN):
            self.advance()
            inner = self.parse_tabular()
            self.expect(T.RPAREN, "')'")
            return inner
        if self.at(T.IDENT) and self.peek().type is T.STAR and self.adjacent(self.tok, self.peek()):
            pat = self.parse_pattern()
            return ast.TableRef(name=pat.pattern, span=pat.span)
        return self.parse_join_side()

    def parse_find(self) -> ast.FindSource:
        """https://learn.microsoft.com/kusto/query/find-operator"""
        tok = self.expect_word("find")
        withsource = "source_"
        if self.at_word("withsource") and self.peek().type is T.ASSIGN:
            self.advance()
            self.advance()
            withsource = self.expect_name("a column name")
        tables: list[str] = []
        if self.match_word("in"):
            self.expect(T.LPAREN, "'(' with the tables")
            while not self.at(T.RPAREN):
                tables.append(self.parse_pattern().pattern)
                if not self.match(T.COMMA):
                    break
            self.expect(T.RPAREN, "')' after the tables")
            self.expect_word("where")
        else:
            self.match_word("where")
        predicate = self.parse_expr()
        project: tuple[tuple[str, str | None], ...] | None = None
        pack_all = False
        if self.at_word("project"):
            word = self.read_operator_name()
            if word.text == "project":
                items: list[tuple[str, str | None]] = []
                while True:
                    if self.at_word("pack_all") and self.peek().type is T.LPAREN:
                        self.advance()
                        self.expect(T.LPAREN, "'('")
                        self.expect(T.RPAREN, "')'")
                        pack_all = True
                    else:
                        name = self.expect_name("a column name")
                        ktype = self.parse_type_name() if self.match(T.COLON) else None
                        items.append((name, ktype))
                    if not self.match(T.COMMA):
                        break
                project = tuple(items)
            elif word.text != "project-smart":
                raise self.error("expected 'project' or 'project-smart'", word)
        return ast.FindSource(
            predicate=predicate,
            tables=tuple(tables),
            withsource=withsource,
            project=project,
            pack_all=pack_all,
            span=tok.span.to(self.prev_span()),
        )

    def parse_search_body(self, tok: Token) -> ast.Search:
        self.parse_kind(frozenset({"case_sensitive", "case_insensitive"}))
        tables: list[str] = []
        if self.match_word("in"):
            self.expect(T.LPAREN, "'('")
            while not self.at(T.RPAREN):
                tables.append(self.parse_pattern().pattern)
                if not self.match(T.COMMA):
                    break
            self.expect(T.RPAREN, "')'")
        self.in_search = True  # Column:"term" is valid only in a search predicate
        try:
            pred = self.parse_expr()
        finally:
            self.in_search = False
        return ast.Search(predicate=pred, tables=tuple(tables), span=tok.span.to(pred.span))

    # --- expressions --------------------------------------------------------------------------

    def parse_expr(self, min_prec: int = 0) -> ast.Expr:
        left = self.parse_unary()
        levels = 0  # each further left-associative operator nests the tree one level deeper
        rhs_count = 0
        try:
            while True:
                info = self.binary_operator()
                if info is None:
                    break
                op, prec, ntokens = info
                if prec <= min_prec:
                    break
                if op in ast.LOGIC_OPERATORS:
                    left = self.parse_logic_chain(op, prec, left)
                    continue
                if rhs_count:  # a + b counts with its parentheses; a + b + c one level more
                    self.nest()
                    levels += 1
                rhs_count += 1
                for _ in range(ntokens):
                    self.advance()
                left = self.parse_binary_rhs(op, prec, left)
        finally:
            self.depth -= levels
        return left

    def parse_logic_chain(self, op: str, prec: int, first: ast.Expr) -> ast.Expr:
        """``a or b or c ...``: the operands in a list, then one balanced tree (not nested once
        per operand), so a 10,000-term chain of generated IOCs parses, prints and compiles."""
        operands = [first]
        count = len(ast.logic_operands(first, op))
        limit = self.limits.query_terms
        while (info := self.binary_operator()) is not None and info[0] == op:
            tok = self.advance()
            operand = self.parse_expr(prec)
            count += len(ast.logic_operands(operand, op))
            if count > limit:
                raise limit_error("query_terms", limit, f"this '{op}' chain", tok.span)
            operands.append(operand)
        return ast.logic_chain(op, operands)

    def binary_operator(self) -> tuple[str, int, int] | None:
        """Look at the next tokens: (operator, precedence, how many tokens it spans) or None."""
        tok = self.tok
        if tok.type in _PUNCT_BINARY:
            op, prec = _PUNCT_BINARY[tok.type]
            return op, prec, 1
        if tok.type is T.COLON and self.in_search:
            return "has", _CMP, 1
        if tok.type is T.IDENT:
            word = tok.text
            if word == "and":
                return "and", _AND, 1
            if word == "or":
                return "or", _OR, 1
            if word in _STRING_OP_WORDS or word in ("has_any", "has_all", "between"):
                return word, _CMP, 1
            if word in _DEPRECATED_NEGATIONS:  # notcontains, nothas...: old spellings of !contains
                return _DEPRECATED_NEGATIONS[word], _CMP, 1
            if word == "in":
                if self.peek().type is T.TILDE and self.adjacent(tok, self.peek()):
                    return "in~", _CMP, 2
                return "in", _CMP, 1
            if word == "matches" and self.peek().is_word("regex"):
                return "matches regex", _CMP, 2
            if word == "like" or word == "notlike":
                return None
        if tok.type is T.BANG:
            nxt = self.peek()
            if nxt.type is T.IDENT and self.adjacent(tok, nxt):
                if nxt.text in _STRING_OP_WORDS or nxt.text == "between":
                    return "!" + nxt.text, _CMP, 2
                if nxt.text == "in":
                    after = self.peek(2)
                    if after.type is T.TILDE and self.adjacent(nxt, after):
                        return "!in~", _CMP, 3
                    return "!in", _CMP, 2
        return None

    def parse_binary_rhs(self, op: str, prec: int, left: ast.Expr) -> ast.Expr:
        base = op.lstrip("!")
        if base in ("in", "in~", "has_any", "has_all"):
            items, end_span = self.parse_list_operand()
            return ast.InList(op=op, target=left, items=items, span=left.span.to(end_span))
        if base == "between":
            self.expect(T.LPAREN, "'(' after between")
            low = self.parse_expr()
            self.expect(T.DOTDOT, "'..' between the bounds")
            high = self.parse_expr()
            end = self.expect(T.RPAREN, "')' after the bounds")
            return ast.Between(
                target=left,
                low=low,
                high=high,
                negated=op.startswith("!"),
                span=left.span.to(end.span),
            )
        right = self.parse_expr(prec)
        return ast.BinaryOp(op=op, left=left, right=right, span=left.span.to(right.span))

    def parse_list_operand(self) -> tuple[tuple[ast.Node, ...], Span]:
        if not self.at(T.LPAREN):
            # has_any / in with a let-bound name or dynamic literal without parentheses
            expr = self.parse_unary()
            return (expr,), expr.span
        self.advance()
        items: list[ast.Node] = []
        limit = self.limits.query_terms
        while not self.at(T.RPAREN):
            if len(items) >= limit:
                raise limit_error("query_terms", limit, "this list", self.tok.span)
            items.append(self.parse_tabular_or_expr())
            if not self.match(T.COMMA):
                break
        end = self.expect(T.RPAREN, "')' to close the list")
        return tuple(items), end.span

    def parse_unary(self) -> ast.Expr:
        tok = self.tok
        if tok.type in (T.MINUS, T.PLUS):
            self.advance()
            self.nest()
            try:
                operand = self.parse_unary()
            finally:
                self.depth -= 1
            if (
                tok.type is T.MINUS
                and isinstance(operand, ast.Literal)
                and isinstance(operand.value, (int, float, timedelta))
                and not isinstance(operand.value, bool)
            ):
                return ast.Literal(
                    value=-operand.value, type=operand.type, span=tok.span.to(operand.span)
                )
            return ast.UnaryOp(op=tok.text, operand=operand, span=tok.span.to(operand.span))
        return self.parse_postfix(self.parse_primary())

    def parse_postfix(self, expr: ast.Expr) -> ast.Expr:
        levels = 0  # a.b.c[0]: each access nests the tree one level deeper
        try:
            while True:
                if self.at(T.DOT) and self.peek().type is T.IDENT:
                    self.nest()
                    levels += 1
                    self.advance()
                    name = self.advance().text
                    expr = ast.Member(target=expr, name=name, span=expr.span.to(self.prev_span()))
                elif self.at(T.LBRACK) or (self.at(T.DOT) and self.peek().type is T.LBRACK):
                    self.nest()
                    levels += 1
                    self.match(T.DOT)  # d.["a"] and d.[0] mean d["a"] and d[0]
                    self.advance()
                    index = self.parse_expr()
                    end = self.expect(T.RBRACK, "']'")
                    if isinstance(index, ast.Literal) and index.type == "string":
                        expr = ast.Member(
                            target=expr, name=str(index.value), span=expr.span.to(end.span)
                        )
                    else:
                        expr = ast.Index(target=expr, index=index, span=expr.span.to(end.span))
                else:
                    return expr
        finally:
            self.depth -= levels

    def parse_primary(self) -> ast.Expr:
        tok = self.tok
        ttype = tok.type
        if ttype is T.INT:
            self.advance()
            return ast.Literal(value=tok.value, type="long", span=tok.span)
        if ttype is T.REAL:
            self.advance()
            return ast.Literal(value=tok.value, type="real", span=tok.span)
        if ttype is T.STRING:
            self.advance()
            value = str(tok.value)
            span = tok.span
            while self.at(T.STRING):  # adjacent literals concatenate
                nxt = self.advance()
                value += str(nxt.value)
                span = span.to(nxt.span)
            return ast.Literal(value=value, type="string", span=span)
        if ttype is T.TIMESPAN:
            self.advance()
            assert isinstance(tok.value, int)
            return ast.Literal(value=ticks_to_timedelta(tok.value), type="timespan", span=tok.span)
        if ttype is T.TYPED_RAW:
            self.advance()
            return self.typed_raw_literal(tok)
        if ttype is T.STAR:
            self.advance()
            return ast.Star(span=tok.span)
        if ttype is T.LPAREN:
            self.advance()
            self.paren_depth += 1
            inner = self.parse_tabular_or_expr()
            self.paren_depth -= 1
            end = self.expect(T.RPAREN, "')'")
            if isinstance(inner, ast.TabularExpr):
                # a parenthesised query used as a scalar (toscalar-like) or list operand
                return _TabularAsExpr(query=inner, span=tok.span.to(end.span))
            assert isinstance(inner, ast.Expr)
            return inner
        if ttype is T.LBRACK and self.peek().type is T.STRING and self.peek(2).type is T.RBRACK:
            name = self.expect_name()
            return ast.Name(name=name, span=tok.span.to(self.prev_span()))
        if ttype is T.IDENT:
            return self.parse_word(tok)
        raise self.error(f"expected an expression, found {self.found()}")

    def parse_word(self, tok: Token) -> ast.Expr:
        word = tok.text
        self.advance()
        if word in ("true", "false") and not self.at(T.LPAREN):
            return ast.Literal(value=word == "true", type="bool", span=tok.span)
        if self.at(T.LPAREN):
            if word == "dynamic":
                return self.parse_dynamic_literal(tok)
            if word in ("int", "long", "real", "double", "bool", "decimal", "string"):
                return self.parse_typed_scalar(tok, TYPE_NAMES[word])
            args = self.parse_call_args()
            return ast.Call(
                name=word, args=args, span=tok.span.to(self.prev_span()), name_span=tok.span
            )
        return ast.Name(name=word, span=tok.span)

    def parse_call_args(self) -> tuple[ast.Node, ...]:
        self.expect(T.LPAREN, "'('")
        args: list[ast.Node] = []
        while not self.at(T.RPAREN):
            if self.at(T.IDENT) and self.peek().type is T.ASSIGN:
                args.append(self.parse_assignment())
            else:
                args.append(self.parse_tabular_or_expr())
            if not self.match(T.COMMA):
                break
        self.expect(T.RPAREN, "')' to close the argument list")
        return tuple(args)

    def parse_typed_scalar(self, tok: Token, ktype: str) -> ast.Literal:
        self.expect(T.LPAREN, "'('")
        inner = self.tok
        if inner.is_word("null"):
            self.advance()
            end = self.expect(T.RPAREN, "')'")
            return ast.Literal(value=None, type=ktype, span=tok.span.to(end.span))
        negative = bool(self.match(T.MINUS))
        val_tok = self.advance()
        end = self.expect(T.RPAREN, "')'")
        span = tok.span.to(end.span)
        if ktype == "bool":
            if val_tok.text.lower() not in ("true", "false"):
                raise KqlSyntaxError(
                    "invalid bool literal", span=span, hint="use bool(true) or bool(false)"
                )
            return ast.Literal(value=val_tok.text.lower() == "true", type="bool", span=span)
        try:
            if ktype == "string":
                return ast.Literal(
                    value=str(val_tok.value if val_tok.value is not None else val_tok.text),
                    type="string",
                    span=span,
                )
            if ktype == "real":
                text = val_tok.text.lower()
                special = {
                    "nan": float("nan"),
                    "+inf": float("inf"),
                    "inf": float("inf"),
                    "-inf": float("-inf"),
                }
                value: float | int = special[text] if text in special else float(val_tok.text)
            else:
                value = int(val_tok.text, 0) if val_tok.type is T.INT else int(float(val_tok.text))
        except (ValueError, KeyError):
            raise KqlSyntaxError(f"invalid {ktype} literal", span=span) from None
        return ast.Literal(value=-value if negative else value, type=ktype, span=span)

    def typed_raw_literal(self, tok: Token) -> ast.Literal:
        raw = str(tok.value)
        kind = tok.text
        if raw == "null":
            ktype = {
                "datetime": "datetime",
                "timespan": "timespan",
                "time": "timespan",
                "guid": "guid",
            }[kind]
            return ast.Literal(value=None, type=ktype, span=tok.span)
        try:
            if kind == "datetime":
                return ast.Literal(value=parse_datetime_text(raw), type="datetime", span=tok.span)
            if kind in ("timespan", "time"):
                return ast.Literal(value=parse_timespan_text(raw), type="timespan", span=tok.span)
            if re.fullmatch(
                r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
                raw,
            ):
                return ast.Literal(value=raw.lower(), type="guid", span=tok.span)
        except ValueError:
            pass
        raise KqlSyntaxError(
            f"invalid {kind} literal '{raw}'",
            span=tok.span,
            hint="use ISO 8601, e.g. datetime(2024-01-31 13:45:00)" if kind == "datetime" else None,
        )

    def parse_dynamic_literal(self, tok: Token) -> ast.Literal:
        self.expect(T.LPAREN, "'('")
        value = self.parse_json_value()
        end = self.expect(T.RPAREN, "')' to close dynamic(...)")
        return ast.Literal(value=value, type="dynamic", span=tok.span.to(end.span))

    def parse_json_value(self) -> object:
        self.nest()
        try:
            return self.parse_json_value_nested()
        finally:
            self.depth -= 1

    def parse_json_value_nested(self) -> object:
        tok = self.tok
        if self.match(T.LBRACK):
            items = []
            while not self.at(T.RBRACK):
                items.append(self.parse_json_value())
                if not self.match(T.COMMA):
                    break
            self.expect(T.RBRACK, "']'")
            return items
        if self.match(T.LBRACE):
            obj: dict[str, object] = {}
            while not self.at(T.RBRACE):
                key_tok = self.advance()
                if key_tok.type not in (T.STRING, T.IDENT):
                    raise self.error("expected a property name", key_tok)
                key = str(key_tok.value) if key_tok.type is T.STRING else key_tok.text
                self.expect(T.COLON, "':'")
                obj[key] = self.parse_json_value()
                if not self.match(T.COMMA):
                    break
            self.expect(T.RBRACE, "'}'")
            return obj
        if self.match(T.MINUS):
            num = self.advance()
            if num.type not in (T.INT, T.REAL) or not isinstance(num.value, int | float):
                raise self.error("expected a number", num)
            return -num.value
        if tok.type is T.STRING:
            self.advance()
            text = str(tok.value)
            while self.at(T.STRING):  # adjacent literals concatenate
                text += str(self.advance().value)
            return text
        if tok.type in (T.INT, T.REAL):
            self.advance()
            return tok.value
        if tok.type is T.TIMESPAN:
            self.advance()
            assert isinstance(tok.value, int)
            return format_timespan_value(ticks_to_timedelta(tok.value))
        if tok.type is T.TYPED_RAW:
            self.advance()
            lit = self.typed_raw_literal(tok)
            if isinstance(lit.value, datetime):
                return format_datetime_value(lit.value)
            if isinstance(lit.value, timedelta):
                return format_timespan_value(lit.value)
            return lit.value
        if tok.is_word("true", "false"):
            self.advance()
            return tok.text == "true"
        if tok.is_word("null"):
            self.advance()
            return None
        raise self.error(f"expected a dynamic value, found {self.found()}")


@ast._node
class _TabularAsExpr(ast.Expr):
    """A parenthesised tabular expression in a scalar position (``in ((T | project x))``)."""

    query: ast.TabularExpr


TabularAsExpr = _TabularAsExpr


def _suggest(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


# Documented operators parsed loosely (skipped to the next pipe) and refused when compiled.
LOOSE_OPERATORS = frozenset(
    {
        "scan",
        "top-hitters",
        "fork",
        "facet",
        "find",
        "parse-kv",
        "project-smart",
        "reduce",
        "sample-distinct",
        "consume",
        "externaldata",
        "make-graph",
        "graph-match",
        "mv-apply-keys",
        "extend-with",
        "assert-schema",
        "macro-expand",
    }
)


def parse_query(text: str, source_name: str = "<query>") -> ast.Query:
    """Parse a whole KQL query (``let`` statements and tabular expressions).

    Args:
        text: the query text.
        source_name: a name for the text in diagnostics (a file path, a rule id).

    Returns:
        The query's syntax tree.

    Raises:
        KqlSyntaxError: with the source attached, for any syntax error.
    """
    try:
        return deep.call(_parse_query, text)
    except (KqlSyntaxError, limits.LimitExceeded) as exc:
        raise exc.with_source(Source(text, source_name)) from None


def _parse_query(text: str) -> ast.Query:
    return Parser(text).parse_query()


def parse_expression(text: str) -> ast.Expr:
    """Parse a single scalar expression (used by tests and tools)."""
    try:
        return deep.call(_parse_expression, text)
    except (KqlSyntaxError, limits.LimitExceeded) as exc:
        raise exc.with_source(Source(text)) from None


def _parse_expression(text: str) -> ast.Expr:
    parser = Parser(text)
    expr = parser.parse_expr()
    if not parser.at(T.EOF):
        raise parser.error(f"unexpected {parser.found()} after the expression")
    return expr
