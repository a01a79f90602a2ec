"""The rules of docs/semantics.md, checked on the core's own definitions."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings

import fallthrough
from fallthrough.clock import Stamper
from fallthrough.errors import FilterError, InvalidInput
from fallthrough.filters import field_values, matches, parse_filter, path_values
from fallthrough.ordering import merge_key
from fallthrough.testing import strategies
from fallthrough.text import tokenize
from fallthrough.types import Progress, Status, from_micros, to_micros

# -- tokens ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Цемент М500", ["цемент", "м500"]),
        ("М-500", ["м", "500"]),
        ("2.5мм", ["2", "5мм"]),
        ("ПВХ/PVC", ["пвх", "pvc"]),
        ("ЦЕМЕНТ цемент", ["цемент", "цемент"]),
        ("snake_case", ["snake", "case"]),
        ("Straße", ["strasse"]),
        ("  ...  ", []),
    ],
)
def test_a_token_is_a_casefolded_run_of_letters_or_digits(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_tokens_do_not_depend_on_unicode_normalisation() -> None:
    assert tokenize("cafe\u0301") == tokenize("caf\u00e9")


# -- filters -----------------------------------------------------------------

DOC = {"price": 420, "weight": 2.5, "name": "Цемент", "tags": ["a", "b"], "flag": True, "none": None}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"price": 420}, True),
        ({"price": 420.0}, True),  # ints and floats compare numerically
        ({"price": "420"}, False),  # a str never equals a number
        ({"flag": 1}, False),  # a bool is not a number
        ({"flag": True}, True),
        ({"price": True}, False),
        ({"tags": "a"}, True),  # list field: contains
        ({"tags": "c"}, False),
        ({"tags": {"ne": "c"}}, True),
        ({"tags": {"ne": "a"}}, False),
        ({"tags": {"in": ["x", "b"]}}, True),
        ({"tags": {"nin": ["x", "b"]}}, False),
        ({"price": {"lt": 500, "gte": 420}}, True),
        ({"price": {"gt": 420}}, False),
        ({"weight": {"lte": 2.5}}, True),
        ({"name": {"lt": 5}}, False),  # a range never holds for a str
        ({"missing": {"ne": 1}}, True),  # missing fails all but ne, nin, not
        ({"missing": {"nin": [1]}}, True),
        ({"missing": {"lt": 1}}, False),
        ({"missing": 1}, False),
        ({"none": {"ne": 1}}, True),  # None behaves as missing
        ({"none": {"gte": 0}}, False),
        ({"not": {"missing": 1}}, True),
        ({"or": [{"price": 1}, {"name": "Цемент"}]}, True),
        ({"and": [{"price": 420}, {"name": "цемент"}]}, False),  # equality is exact, not casefolded
        ({"price": 420, "not": {"tags": "a"}}, False),
    ],
)
def test_filter_semantics(spec: dict[str, object], expected: bool) -> None:
    assert matches(parse_filter(spec), DOC) is expected


@pytest.mark.parametrize(
    "spec",
    [
        {"price": {"lt": "500"}},
        {"price": {"lt": True}},
        {"price": {"between": [1, 2]}},
        {"price": {}},
        {"price": None},
        {"price": [1, 2]},
        {"price": {"in": []}},
        {"price": {"in": "abc"}},
        {"and": []},
        {"or": {"price": 1}},
        {"not": []},
        {"price": float("nan")},
        {"price": 2**60},
        {"": 1},
        {'we"ird': 1},
        "price = 1",
    ],
)
def test_a_bad_filter_is_a_filter_error(spec: object) -> None:
    with pytest.raises(FilterError):
        parse_filter(spec)  # type: ignore[arg-type]


def test_an_empty_filter_is_no_filter() -> None:
    assert parse_filter({}) is None and parse_filter(None) is None


def test_filter_error_is_invalid_input_is_value_error() -> None:
    assert issubclass(FilterError, InvalidInput) and issubclass(InvalidInput, ValueError)


# -- the merge order -----------------------------------------------------------


def test_merge_order_is_attempt_then_rank_then_time_then_tiebreak() -> None:
    early, late = 1_000, 2_000
    assert merge_key(1, Status.PENDING, early, 0) > merge_key(0, Status.COMPLETED, late, 0)
    assert merge_key(0, Status.PROCESSING, early, 0) > merge_key(0, Status.PENDING, late, 0)
    assert merge_key(0, Status.COMPLETED, early, 0) < merge_key(0, Status.FAILED, late, 0)
    assert merge_key(0, Status.FAILED, early, 0) < merge_key(0, Status.COMPLETED, late, 0)
    assert merge_key(0, Status.FAILED, early, 1) > merge_key(0, Status.COMPLETED, early, 0)


def test_the_tiebreak_depends_on_the_written_state_only() -> None:
    batch = uuid.uuid4()
    same = fallthrough.RecordUpdate(batch, "a", "failed", error="x").tiebreak
    assert same == fallthrough.RecordUpdate(uuid.uuid4(), "b", Status.FAILED, error="x").tiebreak
    assert same != fallthrough.RecordUpdate(batch, "a", "failed", error="y").tiebreak
    assert 0 <= same < 2**63


# -- value types ----------------------------------------------------------------


def test_status_accepts_its_string_value_and_rejects_others() -> None:
    assert fallthrough.RecordUpdate(uuid.uuid4(), "k", "completed").status is Status.COMPLETED
    with pytest.raises(InvalidInput, match="status must be one of"):
        fallthrough.RecordUpdate(uuid.uuid4(), "k", "done")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key": ""},
        {"key": "x" * 513},
        {"key": "a\x00b"},
        {"key": "\ud800"},
        {"result": float("nan")},
        {"result": {"a": (1, 2)}},
        {"result": {1: "int key"}},
        {"result": "nul\x00"},
        {"result": {"big": 2**63}},
        {"result": [-(2**63) - 1]},
        {"error": 5},
        {"attempt": -1},
        {"attempt": True},
    ],
)
def test_a_bad_update_is_refused_on_construction(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"batch_id": uuid.uuid4(), "key": "k", "status": "completed"} | kwargs
    with pytest.raises(InvalidInput):
        fallthrough.RecordUpdate(**arguments)  # type: ignore[arg-type]


def test_a_pinned_update_differs_only_in_its_attempt() -> None:
    update = fallthrough.RecordUpdate(uuid.uuid4(), "k", "failed", result={"rows": [1, 2]}, error="timeout")
    pinned = update.pinned(3)
    assert pinned == fallthrough.RecordUpdate(
        update.batch_id, "k", "failed", result={"rows": [1, 2]}, error="timeout", attempt=3
    )
    assert pinned.tiebreak == update.tiebreak
    assert update.attempt is None  # the original is untouched
    assert pinned.pinned(3) is pinned


@pytest.mark.parametrize("attempt", [-1, True, 1.0, "1"])
def test_pinning_to_a_bad_attempt_is_invalid_input(attempt: object) -> None:
    with pytest.raises(InvalidInput, match="attempt"):
        fallthrough.RecordUpdate(uuid.uuid4(), "k", "completed").pinned(attempt)  # type: ignore[arg-type]


def test_results_keep_any_signed_64_bit_integer() -> None:
    update = fallthrough.RecordUpdate(uuid.uuid4(), "k", "completed", result={"min": -(2**63), "max": 2**63 - 1})
    assert update.result == {"min": -(2**63), "max": 2**63 - 1}


def test_a_document_vector_is_rounded_to_float32() -> None:
    document = fallthrough.Document("d", vector=[0.1, 1])
    assert document.vector is not None
    assert document.vector[0] != 0.1 and math.isclose(document.vector[0], 0.1, rel_tol=1e-7)
    assert document.vector[1] == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vector": [0.0, 0.0]},
        {"vector": []},
        {"vector": [1.0, float("inf")]},
        {"vector": [1e39]},
        {"vector": [1e-30, 0.0, 0.0]},
        {"vector": [3e38, 3e38]},
        {"vector": [True, 1.0]},
        {"vector": "abc"},
        {"vector": {1.0, 2.0}},
        {"metadata": {"nested": [[1]]}},
        {"metadata": {"dotted.key": 1}},
        {"metadata": {"nested": {"$dt": 1}}},
        {"metadata": {"nested": {"big": 2**53}}},
        {"metadata": {"big": 2**53}},
        {"metadata": {"and": 1}},
        {"metadata": {"x": float("nan")}},
        {"text": "a\x00"},
        {"id": ""},
    ],
)
def test_a_bad_document_is_refused_on_construction(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"id": "d"} | kwargs
    with pytest.raises(InvalidInput):
        fallthrough.Document(**arguments)  # type: ignore[arg-type]


def test_progress_of_an_empty_batch_is_complete() -> None:
    empty = Progress(total=0, pending=0, processing=0, completed=0, failed=0)
    assert (empty.done, empty.fraction) == (0, 1.0)
    some = Progress(total=4, pending=1, processing=1, completed=1, failed=1)
    assert (some.done, some.fraction) == (2, 0.5)


def test_progress_counts_must_add_up() -> None:
    with pytest.raises(InvalidInput):
        Progress(total=3, pending=1, processing=0, completed=0, failed=0)


# -- stamps -----------------------------------------------------------------------


def test_stamps_are_utc_microseconds_strictly_increasing_even_if_the_clock_stalls() -> None:
    stamper = Stamper(wall_clock_ns=lambda: 1_700_000_000_000_000_000)
    first, second = stamper.now(), stamper.now()
    assert first.tzinfo is UTC and second > first
    assert to_micros(second) - to_micros(first) == 1


def test_seq_ranges_never_overlap_and_stay_exact_in_a_double() -> None:
    stamper = Stamper()
    first = stamper.reserve_seq(100_000)
    second = stamper.reserve_seq(1)
    assert second >= first + 100_000
    assert second < 2**53


def test_micros_round_trip() -> None:
    moment = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
    assert from_micros(to_micros(moment)) == moment


@settings(max_examples=200, deadline=None)
@given(strategies.metadata())
def test_path_values_finds_what_field_values_finds_on_every_path(metadata: dict[str, Any]) -> None:
    """The one-pass walk stores build their per-path views from agrees with the definition, path by path."""
    by_path = path_values(metadata)
    for path, values in by_path.items():
        assert values == field_values(metadata, path)
    for path in strategies.FILTER_FIELDS:
        assert field_values(metadata, path) == by_path.get(path, [])
