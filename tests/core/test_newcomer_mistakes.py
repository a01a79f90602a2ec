"""Mistakes a newcomer makes in the first week get an error that says what to do, and nothing is written."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import numpy
import pytest

import fallthrough
from fallthrough import Document, RecordUpdate
from fallthrough.errors import FilterError, InvalidInput
from fallthrough.filters import matches, parse_filter
from fallthrough.urls import parse_url

# What a pandas DataFrame hands out: numbers that are neither int nor float (numpy's float64 is a float).
NUMPY_SCALARS = [numpy.int64(3), numpy.int32(3), numpy.float32(1.5), numpy.bool_(True)]


@pytest.mark.parametrize("value", NUMPY_SCALARS, ids=lambda value: type(value).__name__)
def test_a_numpy_scalar_in_metadata_is_refused_naming_item(value: object) -> None:
    with pytest.raises(InvalidInput, match=r"metadata\['dims'\]\['p'\].*numpy scalar: give value\.item\(\)"):
        Document("a", "x", metadata={"dims": {"p": value}})


@pytest.mark.parametrize("value", NUMPY_SCALARS, ids=lambda value: type(value).__name__)
def test_a_numpy_scalar_in_a_result_is_refused_naming_item_and_nothing_is_written(value: object) -> None:
    with fallthrough.connect("sqlite://") as store:
        batch = store.create_batch(["a"])
        with pytest.raises(InvalidInput, match=r"result\['rows'\].*numpy scalar: give value\.item\(\)"):
            store.update(batch.id, "a", "completed", result={"rows": value})
        with pytest.raises(InvalidInput, match=r"numpy scalar: give value\.item\(\)"):
            RecordUpdate(batch.id, "a", "completed", result=[value])
        assert store.progress(batch.id).pending == 1


@pytest.mark.parametrize("value", NUMPY_SCALARS, ids=lambda value: type(value).__name__)
@pytest.mark.parametrize("shape", ["eq", "in", "gt"])
def test_a_numpy_scalar_in_a_filter_is_refused_naming_item(value: object, shape: str) -> None:
    spec = {"p": value} if shape == "eq" else {"p": {shape: [value] if shape == "in" else value}}
    with pytest.raises(FilterError, match=r"numpy scalar: give value\.item\(\)"):
        parse_filter(spec)


def test_the_plain_values_the_hint_names_are_taken() -> None:
    with fallthrough.connect("sqlite://") as store:
        values = {type(value).__name__: value.item() for value in NUMPY_SCALARS}
        store.upsert_documents("materials", [Document("a", "x", metadata=values)])
        assert store.count("materials", filter={"int64": 3, "float32": {"gt": 1.0}}) == 1


def test_a_numpy_datetime_is_refused_naming_an_aware_datetime_not_item() -> None:
    with pytest.raises(InvalidInput, match=r"numpy\.datetime64 \(a numpy datetime64: give a timezone-aware datetime\)"):
        Document("a", "x", metadata={"at": numpy.datetime64("2026-12-07T10:00:00")})


def test_a_numpy_array_is_refused_naming_tolist() -> None:
    with pytest.raises(InvalidInput, match=r"numpy\.ndarray \(a numpy array: give value\.tolist\(\)"):
        Document("a", "x", metadata={"sizes": numpy.array([1, 2])})


def test_a_numpy_bool_as_an_exists_operand_is_refused_naming_item() -> None:
    with pytest.raises(FilterError, match=r"exists'\] must be True or False.*give value\.item\(\)"):
        parse_filter({"sold": {"exists": numpy.bool_(True)}})


def test_a_value_that_is_not_numpy_gets_no_numpy_hint() -> None:
    with pytest.raises(InvalidInput) as refused:
        Document("a", "x", metadata={"p": object()})
    assert "numpy" not in str(refused.value)


def test_matches_takes_a_filter_dict_as_search_does() -> None:
    metadata = {"price": 420, "dims": {"width": 3}}
    for spec in [{"price": 420}, {"price": {"lt": 500}, "dims.width": {"gt": 2}}, {}]:
        assert matches(spec, metadata) is True
        assert matches(spec, metadata) is matches(parse_filter(spec), metadata)
    assert matches({"price": {"gt": 500}}, metadata) is False


@pytest.mark.parametrize("spec", [{"price": {"zz": 1}}, {"price": None}])
def test_matches_refuses_a_malformed_filter_dict_as_search_does(spec: dict[str, object]) -> None:
    with pytest.raises(FilterError):
        matches(spec, {"price": 1})


@pytest.mark.parametrize("node", [3, "price", ["price"]])
def test_matches_refuses_what_is_no_filter_with_a_filter_error(node: object) -> None:
    with pytest.raises(FilterError, match="must be a dict or a parsed filter node"):
        matches(node, {"price": 1})  # type: ignore[arg-type]


def test_an_unparseable_url_says_to_percent_encode_the_password_and_never_shows_it() -> None:
    password = "p@ss:w/0rd#?"
    with pytest.raises(InvalidInput, match="percent-encoded") as refused:
        fallthrough.connect(f"postgresql+psycopg://app:{password}@db.example/app")
    assert "w/0rd" not in str(refused.value) and "ss:w" not in str(refused.value)
    encoded = urllib.parse.quote(password, safe="")
    assert parse_url(f"postgresql+psycopg://app:{encoded}@db.example/app").password == password


@pytest.mark.parametrize("query", ["?timeout=", "?timeout", "?timeout=2&timeout=", "?timeout=2&other"])
def test_an_option_given_no_value_is_refused_rather_than_read_as_the_default(query: str) -> None:
    """SQLAlchemy drops such options while parsing: ``?timeout=$T`` with T unset would mean the default."""
    with pytest.raises(InvalidInput, match=r"gives the options \['(timeout|other)'\] no value"):
        fallthrough.connect(f"sqlite:///materials.db{query}")


def test_a_question_mark_in_a_password_is_not_taken_for_the_options() -> None:
    assert parse_url("postgresql+psycopg://app:pa?ss=@db/app").password == "pa?ss="


@pytest.mark.parametrize("value", ["1_0", "%D9%A1", "+", "1.2.3", "0x10", "%205"])
def test_a_number_option_is_a_decimal_number_as_a_url_spells_one(value: str) -> None:
    with pytest.raises(InvalidInput, match="timeout must be a number"):
        fallthrough.connect(f"sqlite:///materials.db?timeout={value}")


@pytest.mark.parametrize(
    ("value", "seconds"), [("2", 2.0), ("0.5", 0.5), (".5", 0.5), ("1e1", 10.0), ("3.", 3.0), ("%2B3", 3.0)]
)
def test_a_number_option_takes_the_decimal_spellings(value: str, seconds: float, tmp_path: Path) -> None:
    from fallthrough_sqlite.connection import Database

    assert Database(parse_url(f"sqlite:///{tmp_path}/m.db?timeout={value}")).timeout == seconds


def test_a_nan_says_to_give_none_for_a_missing_value_in_metadata_and_results() -> None:
    """pandas reads an empty cell as NaN: the message gives the way out, and nothing is written."""
    with pytest.raises(InvalidInput, match=r"metadata\['score'\] is NaN.*for a missing value give None"):
        Document("a", "x", metadata={"score": float("nan")})
    with fallthrough.connect("sqlite://") as store:
        batch = store.create_batch(["a"])
        with pytest.raises(InvalidInput, match=r"result\['score'\].*for a missing value give None"):
            store.update(batch.id, "a", "completed", result={"score": float("nan")})
        assert store.progress(batch.id).pending == 1
    with pytest.raises(InvalidInput, match="must be finite, got inf") as refused:
        Document("a", "x", metadata={"score": float("inf")})
    assert "missing value" not in str(refused.value)


def test_a_numpy_count_is_refused_naming_item() -> None:
    with (
        fallthrough.connect("sqlite://") as store,
        pytest.raises(InvalidInput, match=r"limit must be an int.*give value\.item\(\)"),
    ):
        store.search("materials", text="цемент", limit=numpy.int64(2))  # type: ignore[arg-type]
