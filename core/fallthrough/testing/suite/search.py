"""Conformance tests for search: filters, text tokens and vector ranking.

:meth:`~fallthrough.testing.twin.Twin.search` already compares every answer
with the reference model (see :mod:`fallthrough.testing.compare`); each test
then asserts the one rule it is about.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from ...errors import FilterError, InvalidInput
from ...types import Document, Hit, to_micros
from ...validation import MAX_SAFE_INTEGER
from ..compare import assert_relevance_order
from ..twin import Twin
from ._base import ConformanceSuite, needs


def _ids(hits: list[Hit]) -> list[str]:
    return [hit.id for hit in hits]


def _matching(twin: Twin, filter: dict[str, object], *documents: Document) -> list[str]:
    collection = twin.new_collection()
    twin.upsert(collection, *documents)
    return _ids(twin.search(collection, filter=filter, limit=100))


def _text_matches(twin: Twin, text: str, *documents: Document) -> set[str]:
    collection = twin.new_collection()
    twin.upsert(collection, *documents)
    return set(_ids(twin.search(collection, text=text, limit=100)))


def _doc(document_id: str, **metadata: object) -> Document:
    return Document(document_id, metadata=metadata)


NEW_YEAR = datetime(2024, 1, 1, tzinfo=UTC)
_KOLKATA = timezone(timedelta(hours=5, minutes=30))
_PACIFIC = timezone(timedelta(hours=-8))


def _assert_utc_datetime(value: object, expected: datetime, where: str) -> None:
    """``value`` is a plain datetime in UTC (``tzinfo`` is ``timezone.utc``) at ``expected``'s instant."""
    assert type(value) is datetime, f"{where}: got {value!r}, expected a datetime"
    assert value.tzinfo is UTC, f"{where}: {value!r} is not in UTC (tzinfo=datetime.timezone.utc)"
    assert value == expected and value.microsecond == expected.astimezone(UTC).microsecond, (
        f"{where}: got {value!r}, expected {expected!r}"
    )


class SearchConformance(ConformanceSuite):
    """Filters exactly as :func:`fallthrough.filters.matches`, tokens as :mod:`fallthrough.text`, cosine ranking."""

    # -- filters -----------------------------------------------------------

    @needs("filter_search")
    def test_equality_keeps_bools_strings_and_numbers_apart(self, twin: Twin) -> None:
        documents = (_doc("int", v=1), _doc("float", v=1.0), _doc("bool", v=True), _doc("str", v="1"))
        assert _matching(twin, {"v": 1}, *documents) == ["float", "int"]
        assert _matching(twin, {"v": True}, *documents) == ["bool"]
        assert _matching(twin, {"v": "1"}, *documents) == ["str"]

    @needs("filter_search")
    def test_equality_on_a_list_field_means_contains(self, twin: Twin) -> None:
        documents = (_doc("ab", tags=["a", "b"]), _doc("c", tags=["c"]), _doc("scalar", tags="a"))
        assert _matching(twin, {"tags": "a"}, *documents) == ["ab", "scalar"]

    @needs("filter_search")
    def test_ne_matches_documents_whose_field_is_missing_or_none(self, twin: Twin) -> None:
        documents = (_doc("red", colour="red"), _doc("blue", colour="blue"), _doc("none", colour=None), _doc("missing"))
        assert _matching(twin, {"colour": {"ne": "red"}}, *documents) == ["blue", "missing", "none"]

    @needs("filter_search")
    def test_nin_on_a_list_field_holds_when_no_element_is_listed(self, twin: Twin) -> None:
        documents = (_doc("ab", tags=["a", "b"]), _doc("c", tags=["c"]), _doc("empty", tags=[]), _doc("missing"))
        assert _matching(twin, {"tags": {"nin": ["b", "x"]}}, *documents) == ["c", "empty", "missing"]

    @needs("filter_search")
    def test_in_matches_any_listed_value_with_typed_equality(self, twin: Twin) -> None:
        documents = (_doc("float", v=1.0), _doc("bool", v=True), _doc("a", v="a"), _doc("str", v="1"))
        assert _matching(twin, {"v": {"in": [1, "a"]}}, *documents) == ["a", "float"]

    @needs("filter_search")
    def test_range_compares_ints_and_floats_numerically_and_skips_other_types(self, twin: Twin) -> None:
        documents = (
            _doc("one", qty=1),
            _doc("one-and-half", qty=1.5),
            _doc("two", qty=2),
            _doc("string", qty="3"),
            _doc("bool", qty=True),
            _doc("none", qty=None),
            _doc("missing"),
        )
        assert _matching(twin, {"qty": {"gt": 1}}, *documents) == ["one-and-half", "two"]
        assert _matching(twin, {"qty": {"gte": 1.0}}, *documents) == ["one", "one-and-half", "two"]
        assert _matching(twin, {"qty": {"lt": 1.5}}, *documents) == ["one"]
        assert _matching(twin, {"qty": {"lte": 1.5}}, *documents) == ["one", "one-and-half"]

    @needs("filter_search")
    def test_several_operators_on_one_field_must_all_hold(self, twin: Twin) -> None:
        documents = (_doc("one", qty=1), _doc("one-and-half", qty=1.5), _doc("two", qty=2))
        assert _matching(twin, {"qty": {"gt": 1, "lt": 2}}, *documents) == ["one-and-half"]

    @needs("filter_search")
    def test_range_on_a_list_field_holds_for_some_element(self, twin: Twin) -> None:
        documents = (_doc("low-high", sizes=[1, 10]), _doc("low", sizes=[1, 2]), _doc("text", sizes=["20"]))
        assert _matching(twin, {"sizes": {"gt": 5}}, *documents) == ["low-high"]

    @needs("filter_search")
    def test_largest_safe_integers_compare_exactly(self, twin: Twin) -> None:
        documents = (_doc("max", n=MAX_SAFE_INTEGER), _doc("below", n=MAX_SAFE_INTEGER - 1))
        assert _matching(twin, {"n": MAX_SAFE_INTEGER}, *documents) == ["max"]
        assert _matching(twin, {"n": {"lt": MAX_SAFE_INTEGER}}, *documents) == ["below"]

    @needs("filter_search")
    def test_and_or_not_and_sibling_keys_combine(self, twin: Twin) -> None:
        documents = (
            _doc("cheap-red", price=5, colour="red"),
            _doc("cheap-blue", price=5, colour="blue"),
            _doc("dear-red", price=50, colour="red"),
            _doc("no-price", colour="red"),
        )
        spec: dict[str, object] = {"or": [{"price": {"lt": 10}}, {"colour": "blue"}], "not": {"colour": "blue"}}
        assert _matching(twin, spec, *documents) == ["cheap-red"]
        assert _matching(twin, {"and": [{"colour": "red"}, {"price": {"gte": 5}}]}, *documents) == [
            "cheap-red",
            "dear-red",
        ]

    @needs("filter_search")
    def test_not_of_a_comparison_matches_documents_missing_the_field(self, twin: Twin) -> None:
        documents = (_doc("positive", price=5), _doc("zero", price=0), _doc("missing"))
        assert _matching(twin, {"not": {"price": {"gt": 0}}}, *documents) == ["missing", "zero"]

    @needs("filter_search")
    def test_filter_hits_come_in_id_order_with_score_zero_up_to_the_limit(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection, *(_doc(document_id, kind="x") for document_id in ("c", "a", "B", "b")), _doc("y", kind="y")
        )
        hits = twin.search(collection, filter={"kind": "x"}, limit=3)
        assert _ids(hits) == ["B", "a", "b"]
        assert [hit.score for hit in hits] == [0.0, 0.0, 0.0]

    # -- presence ----------------------------------------------------------

    @needs("filter_search")
    def test_exists_holds_for_any_non_none_value_and_for_a_list_with_one(self, twin: Twin) -> None:
        documents = (
            _doc("zero", v=0),
            _doc("false", v=False),
            _doc("empty-string", v=""),
            _doc("datetime", v=NEW_YEAR),
            _doc("list", v=["a"]),
            _doc("list-with-none", v=[None, 1]),
            _doc("none", v=None),
            _doc("empty-list", v=[]),
            _doc("list-of-none", v=[None]),
            _doc("missing", other=1),
        )
        present = ["datetime", "empty-string", "false", "list", "list-with-none", "zero"]
        absent = ["empty-list", "list-of-none", "missing", "none"]
        assert _matching(twin, {"v": {"exists": True}}, *documents) == present
        assert _matching(twin, {"v": {"exists": False}}, *documents) == absent
        assert _matching(twin, {"not": {"v": {"exists": True}}}, *documents) == absent
        assert _matching(twin, {"not": {"v": {"exists": False}}}, *documents) == present

    @needs("filter_search")
    def test_exists_combines_with_other_operators_and_with_and_or_not(self, twin: Twin) -> None:
        documents = (
            _doc("cheap", price=5, colour="red"),
            _doc("dear", price=50, colour="blue"),
            _doc("text-price", price="5"),
            _doc("no-price", colour="red"),
            _doc("null-price", price=None, colour="blue"),
        )
        assert _matching(twin, {"price": {"exists": True, "ne": 5}}, *documents) == ["dear", "text-price"]
        assert _matching(twin, {"price": {"exists": False}, "colour": "red"}, *documents) == ["no-price"]
        either: dict[str, object] = {"or": [{"price": {"exists": False}}, {"price": {"gt": 10}}]}
        assert _matching(twin, either, *documents) == ["dear", "no-price", "null-price"]
        assert _matching(twin, {"and": [{"colour": {"exists": True}}, {"not": {"price": {"lt": 10}}}]}, *documents) == [
            "dear",
            "no-price",
            "null-price",
        ]

    @needs("filter_search")
    def test_exists_takes_only_a_bool(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, _doc("a", v=1))
        for operand in (1, 0, "true", None, [True]):
            with pytest.raises(FilterError, match="exists"):
                twin.search(collection, filter={"v": {"exists": operand}})

    # -- datetimes ---------------------------------------------------------

    @needs("documents")
    def test_datetimes_round_trip_as_the_same_instant_in_utc_to_the_microsecond(self, twin: Twin) -> None:
        collection = twin.new_collection()
        given = {
            "utc": datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
            "kolkata": datetime(2024, 1, 1, 5, 30, 0, 1, tzinfo=_KOLKATA),
            "pacific": datetime(1969, 12, 31, 16, 0, 0, 7, tzinfo=_PACIFIC),
            "first": datetime(1, 1, 1, tzinfo=UTC),
            "last": datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        }
        listed = [NEW_YEAR, None, datetime(2000, 1, 1, 1, tzinfo=_KOLKATA), "2024-01-01T00:00:00+00:00", 0]
        twin.upsert(collection, Document("d", "text", metadata={**given, "list": listed, "iso": NEW_YEAR.isoformat()}))
        (document,) = twin.get(collection, "d")
        for field, moment in given.items():
            _assert_utc_datetime(document.metadata[field], moment, f"metadata[{field!r}]")
        stored = document.metadata["list"]
        assert isinstance(stored, list) and len(stored) == 5
        _assert_utc_datetime(stored[0], NEW_YEAR, "metadata['list'][0]")
        _assert_utc_datetime(stored[2], listed[2], "metadata['list'][2]")  # type: ignore[arg-type]
        assert stored[1] is None and stored[3] == "2024-01-01T00:00:00+00:00" and stored[4] == 0
        assert type(document.metadata["iso"]) is str, "a string that spells a datetime stays a string"
        (entry,) = twin.entries(collection, "d")
        assert entry.document is not None
        _assert_utc_datetime(entry.document.metadata["kolkata"], given["kolkata"], "stored entry")

    @needs("filter_search")
    def test_datetimes_come_back_in_utc_from_search_hits(self, twin: Twin) -> None:
        collection = twin.new_collection()
        moment = datetime(2030, 5, 6, 7, 8, 9, 123_456, tzinfo=_PACIFIC)
        twin.upsert(collection, _doc("d", at=moment, many=[moment, None]))
        (hit,) = twin.search(collection, filter={"at": moment})
        _assert_utc_datetime(hit.metadata["at"], moment, "hit metadata['at']")
        many = hit.metadata["many"]
        assert isinstance(many, list)
        _assert_utc_datetime(many[0], moment, "hit metadata['many'][0]")

    @needs("filter_search")
    def test_a_datetime_equals_only_a_datetime_of_the_same_instant(self, twin: Twin) -> None:
        micros = to_micros(NEW_YEAR)
        documents = (
            _doc("utc", t=NEW_YEAR),
            _doc("kolkata", t=datetime(2024, 1, 1, 5, 30, tzinfo=_KOLKATA)),
            _doc("next-microsecond", t=NEW_YEAR + timedelta(microseconds=1)),
            _doc("in-a-list", t=[None, "x", NEW_YEAR]),
            _doc("iso-string", t=NEW_YEAR.isoformat()),
            _doc("micros-number", t=micros),
            _doc("seconds-number", t=micros // 1_000_000),
            _doc("epoch", t=datetime(1970, 1, 1, tzinfo=UTC)),
            _doc("zero", t=0),
            _doc("none", t=None),
            _doc("missing"),
        )
        assert _matching(twin, {"t": NEW_YEAR}, *documents) == ["in-a-list", "kolkata", "utc"]
        assert _matching(twin, {"t": datetime(2023, 12, 31, 16, tzinfo=_PACIFIC)}, *documents) == [
            "in-a-list",
            "kolkata",
            "utc",
        ]
        assert _matching(twin, {"t": NEW_YEAR.isoformat()}, *documents) == ["iso-string"]
        assert _matching(twin, {"t": micros}, *documents) == ["micros-number"]
        assert _matching(twin, {"t": 0}, *documents) == ["zero"]
        assert _matching(twin, {"t": datetime(1970, 1, 1, tzinfo=UTC)}, *documents) == ["epoch"]
        assert _matching(twin, {"t": {"ne": NEW_YEAR}}, *documents) == [
            "epoch",
            "iso-string",
            "micros-number",
            "missing",
            "next-microsecond",
            "none",
            "seconds-number",
            "zero",
        ]

    @needs("filter_search")
    def test_in_and_nin_mix_datetimes_with_other_scalars(self, twin: Twin) -> None:
        later = NEW_YEAR + timedelta(days=1)
        documents = (
            _doc("new-year", t=NEW_YEAR),
            _doc("later", t=later),
            _doc("both", t=[NEW_YEAR, later]),
            _doc("string", t="x"),
            _doc("number", t=to_micros(later)),
            _doc("none", t=None),
        )
        options: list[object] = [later, "x", 0]
        assert _matching(twin, {"t": {"in": options}}, *documents) == ["both", "later", "string"]
        assert _matching(twin, {"t": {"nin": options}}, *documents) == ["new-year", "none", "number"]
        assert _matching(twin, {"t": {"in": [to_micros(later), NEW_YEAR]}}, *documents) == [
            "both",
            "new-year",
            "number",
        ]

    @needs("filter_search")
    def test_datetime_ranges_compare_in_time_order_and_only_datetimes(self, twin: Twin) -> None:
        documents = (
            _doc("year-1", t=datetime(1, 1, 1, tzinfo=UTC)),
            _doc("before-epoch", t=datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
            _doc("epoch", t=datetime(1970, 1, 1, tzinfo=UTC)),
            _doc("new-year", t=NEW_YEAR),
            _doc("new-year-plus-1us", t=NEW_YEAR + timedelta(microseconds=1)),
            _doc("kolkata-evening", t=datetime(2024, 1, 1, 20, tzinfo=_KOLKATA)),  # 14:30 UTC
            _doc("pacific-evening", t=datetime(2024, 1, 1, 20, tzinfo=_PACIFIC)),  # 04:00 UTC the next day
            _doc("year-9999", t=datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
            _doc("list", t=[None, datetime(2000, 1, 1, tzinfo=UTC), datetime(2050, 1, 1, tzinfo=UTC)]),
            _doc("number", t=to_micros(NEW_YEAR) + 5),
            _doc("string", t="2024-06-01T00:00:00+00:00"),
            _doc("none", t=None),
            _doc("missing"),
        )
        assert _matching(twin, {"t": {"gt": NEW_YEAR}}, *documents) == [
            "kolkata-evening",
            "list",
            "new-year-plus-1us",
            "pacific-evening",
            "year-9999",
        ]
        # Each operator holds for some element on its own: the list's 2050 is >= and its 2000 is <.
        assert _matching(twin, {"t": {"gte": NEW_YEAR, "lt": datetime(2024, 1, 2, tzinfo=UTC)}}, *documents) == [
            "kolkata-evening",
            "list",
            "new-year",
            "new-year-plus-1us",
        ]
        assert _matching(twin, {"t": {"lte": datetime(1970, 1, 1, 5, 30, tzinfo=_KOLKATA)}}, *documents) == [
            "before-epoch",
            "epoch",
            "year-1",
        ]
        assert _matching(twin, {"t": {"lt": datetime(1970, 1, 1, tzinfo=UTC)}}, *documents) == [
            "before-epoch",
            "year-1",
        ]
        # The list holds 2000 and 2050: a range holds when some element is in it.
        assert _matching(
            twin, {"t": {"gt": datetime(2040, 1, 1, tzinfo=UTC), "lt": datetime(9000, 1, 1, tzinfo=UTC)}}, *documents
        ) == ["list"]
        # A number range never holds for a datetime, whatever its encoding in the store.
        assert _matching(twin, {"t": {"gt": 0}}, *documents) == ["number"]
        assert _matching(twin, {"t": {"lt": 0}}, *documents) == []
        assert _matching(twin, {"not": {"t": {"gte": datetime(1970, 1, 1, tzinfo=UTC)}}}, *documents) == [
            "before-epoch",
            "missing",
            "none",
            "number",
            "string",
            "year-1",
        ]

    @needs("documents")
    def test_naive_datetimes_and_dates_are_refused_and_nothing_is_written(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, _doc("kept", t=NEW_YEAR))
        for value in (datetime(2024, 1, 1), date(2024, 1, 1), [NEW_YEAR, datetime(2024, 1, 1)]):
            with pytest.raises(InvalidInput, match=r"timezone-aware|date"):
                Document("kept", metadata={"t": value})
        (document,) = twin.get(collection, "kept")
        _assert_utc_datetime(document.metadata["t"], NEW_YEAR, "metadata['t'] after the refused writes")
        if twin.capabilities.filter_search:
            for spec in (
                {"t": datetime(2024, 1, 1)},
                {"t": {"gt": datetime(2024, 1, 1)}},
                {"t": {"in": [NEW_YEAR, datetime(2024, 1, 1)]}},
                {"t": {"lt": date(2024, 1, 1)}},
            ):
                with pytest.raises(FilterError, match=r"timezone-aware|date"):
                    twin.search(collection, filter=spec)

    # -- text --------------------------------------------------------------

    @needs("text_search")
    def test_text_matches_regardless_of_case_in_any_script(self, twin: Twin) -> None:
        documents = (Document("cement", text="ЦЕМЕНТ М-500"), Document("pipe", text="Труба ПВХ"))
        assert _text_matches(twin, "цемент", *documents) == {"cement"}
        assert _text_matches(twin, "трУБА", *documents) == {"pipe"}

    @needs("text_search")
    def test_text_casefolds_rather_than_lowercases(self, twin: Twin) -> None:
        documents = (Document("street", text="Hauptstraße 5"), Document("file", text="ﬁle"))
        assert _text_matches(twin, "HAUPTSTRASSE", *documents) == {"street"}
        assert _text_matches(twin, "FILE", *documents) == {"file"}

    @needs("text_search")
    def test_text_is_compared_in_nfc(self, twin: Twin) -> None:
        documents = (Document("decomposed", text="cafe\u0301"), Document("composed", text="caf\u00e9"))
        assert _text_matches(twin, "CAF\u00c9", *documents) == {"decomposed", "composed"}

    @needs("text_search")
    def test_tokens_split_at_every_character_that_is_not_a_letter_or_digit(self, twin: Twin) -> None:
        documents = (Document("spec", text="Цемент М-500, 2.5мм ПВХ/PVC x_y"),)
        assert _text_matches(twin, "pvc 500 м", *documents) == {"spec"}
        assert _text_matches(twin, "5мм y", *documents) == {"spec"}
        assert _text_matches(twin, "2.5", *documents) == set(), "'5' is not a token of '2.5мм'"
        assert _text_matches(twin, "М500", *documents) == set()

    @needs("text_search")
    def test_tokens_outside_a_tokenizers_classes_match_as_the_token_rule_says(self, twin: Twin) -> None:
        """The token rule is str.isalnum(), whatever a full-text engine's own tables say.

        U+19B0 is a letter to Python but a separator to SQLite's unicode61;
        '²' and '٣' are digits to Python that some tokenizers drop or fold;
        U+0301 joins its letter under NFC; '_' separates.
        """
        documents = (
            Document("a", text="\u19b0"),
            Document("b", text="\u19b0 abc"),
            Document("c", text="abc"),
            Document("d", text="x\u19b0y"),
            Document("e", text="x² ٣"),
            Document("f", text="x_y"),
        )
        assert _text_matches(twin, "\u19b0", *documents) == {"a", "b"}
        assert _text_matches(twin, "\u19b0 ABC", *documents) == {"b"}
        assert _text_matches(twin, "x\u19b0y", *documents) == {"d"}
        assert _text_matches(twin, "x y", *documents) == {"f"}
        assert _text_matches(twin, "x²", *documents) == {"e"}
        assert _text_matches(twin, "٣", *documents) == {"e"}

    @needs("text_search")
    def test_text_needs_every_query_token_and_matches_whole_tokens_only(self, twin: Twin) -> None:
        documents = (
            Document("both", text="цемент труба"),
            Document("one", text="цемент"),
            Document("longer", text="цемента"),
        )
        assert _text_matches(twin, "труба цемент", *documents) == {"both"}
        assert _text_matches(twin, "цемент", *documents) == {"both", "one"}

    @needs("text_search")
    def test_text_hits_are_ranked_by_score_then_id_up_to_the_limit(self, twin: Twin) -> None:
        collection = twin.new_collection()
        texts = ("pvc", "pvc pvc", "pvc pipe", "pvc pipe cement", "PVC", "pipe")
        twin.upsert(collection, *(Document(f"d{index}", text=text) for index, text in enumerate(texts)))
        hits = twin.search(collection, text="pvc", limit=4)
        assert len(hits) == 4 and {hit.id for hit in hits} <= {"d0", "d1", "d2", "d3", "d4"}
        assert_relevance_order(hits, where="text hits")

    @needs("text_search", "filter_search")
    def test_text_with_a_filter_keeps_documents_matching_both(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection,
            Document("match", text="pvc", metadata={"ok": True}),
            Document("text-only", text="pvc", metadata={"ok": False}),
            Document("filter-only", text="pipe", metadata={"ok": True}),
        )
        assert _ids(twin.search(collection, text="PVC", filter={"ok": True})) == ["match"]

    # -- vectors -----------------------------------------------------------

    @needs("vector_search")
    def test_vector_hits_are_ranked_by_cosine_similarity(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection,
            Document("opposite", vector=[-1, 0, 0]),
            Document("orthogonal", vector=[0, 1, 0]),
            Document("diagonal", vector=[1, 1, 0]),
            Document("same", vector=[1, 0, 0]),
        )
        hits = twin.search(collection, vector=[3, 0, 0])
        assert _ids(hits) == ["same", "diagonal", "orthogonal", "opposite"]
        expected = [1.0, math.sqrt(0.5), 0.0, -1.0]
        assert all(math.isclose(hit.score, score, abs_tol=1e-4) for hit, score in zip(hits, expected, strict=True))

    @needs("vector_search")
    def test_vector_scores_are_cosines_within_minus_one_and_one(self, twin: Twin) -> None:
        # Rounding puts a vector's cosine with itself a few ulps above 1 (float64) or about 1e-7 (float32).
        draw = random.Random(3)
        documents = [Document(f"v{index}", vector=[draw.uniform(-3, 3) for _ in range(7)]) for index in range(30)]
        collection = twin.new_collection()
        twin.upsert(collection, *documents)
        for document in documents:
            assert document.vector is not None
            for sign in (1.0, -1.0):
                (hit,) = twin.search(collection, vector=[sign * x for x in document.vector], limit=1)
                assert -1.0 <= hit.score <= 1.0, (document.id, sign, hit.score)

    @needs("vector_search")
    def test_vector_ties_are_ordered_by_id(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, *(Document(document_id, vector=[0.5, 0.25, 1]) for document_id in ("b", "a", "B")))
        assert _ids(twin.search(collection, vector=[0.5, 0.25, 1])) == ["B", "a", "b"]

    @needs("vector_search")
    def test_documents_without_a_vector_are_not_vector_hits(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("plain", text="pvc"), Document("vector", vector=[0, 0, 1]))
        assert _ids(twin.search(collection, vector=[1, 0, 0])) == ["vector"]

    @needs("vector_search")
    def test_vector_hits_stop_at_the_limit(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, *(Document(f"d{index}", vector=[1, index, 0]) for index in range(5)))
        assert _ids(twin.search(collection, vector=[1, 0, 0], limit=2)) == ["d0", "d1"]

    @needs("vector_search")
    def test_query_vector_of_another_dimension_raises_invalid_input(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a", vector=[1, 0, 0]))
        with pytest.raises(InvalidInput):
            twin.search(collection, vector=[1, 0])

    @needs("vector_search")
    def test_vector_search_of_an_unknown_collection_is_empty(self, twin: Twin) -> None:
        assert twin.search(twin.new_collection(), vector=[1, 0]) == []

    @needs("vector_search", "filter_search")
    def test_vector_with_a_filter_ranks_only_matching_documents(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection,
            Document("best-excluded", vector=[1, 0, 0], metadata={"ok": False}),
            Document("worse-kept", vector=[0, 1, 0], metadata={"ok": True}),
            Document("middle-kept", vector=[1, 1, 0], metadata={"ok": True}),
        )
        assert _ids(twin.search(collection, vector=[1, 0, 0], filter={"ok": True})) == ["middle-kept", "worse-kept"]

    @needs("vector_search", "text_search")
    def test_vector_with_text_ranks_only_text_matches_by_cosine(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection,
            Document("best-no-text", text="pipe", vector=[1, 0, 0]),
            Document("worse", text="PVC pipe", vector=[0, 1, 0]),
            Document("better", text="pvc", vector=[1, 1, 0]),
        )
        assert _ids(twin.search(collection, vector=[1, 0, 0], text="pvc")) == ["better", "worse"]


__all__ = ["SearchConformance"]
