"""Store.repair end to end: stores that diverged behind the Store's back reach the merge of all of them.

Each store is a real one (a SQLite file, a Qdrant local directory) and every
write is made through the public API: some through a Store over all of them,
most through a Store over one store alone (``fallthrough.connect(url)``), as
another process, a crash between two stores or a restored backup leave them.
Then ``fallthrough.connect(a, b[, c]).repair()`` runs, and every store, read
alone through its own ``connect``, must hold the merge.

The merge is worked out here, independently of :mod:`fallthrough.repair`,
from what each store held before the repair and the rules of
``docs/semantics.md``: a record's greatest state under the merge order with
the smallest ``seq`` any store gave its key, the batch header with the
smallest ``(created_at, canonical metadata JSON)``, and each document id's
newest version, deletions (tombstones) included. On top of that, the tests
spell out by hand what the writes they made must have led to, so that a merge
rule that is wrong in the same way here and in the code is still caught.
"""

from __future__ import annotations

import json
import queue
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import pytest

import fallthrough
from fallthrough import Batch, Document, Record, RepairCounts, Status, StoredDocument
from fallthrough.errors import AllBackendsFailed
from fallthrough.journal import JournalPolicy
from fallthrough.testing.compare import assert_same
from fallthrough.testing.faults import FaultInjectingBackend
from fallthrough.testing.model import ReferenceBackend

from .helpers import gate, health

EVERYTHING = 100_000
RANK = {Status.PENDING: 0, Status.PROCESSING: 1, Status.COMPLETED: 2, Status.FAILED: 2}


# -- what a store holds, read alone ------------------------------------------------


@attrs.frozen
class Contents:
    """Everything one store holds: batch headers, records by key, document entries (tombstones too) by id."""

    batches: dict[uuid.UUID, Batch]
    records: dict[uuid.UUID, dict[str, Record]]
    entries: dict[str, dict[str, StoredDocument]]

    def plain(self) -> dict[str, Any]:
        """The contents in a canonical order, for :func:`assert_same`."""
        return {
            "batches": [self.batches[batch_id] for batch_id in sorted(self.batches)],
            "records": {
                str(batch_id): [self.records[batch_id][key] for key in sorted(self.records[batch_id])]
                for batch_id in sorted(self.records)
            },
            "entries": {
                name: [self.entries[name][i] for i in sorted(self.entries[name])] for name in sorted(self.entries)
            },
        }

    def batch(self, batch_id: uuid.UUID) -> Contents:
        """Only this batch."""
        return Contents(
            {i: b for i, b in self.batches.items() if i == batch_id},
            {i: r for i, r in self.records.items() if i == batch_id},
            {},
        )

    def without_batch(self, batch_id: uuid.UUID) -> Contents:
        return Contents(
            {i: b for i, b in self.batches.items() if i != batch_id},
            {i: r for i, r in self.records.items() if i != batch_id},
            self.entries,
        )

    def collection(self, name: str) -> Contents:
        return Contents({}, {}, {n: e for n, e in self.entries.items() if n == name})

    def without_collection(self, name: str) -> Contents:
        return Contents(self.batches, self.records, {n: e for n, e in self.entries.items() if n != name})


def read_alone(url: str) -> Contents:
    """What the store at ``url`` holds, read through a Store over it alone.

    Batch headers, records and live documents are read through the public
    API; the list of batches and collections, and tombstones, which the
    public API does not show, through that Store's own backend hooks.
    """
    with fallthrough.connect(url) as store:
        assert store.get_batch(uuid.uuid4()) is None  # opens the backend
        hook = store.plugin_manager.hook
        listed: list[Batch] = list(hook.fallthrough_list_batches(after=None, limit=EVERYTHING))
        batches: dict[uuid.UUID, Batch] = {}
        records: dict[uuid.UUID, dict[str, Record]] = {}
        for header in listed:
            batch = store.get_batch(header.id)
            assert batch is not None
            batches[batch.id] = batch
            records[batch.id] = {record.key: record for record in store.records(batch.id)}
            assert batch.total == len(records[batch.id]), f"{url}: batch {batch.id} counts a total of {batch.total}"
        entries: dict[str, dict[str, StoredDocument]] = {}
        for name in hook.fallthrough_list_collections():
            scanned: list[StoredDocument] = list(
                hook.fallthrough_scan_documents(collection=name, after=None, limit=EVERYTHING)
            )
            entries[name] = {entry.id: entry for entry in scanned}
            live = [entry.document for entry in scanned if entry.document is not None]
            assert_same(store.get_documents(name, [entry.id for entry in scanned]), live, f"{url}: {name}")
        return Contents(batches, records, entries)


# -- the merge, by the rules of docs/semantics.md ------------------------------------


def _state(record: Record) -> tuple[object, ...]:
    return (record.attempt, record.status, record.updated_at, json.dumps(record.result, sort_keys=True), record.error)


def merge_records(copies: Sequence[Record]) -> Record:
    """The greatest state under (attempt, rank(status), updated_at), with the smallest seq of any copy."""

    def order(record: Record) -> tuple[int, int, Any]:
        return (record.attempt, RANK[record.status], record.updated_at)

    best = max(copies, key=order)
    # Writes of one microsecond would need the tiebreak; the writes here never tie but on the same write.
    assert all(_state(copy) == _state(best) for copy in copies if order(copy) == order(best)), copies
    return attrs.evolve(best, seq=min(copy.seq for copy in copies))


def header_order(batch: Batch) -> tuple[Any, str]:
    return (batch.created_at, json.dumps(batch.metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def merge_entries(copies: Sequence[StoredDocument]) -> StoredDocument:
    """The newest version; at one version a live document beats a tombstone."""
    best = max(copies, key=lambda entry: (entry.version, entry.document is not None))
    assert all(copy == best for copy in copies if copy.version == best.version), copies
    return best


def merge(*stores: Contents) -> Contents:
    batches: dict[uuid.UUID, Batch] = {}
    records: dict[uuid.UUID, dict[str, Record]] = {}
    for batch_id in {batch_id for store in stores for batch_id in store.batches}:
        holding = [store for store in stores if batch_id in store.batches]
        keys = {key for store in holding for key in store.records[batch_id]}
        records[batch_id] = {
            key: merge_records([store.records[batch_id][key] for store in holding if key in store.records[batch_id]])
            for key in keys
        }
        header = min((store.batches[batch_id] for store in holding), key=header_order)
        batches[batch_id] = attrs.evolve(header, total=len(keys))
    entries: dict[str, dict[str, StoredDocument]] = {}
    for name in {name for store in stores for name in store.entries}:
        holding_entries = [store.entries[name] for store in stores if name in store.entries]
        ids = {i for held in holding_entries for i in held}
        entries[name] = {i: merge_entries([held[i] for held in holding_entries if i in held]) for i in ids}
    return Contents(batches, records, entries)


def expected_sends(before: Contents, merged: Contents) -> RepairCounts:
    """What a repair must send a store that held ``before``: each header, record and entry that differs."""
    batches = sum(
        1
        for batch_id, header in merged.batches.items()
        if batch_id not in before.batches or header_order(before.batches[batch_id]) != header_order(header)
    )
    records = sum(
        1
        for batch_id, wanted in merged.records.items()
        for key, record in wanted.items()
        if before.records.get(batch_id, {}).get(key) != record
    )
    changed = [
        entry
        for name, wanted_entries in merged.entries.items()
        for i, entry in wanted_entries.items()
        if before.entries.get(name, {}).get(i) != entry
    ]
    live = sum(1 for entry in changed if entry.document is not None)
    return RepairCounts(batches=batches, records=records, documents=live, tombstones=len(changed) - live)


def assert_holds(url: str, expected: Contents, where: str) -> Contents:
    found = read_alone(url)
    assert_same(found.plain(), expected.plain(), where)
    return found


# -- stores, and how they diverge ----------------------------------------------------


def store_url(kind: str, directory: Path, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{directory}/{name}.db"
    if kind == "qdrant":
        return f"qdrant+local:///{directory}/{name}"
    raise ValueError(kind)


def sqlite_files(url: str) -> list[Path]:
    """The files of a SQLite store: the database and, while it is open or after a crash, its WAL."""
    base = Path(url.removeprefix("sqlite:///"))
    return [base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm")]


def back_up(url: str, backup: Path) -> None:
    backup.mkdir()
    for path in sqlite_files(url):
        if path.exists():
            shutil.copy2(path, backup / path.name)


def restore(url: str, backup: Path) -> None:
    for path in sqlite_files(url):
        path.unlink(missing_ok=True)
        if (backup / path.name).exists():
            shutil.copy2(backup / path.name, path)


class Diverged:
    """Stores written together, then one restored from an old backup, then each written alone.

    ``urls[0]`` is a SQLite file (the one restored from a backup); with a
    third store, it was written together with the others and then alone.
    """

    def __init__(self, urls: Sequence[str], workdir: Path) -> None:
        self.urls = list(urls)
        a, b = self.urls[0], self.urls[1]
        self.twice = uuid.uuid4()
        self.seqs: dict[tuple[str, str], int] = {}

        # Written together: every store gets these.
        with fallthrough.connect(*self.urls) as together:
            self.main = together.create_batch([f"k{i}" for i in range(6)], metadata={"phase": 1})
            together.update(self.main.id, "k0", "processing")
            together.update(self.main.id, "k1", "processing")
            together.upsert_documents(
                "docs",
                [
                    Document("d1", "first", metadata={"n": 1}),
                    Document("d2", "second", vector=[1.0, 0.0]),
                    Document("d3", "third"),
                    Document("d4", "fourth"),
                ],
            )
        back_up(a, workdir / "backup")
        with fallthrough.connect(*self.urls) as together:
            together.update(self.main.id, "k0", "completed", result={"rows": 3})
            together.update(self.main.id, "k1", "failed", error="timeout")
            self.late = together.create_batch(["l1", "l2"], metadata={"phase": 2})
            together.delete_documents("docs", ["d1"])
            together.upsert_documents("docs", [Document("d2", "second, edited", vector=[0.0, 1.0])])
        # The first store comes back from the backup: it lost everything just written.
        restore(a, workdir / "backup")

        # Then each store is written alone, interleaved in time.
        with fallthrough.connect(a) as alone:
            alone.update(self.main.id, "k2", "completed", result=[1, 2])
            alone.update(self.main.id, "k3", "processing")
            self.only_a = alone.create_batch(["x"], metadata={"only": "a"})
            alone.update(self.only_a.id, "x", "failed", error="Цемент М-500")
            self.twice_a = alone.create_batch(["t1", "t2"], batch_id=self.twice, metadata={"side": "a"})
            alone.update(self.twice, "t1", "completed", result=True)
            alone.upsert_documents("docs", [Document("d3", "third, from a")])
            assert alone.delete_documents("docs", ["ghost"]) == 0  # a tombstone for an id no store ever had
            self._note_seqs(alone, "a", self.twice, ["t1", "t2"])
        with fallthrough.connect(b) as alone:
            alone.update(self.main.id, "k2", "processing")  # later than a's completed, but a lower rank
            alone.update(self.main.id, "k3", "completed", result="b")
            assert alone.retry(self.main.id) == 1  # k1 was failed here: attempt 1 beats a's attempt 0
            assert alone.add_records(self.main.id, ["n1", "n2"]) == 2
            self.twice_b = alone.create_batch(["t2", "t3"], batch_id=self.twice, metadata={"side": "b"})
            alone.delete_documents("docs", ["d3", "d4"])  # d3: newer than a's upsert
            alone.delete_documents("ghosts", ["phantom"])  # a collection holding only a tombstone
            alone.upsert_documents("other", [Document("o1", "only on b", metadata={"tags": ["x", "y"]})])
            self._note_seqs(alone, "b", self.main.id, ["n1", "n2"])
            self._note_seqs(alone, "b", self.twice, ["t2", "t3"])
        with fallthrough.connect(a) as alone:
            assert alone.add_records(self.main.id, ["n2", "n3"]) == 2  # n2 again, with a larger seq
            alone.upsert_documents("docs", [Document("d4", "fourth, back")])  # newer than b's delete
            self._note_seqs(alone, "a", self.main.id, ["n2", "n3"])
        for url in self.urls[2:]:
            with fallthrough.connect(url) as alone:
                alone.update(self.main.id, "k4", "processing")
                alone.upsert_documents("docs", [Document("d5", "from c", vector=[0.6, 0.8])])
        self.before = {url: read_alone(url) for url in self.urls}
        self.merged = merge(*self.before.values())

    def _note_seqs(self, store: fallthrough.Store, side: str, batch_id: uuid.UUID, keys: list[str]) -> None:
        for key in keys:
            record = store.get_record(batch_id, key)
            assert record is not None
            self.seqs[(side, key)] = record.seq

    def check_by_hand(self, found: Contents) -> None:
        """What the writes above must have led to, spelled out without the merge function."""
        main = self.main.id
        header = found.batches[main]
        assert (header.metadata, header.created_at, header.total) == ({"phase": 1}, self.main.created_at, 9)
        records = found.records[main]
        k0, k1, k2, k3 = (records[f"k{i}"] for i in range(4))
        assert (k0.status, k0.attempt, k0.result) == (Status.COMPLETED, 0, {"rows": 3}), "lost with the backup"
        assert (k1.status, k1.attempt, k1.error) == (Status.PENDING, 1, None), "the retry on b"
        assert (k2.status, k2.result) == (Status.COMPLETED, [1, 2]), "a's completed outranks b's later processing"
        assert (k3.status, k3.result) == (Status.COMPLETED, "b")
        assert records["n1"].seq == self.seqs[("b", "n1")]
        assert records["n2"].seq == self.seqs[("b", "n2")] < self.seqs[("a", "n2")], "the smaller seq"
        assert records["n3"].seq == self.seqs[("a", "n3")]
        if len(self.urls) > 2:
            assert records["k4"].status is Status.PROCESSING
        assert [r.key for r in sorted(records.values(), key=lambda r: (r.seq, r.key))] == [
            *(f"k{i}" for i in range(6)),
            "n1",
            "n2",
            "n3",
        ]
        late = found.batches[self.late.id]
        assert (late.metadata, late.total) == ({"phase": 2}, 2)
        assert {r.status for r in found.records[self.late.id].values()} == {Status.PENDING}
        (x,) = found.records[self.only_a.id].values()
        assert (x.status, x.error) == (Status.FAILED, "Цемент М-500")
        twice = found.batches[self.twice]
        assert self.twice_a.created_at < self.twice_b.created_at
        assert (twice.metadata, twice.created_at, twice.total) == ({"side": "a"}, self.twice_a.created_at, 3)
        t = found.records[self.twice]
        assert (t["t1"].seq, t["t2"].seq, t["t3"].seq) == (
            self.seqs[("a", "t1")],
            self.seqs[("a", "t2")],
            self.seqs[("b", "t3")],
        )
        assert t["t1"].status is Status.COMPLETED
        docs = found.entries["docs"]
        live = {i: entry.document for i, entry in docs.items() if entry.document is not None}
        expected_live = {
            "d2": Document("d2", "second, edited", vector=[0.0, 1.0]),
            "d4": Document("d4", "fourth, back"),
        }
        if len(self.urls) > 2:
            expected_live["d5"] = Document("d5", "from c", vector=[0.6, 0.8])
        assert_same(live, expected_live, "live documents")
        assert sorted(i for i, entry in docs.items() if entry.document is None) == ["d1", "d3", "ghost"]
        assert_same(list(found.entries["ghosts"].values()), [self.before[self.urls[1]].entries["ghosts"]["phantom"]])
        assert [entry.document for entry in found.entries["other"].values()] == [
            Document("o1", "only on b", metadata={"tags": ["x", "y"]})
        ]


KINDS = {
    "sqlite+sqlite": ("sqlite", "sqlite"),
    "sqlite+qdrant": ("sqlite", "qdrant"),
    "sqlite+qdrant+sqlite": ("sqlite", "qdrant", "sqlite"),
}


@pytest.fixture(params=sorted(KINDS))
def diverged(request: pytest.FixtureRequest, tmp_path: Path) -> Diverged:
    kinds = KINDS[request.param]
    urls = [store_url(kind, tmp_path, "abc"[n]) for n, kind in enumerate(kinds)]
    return Diverged(urls, tmp_path)


def named(urls: Sequence[str]) -> dict[str, Any]:
    """The stores by the names a Store over them gives them in these tests: a, b, c."""
    return {"abc"[n]: url for n, url in enumerate(urls)}


# -- the tests -----------------------------------------------------------------------


def test_repair_brings_every_store_to_the_merge_and_a_second_repair_sends_nothing(diverged: Diverged) -> None:
    for url, before in diverged.before.items():
        assert expected_sends(before, diverged.merged).total > 0, f"{url} already held the merge: nothing to test"
    with fallthrough.connect(**named(diverged.urls)) as store:
        report = store.repair()
        assert_same(
            report.sent,
            {name: expected_sends(diverged.before[url], diverged.merged) for name, url in named(diverged.urls).items()},
            "what each store was sent",
        )
        again = store.repair()
        assert again.sent_nothing, again
        assert sorted(again.sent) == sorted(named(diverged.urls))
    for url in diverged.urls:
        found = assert_holds(url, diverged.merged, f"{url} after the repair")
        diverged.check_by_hand(found)
    with fallthrough.connect(*reversed(diverged.urls)) as store:
        assert store.repair(page_size=1).sent_nothing, "the stores agree, in whatever order they are listed"


def test_a_repair_by_batch_id_repairs_that_batch_only(diverged: Diverged) -> None:
    with fallthrough.connect(**named(diverged.urls)) as store:
        report = store.repair(diverged.twice)
        assert_same(
            report.sent,
            {
                name: expected_sends(diverged.before[url].batch(diverged.twice), diverged.merged.batch(diverged.twice))
                for name, url in named(diverged.urls).items()
            },
        )
        assert store.repair(str(diverged.twice)).sent_nothing
    for url in diverged.urls:
        found = read_alone(url)
        assert_same(found.batch(diverged.twice).plain(), diverged.merged.batch(diverged.twice).plain(), url)
        untouched = diverged.before[url].without_batch(diverged.twice)
        assert_same(found.without_batch(diverged.twice).plain(), untouched.plain(), f"{url}: outside the batch")
    with fallthrough.connect(*diverged.urls) as store:
        assert not store.repair().sent_nothing, "the rest was left diverged"


def test_a_repair_by_collection_repairs_that_collection_only(diverged: Diverged) -> None:
    with fallthrough.connect(**named(diverged.urls)) as store:
        report = store.repair(collection="docs")
        assert_same(
            report.sent,
            {
                name: expected_sends(diverged.before[url].collection("docs"), diverged.merged.collection("docs"))
                for name, url in named(diverged.urls).items()
            },
        )
        assert store.repair(collection="docs").sent_nothing
        assert store.repair(collection="never-written").sent_nothing
    for url in diverged.urls:
        found = read_alone(url)
        assert_same(found.collection("docs").plain(), diverged.merged.collection("docs").plain(), url)
        untouched = diverged.before[url].without_collection("docs")
        assert_same(found.without_collection("docs").plain(), untouched.plain(), f"{url}: outside the collection")


# -- repair while a worker writes ----------------------------------------------------


def backend_of(store: fallthrough.Store, name: str) -> Any:
    """The backend plugin ``name`` of ``store``, to read what that store alone holds through its hooks."""
    plugin = store.plugin_manager.get_plugin(name)
    assert plugin is not None
    return plugin


class Interleaver:
    """A hook wrapper on what a repair sends: notes it, and makes a worker's write land in the middle.

    The first time the repair thread is about to send records of ``batch_id``
    (among ``keys``), live documents, or tombstones, it hands their keys or
    ids to the worker and waits until the worker has written newer states of
    them through the Store. The repair then sends what it read before those
    writes, which every store must ignore as older: right after that send,
    :attr:`after` checks every store still holds the worker's writes.
    """

    def __init__(self, repairer: threading.Thread, batch_id: uuid.UUID, keys: set[str]) -> None:
        self.repairer = repairer
        self.batch_id = batch_id
        self.keys = keys
        self.sent: list[tuple[str, str, str]] = []
        self.requests: queue.Queue[tuple[str, str, list[str], threading.Event]] = queue.Queue()
        self.armed = {"record", "document", "tombstone"}
        self.after: Callable[[str, list[str]], None] = lambda kind, names: None

    def _note(self, kind: str, scope: str, names: list[str], interleave: list[str]) -> bool:
        """Note what is sent; True when the worker wrote ``interleave`` first."""
        if threading.current_thread() is not self.repairer:
            return False
        self.sent.extend((kind, scope, name) for name in names)
        if kind in self.armed and interleave:
            self.armed.discard(kind)
            done = threading.Event()
            self.requests.put((kind, scope, interleave, done))
            assert done.wait(60), "the worker did not write in time"
            return True
        return False

    @fallthrough.hookimpl(wrapper=True)
    def fallthrough_merge_records(self, batch_id: uuid.UUID, records: Sequence[Record]) -> Iterator[None]:
        keys = [record.key for record in records]
        chosen = [key for key in keys if key in self.keys] if batch_id == self.batch_id else []
        interleaved = self._note("record", str(batch_id), keys, chosen)
        result = yield
        if interleaved:
            self.after("record", chosen)
        return result

    @fallthrough.hookimpl(wrapper=True)
    def fallthrough_repair_batch(self, batch_id: uuid.UUID) -> Iterator[None]:
        self._note("header", str(batch_id), [""], [])
        return (yield)

    @fallthrough.hookimpl(wrapper=True)
    def fallthrough_upsert_documents(self, collection: str, documents: Sequence[Document]) -> Iterator[None]:
        ids = [document.id for document in documents]
        interleaved = self._note("document", collection, ids, ids if collection == "docs" else [])
        result = yield
        if interleaved:
            self.after("document", ids)
        return result

    @fallthrough.hookimpl(wrapper=True)
    def fallthrough_delete_documents(self, collection: str, ids: Sequence[str]) -> Iterator[None]:
        interleaved = self._note("tombstone", collection, list(ids), list(ids) if collection == "docs" else [])
        result = yield
        if interleaved:
            self.after("tombstone", list(ids))
        return result


@pytest.mark.parametrize("kinds", [("sqlite", "sqlite"), ("sqlite", "qdrant")], ids="+".join)
def test_a_repair_while_a_worker_writes_through_the_store_still_converges(
    kinds: tuple[str, str], tmp_path: Path
) -> None:
    diverged = Diverged([store_url(kind, tmp_path, name) for kind, name in zip(kinds, "ab", strict=True)], tmp_path)
    main = diverged.main.id
    # Keys on attempt 0 on every store (k1 was retried on b alone: a worker's update of attempt 0 would lose).
    interleaver = Interleaver(threading.current_thread(), main, {"k0", "k2", "k3"})
    with fallthrough.connect(*diverged.urls, plugins=[interleaver]) as store:
        busy = store.create_batch([f"w{i}" for i in range(8)])
        free = sorted({(busy.id, f"w{i}") for i in range(8)} | {(main, "k4"), (main, "k5")})
        touched: set[tuple[str, str]] = {(str(batch_id), key) for batch_id, key in free}
        acknowledged: dict[tuple[uuid.UUID, str], object] = {}
        documents: dict[tuple[str, str], str] = {}
        writes = threading.Semaphore(0)
        stop = threading.Event()
        failures: list[BaseException] = []

        def interleave(n: int) -> None:
            while not interleaver.requests.empty():
                kind, _, names, done = interleaver.requests.get()
                for name in names:
                    if kind == "record":
                        assert store.update(main, name, "completed", result=f"in between, {n}")
                        acknowledged[(main, name)] = f"in between, {n}"
                        touched.add((str(main), name))
                    else:
                        store.upsert_documents("docs", [Document(name, f"in between, {n}")])
                        documents[("docs", name)] = f"in between, {n}"
                        touched.add(("docs", name))
                done.set()

        def still_there(kind: str, names: list[str]) -> None:
            """Every store, read through its backend's hooks, still holds what the worker wrote in between."""
            for name in store.backend_names:
                backend = backend_of(store, name)
                if kind == "record":
                    held = {key: backend.fallthrough_get_record(batch_id=main, key=key).result for key in names}
                    assert held == {key: acknowledged[(main, key)] for key in names}, f"{name} went back"
                else:
                    found = backend.fallthrough_get_documents(collection="docs", ids=names)
                    assert {d.id: d.text for d in found} == {i: documents[("docs", i)] for i in names}, name

        interleaver.after = still_there

        def worker() -> None:
            n = 0
            try:
                while not stop.is_set() or n < 40:
                    interleave(n)
                    batch_id, key = free[n % len(free)]
                    assert store.update(batch_id, key, "completed", result=n)
                    acknowledged[(batch_id, key)] = n
                    store.upsert_documents("busy", [Document(f"b{n % 5}", f"write {n}")])
                    documents[("busy", f"b{n % 5}")] = f"write {n}"
                    n += 1
                    writes.release()
            except BaseException as error:
                failures.append(error)
                writes.release()

        thread = threading.Thread(target=worker)
        thread.start()
        for _ in range(10):
            writes.acquire()  # the worker is under way before the repair starts
        first = store.repair(page_size=2)
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive() and not failures, failures
        assert not first.sent_nothing
        assert interleaver.armed == set(), f"the repair never sent {interleaver.armed}: nothing was interleaved"
        # No store went back on an acknowledged write: each one read alone, through its backend's hooks.
        for name in store.backend_names:
            backend = backend_of(store, name)
            for (batch_id, key), value in acknowledged.items():
                record = backend.fallthrough_get_record(batch_id=batch_id, key=key)
                assert (record.status, record.result) == (Status.COMPLETED, value), f"{name} went back on {key}"
            for (collection, i), text in documents.items():
                found_documents = backend.fallthrough_get_documents(collection=collection, ids=[i])
                assert [d.text for d in found_documents] == [text], f"{name} went back on {collection}/{i}"

        interleaver.sent.clear()
        store.repair(page_size=2)
        untouched = [sent for sent in interleaver.sent if (sent[1], sent[2]) not in touched and sent[1] != "busy"]
        assert untouched == [], "a second repair resent what the worker never touched"
        assert store.repair().sent_nothing

    after = {url: read_alone(url) for url in diverged.urls}
    for url in diverged.urls[1:]:
        assert_same(after[url].plain(), after[diverged.urls[0]].plain(), f"{url} vs {diverged.urls[0]}")
    found = after[diverged.urls[0]]
    for (batch_id, key), value in acknowledged.items():
        record = found.records[batch_id][key]
        assert (record.status, record.result) == (Status.COMPLETED, value), (batch_id, key)
    for (collection, i), text in documents.items():
        entry = found.entries[collection][i]
        assert entry.document is not None and entry.document.text == text, (collection, i)
    # Everything else is the merge of what the stores held before.
    expected = diverged.merged.plain()
    actual = found.plain()
    del actual["records"][str(busy.id)], actual["entries"]["busy"]
    actual["batches"] = [batch for batch in actual["batches"] if batch.id != busy.id]
    for plain in (expected, actual):
        plain["records"][str(main)] = [r for r in plain["records"][str(main)] if (str(main), r.key) not in touched]
        plain["entries"]["docs"] = [e for e in plain["entries"]["docs"] if ("docs", e.id) not in touched]
    assert_same(actual, expected, "what the worker did not touch is the merge")


# -- the repair mark -----------------------------------------------------------------


def flaky(url: str) -> str:
    return "flaky://?inner=" + quote(url, safe="")


def mark_for_repair(store: fallthrough.Store, name: str, batch_id: uuid.UUID) -> None:
    """Take ``name`` down for two writes (one more than the journal keeps): it is marked as needing a repair."""
    gate(store, name).outage = True
    store.update(batch_id, "k0", "processing")
    store.update(batch_id, "k0", "completed", result="while it was down")
    store.upsert_documents("docs", [Document("d", "while it was down")])
    gate(store, name).outage = False
    assert store.drain(timeout=10)
    entry = health(store, name)
    assert entry.needs_repair and not entry.serves_reads and entry.pending_hints == 0


def test_a_backend_marked_for_repair_serves_reads_again_after_a_full_repair(
    registry: fallthrough.Registry, tmp_path: Path
) -> None:
    urls = {name: f"sqlite:///{tmp_path}/{name}.db" for name in "ab"}
    store = fallthrough.connect(
        a=flaky(urls["a"]),
        b=flaky(urls["b"]),
        registry=registry,
        breaker=fallthrough.BreakerPolicy(cooldown=0.01),
        journal_policy=JournalPolicy(max_hints=1),
    )
    with store:
        batch = store.create_batch(["k0", "k1"])
        other = store.create_batch(["z"])
        mark_for_repair(store, "b", batch.id)
        store.update(batch.id, "k1", "failed", error="after it came back")  # reaches b: writes still do
        gate(store, "a").outage = True
        with pytest.raises(AllBackendsFailed, match="needs a repair"):
            store.get_record(batch.id, "k0")
        gate(store, "a").outage = False

        store.repair(batch.id)
        store.repair(collection="docs")
        assert health(store, "b").needs_repair, "a repair of one batch or collection does not clear the mark"
        store.repair(other.id)
        report = store.repair()
        assert report.sent_nothing, "the scoped repairs had mended everything already"
        entry = health(store, "b")
        assert not entry.needs_repair and entry.serves_reads

        gate(store, "a").outage = True  # now b must answer, with what was acknowledged
        k0 = store.get_record(batch.id, "k0")
        assert k0 is not None and (k0.status, k0.result) == (Status.COMPLETED, "while it was down")
        assert store.get_documents("docs", ["d"]) == [Document("d", "while it was down")]
        gate(store, "a").outage = False
    assert_same(read_alone(urls["b"]).plain(), read_alone(urls["a"]).plain(), "b read alone")


def three_gated_stores(registry: fallthrough.Registry, tmp_path: Path) -> tuple[dict[str, str], fallthrough.Store]:
    """SQLite files a, b and c behind gates, in one Store whose journal keeps one hint (past it: a repair mark)."""
    urls = {name: f"sqlite:///{tmp_path}/{name}.db" for name in "abc"}
    store = fallthrough.connect(
        **{name: flaky(url) for name, url in urls.items()},
        registry=registry,
        breaker=fallthrough.BreakerPolicy(cooldown=0.01),
        journal_policy=JournalPolicy(max_hints=1),
    )
    return urls, store


def test_an_unreachable_backend_is_left_out_of_a_repair_and_keeps_its_mark(
    registry: fallthrough.Registry, tmp_path: Path
) -> None:
    urls, store = three_gated_stores(registry, tmp_path)
    with store:
        batch = store.create_batch(["k0", "k1"])
        mark_for_repair(store, "c", batch.id)
        # a and b diverge behind the Store's back.
        with fallthrough.connect(urls["a"]) as alone:
            alone.update(batch.id, "k1", "completed", result="a alone")
        with fallthrough.connect(urls["b"]) as alone:
            alone.delete_documents("docs", ["d"])
        before = {name: read_alone(url) for name, url in urls.items()}
        merged_ab = merge(before["a"], before["b"])

        gate(store, "c").outage = True
        report = store.repair()
        assert sorted(report.sent) == ["a", "b"], report
        assert report["a"].tombstones == 1 and report["b"].records == 1
        entry = health(store, "c")
        assert entry.needs_repair and not entry.serves_reads, "left out, c keeps its mark"
        gate(store, "c").outage = False
        assert_same(read_alone(urls["c"]).plain(), before["c"].plain(), "c was not touched")
        for name in "ab":
            assert_same(read_alone(urls[name]).plain(), merged_ab.plain(), name)

        report = store.repair()
        assert report["c"] == expected_sends(before["c"], merge(merged_ab, before["c"])) != RepairCounts()
        assert report["a"] == report["b"] == RepairCounts()
        entry = health(store, "c")
        assert not entry.needs_repair and entry.serves_reads
    for name in "abc":
        assert_same(read_alone(urls[name]).plain(), merge(merged_ab, before["c"]).plain(), name)


def test_stores_whose_missed_writes_only_an_unreachable_store_holds_keep_their_marks(
    registry: fallthrough.Registry, tmp_path: Path
) -> None:
    """a and b both missed writes that only c took; with c down, a repair of a and b must not clear their marks."""
    _, store = three_gated_stores(registry, tmp_path)
    with store:
        batch = store.create_batch(["k0", "k1"])
        gate(store, "a").outage = gate(store, "b").outage = True
        store.update(batch.id, "k0", "processing")
        store.update(batch.id, "k0", "completed", result="only c took it")
        gate(store, "a").outage = gate(store, "b").outage = False
        assert store.drain(timeout=10)
        assert health(store, "a").needs_repair and health(store, "b").needs_repair

        gate(store, "c").outage = True
        report = store.repair()
        assert sorted(report.sent) == ["a", "b"] and report.sent_nothing
        for name in "ab":
            entry = health(store, name)
            assert entry.needs_repair and not entry.serves_reads, f"{name} would serve a pending k0"
        with pytest.raises(AllBackendsFailed):
            store.get_record(batch.id, "k0")

        gate(store, "c").outage = False
        report = store.repair()
        assert report["a"].records == report["b"].records == 1
        assert all(not entry.needs_repair and entry.serves_reads for entry in store.health())
        k0 = store.get_record(batch.id, "k0")
        assert k0 is not None and (k0.status, k0.result) == (Status.COMPLETED, "only c took it")


@pytest.mark.parametrize("kinds", [("sqlite", "sqlite"), ("qdrant", "sqlite"), ("sqlite", "qdrant")], ids="+".join)
def test_a_store_that_joins_after_a_drop_learns_the_dimension_and_refuses_other_vectors(
    kinds: tuple[str, str], tmp_path: Path
) -> None:
    """The drop left no document to carry the dimension: the repair sends it alone, and the stores agree again.

    Without it, ``joined`` (first in priority) would take an upsert of another dimension that ``old`` refuses.
    """
    old, joined = store_url(kinds[0], tmp_path, "old"), store_url(kinds[1], tmp_path, "joined")
    with fallthrough.connect(old) as store:
        store.upsert_documents("c", [Document("x", "three", vector=[1.0, 0.0, 0.0])])
        store.drop_collection("c")
    with fallthrough.connect(**named([joined, old])) as store:
        report = store.repair()
        assert report.sent["a"].dimensions == 1 and report.sent["b"] == RepairCounts()
        with pytest.raises(fallthrough.InvalidInput, match="dimension"):
            store.upsert_documents("c", [Document("y", "two", vector=[1.0, 0.0])])
        store.upsert_documents("c", [Document("z", "three again", vector=[0.0, 1.0, 0.0])])
        assert store.repair().sent_nothing
    for url in (old, joined):
        found = read_alone(url).entries["c"]
        assert "y" not in found, url
        assert found["z"].document == Document("z", "three again", vector=[0.0, 1.0, 0.0]), url


class WithoutDimensionHooks(ReferenceBackend):
    """A third-party backend written before the dimension hooks: every required hook, and not those two."""

    fallthrough_collection_dimension = None  # type: ignore[assignment]
    fallthrough_fix_collection_dimension = None  # type: ignore[assignment]


class GatedWithoutDimensionHooks(FaultInjectingBackend):
    """The fault gate in front of that backend: it lacks the two hooks too."""

    def __init__(self, url: object = None) -> None:
        super().__init__(url, inner=WithoutDimensionHooks())  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["WithoutDimensionHooks", "GatedWithoutDimensionHooks"])
def test_a_backend_without_the_dimension_hooks_is_left_out_of_carrying_them(
    registry: fallthrough.Registry, tmp_path: Path, backend: str
) -> None:
    registry.register("older", f"{__name__}:{backend}")
    url = store_url("sqlite", tmp_path, "a")
    with fallthrough.connect(url) as store:
        store.upsert_documents("c", [Document("x", "three", vector=[1.0, 0.0, 0.0])])
        store.drop_collection("c")
    with fallthrough.Store([("a", url), ("older", "older://")], registry=registry) as store:
        report = store.repair()
        assert report.sent["older"] == RepairCounts()
        assert store.repair().sent_nothing
