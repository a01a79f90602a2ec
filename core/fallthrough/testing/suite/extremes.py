"""Conformance at the edges: extreme values, look-alike strings, ties at the limit, colliding seqs, big calls.

These rules are already stated elsewhere in the suite; here they meet the
inputs that broke real backends: floats read back a unit off, bools matched as
1, equal scores cut in storage order, collections split in two by a vector,
and validation that stopped halfway through a multi-chunk write.
"""

from __future__ import annotations

from typing import Any

from ...errors import InvalidInput
from ...types import Document, RecordUpdate, Status
from ..twin import Twin, at
from ._base import ConformanceSuite, needs

EXTREMES = {
    "max": 2**53 - 1,
    "min": -(2**53 - 1),
    "near": 2**53 - 2,
    "huge": 1e308,
    "tiny": 5e-324,
    "negzero": -0.0,
    "one": 1,
    "onef": 1.0,
    "yes": True,
    "no": False,
    "ключ ß İ": "Straße",
    "a:b (0)/#": "odd",
    "nested": {"a": {"b": [{"c": 2**53 - 1}, {"c": -0.0, "ключ ß İ": ["Straße", None]}, "s"]}},
    "mixed": [1, "1", True, 2.5, None],
    "none": None,
}


class ExtremesConformance(ConformanceSuite):
    """Documents, search and records on the inputs most likely to break a store."""

    @needs("vector_search", "filter_search")
    def test_vector_ties_at_the_limit_keep_the_lowest_ids(self, twin: Twin) -> None:
        """Equal scores at the cut: ties go by id, so the lowest ids make it, whatever order the store keeps."""
        ids = [f"d{i:02d}" for i in range(30)]
        for order in (ids, ids[::-1], ids[::2] + ids[1::2]):
            collection = twin.new_collection()
            twin.upsert(collection, *(Document(i, "x", vector=(1.0, 0.0)) for i in order))
            twin.upsert(collection, Document("far", "x", vector=(0.0, 1.0)))
            for limit in (1, 3, 7, 30):
                hits = twin.search(collection, vector=(2.0, 0.0), limit=limit)
                assert [hit.id for hit in hits] == ids[:limit]
            hits = twin.search(collection, vector=(1.0, 0.0), filter={"x": {"ne": 1}}, limit=31)
            assert [hit.id for hit in hits] == [*ids, "far"]

    @needs("vector_search", "text_search", "filter_search")
    def test_a_document_moving_between_vector_and_plain_leaves_no_stale_copy(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a", "alpha", vector=(1.0, 0.0)))
        twin.upsert(collection, Document("a", "beta"))
        assert twin.search(collection, text="alpha", limit=10) == []
        assert [hit.id for hit in twin.search(collection, text="beta", limit=10)] == ["a"]
        assert twin.search(collection, vector=(1.0, 0.0), limit=10) == []
        twin.upsert(collection, Document("a", "gamma", vector=(0.0, 1.0)))
        assert [hit.id for hit in twin.search(collection, filter={"x": {"ne": 1}}, limit=10)] == ["a"]
        assert twin.delete(collection, "a") == 1
        assert twin.search(collection, filter={"x": {"ne": 1}}, limit=10) == []
        assert twin.get(collection, "a") == []

    @needs("text_search", "filter_search")
    def test_extreme_metadata_round_trips_and_filters_exactly(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("x", "t", metadata=EXTREMES), Document("y", "t", metadata={"one": True}))
        (document,) = twin.get(collection, "x")
        assert document.metadata == EXTREMES
        assert repr(document.metadata["onef"]) == "1.0" and repr(document.metadata["negzero"]) == "-0.0"
        filters: list[dict[str, Any]] = [
            {"one": 1.0},
            {"onef": 1},
            {"one": True},
            {"yes": 1},
            {"yes": True},
            {"no": 0},
            {"max": 2**53 - 1},
            {"max": 2**53 - 2},
            {"near": {"lt": 2**53 - 1}},
            {"max": {"gt": 2**53 - 2}},
            {"min": {"lte": -(2**53 - 1)}},
            {"huge": {"gte": 1e308}},
            {"tiny": {"gt": 0}},
            {"negzero": 0},
            {"negzero": {"gte": 0.0}},
            {"mixed": "1"},
            {"mixed": 1},
            {"mixed": True},
            {"mixed": {"in": [True, "zz"]}},
            {"mixed": {"in": [2.5, "q"]}},
            {"mixed": {"nin": [1.0]}},
            {"mixed": {"ne": "1"}},
            {"none": {"ne": 1}},
            {"none": {"nin": ["a"]}},
            {"none": {"lt": 1}},
            {"missing": {"ne": 1}},
            {"missing": {"nin": [1, "a", True]}},
            {"not": {"missing": 1}},
            {"not": {"one": 1}},
            {"ключ ß İ": "Straße"},
            {"ключ ß İ": "strasse"},
            {"a:b (0)/#": "odd"},
            {"nested.a.b.c": 2**53 - 1},
            {"nested.a.b.c": {"lt": 0}},
            {"nested.a.b.c": {"gte": 2**53 - 2}},
            {"nested.a.b.ключ ß İ": "Straße"},
            {"nested.a.b": {"exists": True}},
            {"nested.a.b": "s"},
            {"nested.a.b.s": {"exists": False}},
            {"or": [{"one": True}, {"yes": True}]},
        ]
        for spec in filters:
            twin.search(collection, filter=spec, limit=10)
            twin.search(collection, text="t", filter=spec, limit=10)

    @needs("text_search")
    def test_special_tokens_match_exactly(self, twin: Twin) -> None:
        collection = twin.new_collection()
        long_token = "a" * 5000
        texts = {
            "digits": "123 0042 9999999999999999999999",
            "long": long_token,
            "nfd": "Cafe\u0301",
            "nfc": "Caf\u00e9",
            "sz": "STRASSE",
            "turk": "İstanbul",
            "turk2": "istanbul",
            "true": "true false null",
        }
        twin.upsert(collection, *(Document(i, text) for i, text in texts.items()))
        for query in [
            "123",
            "42",
            "0042",
            "9999999999999999999999",
            long_token,
            "café",
            "cafe\u0301",
            "straße",
            "İSTANBUL",
            "i\u0307stanbul",
            "istanbul",
            "true",
            "null",
        ]:
            twin.search(collection, text=query, limit=20)

    @needs("records")
    def test_equal_seqs_page_in_key_order(self, twin: Twin) -> None:
        keys = [f"k{i:03d}" for i in range(50)]
        batch = twin.new_batch(keys[:10])
        # Later calls stamp seqs that collide with the first ones: many records share a seq.
        for start in range(10, 50, 10):
            twin.call(
                "fallthrough_add_records",
                batch_id=batch,
                keys=tuple(reversed(keys[start : start + 10])),
                first_seq=twin.record(batch, keys[0]).seq,
                created_at=at(start),
            )
        for limit in (1, 3, 7, 50):
            seen, after = [], None
            while True:
                page = twin.records(batch, after=after, limit=limit)
                seen.extend(page)
                if len(page) < limit:
                    break
                after = (page[-1].seq, page[-1].key)
            assert len(seen) == 50
        for key in keys[::3]:
            twin.update(RecordUpdate(batch, key, "failed", error="x"), at_time=at(100))
        seen, after = [], None
        while True:
            page = twin.records(batch, status=Status.PENDING, after=after, limit=1)
            seen.extend(page)
            if not page:
                break
            after = (page[-1].seq, page[-1].key)
        assert len(seen) == 50 - len(keys[::3])
        moved = twin.call("fallthrough_retry_failed", batch_id=batch, updated_at=at(200))
        assert len(moved) == len(keys[::3])
        twin.call("fallthrough_progress", batch_id=batch)

    @needs("records")
    def test_recreated_batch_starts_over(self, twin: Twin) -> None:
        batch = twin.new_batch(["a", "b"])
        twin.update(RecordUpdate(batch, "a", "completed"), at_time=at(3))
        assert twin.call("fallthrough_delete_batch", batch_id=batch)
        twin.call(
            "fallthrough_create_batch",
            batch_id=batch,
            keys=("b", "c"),
            first_seq=5,
            metadata={"v": 2},
            created_at=at(9),
        )
        twin.call("fallthrough_progress", batch_id=batch)
        twin.batch(batch)
        twin.records(batch)

    @needs("text_search", "filter_search")
    def test_a_string_never_equals_a_number_or_a_bool_of_the_same_spelling(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection,
            Document("int", "t", metadata={"v": 1, "w": [7, False]}),
            Document("float", "t", metadata={"v": 1.5, "w": 7.0}),
            Document("bool", "t", metadata={"v": True, "w": [True]}),
            Document("str", "t", metadata={"v": "1", "w": ["7", "true"]}),
            Document("null", "t", metadata={"v": None, "w": []}),
        )
        specs: list[dict[str, Any]] = [
            {"v": "1"},
            {"v": "1.5"},
            {"v": "true"},
            {"v": "True"},
            {"w": "7"},
            {"w": "true"},
            {"w": "false"},
            {"v": {"in": ["1", "1.5", "true"]}},
            {"v": {"nin": ["1", "true"]}},
            {"v": {"ne": "1"}},
            {"w": {"ne": "7"}},
            {"not": {"v": "1"}},
            {"not": {"w": {"in": ["7", "x"]}}},
            {"v": {"in": [1, "1"]}},
            {"v": {"nin": [1, "1"]}},
            {"w": {"nin": [7, True]}},
            {"w": False},
            {"w": 0},
            {"v": {"gte": 1}},
            {"w": {"lt": 8}},
            {"or": [{"v": "1"}, {"not": {"w": 7}}]},
        ]
        for spec in specs:
            twin.search(collection, filter=spec, limit=10)
            twin.search(collection, vector=None, text="t", filter=spec, limit=2)

    @needs("text_search", "filter_search")
    def test_strings_that_look_like_other_types_compare_as_strings(self, twin: Twin) -> None:
        collection = twin.new_collection()
        values = [
            "550e8400-e29b-41d4-a716-446655440000",
            "550E8400-E29B-41D4-A716-446655440000",
            "550e8400e29b41d4a716446655440000",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01",
            "1",
            "01",
            "1.0",
            "",
            " ",
            "a ",
            "A",
            "null",
            "Caf\u00e9",
            "Cafe\u0301",
        ]
        twin.upsert(
            collection, *(Document(f"d{i:02d}", "t", metadata={"v": v, "l": [v, 5]}) for i, v in enumerate(values))
        )
        for value in values:
            specs = (
                {"v": value},
                {"l": value},
                {"v": {"ne": value}},
                {"l": {"nin": [value, "zz"]}},
                {"not": {"v": value}},
            )
            for spec in specs:
                twin.search(collection, filter=spec, limit=30)
                twin.search(collection, text="t", filter=spec, limit=30)

    @needs("vector_search", "text_search")
    def test_a_wrong_dimension_late_in_a_call_of_several_chunks_writes_nothing(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("seed", "seed", vector=(1.0, 0.0)), Document("plain", "plain"))
        documents = [Document(f"d{i:04d}", "new", vector=(1.0, float(i))) for i in range(2500)]
        documents[499] = Document("d0499", "new", vector=(1.0, 2.0, 3.0))
        documents[2400] = Document("plain", "moved", vector=(0.0, 1.0))
        outcome = twin.backend.outcome(
            "fallthrough_upsert_documents",
            collection=collection,
            documents=tuple(documents),
            version=twin.next_version(),
        )
        assert isinstance(outcome.error, InvalidInput)
        assert twin.search(collection, text="new", limit=10) == []
        assert [hit.id for hit in twin.search(collection, text="plain", limit=10)] == ["plain"]
        assert twin.get(collection, "d0000", "d0499", "d2499") == []
        assert [hit.id for hit in twin.search(collection, vector=(1.0, 0.0), limit=10)] == ["seed"]


__all__ = ["EXTREMES", "ExtremesConformance"]
