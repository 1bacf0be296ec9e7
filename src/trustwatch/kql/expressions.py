"""Scalar expression compilation: names, literals, operators, calls -> typed sqlglot trees."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlglot import exp

from trustwatch.errors import KqlSemanticError, Span, UnsupportedKql
from trustwatch.kql import ast
from trustwatch.kql.parser import TabularAsExpr
from trustwatch.kql.scope import LambdaBinding, Relation, RelationBinding, Scope
from trustwatch.kql.semantics import (
    NUMERIC,
    TEXTUAL,
    Typed,
    ascii_fold,
    fold_sql,
    folded,
    func,
    lit_string,
    negate,
    not_null_string,
    sql_type,
    string_predicate,
    term_match_all,
)
from trustwatch.schema.model import suggest

if TYPE_CHECKING:
    from trustwatch.kql.compiler import AggregateContext, Compiler

_COMPARISONS = {"<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}


def literal(value: object, ktype: str) -> Typed:
    """A typed SQL literal for a Python value of a KQL type."""
    sql: exp.Expr
    if value is None:
        if ktype == "string":
            return Typed(lit_string(""), ktype, "", True)
        return Typed(exp.Cast(this=exp.null(), to=sql_type(ktype)), ktype, None, True)
    if ktype in TEXTUAL:
        sql = lit_string(str(value))
    elif ktype == "bool":
        sql = exp.true() if value else exp.false()
    elif ktype in ("long", "int"):
        assert isinstance(value, int | float)
        sql = exp.Cast(this=exp.Literal.number(int(value)), to=sql_type(ktype))
    elif ktype == "real":
        assert isinstance(value, int | float)
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            sql = exp.Cast(this=lit_string(repr(number)), to=sql_type("real"))
        else:
            sql = exp.Cast(this=exp.Literal.number(repr(number)), to=sql_type("real"))
    elif ktype == "datetime":
        assert isinstance(value, datetime)
        text = value.strftime("%Y-%m-%d %H:%M:%S.%f")
        sql = exp.Cast(this=lit_string(text), to=sql_type("datetime"))
    elif ktype == "timespan":
        assert isinstance(value, timedelta)
        sql = func("to_microseconds", exp.Literal.number(value // timedelta(microseconds=1)))
    elif ktype == "dynamic":
        sql = exp.Cast(
            this=lit_string(json.dumps(value, separators=(",", ":"), ensure_ascii=False)),
            to=sql_type("dynamic"),
        )
    else:
        raise KeyError(ktype)
    return Typed(sql, ktype, value, True)


class ExprCompiler:
    """Compiles one scalar expression tree in a scope, against one input relation."""

    def __init__(
        self,
        compiler: Compiler,
        scope: Scope,
        rel: Relation | None,
        overlay: Mapping[str, Typed],
        aggregate: AggregateContext | None,
    ) -> None:
        self.compiler = compiler
        self.scope = scope
        self.rel = rel
        self.overlay = overlay
        self.aggregate = aggregate

    def error(
        self, message: str, span: Span, hint: str | None = None, code: str = "KQL205"
    ) -> KqlSemanticError:
        return KqlSemanticError(message, span=span, hint=hint, code=code)

    def compile(self, node: ast.Node) -> Typed:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise self.compiler.unsupported(f"the expression '{type(node).__name__}'", node.span)
        result: Typed = method(node)
        return result

    # --- leaves -------------------------------------------------------------------------------

    def visit_Literal(self, node: ast.Literal) -> Typed:
        return literal(node.value, node.type)

    def visit_Name(self, node: ast.Name) -> Typed:
        name = node.name
        if name in self.overlay:
            t = self.overlay[name]
            return Typed(t.sql.copy(), t.type, t.constant, t.is_constant)
        if self.rel is not None:
            ktype = self.rel.type_of(name)
            if ktype is not None:
                return Typed(exp.column(name, quoted=True), ktype)
        binding = self.scope.lookup(name)
        if isinstance(binding, Typed):
            return Typed(binding.sql.copy(), binding.type, binding.constant, binding.is_constant)
        if isinstance(binding, RelationBinding) or (
            binding is None and name in self.compiler.catalog
        ):
            raise self.error(
                f"'{name}' is a table; a scalar value is needed here",
                node.span,
                hint="use toscalar(...) to take one value from a table",
                code="KQL205",
            )
        choices = (
            list(self.overlay)
            + (self.rel.names() if self.rel else [])
            + [n for n, b in self.scope.bindings.items() if isinstance(b, Typed)]
        )
        where = " in the input of this operator" if self.rel is not None else ""
        if re.fullmatch(r"\d+(\.\d+)?[A-Za-z]+", name):
            raise self.error(
                f"unknown column or variable '{name}'{where}",
                node.span,
                hint="timespan units are d, h, m, s, ms, microsecond and tick (a week is 7d)",
                code="KQL202",
            )
        raise self.error(
            f"unknown column or variable '{name}'{where}",
            node.span,
            hint=suggest(name, choices),
            code="KQL202",
        )

    def visit_Star(self, node: ast.Star) -> Typed:
        raise self.error("'*' is not a value here", node.span, code="KQL205")

    def visit__TabularAsExpr(self, node: TabularAsExpr) -> Typed:
        return self.scalar_subquery(node.query, node.span)

    def scalar_subquery(self, query: ast.Node, span: Span) -> Typed:
        rel = self.compiler.compile_tabular(query, self.scope)
        if not rel.columns:
            raise self.error("the subquery has no columns", span)
        name, ktype = rel.columns[0]
        stmt = self.compiler.finish(rel)
        sub = exp.select(exp.column(name, quoted=True)).from_(
            exp.Subquery(
                this=stmt.sql, alias=exp.TableAlias(this=exp.to_identifier(self.compiler.fresh()))
            )
        )
        sub = sub.limit(1)
        sql: exp.Expr = exp.Subquery(this=sub)
        if ktype in TEXTUAL:
            sql = not_null_string(sql)
        return Typed(sql, ktype)

    def subquery_column(self, query: ast.Node, span: Span) -> tuple[exp.Query, str]:
        rel = self.compiler.compile_tabular(query, self.scope)
        if not rel.columns:
            raise self.error("the subquery has no columns", span)
        name, ktype = rel.columns[0]
        stmt = self.compiler.finish(rel)
        sub = exp.select(exp.column(name, quoted=True)).from_(
            exp.Subquery(
                this=stmt.sql, alias=exp.TableAlias(this=exp.to_identifier(self.compiler.fresh()))
            )
        )
        return sub, ktype

    # --- dynamic access -----------------------------------------------------------------------

    def as_dynamic(self, t: Typed, span: Span) -> exp.Expr:
        """The value to take a property or element of; a string holding JSON is parsed first,
        as Kusto does for property access on such columns."""
        from trustwatch.kql.functions.dynamic import _dyn

        if t.type != "dynamic" and t.type not in TEXTUAL:
            raise self.error(f"cannot access a property of a {t.type} value", span)
        return _dyn(t)

    def visit_Member(self, node: ast.Member) -> Typed:
        target = self.compile(node.target)
        path = '$."' + node.name.replace('"', '\\"') + '"'
        return Typed(
            func("json_extract", self.as_dynamic(target, node.span), lit_string(path)), "dynamic"
        )

    def visit_Index(self, node: ast.Index) -> Typed:
        target = self.compile(node.target)
        index = self.compile(node.index)
        base = self.as_dynamic(target, node.span)
        if index.is_constant and isinstance(index.constant, int):
            i = index.constant
            # Negative indexes count from the end: [-1] is the last element.
            # https://learn.microsoft.com/kusto/query/array-split-function
            path = f"$[#{i}]" if i < 0 else f"$[{i}]"
            return Typed(func("json_extract", base, lit_string(path)), "dynamic")
        if index.type in TEXTUAL:
            # a key holding '"' is escaped in the path, as visit_Member does
            key = func("replace", index.sql, lit_string('"'), lit_string('\\"'))
            path_sql = func("concat", lit_string('$."'), key, lit_string('"'))
            return Typed(func("json_extract", base, path_sql), "dynamic")
        if index.type not in NUMERIC:
            raise self.error(f"an array index must be a number, not {index.type}", node.index.span)
        idx = index.sql
        path_sql = exp.If(
            this=exp.LT(this=idx, expression=exp.Literal.number(0)),
            true=func("concat", lit_string("$[#"), idx.copy(), lit_string("]")),
            false=func("concat", lit_string("$["), idx.copy(), lit_string("]")),
        )
        return Typed(func("json_extract", base, path_sql), "dynamic")

    # --- coercions ----------------------------------------------------------------------------

    def to_string(self, t: Typed) -> Typed:
        from trustwatch.kql.functions import to_string

        return to_string(t)

    def coerce_dynamic(self, t: Typed, ktype: str) -> Typed:
        """Convert a dynamic value to ``ktype`` for comparison with a value of that type."""
        if t.type != "dynamic":
            return t
        from trustwatch.kql.functions import convert

        return convert(t, ktype)

    def unify(self, left: Typed, right: Typed) -> tuple[Typed, Typed]:
        if left.type == "dynamic" and right.type != "dynamic":
            left = self.coerce_dynamic(left, right.type)
        elif right.type == "dynamic" and left.type != "dynamic":
            right = self.coerce_dynamic(right, left.type)
        return left, right

    def comparable(self, left: Typed, right: Typed, op: str, span: Span) -> None:
        lt, rt = left.type, right.type
        if lt == rt or (lt in NUMERIC and rt in NUMERIC) or (lt in TEXTUAL and rt in TEXTUAL):
            return
        if "dynamic" in (lt, rt):
            return
        raise self.error(
            f"cannot compare {lt} with {rt} using '{op}'",
            span,
            hint=f"convert one side, e.g. to{lt}(...)",
        )

    # --- operators ----------------------------------------------------------------------------

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Typed:
        operand = self.compile(node.operand)
        if operand.type not in NUMERIC | {"timespan"}:
            raise self.error(
                f"unary '{node.op}' needs a number or timespan, not {operand.type}", node.span
            )
        if node.op == "-":
            return Typed(exp.Neg(this=exp.paren(operand.sql, copy=False)), operand.type)
        return operand

    def visit_BinaryOp(self, node: ast.BinaryOp) -> Typed:
        op = node.op
        if op in ast.LOGIC_OPERATORS:
            # one flat chain (a OR b OR c): sqlglot writes a left-deep chain without recursion,
            # and DuckDB reads it as one n-ary OR, for 10,000 operands as for 2
            connector = exp.And if op == "and" else exp.Or
            chain: exp.Expr | None = None
            for operand in ast.logic_operands(node, op):
                sql = exp.paren(self.boolean(self.compile(operand), operand.span), copy=False)
                chain = sql if chain is None else connector(this=chain, expression=sql)
            assert chain is not None
            return Typed(chain, "bool")
        if isinstance(node.left, ast.Star):
            return self.any_column(node)
        left = _parenthesised(self.compile(node.left))
        right = _parenthesised(self.compile(node.right))
        if op in ("+", "-", "*", "/", "%"):
            from trustwatch.kql.arithmetic import arithmetic

            return arithmetic(op, left, right, node.span, self.error)
        if op in ("==", "!=", *_COMPARISONS):
            left, right = _bool_as_number(left, right)
        if op in ("==", "!="):
            left, right = self.unify(left, right)
            as_left, as_right = text_read_as(left, right.type), text_read_as(right, left.type)
            if as_left is not None or as_right is not None:
                # a string against a number or bool: the string is read as that type
                left, right = as_left or left, as_right or right
                equal = exp.EQ(this=left.sql, expression=right.sql)
                return Typed(is_true(equal) if op == "==" else negate(equal), "bool")
            self.comparable(left, right, op, node.span)
            if left.type in TEXTUAL:
                pred = string_predicate("==", left.sql, right)
                return Typed(negate(pred) if op == "!=" else pred, "bool")
            if op == "==":
                return Typed(exp.EQ(this=left.sql, expression=right.sql), "bool")
            # null != 5 is true in KQL; SQL's <> would give NULL and drop the row.
            return Typed(exp.NullSafeNEQ(this=left.sql, expression=right.sql), "bool")
        if op in _COMPARISONS:
            left, right = self.unify(left, right)
            self.comparable(left, right, op, node.span)
            return Typed(_COMPARISONS[op](this=left.sql, expression=right.sql), "bool")
        negated = op.startswith("!")
        base = op[1:] if negated else op
        if op == "!~":
            negated, base = True, "=~"
        left_s = self.to_string(left)
        right_s = self.to_string(right)
        pred = string_predicate(base, left_s.sql, right_s, node.right.span)
        return Typed(negate(pred) if negated else pred, "bool")

    def any_column(self, node: ast.BinaryOp) -> Typed:
        """``* has "x"``: true when any text or dynamic column of the row satisfies the predicate.

        https://learn.microsoft.com/kusto/query/search-operator
        """
        if self.rel is None:
            raise self.error("'*' needs a row context", node.left.span)
        negated = node.op.startswith("!")
        base = node.op.lstrip("!") if node.op != "!~" else "=~"
        if base in ("==", "!=", "<", "<=", ">", ">=") or base in ("+", "-", "*", "/", "%"):
            raise self.error(f"'*' cannot be used with '{node.op}'", node.left.span)
        needle = self.to_string(self.compile(node.right))
        preds = [
            string_predicate(base, self.to_string(Typed(exp.column(n, quoted=True), t)).sql, needle)
            for n, t in self.rel.columns
            if t in TEXTUAL or t == "dynamic"
        ]
        combined = exp.or_(*preds) if preds else exp.false()
        return Typed(negate(combined) if negated else combined, "bool")

    def boolean(self, t: Typed, span: Span) -> exp.Expr:
        if t.type == "bool":
            return t.sql
        if t.type == "dynamic":
            return exp.TryCast(
                this=func("json_extract_string", t.sql, lit_string("$")), to=sql_type("bool")
            )
        raise self.error(
            f"expected a boolean expression, found a {t.type} value",
            span,
            hint="compare it with something, e.g. x == 1 or isnotempty(x)",
        )

    def visit_Between(self, node: ast.Between) -> Typed:
        target = self.compile(node.target)
        low = self.compile(node.low)
        high = self.compile(node.high)
        target, low = self.unify(target, low)
        target, high = self.unify(target, high)
        self.comparable(target, low, "between", node.span)
        if target.type == "datetime" and high.type == "timespan":
            # datetime between (start .. 1d): the upper bound is start + timespan
            high = Typed(exp.Add(this=low.sql.copy(), expression=high.sql), "datetime")
        pred = exp.Between(this=target.sql, low=low.sql, high=high.sql)
        return Typed(negate(pred) if node.negated else pred, "bool")

    def list_items(
        self, items: tuple[ast.Node, ...], span: Span
    ) -> tuple[list[Typed], exp.Query | None]:
        """Expand an ``in``/``has_any`` operand: literals, flattened dynamic arrays, a subquery."""
        values: list[Typed] = []
        for item in items:
            if isinstance(item, ast.TabularExpr | TabularAsExpr) or (
                isinstance(item, ast.Name | ast.Call)
                and self.compiler.names_tabular(item, self.scope)
                and (self.rel is None or self.rel.type_of(getattr(item, "name", "")) is None)
            ):
                if len(items) != 1:
                    raise self.error("a table in an 'in' list must be the only item", item.span)
                query = item.query if isinstance(item, TabularAsExpr) else item
                sub, _ = self.subquery_column(query, item.span)
                return [], sub
            t = self.compile(item)
            if t.type == "dynamic" and t.is_constant:
                for v in _flatten(t.constant):
                    values.append(literal(v, _python_type(v)))
            elif t.type == "dynamic":
                values.append(t)
            else:
                values.append(t)
        return values, None

    def _has_in_array(self, haystack: exp.Expr, array: exp.Expr, require_all: bool) -> exp.Expr:
        """has_any/has_all against a dynamic array computed per row (a column, a let of a table)."""
        from trustwatch.kql.semantics import term_match_dynamic

        elements = func("json_extract_string", array, lit_string("$[*]"))
        x = exp.column("__tw_needle")
        test = term_match_dynamic(haystack, x, case_sensitive=False)
        lam = exp.Lambda(this=test, expressions=[exp.to_identifier("__tw_needle")])
        matching = func("len", func("list_filter", elements, lam))
        if require_all:
            return exp.EQ(this=matching, expression=func("len", elements.copy()))
        return exp.GT(this=matching, expression=exp.Literal.number(0))

    def visit_InList(self, node: ast.InList) -> Typed:
        op = node.op
        negated = op.startswith("!")
        base = op.lstrip("!")
        target = self.compile(node.target)
        values, sub = self.list_items(node.items, node.span)
        if base in ("has_any", "has_all"):
            target_s = self.to_string(target)
            if sub is not None:
                if base == "has_all":
                    raise self.compiler.unsupported("'has_all' with a tabular operand", node.span)
                from trustwatch.kql.semantics import term_match_dynamic

                alias_name = self.compiler.fresh()
                needle = exp.column(sub.selects[0].alias_or_name, table=alias_name, quoted=True)
                match = term_match_dynamic(target_s.sql, needle, case_sensitive=False)
                exists = exp.Exists(
                    this=exp.select(exp.Literal.number(1))
                    .from_(
                        exp.Subquery(
                            this=sub, alias=exp.TableAlias(this=exp.to_identifier(alias_name))
                        )
                    )
                    .where(match)
                )
                return Typed(negate(exists) if negated else exists, "bool")
            require_all = base == "has_all"
            parts: list[exp.Expr] = []
            constant: list[str] = []
            for v in values:
                if v.type == "dynamic" and not v.is_constant:  # an array known only at run time
                    parts.append(self._has_in_array(target_s.sql, v.sql, require_all))
                    continue
                word = self.to_string(v)
                if word.is_constant and isinstance(word.constant, str):
                    constant.append(word.constant)
                else:
                    parts.append(string_predicate("has", target_s.sql.copy(), word))
            if constant:  # folded once, one regular expression for all of them
                parts.append(
                    term_match_all(
                        target_s.sql, constant, case_sensitive=False, require_all=require_all
                    )
                )
            if not parts:
                return Typed(exp.true() if require_all else exp.false(), "bool")
            combined = exp.and_(*parts) if require_all else exp.or_(*parts)
            return Typed(negate(combined) if negated else combined, "bool")
        case_insensitive = base == "in~"
        if sub is not None:
            lhs = target.sql
            if case_insensitive:
                lhs = fold_sql(self.to_string(target).sql)
                sub = exp.select(
                    fold_sql(exp.column(sub.selects[0].alias_or_name, quoted=True))
                ).from_(
                    exp.Subquery(
                        this=sub,
                        alias=exp.TableAlias(this=exp.to_identifier(self.compiler.fresh())),
                    )
                )
            pred: exp.Expr = exp.In(this=lhs, query=exp.Subquery(this=sub))
            return Typed(negate(pred) if negated else pred, "bool")
        dynamic_arrays = [v for v in values if v.type == "dynamic" and not v.is_constant]
        scalars = [v for v in values if not (v.type == "dynamic" and not v.is_constant)]
        preds_: list[exp.Expr] = []
        # a string against numbers or bools (`ResultType in (50126, 50053)`), or a number or
        # bool against strings (`LocalPort in ("139", "445")`): compared as == compares them
        read_as = False
        if target.type == "string" and not case_insensitive:
            for other in sorted({v.type for v in scalars if v.type in NUMERIC | {"bool"}}):
                read = text_read_as(target, other)
                assert read is not None
                same = [v.sql for v in scalars if v.type == other]
                preds_.append(exp.In(this=read.sql, expressions=same))
                read_as = True
            scalars = [v for v in scalars if v.type not in NUMERIC | {"bool"}]
        elif target.type in NUMERIC | {"bool"}:
            for i, v in enumerate(scalars):
                read = text_read_as(v, target.type)
                if read is not None:
                    scalars[i] = read
                    read_as = True
        if read_as and not scalars and not dynamic_arrays:
            pass  # every value was a number or bool, compared above
        elif (
            target.type in TEXTUAL
            or target.type == "dynamic"
            and any(v.type in TEXTUAL for v in scalars)
        ):
            lhs_t = self.to_string(target)
            consts: list[exp.Expr] = []
            all_ascii = True
            for v in scalars:
                sv = self.to_string(v)
                if sv.is_constant and isinstance(sv.constant, str):
                    all_ascii = all_ascii and sv.constant.isascii()
                    consts.append(
                        lit_string(ascii_fold(sv.constant) if case_insensitive else sv.constant)
                    )
                else:
                    all_ascii = False
                    consts.append(fold_sql(sv.sql) if case_insensitive else sv.sql)
            arrays = [
                func("json_extract_string", a.sql, lit_string("$[*]")) for a in dynamic_arrays
            ]
            if case_insensitive:
                arrays = [
                    func(
                        "list_transform",
                        elements,
                        exp.Lambda(
                            this=fold_sql(exp.column("x")), expressions=[exp.to_identifier("x")]
                        ),
                    )
                    for elements in arrays
                ]

            def member(text: exp.Expr) -> exp.Expr:
                parts: list[exp.Expr] = []
                if consts:
                    parts.append(exp.In(this=text, expressions=[c.copy() for c in consts]))
                parts += [func("list_contains", a.copy(), text.copy()) for a in arrays]
                if not parts:
                    return exp.false()
                return exp.or_(*parts) if len(parts) > 1 else parts[0]

            if case_insensitive:
                ascii_only = all_ascii and not arrays
                preds_.append(folded(lhs_t.sql, member, ascii_needles=ascii_only))
            else:
                preds_.append(member(lhs_t.sql))
        else:
            for v in scalars:
                self.comparable(target, self.coerce_dynamic(v, target.type), "in", node.span)
            if scalars:
                preds_.append(
                    exp.In(
                        this=target.sql,
                        expressions=[self.coerce_dynamic(v, target.type).sql for v in scalars],
                    )
                )
            for arr in dynamic_arrays:
                elements = exp.Cast(
                    this=arr.sql,
                    to=exp.DataType.build(
                        f"{sql_type(target.type).sql('duckdb')}[]", dialect="duckdb"
                    ),
                )
                preds_.append(func("list_contains", elements, target.sql.copy()))
        if not preds_:
            pred = exp.false()
        else:
            pred = exp.or_(*preds_) if len(preds_) > 1 else preds_[0]
        if negated:
            return Typed(negate(pred), "bool")
        return Typed(is_true(pred) if read_as else pred, "bool")

    # --- calls --------------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> Typed:
        from trustwatch.kql import aggregates, functions

        binding = self.scope.lookup(node.name)
        if isinstance(binding, LambdaBinding):
            body_scope = self.compiler.lambda_scope(
                binding, list(node.args), node.span, self.scope, row=self.rel
            )
            body = binding.fn.body
            if isinstance(body, ast.TabularExpr):
                raise self.error(
                    f"'{node.name}' returns a table; a scalar value is needed here", node.span
                )
            return ExprCompiler(self.compiler, body_scope, self.rel, {}, self.aggregate).compile(
                body
            )
        if node.name in aggregates.AGGREGATES:
            if self.aggregate is None:
                raise self.error(
                    f"aggregation function '{node.name}' can only be used in summarize",
                    node.name_span,
                    code="KQL205",
                )
            return aggregates.compile_aggregate(self, node)
        handler = functions.FUNCTIONS.get(node.name)
        if handler is None:
            if node.name in functions.DEFENDER_CLOUD_FUNCTIONS:
                raise self.compiler.unsupported(
                    f"Defender's '{node.name}()' (it answers from Microsoft's cloud)",
                    node.name_span,
                )
            if node.name in functions.KNOWN_UNSUPPORTED:
                reason = functions.UNSUPPORTED_REASONS.get(node.name)
                if reason is not None:
                    raise UnsupportedKql(
                        f"the function '{node.name}()' is not supported by trustwatch's KQL engine",
                        span=node.name_span,
                        hint=reason,
                    )
                raise self.compiler.unsupported(f"the function '{node.name}()'", node.name_span)
            choices = list(functions.FUNCTIONS) + list(aggregates.AGGREGATES)
            raise self.error(
                f"unknown function '{node.name}'",
                node.name_span,
                hint=suggest(node.name, choices),
                code="KQL203",
            )
        return handler(self, node)

    def args(self, node: ast.Call, low: int, high: int | None = None) -> list[Typed]:
        """Compile a call's arguments after checking their number."""
        check_arity(node, low, high)
        return [self.compile(a) for a in node.args]


def _bool_as_number(left: Typed, right: Typed) -> tuple[Typed, Typed]:
    """``IsInitiatingProcessRemoteSession == 1``: a bool compares with a number as 0 or 1.

    Kusto stores bool as a signed byte (getschema shows System.SByte), and hunting queries
    rely on comparing it with 0/1.
    """
    if left.type == "bool" and right.type in NUMERIC:
        return Typed(exp.Cast(this=left.sql, to=sql_type("long")), "long"), right
    if right.type == "bool" and left.type in NUMERIC:
        return left, Typed(exp.Cast(this=right.sql, to=sql_type("long")), "long")
    return left, right


def text_read_as(value: Typed, other: str) -> Typed | None:
    """A string compared for equality (``==``, ``!=``, ``in``, ``!in``) with a number or bool.

    Kusto accepts ``ResultType == 0`` (a string column), ``EventID == "4738"`` (an int
    column), ``LocalPort in ("139", "445")`` and ``IsLocalAdmin == "true"``; it refuses only
    ordering comparisons such as ``string > 5``. The comparison is made in the type of the
    other operand: the string is read as a number (``todouble()``) or as a bool (``tobool()``:
    "true" or "false" in any letter case). Text that is not one reads as null, so ``==`` and
    ``in`` are false and ``!=`` and ``!in`` are true; nothing fails at run time. Sources and
    the reasoning: docs/kql-support.md ("Comparing a string with a number or bool").

    None when ``value`` is not a string or ``other`` is not a number or bool type.
    """
    if value.type != "string":
        return None
    if other in NUMERIC:
        return Typed(exp.TryCast(this=value.sql, to=sql_type("real")), "real")
    if other == "bool":
        as_bool = exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(this=func("lower", value.sql.copy()), expression=lit_string(word)),
                    true=truth,
                )
                for word, truth in (("true", exp.true()), ("false", exp.false()))
            ],
            default=exp.null(),
        )
        return Typed(as_bool, "bool")
    return None


def is_true(predicate: exp.Expr) -> exp.Expr:
    """``p IS TRUE``: false, not null, where a side of the comparison read as null."""
    return exp.Is(this=exp.paren(predicate, copy=False), expression=exp.true())


def _parenthesised(t: Typed) -> Typed:
    """sqlglot prints trees without adding parentheses: keep ``(a + b) * c`` grouped."""
    if isinstance(t.sql, exp.Binary | exp.Not | exp.Neg | exp.Between | exp.In | exp.Is):
        return Typed(exp.paren(t.sql, copy=False), t.type, t.constant, t.is_constant)
    return t


def check_arity(node: ast.Call, low: int, high: int | None = None) -> None:
    high = low if high is None else high
    n = len(node.args)
    if not (low <= n <= (high if high >= 0 else n)):
        expected = (
            str(low) if low == high else (f"{low} or more" if high < 0 else f"{low} to {high}")
        )
        raise KqlSemanticError(
            f"{node.name}() takes {expected} argument{'s' if expected != '1' else ''}, got {n}",
            span=node.span,
            code="KQL204",
        )


def _flatten(value: object) -> list[object]:
    if isinstance(value, list):
        out: list[object] = []
        for v in value:
            out.extend(_flatten(v))
        return out
    return [value]


def _python_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "string"
    return "dynamic"
