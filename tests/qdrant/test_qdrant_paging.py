"""Listing a batch costs the page, wherever the page is (issue 12 item 5), on local mode and on the server path.

Local mode evaluates every ``scroll``, ``count`` and ``facet`` over every
point of the collection; only ``retrieve`` visits just the points it names.
So on local mode a page after the first must make no call but ``retrieve``
(and the batch check), naming as many points as the page holds, at the
start, the middle and the end of the batch alike. The server path (what a
remote client runs; here on a real local client with the local order
switched off) must start each page's ``order_by`` at the cursor's seq and
fetch one page and two points, not the batch so far. A claim on local mode
reads the same way, from past the records finished before it. No timings:
the counts are the measure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, cast

import attrs
import pytest
from qdrant_client import QdrantClient, models

from fallthrough.testing.drivers import HookDriver
from fallthrough.testing.suite import BackendConformance
from fallthrough.testing.twin import Twin, at
from fallthrough.types import Capabilities, Record, RecordUpdate, Status
from fallthrough_qdrant import QdrantBackend
from tests.qdrant.hooks import claim, update
from tests.qdrant.recording import RecordingClient, server_paths

SIZE = 3_000
PAGE = 100
# Calls that make local mode visit every point of the collection.
WHOLE_COLLECTION = {"scroll", "count", "facet", "query_points", "query_batch_points"}


def _recorded(server: bool = False) -> tuple[HookDriver, RecordingClient]:
    client = RecordingClient(QdrantClient(location=":memory:"))
    backend = QdrantBackend("qdrant+memory://?prefix=pg_", client_factory=lambda: cast(QdrantClient, client))
    driver = HookDriver(server_paths(backend) if server else backend, "qdrant")
    driver.open()
    return driver, client


def _pages(driver: HookDriver, batch_id: uuid.UUID, status: Status | None = None) -> Iterator[list[Record]]:
    after = None
    while True:
        page: list[Record] = driver.call(
            "fallthrough_list_records", batch_id=batch_id, status=status, after=after, limit=PAGE
        )
        yield page
        if len(page) < PAGE:
            return
        after = (page[-1].seq, page[-1].key)


def _keys(count: int) -> list[str]:
    return [f"sku-{i:05d}" for i in range(count)]


def _points_retrieved(client: RecordingClient) -> int:
    return sum(len(args[1]) for args, _ in client.named("retrieve") if args[0] == "pg_processing_results")


def test_local_pages_after_the_first_visit_only_their_own_points() -> None:
    driver, client = _recorded()
    batch_id = uuid.uuid4()
    driver.call(
        "fallthrough_create_batch", batch_id=batch_id, keys=_keys(SIZE), first_seq=1, metadata={}, created_at=at(0)
    )
    client.calls.clear()
    pages = _pages(driver, batch_id)
    first = next(pages)
    # The first listing builds the batch's order: one pass over the collection.
    assert len([call for call in client.calls if call[0] in WHOLE_COLLECTION]) == 1
    seen = [record.key for record in first]
    visited = []
    while True:
        client.calls.clear()
        page = next(pages, None)
        if page is None:
            break
        seen += [record.key for record in page]
        assert not [name for name, _, _ in client.calls if name in WHOLE_COLLECTION]
        visited.append(_points_retrieved(client))
    assert seen == _keys(SIZE)
    # Every full page, first, middle or last, visits exactly its own points.
    assert visited[:-1] == [PAGE] * (SIZE // PAGE - 1)
    driver.close()


def test_a_status_page_visits_the_records_from_its_cursor_only() -> None:
    driver, client = _recorded()
    batch_id = uuid.uuid4()
    keys = _keys(SIZE)
    driver.call("fallthrough_create_batch", batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=at(0))
    # Every tenth record failed.
    failed = [RecordUpdate(batch_id, key, Status.FAILED, error="x") for key in keys[::10]]
    driver.call("fallthrough_update_records", updates=failed, updated_at=at(1))
    client.calls.clear()
    listed: list[str] = []
    visited = []
    for page in _pages(driver, batch_id, Status.FAILED):
        listed += [record.key for record in page]
        visited.append(_points_retrieved(client))
        client.calls.clear()
    assert listed == keys[::10]
    # A page of 100 failed records lies within 1,000 records: it reads at most twice that, never the batch.
    assert max(visited) <= 2 * 10 * PAGE
    assert sum(visited) <= 2 * SIZE
    driver.close()


def test_the_local_order_follows_writes_that_add_move_or_remove_records() -> None:
    driver, _ = _recorded()
    batch_id = uuid.uuid4()
    driver.call(
        "fallthrough_create_batch", batch_id=batch_id, keys=["b", "d"], first_seq=10, metadata={}, created_at=at(0)
    )
    assert [r.key for page in _pages(driver, batch_id) for r in page] == ["b", "d"]
    driver.call("fallthrough_add_records", batch_id=batch_id, keys=["a", "c"], first_seq=11, created_at=at(1))
    listed = [(r.seq, r.key) for page in _pages(driver, batch_id) for r in page]
    assert listed == [(10, "b"), (11, "a"), (11, "d"), (12, "c")]
    # A merge carrying a lower seq moves a record to the front.
    moved = attrs.evolve(driver.call("fallthrough_get_record", batch_id=batch_id, key="c"), seq=1)
    assert driver.call("fallthrough_merge_records", batch_id=batch_id, records=[moved]) == 1
    assert [r.key for page in _pages(driver, batch_id) for r in page] == ["c", "b", "a", "d"]
    driver.call("fallthrough_delete_batch", batch_id=batch_id)
    driver.call("fallthrough_create_batch", batch_id=batch_id, keys=["x"], first_seq=20, metadata={}, created_at=at(2))
    assert [r.key for page in _pages(driver, batch_id) for r in page] == ["x"]
    driver.close()


def test_server_pages_start_at_the_cursor_and_fetch_one_page() -> None:
    driver, client = _recorded(server=True)
    batch_id = uuid.uuid4()
    driver.call(
        "fallthrough_create_batch", batch_id=batch_id, keys=_keys(SIZE), first_seq=1, metadata={}, created_at=at(0)
    )
    client.calls.clear()
    seen: list[str] = []
    for page in _pages(driver, batch_id):
        scrolls = client.named("scroll")
        assert len(scrolls) == 1, "one fetch a page when seqs are distinct"
        (_, kwargs) = scrolls[0]
        expected_start = len(seen) or None  # the cursor's seq: keys[i] has seq i + 1
        assert kwargs["order_by"] == models.OrderBy(key="seq", start_from=expected_start)
        assert kwargs["limit"] == PAGE + 2
        # The filter starts at the cursor too: a server that plans by the filter reads nothing before it.
        ranges = [
            c.range for c in kwargs["scroll_filter"].must if isinstance(c, models.FieldCondition) and c.key == "seq"
        ]
        assert ranges == ([] if expected_start is None else [models.Range(gte=expected_start)])
        seen += [record.key for record in page]
        client.calls.clear()
    assert seen == _keys(SIZE)
    driver.close()


@pytest.fixture(params=["local order", "server paths"])
def paged(request: pytest.FixtureRequest) -> Iterator[Twin]:
    backend = QdrantBackend("qdrant+memory://")
    driver = HookDriver(server_paths(backend) if request.param == "server paths" else backend, "qdrant")
    yield Twin(driver, driver.open())
    driver.close()


def test_records_sharing_a_seq_page_in_key_order_on_both_paths(paged: Twin) -> None:
    """Two calls stamping the same seqs (two Stores at once): every page size gives (seq, key) order."""
    batch_id = uuid.uuid4()
    paged.call(
        "fallthrough_create_batch",
        batch_id=batch_id,
        keys=[f"a{i}" for i in range(7)],
        first_seq=100,
        metadata={},
        created_at=at(0),
    )
    for offset, keys in ((0, ["z", "m", "b"]), (3, ["c", "y", "e", "d"]), (1, ["q"])):
        paged.call("fallthrough_add_records", batch_id=batch_id, keys=keys, first_seq=100 + offset, created_at=at(1))
    paged.call("fallthrough_update_records", updates=[RecordUpdate(batch_id, "m", "failed")], updated_at=at(2))
    for limit in range(1, 6):
        for status in (None, Status.PENDING, Status.FAILED):
            after: Any = None
            while True:
                page = paged.call(
                    "fallthrough_list_records", batch_id=batch_id, status=status, after=after, limit=limit
                )
                if len(page) < limit:
                    break
                after = (page[-1].seq, page[-1].key)


class TestQdrantServerPaths(BackendConformance):
    """The conformance suite on the paths a server takes (order_by listing, read-back), on a real local client."""

    capabilities = Capabilities(
        records=True, documents=True, vector_search=True, text_search=True, filter_search=True, claims=True
    )

    @pytest.fixture
    def backend(self) -> object:
        return server_paths(QdrantBackend("qdrant+memory://"))


# -- claims on local mode: a claim reads past the records finished before it -------------------------------


def test_a_claim_on_local_mode_reads_the_same_wherever_the_batch_stands() -> None:
    driver, client = _recorded()
    batch_id = uuid.uuid4()
    driver.call(
        "fallthrough_create_batch", batch_id=batch_id, keys=_keys(SIZE), first_seq=1, metadata={}, created_at=at(0)
    )
    turns = SIZE // PAGE - 5  # the last claims find the batch's end, and read less
    claimed: list[str] = []
    visited = []
    for turn in range(turns):
        client.calls.clear()
        records = claim(driver, batch_id, "w", PAGE, 10 + 2 * turn, 1_000)
        if turn:  # the first claim builds the batch's order: one pass over the collection
            assert not [name for name, _, _ in client.calls if name in WHOLE_COLLECTION]
        visited.append(_points_retrieved(client))
        claimed += [record.key for record in records]
        update(driver, records, Status.COMPLETED if turn % 2 else Status.FAILED, 11 + 2 * turn)
    assert claimed == _keys(turns * PAGE)
    # Each claim reads the records finished since the last one, its own, and what its growing reads round up
    # to: the 25th reads what the 2nd read, not the 2,400 records finished before it.
    assert len(set(visited[1:])) == 1
    assert visited[-1] <= 4 * PAGE
    driver.close()


def test_claims_on_local_mode_read_past_the_records_held_until_a_lease_ends() -> None:
    driver, client = _recorded()
    batch_id = uuid.uuid4()
    driver.call(
        "fallthrough_create_batch", batch_id=batch_id, keys=_keys(SIZE), first_seq=1, metadata={}, created_at=at(0)
    )
    turns = SIZE // PAGE - 5
    visited = []
    for turn in range(turns):  # claimed and never finished: held under leases that end at 1,000
        client.calls.clear()
        records = claim(driver, batch_id, "w", PAGE, 10 + turn, 990 - turn)
        if turn:
            assert not [name for name, _, _ in client.calls if name in WHOLE_COLLECTION]
        visited.append(_points_retrieved(client))
        assert [record.key for record in records] == _keys(SIZE)[turn * PAGE : (turn + 1) * PAGE]
    assert len(set(visited[1:])) == 1 and visited[-1] <= 4 * PAGE
    # At 1,000 the first leases end: the claim starts over and takes them, at their next attempt.
    expired = claim(driver, batch_id, "w2", 2, 1_000, 100)
    assert [(record.key, record.attempt) for record in expired] == [(key, 1) for key in _keys(2)]
    driver.close()


def test_a_local_claim_still_finds_what_a_retry_a_later_attempt_or_an_expired_lease_makes_claimable() -> None:
    driver, _ = _recorded()
    batch_id = uuid.uuid4()
    keys = _keys(8)
    driver.call("fallthrough_create_batch", batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=at(0))
    first = claim(driver, batch_id, "w1", 4, 10, 100)
    update(driver, first[:2], Status.FAILED, 11)
    update(driver, first[2:], Status.COMPLETED, 11)
    assert [record.key for record in claim(driver, batch_id, "w1", 2, 12, 100)] == keys[4:6]  # past the finished
    # Handed back at a later attempt: pending again, ahead of the records not claimed yet.
    (handed_back,) = driver.call("fallthrough_get_records", batch_id=batch_id, keys=[keys[2]])
    again = RecordUpdate(batch_id, keys[2], Status.PENDING, attempt=handed_back.attempt + 1)
    driver.call("fallthrough_update_records", updates=[again], updated_at=at(13))
    assert [record.key for record in claim(driver, batch_id, "w2", 1, 14, 100)] == [keys[2]]
    # The failed ones, retried.
    driver.call("fallthrough_retry_failed", batch_id=batch_id, updated_at=at(15))
    assert [record.key for record in claim(driver, batch_id, "w2", 2, 16, 100)] == keys[:2]
    # keys[4:6] were claimed at 12 for 100: at 112 their leases ran out, and they come before keys[6:].
    expired = claim(driver, batch_id, "w3", 3, 112, 100)
    assert [(record.key, record.attempt) for record in expired] == [(keys[4], 1), (keys[5], 1), (keys[6], 0)]
    driver.close()


def test_a_lease_an_extension_shortened_ends_for_local_claims_when_the_extension_says() -> None:
    """Claims that passed over a held record note its lease's end; a shorter extension must move that note."""
    driver, _ = _recorded()
    batch_id = uuid.uuid4()
    keys = _keys(2)
    driver.call("fallthrough_create_batch", batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=at(0))
    assert [record.key for record in claim(driver, batch_id, "w1", 1, 10, 1_000)] == keys[:1]  # held until 1,010
    assert [record.key for record in claim(driver, batch_id, "w2", 1, 20, 1_000)] == keys[1:]  # passes keys[0]
    extended = driver.call(
        "fallthrough_extend_leases", batch_id=batch_id, keys=[keys[0]], worker="w1", now=at(30), lease_until=at(40)
    )
    assert [record.key for record in extended] == keys[:1]
    # At 50 the shortened lease has ended, long before the 1,010 the claims had noted.
    assert [(record.key, record.attempt) for record in claim(driver, batch_id, "w3", 5, 50, 1_000)] == [(keys[0], 1)]
    driver.close()
