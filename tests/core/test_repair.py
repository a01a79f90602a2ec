"""repair_stores brings diverged stores to the merge of all of them, and then has nothing left to send.

Each store is a real backend behind :class:`~fallthrough.testing.drivers.HookDriver`,
diverged by writing to each alone, as missed writes leave them. After a
repair every store is read whole (every batch, record, collection and
entry) and must equal the others and the merge the rules of
``docs/semantics.md`` give, which each test spells out by hand.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from fallthrough.errors import InvalidInput
from fallthrough.repair import DIMENSION_HOOKS, repair_stores
from fallthrough.testing.compare import assert_same
from fallthrough.testing.drivers import HookDriver
from fallthrough.testing.model import ReferenceBackend
from fallthrough.types import Document, Record, RecordUpdate, RepairCounts, Status, StoredDocument

EVERYTHING = 10_000
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

# The backends under test here. The same tests run on Qdrant stores with
# a make_store of their own (tests/qdrant/test_qdrant_repair.py); SQLite and
# Qdrant stores are repaired through a Store in tests/core/test_store_repair.py.
BACKENDS: dict[str, Callable[[], object]] = {"reference": ReferenceBackend}


def at(micros: int) -> datetime:
    return T0 + timedelta(microseconds=micros)


class Counting(HookDriver):
    """A HookDriver that keeps every call, to check what a repair read and sent."""

    def __init__(self, plugin: object, name: str) -> None:
        super().__init__(plugin, name)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(self, hook: str, **arguments: Any) -> Any:
        self.calls.append((hook, arguments))
        return super().call(hook, **arguments)


@pytest.fixture(params=sorted(BACKENDS))
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Counting]]:
    opened: list[Counting] = []

    def make(name: str) -> Counting:
        driver = Counting(BACKENDS[request.param](), name)
        driver.open()
        opened.append(driver)
        return driver

    yield make
    for driver in opened:
        driver.close()


def everything(store: HookDriver) -> dict[str, Any]:
    """All a store holds, read through its hooks: batches with their records, collections with their entries."""
    batches = sorted(store.call("fallthrough_list_batches", after=None, limit=EVERYTHING), key=lambda b: b.id)
    records = {
        batch.id: list(
            store.call("fallthrough_list_records", batch_id=batch.id, status=None, after=None, limit=EVERYTHING)
        )
        for batch in batches
    }
    collections = list(store.call("fallthrough_list_collections"))
    entries = {
        name: sorted(
            store.call("fallthrough_scan_documents", collection=name, after=None, limit=EVERYTHING),
            key=lambda entry: entry.id,
        )
        for name in collections
    }
    return {"batches": list(batches), "records": records, "collections": collections, "entries": entries}


def create(store: HookDriver, batch_id: uuid.UUID, keys: list[str], first_seq: int, metadata: Any, when: int) -> None:
    store.call(
        "fallthrough_create_batch",
        batch_id=batch_id,
        keys=keys,
        first_seq=first_seq,
        metadata=metadata,
        created_at=at(when),
    )


def update(store: HookDriver, when: int, *updates: RecordUpdate) -> None:
    store.call("fallthrough_update_records", updates=updates, updated_at=at(when))


def upsert(store: HookDriver, collection: str, version: int, *documents: Document) -> None:
    store.call("fallthrough_upsert_documents", collection=collection, documents=documents, version=version)


def delete(store: HookDriver, collection: str, version: int, *ids: str) -> None:
    store.call("fallthrough_delete_documents", collection=collection, ids=ids, version=version)


class Diverged:
    """Two stores that each missed what the other got; the ids and the merge they must reach."""

    def __init__(self, a: HookDriver, b: HookDriver) -> None:
        self.a, self.b = a, b
        self.shared, self.only_a, self.headers = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        # A batch created on each store alone: different keys, seqs, metadata and created_at.
        create(a, self.shared, ["a", "b", "c"], 100, {"from": "a"}, 5)
        create(b, self.shared, ["b", "c", "d"], 90, {"from": "b"}, 3)
        # b: completed on A beats processing on B (rank), though B's is later.
        update(a, 10, RecordUpdate(self.shared, "b", "completed", result={"n": 1.0}))
        update(b, 11, RecordUpdate(self.shared, "b", "processing"))
        # c: failed then retried on B (attempt 1) beats completed on A (attempt 0).
        update(b, 12, RecordUpdate(self.shared, "c", "failed", error="boom"))
        b.call("fallthrough_retry_failed", batch_id=self.shared, updated_at=at(13))
        update(a, 14, RecordUpdate(self.shared, "c", "completed", result=[1, True]))
        # A batch only A has.
        create(a, self.only_a, ["x"], 200, {"n": 1}, 20)
        update(a, 21, RecordUpdate(self.only_a, "x", "failed", result=None, error="Цемент"))
        # Created on both at the same time with different metadata: the smaller canonical JSON wins.
        create(a, self.headers, [], 300, {"z": 1}, 30)
        create(b, self.headers, [], 300, {"a": 1}, 30)

        # docs: d1 upserted on both, B's newer; d2 deleted on A after both had it;
        # d3 two writes in one microsecond; d4 a delete and an upsert at one version.
        upsert(a, "docs", 10, Document("d1", "old"), Document("d2", "two"), Document("d5", vector=[1.0, 0.5]))
        upsert(b, "docs", 11, Document("d2", "two"))
        upsert(b, "docs", 12, Document("d1", "new", metadata={"k": "v"}))
        delete(a, "docs", 20, "d2")
        upsert(a, "docs", 40, Document("d3", "x"))
        upsert(b, "docs", 40, Document("d3", "y"))
        delete(a, "docs", 50, "d4")
        upsert(b, "docs", 50, Document("d4", "live wins a tie"))
        # A collection only B has, holding only a tombstone for an id never seen.
        delete(b, "ghosts", 30, "ghost")

    def check_merged(self, *stores: HookDriver) -> None:
        """Every store holds exactly the merge."""
        first = everything(stores[0])
        for store in stores[1:]:
            assert_same(everything(store), first, f"{store.name} vs {stores[0].name}")
        batches = {batch.id: batch for batch in first["batches"]}
        assert_same((batches[self.shared].metadata, batches[self.shared].created_at), ({"from": "b"}, at(3)))
        assert_same((batches[self.headers].metadata, batches[self.headers].created_at), ({"a": 1}, at(30)))
        assert batches[self.only_a].metadata == {"n": 1}
        records = {record.key: record for record in first["records"][self.shared]}
        assert {key: record.seq for key, record in records.items()} == {"a": 100, "b": 90, "c": 91, "d": 92}
        assert_same(
            records["b"], Record(self.shared, "b", 90, Status.COMPLETED, 0, {"n": 1.0}, None, at(10)), "record b"
        )
        assert_same(records["c"], Record(self.shared, "c", 91, Status.PENDING, 1, None, None, at(13)), "record c")
        (x,) = first["records"][self.only_a]
        assert_same(x, Record(self.only_a, "x", 200, Status.FAILED, 0, None, "Цемент", at(21)), "record x")
        assert first["collections"] == ["docs", "ghosts"]
        entries = {entry.id: entry for entry in first["entries"]["docs"]}
        assert_same(entries["d1"], StoredDocument("d1", 12, Document("d1", "new", metadata={"k": "v"})), "d1")
        assert_same(entries["d2"], StoredDocument("d2", 20, None), "d2")
        assert entries["d3"].version == 40 and entries["d3"].document is not None
        assert_same(entries["d4"], StoredDocument("d4", 50, Document("d4", "live wins a tie")), "d4")
        assert_same(entries["d5"], StoredDocument("d5", 10, Document("d5", vector=[1.0, 0.5])), "d5")
        assert_same(first["entries"]["ghosts"], [StoredDocument("ghost", 30, None)], "ghosts")


@pytest.mark.parametrize("page_size", [1, 2, 1000])
def test_repair_brings_both_stores_to_the_merge_and_a_second_repair_sends_nothing(
    make_store: Callable[[str], Counting], page_size: int
) -> None:
    a, b = make_store("a"), make_store("b")
    diverged = Diverged(a, b)
    report = repair_stores([a, b], page_size=page_size)
    diverged.check_merged(a, b)
    # A takes the winning headers of "shared" and "headers"; B takes the batch only A had.
    assert report["a"].batches == 2 and report["b"].batches == 1
    assert report["b"].tombstones == 1 and report["a"].tombstones == 1  # d2 to B, ghost to A
    assert not report.sent_nothing
    again = repair_stores([a, b], page_size=page_size)
    assert again.sent_nothing, again
    assert again["a"] == again["b"] == RepairCounts()


def test_three_stores_one_empty_all_reach_the_merge(make_store: Callable[[str], Counting]) -> None:
    a, b, empty = make_store("a"), make_store("b"), make_store("empty")
    diverged = Diverged(a, b)
    report = repair_stores([a, b, empty], page_size=3)
    diverged.check_merged(a, b, empty)
    assert report["empty"] == RepairCounts(batches=3, records=5, documents=4, tombstones=2)
    assert repair_stores([empty, b, a], page_size=2).sent_nothing


def test_reads_are_one_page_at_a_time(make_store: Callable[[str], Counting]) -> None:
    """Bounded memory: every listing asks for page_size, every bulk read names at most page_size keys or ids."""
    a, b = make_store("a"), make_store("b")
    Diverged(a, b)
    for n in range(7):
        upsert(a, "docs", 100 + n, Document(f"extra{n}"))
    repair_stores([a, b], page_size=2)
    for store in (a, b):
        for hook, arguments in store.calls:
            if "limit" in arguments:
                assert arguments["limit"] == 2, (hook, arguments)
            for name in ("keys", "ids", "records", "documents"):
                if hook in ("fallthrough_get_records", "fallthrough_document_versions", "fallthrough_merge_records"):
                    assert len(arguments.get(name, ())) <= 2, (hook, arguments)


def test_batch_id_repairs_that_batch_only(make_store: Callable[[str], Counting]) -> None:
    a, b = make_store("a"), make_store("b")
    diverged = Diverged(a, b)
    before_docs = (everything(a)["entries"], everything(b)["entries"])
    report = repair_stores([a, b], batch_id=diverged.shared)
    for store in (a, b):
        batch = store.call("fallthrough_get_batch", batch_id=diverged.shared)
        assert_same((batch.metadata, batch.created_at, batch.total), ({"from": "b"}, at(3), 4))
    assert_same(
        a.call("fallthrough_list_records", batch_id=diverged.shared, status=None, after=None, limit=EVERYTHING),
        b.call("fallthrough_list_records", batch_id=diverged.shared, status=None, after=None, limit=EVERYTHING),
    )
    assert b.call("fallthrough_get_batch", batch_id=diverged.only_a) is None
    assert b.call("fallthrough_get_batch", batch_id=diverged.headers).metadata == {"a": 1}
    assert a.call("fallthrough_get_batch", batch_id=diverged.headers).metadata == {"z": 1}
    assert (everything(a)["entries"], everything(b)["entries"]) == before_docs
    assert report["a"].documents == report["b"].documents == 0
    assert report["a"].tombstones == report["b"].tombstones == 0


def test_collection_repairs_that_collection_only(make_store: Callable[[str], Counting]) -> None:
    a, b = make_store("a"), make_store("b")
    diverged = Diverged(a, b)
    records_before = (everything(a)["records"], everything(b)["records"])
    report = repair_stores([a, b], collection="docs")
    assert_same(everything(a)["entries"]["docs"], everything(b)["entries"]["docs"])
    assert a.call("fallthrough_list_collections") == ["docs"]  # "ghosts" was out of scope
    assert (everything(a)["records"], everything(b)["records"]) == records_before
    assert b.call("fallthrough_get_batch", batch_id=diverged.only_a) is None
    assert report["a"].batches == report["b"].batches == report["a"].records == report["b"].records == 0
    assert repair_stores([a, b], collection="docs").sent_nothing


def test_a_repaired_tombstone_keeps_blocking_a_late_upsert(make_store: Callable[[str], Counting]) -> None:
    """After a repair, replaying the old upsert on the store that missed the delete does nothing."""
    a, b = make_store("a"), make_store("b")
    upsert(a, "c", 1, Document("gone", "old"))
    upsert(b, "c", 1, Document("gone", "old"))
    delete(a, "c", 2, "gone")
    repair_stores([a, b])
    upsert(b, "c", 1, Document("gone", "old"))
    assert b.call("fallthrough_get_documents", collection="c", ids=["gone"]) == []
    assert repair_stores([a, b]).sent_nothing


def dimension(store: HookDriver, collection: str) -> int | None:
    found: int | None = store.call("fallthrough_collection_dimension", collection=collection)
    return found


def drop(store: HookDriver, collection: str, version: int) -> None:
    store.call("fallthrough_drop_collection", collection=collection, version=version)


def test_a_dimension_no_document_carries_any_more_reaches_the_store_that_lacks_it(
    make_store: Callable[[str], Counting],
) -> None:
    """Dropped on ``a``, the collection keeps its dimension there; ``b`` never saw a vector of it."""
    a, b = make_store("a"), make_store("b")
    upsert(a, "c", 1, Document("x", vector=[1.0, 0.0, 0.0]))
    drop(a, "c", 2)
    report = repair_stores([a, b])
    assert dimension(b, "c") == 3
    assert report["b"] == RepairCounts(dimensions=1)
    assert report["a"] == RepairCounts()
    # The dimension alone was missing: the drop itself reaches b through document_versions.
    with pytest.raises(InvalidInput):
        upsert(b, "c", 3, Document("y", vector=[1.0, 0.0]))
    assert repair_stores([a, b]).sent_nothing


def test_a_document_that_carries_the_dimension_needs_no_separate_send(make_store: Callable[[str], Counting]) -> None:
    a, b = make_store("a"), make_store("b")
    upsert(a, "c", 1, Document("x", vector=[1.0, 0.0]))
    report = repair_stores([a, b])
    assert dimension(b, "c") == 2
    assert report["b"] == RepairCounts(documents=1)
    assert not [hook for hook, _ in b.calls if hook == "fallthrough_fix_collection_dimension"]


def test_a_vector_on_a_store_listed_later_carries_the_dimension_in_a_full_repair(
    make_store: Callable[[str], Counting],
) -> None:
    """The dimension is settled once every store's entries were sent, not after the first store's."""
    a, b = make_store("a"), make_store("b")
    upsert(a, "c", 1, Document("plain", "no vector"))
    upsert(b, "c", 2, Document("x", vector=[1.0, 0.0, 0.0]))
    report = repair_stores([a, b])
    assert report["a"] == report["b"] == RepairCounts(documents=1)
    assert dimension(a, "c") == 3
    assert not [hook for hook, _ in a.calls + b.calls if hook == "fallthrough_fix_collection_dimension"]


class TakesVectorsWhenFixed(Counting):
    """A store that another writer gives 5-dimensional vectors just before the repair's dimension reaches it."""

    def call(self, hook: str, **arguments: Any) -> Any:
        if hook == "fallthrough_fix_collection_dimension":
            upsert(self, arguments["collection"], 10, Document("late", vector=[1.0] * 5))
        return super().call(hook, **arguments)


def test_a_store_that_took_other_vectors_meanwhile_refuses_the_dimension_and_the_repair_goes_on(
    make_store: Callable[[str], Counting], caplog: pytest.LogCaptureFixture
) -> None:
    a = make_store("a")
    b = TakesVectorsWhenFixed(ReferenceBackend(), "b")
    b.open()
    try:
        upsert(a, "c", 1, Document("x", vector=[1.0, 0.0, 0.0]))
        drop(a, "c", 2)
        upsert(a, "d", 3, Document("z", "another collection"))
        with caplog.at_level(logging.WARNING, logger="fallthrough"):
            report = repair_stores([a, b])
        assert dimension(b, "c") == 5
        assert report["b"].dimensions == 0
        assert b.call("fallthrough_get_documents", collection="d", ids=["z"]) == [Document("z", "another collection")]
        assert "collection 'c' has vectors of different dimensions on different stores (b refused 3:" in caplog.text
    finally:
        b.close()


def test_stores_that_disagree_on_a_dimension_keep_theirs_and_the_repair_says_so(
    make_store: Callable[[str], Counting], caplog: pytest.LogCaptureFixture
) -> None:
    a, b, c = make_store("a"), make_store("b"), make_store("c")
    upsert(a, "c", 1, Document("x", vector=[1.0, 0.0]))
    drop(a, "c", 2)
    upsert(b, "c", 3, Document("y", vector=[1.0, 0.0, 0.0]))
    drop(b, "c", 4)
    with caplog.at_level(logging.WARNING, logger="fallthrough"):
        report = repair_stores([a, b, c])
    assert (dimension(a, "c"), dimension(b, "c"), dimension(c, "c")) == (2, 3, None)
    assert all(report[name].dimensions == 0 for name in "abc")
    assert caplog.text.count("'c' has vectors of different dimensions on different stores (a: 2, b: 3)") == 1


class DeclaresNoDimensionHooks(Counting):
    """A store whose backend, as a third-party one may, implements neither optional dimension hook."""

    def implements(self, hook: str) -> bool:
        return hook not in DIMENSION_HOOKS and super().implements(hook)


def test_a_store_without_the_dimension_hooks_is_left_out_of_carrying_dimensions(
    make_store: Callable[[str], Counting],
) -> None:
    a = make_store("a")
    b = DeclaresNoDimensionHooks(ReferenceBackend(), "b")
    b.open()
    try:
        upsert(a, "c", 1, Document("x", vector=[1.0, 0.0]))
        drop(a, "c", 2)
        report = repair_stores([a, b])
        assert report["b"] == RepairCounts()
        assert not [hook for hook, _ in b.calls if hook in DIMENSION_HOOKS]
        assert not [hook for hook, _ in a.calls if hook in DIMENSION_HOOKS]
    finally:
        b.close()


def test_targets_need_distinct_names_and_a_positive_page_size(make_store: Callable[[str], Counting]) -> None:
    a, b = make_store("same"), make_store("same")
    with pytest.raises(ValueError, match="distinct names"):
        repair_stores([a, b])
    with pytest.raises(ValueError, match="page_size"):
        repair_stores([a], page_size=0)


def test_documents_holding_datetimes_have_a_digest_that_tells_them_from_strings_and_numbers() -> None:
    from fallthrough.repair import document_digest

    moment = datetime(2024, 1, 1, tzinfo=UTC)
    same_instant = datetime(2024, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    digest = document_digest(Document("d", metadata={"at": moment, "many": [moment]}))
    assert digest == document_digest(Document("d", metadata={"at": same_instant, "many": [same_instant]}))
    assert digest != document_digest(Document("d", metadata={"at": moment.isoformat(), "many": [moment]}))
    assert digest != document_digest(Document("d", metadata={"at": 1704067200000000, "many": [moment]}))
