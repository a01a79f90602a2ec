"""What the conformance suite does not reach.

Threads, persistence, the directory lock, URLs, and the engine's merge condition.
"""

from __future__ import annotations

import subprocess
import threading
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path

import fallthrough
import pytest
from fallthrough import Document, InvalidInput, RecordUpdate, Status
from fallthrough.errors import BackendUnavailable
from fallthrough.registry import Registry
from fallthrough.text import token_set
from qdrant_edge import EdgeConfig, EdgeShard, EdgeSparseVectorParams, Point, UpdateMode, UpdateOperation

from fallthrough_qdrant_edge import QdrantEdgeBackend
from fallthrough_qdrant_edge.records import _stored_key_is_lower
from fallthrough_qdrant_edge.schema import split_tiebreak


def url(directory: Path, options: str = "") -> str:
    return f"qdrant+edge:///{directory}{options}"


def test_connect_reaches_the_plugin_through_its_entry_point(store_dir: Path) -> None:
    with fallthrough.connect(url(store_dir / "x")) as store:
        info = store.health()[0]
        assert info.name == "qdrant"
        batch = store.create_batch(["a"])
        assert store.progress(batch.id).pending == 1
    plugin = Registry().create(url(store_dir / "y"))
    assert type(plugin).__name__ == "QdrantEdgeBackend"


def test_eight_threads_updating_one_batch_leave_exact_progress(store_dir: Path) -> None:
    keys = [f"k{index}" for index in range(400)]
    with fallthrough.connect(url(store_dir)) as store:
        batch = store.create_batch(keys)
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                # Workers overlap: each record is written by two of them, to different statuses.
                for index in range(worker * 50, worker * 50 + 100):
                    key = keys[index % len(keys)]
                    status = Status.COMPLETED if index % 3 else Status.FAILED
                    store.update_many([RecordUpdate(batch.id, key, Status.PROCESSING)])
                    store.update(batch.id, key, status, error=None if status is Status.COMPLETED else "boom")
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        progress = store.progress(batch.id)
        records = list(store.records(batch.id))
        by_status = {status: sum(record.status is status for record in records) for status in Status}
        assert progress.total == len(keys) == len(records)
        assert (progress.pending, progress.processing, progress.completed, progress.failed) == (
            by_status[Status.PENDING],
            by_status[Status.PROCESSING],
            by_status[Status.COMPLETED],
            by_status[Status.FAILED],
        )
        # Every key was finished by some worker, and a finished record never moves back.
        assert progress.done == len(keys)


TEXTS = {
    "cement": "Цемент М-500, 2.5мм ПВХ/PVC",
    "pipe": "Труба ПВХ 2.5 м",
    "street": "Straße ß STRASSE",
    "cafe": unicodedata.normalize("NFD", "Café crème"),
    "snake": "snake_case under_score",
    "digits": "٣ ५ 500",
}
QUERIES = [
    "м",
    "500",
    "М-500",
    "5мм",
    "2.5",
    "2",
    "pvc",
    "ПВХ",
    "пвх/PVC",
    "ЦЕМЕНТ",
    "strasse",
    "STRASSE ß",
    "café",
    unicodedata.normalize("NFD", "CAFÉ"),
    "snake",
    "snake_case",
    "case",
    "٣",
    "५",
    "мм",
    "труба м",
]


@pytest.mark.parametrize("query", QUERIES)
def test_text_matches_exactly_what_the_reference_tokenizer_says(store_dir: Path, query: str) -> None:
    with fallthrough.connect(url(store_dir)) as store:
        store.upsert_documents("texts", [Document(id=name, text=text) for name, text in TEXTS.items()])
        found = {hit.id for hit in store.search("texts", text=query, limit=100)}
    expected = {name for name, text in TEXTS.items() if token_set(query) <= token_set(text)}
    assert found == expected


def test_data_survives_closing_and_reopening_the_directory(store_dir: Path) -> None:
    with fallthrough.connect(url(store_dir)) as store:
        batch = store.create_batch(["a", "b"], metadata={"owner": "me"})
        store.update(batch.id, "a", "failed", error="x", result={"n": 1.5})
        store.upsert_documents("docs", [Document(id="d", text="hello", vector=(1.0, 2.0), metadata={"p": 0.1})])
    with fallthrough.connect(url(store_dir)) as store:
        assert store.get_batch(batch.id) == batch
        record = store.get_record(batch.id, "a")
        assert record is not None
        assert (record.status, record.error, record.result) == (Status.FAILED, "x", {"n": 1.5})
        assert store.retry(batch.id) == 1
        assert store.get_documents("docs", ["d"]) == [
            Document(id="d", text="hello", vector=(1.0, 2.0), metadata={"p": 0.1})
        ]
        assert [hit.id for hit in store.search("docs", vector=[1.0, 2.0], text="HELLO", filter={"p": 0.1})] == ["d"]
        # The dimension fixed before the restart still holds.
        with pytest.raises(InvalidInput, match="dimension"):
            store.upsert_documents("docs", [Document(id="e", vector=(1.0, 2.0, 3.0))])


def test_a_directory_open_elsewhere_is_unavailable_until_it_is_closed(store_dir: Path) -> None:
    first = Registry().create(url(store_dir))
    second = Registry().create(url(store_dir))
    assert isinstance(first, QdrantEdgeBackend) and isinstance(second, QdrantEdgeBackend)
    first.fallthrough_open()
    try:
        with pytest.raises(BackendUnavailable, match="already open"):
            second.fallthrough_open()
    finally:
        first.fallthrough_close()
    second.fallthrough_open()
    second.fallthrough_ping()
    second.fallthrough_close()
    # Closed: calls are unavailable, not crashes.
    with pytest.raises(BackendUnavailable):
        second.fallthrough_ping()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("qdrant+edge://", "names a directory"),
        ("qdrant+edge:///x?colour=red", "unknown qdrant\\+edge URL options"),
        ("qdrant+edge:///x?hnsw_ef=many", "must be an integer"),
        ("qdrant+edge:///x?search_threads=0", "from 1 to 64"),
        ("qdrant+edge:///x?search_threads=3000", "search_threads must be an integer from 1 to 64"),
    ],
)
def test_bad_urls_are_invalid_input(bad: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Registry().create(bad)


def test_numbers_the_engine_stores_inexactly_still_filter_exactly(store_dir: Path) -> None:
    # qdrant-edge 0.9 reads this float back as 2.161727735238492e17; bools match as integers.
    price = 2.1617277352384918e17
    documents = [
        Document(id="float", metadata={"price": price, "flag": True}),
        Document(id="int", metadata={"price": 1, "flag": 1}),
    ]
    with fallthrough.connect(url(store_dir)) as store:
        store.upsert_documents("c", documents)
        assert store.get_documents("c", ["float"])[0].metadata == {"price": price, "flag": True}
        assert [hit.id for hit in store.search("c", filter={"price": price})] == ["float"]
        assert [hit.id for hit in store.search("c", filter={"price": {"ne": price}})] == ["int"]
        assert [hit.id for hit in store.search("c", filter={"price": {"lte": price, "gt": 1}})] == ["float"]
        assert [hit.id for hit in store.search("c", filter={"flag": True})] == ["float"]
        assert [hit.id for hit in store.search("c", filter={"flag": 1})] == ["int"]
        assert [hit.id for hit in store.search("c", filter={"not": {"flag": True}})] == ["int"]


def test_vector_search_is_exact_after_the_optimizer_has_run(store_dir: Path) -> None:
    """The optimize() path runs; at 300 vectors, below the engine's indexing threshold, it builds no HNSW graph.

    The graph itself is exercised only by the benchmark (100k vectors), which reports its recall.
    """
    vectors = {f"d{index:03}": (1.0, float(index), float(index % 7)) for index in range(300)}
    with fallthrough.connect(url(store_dir, "?optimize_after=100")) as store:
        store.upsert_documents("v", [Document(id=key, vector=vector) for key, vector in vectors.items()])
        store.upsert_documents("v", [Document(id="twin", vector=vectors["d123"])])
        hits = store.search("v", vector=vectors["d123"], limit=2)
        assert [hit.id for hit in hits] == ["d123", "twin"]
        assert hits[0].score == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "stored",
    [
        (1, 2, 1_700_000_000_000_000, (1 << 55) + 1),
        (1, 2, 1_700_000_000_000_000, (1 << 55) + 300),
        (1, 2, 1_700_000_000_000_000, (1 << 55) + 299),
        (1, 2, 1_700_000_000_000_001, 0),
        (1, 1, 1_800_000_000_000_000, 1 << 55),
        (2, 0, 0, 0),
        (0, 2, 1_900_000_000_000_000, (1 << 56) - 1),
    ],
)
def test_the_engine_merge_condition_is_the_lexicographic_order(store_dir: Path, stored: tuple[int, ...]) -> None:
    """The condition alone, without the read that normally precedes it, refuses every write that is not newer.

    Tiebreaks 1 apart are below a float's resolution at 2**55: the halves keep them apart.
    """
    new = (1, 2, 1_700_000_000_000_000, (1 << 55) + 299)
    shard = EdgeShard.create(str(store_dir / "s"), EdgeConfig(sparse_vectors={"p": EdgeSparseVectorParams()}))
    try:
        attempt, rank, updated_us, tiebreak = stored
        high, low = split_tiebreak(tiebreak)
        payload = {"attempt": attempt, "rank": rank, "updated_us": updated_us, "tiebreak_high": high}
        shard.update(UpdateOperation.upsert_points([Point(1, {}, {**payload, "tiebreak_low": low, "v": "old"})]))
        condition = _stored_key_is_lower(*new)
        write = Point(1, {}, {"v": "new"})
        shard.update(UpdateOperation.upsert_points([write], condition=condition, update_mode=UpdateMode.UpdateOnly))
        written = shard.retrieve([1], True, False)[0].payload
        assert written is not None
        value = written["v"]
    finally:
        shard.close()
    assert value == ("new" if stored < new else "old")


def test_update_of_a_missing_record_applies_nothing(store_dir: Path) -> None:
    with fallthrough.connect(url(store_dir)) as store:
        batch = store.create_batch(["a", "b"])
        with pytest.raises(fallthrough.NotFound):
            store.update_many([RecordUpdate(batch.id, "a", "completed"), RecordUpdate(batch.id, "zzz", "completed")])
        with pytest.raises(fallthrough.NotFound):
            store.update_many([RecordUpdate(uuid.uuid4(), "a", "completed")])
        assert store.progress(batch.id).pending == 2
        stored = store.get_batch(batch.id)
        assert stored is not None
        assert stored.total == 2


def test_collections_past_the_open_bound_are_closed_and_opened_again_intact(store_dir: Path) -> None:
    """Each open shard maps about 50 regions; about 1,300 open ones exhausted a process's maps ("Out of memory")."""
    with fallthrough.connect(url(store_dir / "lru", "?open_collections=2")) as store:
        plugin = store.plugin_manager.get_plugin("qdrant")
        assert isinstance(plugin, QdrantEdgeBackend)
        names = [f"c{index}" for index in range(6)]
        for index, name in enumerate(names):
            store.upsert_documents(name, [Document("d", f"text {index}", vector=[1.0, float(index), 0.5])])
            assert plugin._database.open_collections <= 2
        for index, name in enumerate(names):  # each one closed by now but the last two, and read back whole
            (found,) = store.get_documents(name, ["d"])
            assert (found.text, found.vector) == (f"text {index}", (1.0, float(index), 0.5))
            assert [hit.id for hit in store.search(name, vector=[1.0, float(index), 0.5])] == ["d"]
        assert store.drop_collection("c0")
        store.delete_documents("c1", ["d"])
        assert store.collections() == names[2:]
        assert plugin._database.open_collections <= 2
    with fallthrough.connect(url(store_dir / "lru")) as reopened:
        assert reopened.collections() == names[2:] and reopened.count("c5") == 1


@pytest.fixture
def own_disk(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem of its own (tmpfs), which a test may remount read-only; unmounted after the test.

    The test skips, saying why, where mounting is not allowed (it needs CAP_SYS_ADMIN).
    """
    volume = tmp_path / "volume"
    volume.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(volume)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here (needs CAP_SYS_ADMIN): {mounted.stderr.decode().strip()}")
    try:
        yield volume
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=True)


def test_a_disk_remounted_read_only_is_unavailable_and_the_next_store_serves(own_disk: Path) -> None:
    """As after disk errors: the engine cannot map its segments, and quotes the system's error (os error 30)."""
    with fallthrough.connect(url(own_disk / "shard")) as store:
        store.create_batch(["customer-4711-cement"])
    subprocess.run(["mount", "-o", "remount,ro", str(own_disk)], check=True)

    with fallthrough.connect(url(own_disk / "shard"), "sqlite://") as store:
        created = store.create_batch(["customer-4711-sand"])
        assert store.progress(created.id).total == 1  # served by the store in memory
        (on_disk, _) = store.health()
        assert on_disk.last_error is not None and "cannot write its directory" in on_disk.last_error
        assert "os error 30" in on_disk.last_error
