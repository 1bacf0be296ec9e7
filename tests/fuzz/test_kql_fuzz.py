"""Fuzzing the KQL front end: generated and mutated queries (issue 13).

Properties: parsing and compiling give a result or a located ``TrustwatchError``, never
another exception; a query that parses prints (``kql fmt``) to text that parses to the same
tree. The seeds are fixed (``tests.fuzz.fixed_seeds``); ``bench/fuzz.py`` runs the same
properties with random seeds for as long as asked.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import fixed_seeds
from tests.fuzz import kql_grammar as grammar
from tests.fuzz.properties import check_parse, check_pipeline, check_round_trip

MUTATED = st.one_of(grammar.mutated(grammar.queries()), grammar.mutated(grammar.corpus_queries()))


@fixed_seeds(80)
@given(grammar.queries())
def test_generated_queries_parse_or_fail_located(text: str) -> None:
    check_parse(text)


@fixed_seeds(300)
@given(MUTATED)
def test_mutated_queries_parse_or_fail_located(text: str) -> None:
    check_parse(text)


@fixed_seeds(60)
@given(grammar.queries())
def test_generated_queries_compile_or_fail_located(text: str) -> None:
    check_pipeline(text, run=False)


@fixed_seeds(60)
@given(MUTATED)
def test_mutated_queries_compile_or_fail_located(text: str) -> None:
    check_pipeline(text, run=False)


@fixed_seeds(80)
@given(grammar.queries())
def test_generated_queries_print_and_reparse_to_the_same_tree(text: str) -> None:
    check_round_trip(text)


@fixed_seeds(200)
@given(MUTATED)
def test_mutated_queries_print_and_reparse_to_the_same_tree(text: str) -> None:
    check_round_trip(text)
