"""Store.purge_tombstones: tombstones older than the grace period go from every store that can take it now.

The stores are real SQLite files behind fault gates; what each holds is read
through its own hooks (a Store over it alone), since tombstones are invisible
to the public API. The Store's clock is a test clock, so "older than the grace
period" is exact rather than a matter of sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import fallthrough
from fallthrough import Document, PurgeReport, StoredDocument
from fallthrough.clock import Stamper
from fallthrough.errors import InvalidInput
from fallthrough.hookspecs import hookimpl
from fallthrough.journal import JournalPolicy
from fallthrough.testing.faults import FaultInjectingBackend
from fallthrough.testing.model import ReferenceBackend

from .helpers import gate, gated, health

DAY_NS = 86_400 * 10**9


class ManualClock:
    """The Store's wall clock, in nanoseconds; it moves only when the test says so."""

    def __init__(self) -> None:
        self.now_ns = 1_800_000_000 * 10**9

    def __call__(self) -> int:
        return self.now_ns

    def days_pass(self, days: float) -> None:
        self.now_ns += int(days * DAY_NS)


class KeepsItsTombstones(ReferenceBackend):
    """A third-party backend written before the purge hook: it has every required hook, and not that one."""

    fallthrough_purge_tombstones = None  # type: ignore[assignment]


class GatedKeeper(FaultInjectingBackend):
    """The fault gate in front of that third-party backend."""

    def __init__(self, url: object = None) -> None:
        super().__init__(url, inner=KeepsItsTombstones())  # type: ignore[arg-type]


class Overcounts(ReferenceBackend):
    """A purge hook that claims more than it was allowed to remove."""

    @hookimpl
    def fallthrough_purge_tombstones(self, collection: str, before: int, limit: int) -> int:
        return limit + 1


class RefusesOnce(FaultInjectingBackend):
    """The fault gate, refusing the next call of each hook in :attr:`refuse` with a ``PluginError``."""

    def __init__(self, url: object = None) -> None:
        super().__init__(url)  # type: ignore[arg-type]
        self.refuse: set[str] = set()

    def _gate(self, hook: str) -> None:
        super()._gate(hook)
        if hook in self.refuse:
            self.refuse.discard(hook)
            raise fallthrough.PluginError(f"{hook} refused (injected)")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def urls(tmp_path: Path) -> dict[str, str]:
    return {name: f"sqlite:///{tmp_path}/{name}.db" for name in "ab"}


@pytest.fixture
def store(registry: fallthrough.Registry, urls: dict[str, str], clock: ManualClock) -> Iterator[fallthrough.Store]:
    store = fallthrough.Store(
        [(name, gated(url)) for name, url in urls.items()],
        registry=registry,
        stamper=Stamper(clock),
        breaker=fallthrough.BreakerPolicy(cooldown=0.01),
        journal_policy=JournalPolicy(max_hints=1),
    )
    with store:
        yield store


def entries(url: str, collection: str) -> dict[str, StoredDocument]:
    """Every entry the store at ``url`` holds in ``collection``, tombstones included, by id."""
    with fallthrough.connect(url) as alone:
        assert alone.count(collection) >= 0  # opens the backend
        scanned = alone.plugin_manager.hook.fallthrough_scan_documents(collection=collection, after=None, limit=100_000)
        return {entry.id: entry for entry in scanned}


def tombstones(url: str, collection: str) -> list[str]:
    return sorted(entry.id for entry in entries(url, collection).values() if entry.document is None)


def test_tombstones_older_than_the_grace_period_go_from_every_store(
    store: fallthrough.Store, urls: dict[str, str], clock: ManualClock
) -> None:
    store.upsert_documents("docs", [Document(i, i) for i in ("old", "recent", "live")])
    store.upsert_documents("other", [Document("x", "x")])
    store.delete_documents("docs", ["old", "never-stored"])
    store.delete_documents("other", ["x"])
    clock.days_pass(10)
    store.delete_documents("docs", ["recent"])
    clock.days_pass(1)

    report = store.purge_tombstones(timedelta(days=5), page_size=1)

    assert report == PurgeReport(purged={"a": 3, "b": 3}, left_out={})
    assert report.complete and report.total == 6
    for url in urls.values():
        assert tombstones(url, "docs") == ["recent"]
        assert tombstones(url, "other") == []
    assert store.get_documents("docs", ["live", "recent"]) == [Document("live", "live")]
    assert store.purge_tombstones(5 * 86_400) == PurgeReport(purged={"a": 0, "b": 0})


def test_a_collection_argument_purges_that_collection_only(
    store: fallthrough.Store, urls: dict[str, str], clock: ManualClock
) -> None:
    store.delete_documents("docs", ["d"])
    store.delete_documents("other", ["o"])
    clock.days_pass(2)
    assert store.purge_tombstones(timedelta(days=1), collection="docs").total == 2
    for url in urls.values():
        assert (tombstones(url, "docs"), tombstones(url, "other")) == ([], ["o"])


def test_an_unavailable_store_is_left_out_and_keeps_its_tombstones(
    store: fallthrough.Store, urls: dict[str, str], clock: ManualClock
) -> None:
    store.delete_documents("docs", ["d"])
    clock.days_pass(2)
    gate(store, "b").outage = True
    report = store.purge_tombstones(timedelta(days=1))
    assert report.purged == {"a": 1}
    assert list(report.left_out) == ["b"] and "unavailable" in report.left_out["b"]
    assert not report.complete
    gate(store, "b").outage = False
    assert (tombstones(urls["a"], "docs"), tombstones(urls["b"], "docs")) == ([], ["d"])
    assert store.purge_tombstones(timedelta(days=1)).purged == {"a": 0, "b": 1}


def test_a_store_behind_its_journal_gets_its_missed_writes_before_the_purge(
    registry: fallthrough.Registry, urls: dict[str, str], clock: ManualClock
) -> None:
    """b gets the delete it missed first, so both purge it; a hint replayed after a purge could bring back a zombie.

    b's breaker opens at its first failure and cools down for an hour, so the
    Store's background replayer leaves the hint alone: only the purge, which
    asks b at once, replays it.
    """
    with fallthrough.Store(
        [(name, gated(url)) for name, url in urls.items()],
        registry=registry,
        stamper=Stamper(clock),
        breaker=fallthrough.BreakerPolicy(failure_threshold=1, cooldown=3600),
    ) as store:
        store.upsert_documents("docs", [Document("d", "first")])
        gate(store, "b").outage = True
        store.delete_documents("docs", ["d"])  # b misses it: a hint waits
        clock.days_pass(2)
        gate(store, "b").outage = False
        assert health(store, "b").pending_hints == 1

        report = store.purge_tombstones(timedelta(days=1))

        assert report == PurgeReport(purged={"a": 1, "b": 1})
        assert health(store, "b").pending_hints == 0
    for url in urls.values():
        assert entries(url, "docs") == {}


def test_nothing_is_purged_while_a_store_needs_a_repair(
    store: fallthrough.Store, urls: dict[str, str], clock: ManualClock
) -> None:
    """b lost writes (the journal kept one hint, b missed two): it may hold what a deleted, so a keeps its tombstone."""
    store.upsert_documents("docs", [Document("d", "first")])
    gate(store, "b").outage = True
    store.delete_documents("docs", ["d"])
    store.delete_documents("docs", ["e"])
    gate(store, "b").outage = False
    assert store.drain(timeout=10)
    assert health(store, "b").needs_repair
    clock.days_pass(2)

    report = store.purge_tombstones(timedelta(days=1))

    assert report.purged == {}
    assert set(report.left_out) == {"a", "b"}
    assert all("b must be repaired first" in reason for reason in report.left_out.values())
    assert tombstones(urls["a"], "docs") == ["d", "e"]

    store.repair()
    assert store.purge_tombstones(timedelta(days=1)) == PurgeReport(purged={"a": 2, "b": 2})
    assert store.get_documents("docs", ["d"]) == []


@pytest.mark.parametrize("backend", ["KeepsItsTombstones", "GatedKeeper"])
def test_a_backend_without_the_purge_hook_is_left_out_and_the_others_are_purged(
    registry: fallthrough.Registry, urls: dict[str, str], clock: ManualClock, backend: str
) -> None:
    """Also behind the fault gate, which then lacks the hook too."""
    registry.register("keeps", f"{__name__}:{backend}")
    with fallthrough.Store(
        [("a", urls["a"]), ("keeps", "keeps://")], registry=registry, stamper=Stamper(clock)
    ) as store:
        store.delete_documents("docs", ["d"])
        clock.days_pass(2)
        report = store.purge_tombstones(timedelta(days=1))
        assert report.purged == {"a": 1}
        assert report.left_out == {"keeps": "its plugin does not implement fallthrough_purge_tombstones"}


@pytest.mark.parametrize(
    ("older_than", "message"),
    [
        (0, "at least a microsecond"),
        (-1.5, "at least a microsecond"),
        (timedelta(0), "at least a microsecond"),
        (timedelta(microseconds=-1), "at least a microsecond"),
        (1e-7, "at least a microsecond"),
        (float("nan"), "finite number of seconds"),
        (float("inf"), "finite number of seconds"),
        (1e303, "finite number of seconds"),
        (True, "finite number of seconds"),
        ("1 day", "finite number of seconds"),
        (None, "finite number of seconds"),
    ],
)
def test_a_grace_period_that_is_not_a_positive_duration_is_refused_before_any_store_is_touched(
    store: fallthrough.Store, urls: dict[str, str], clock: ManualClock, older_than: object, message: str
) -> None:
    store.delete_documents("docs", ["d"])
    clock.days_pass(2)
    calls_before = gate(store, "a").calls["fallthrough_purge_tombstones"]
    with pytest.raises(InvalidInput, match=message):
        store.purge_tombstones(older_than)  # type: ignore[arg-type]
    assert gate(store, "a").calls["fallthrough_purge_tombstones"] == calls_before == 0
    assert tombstones(urls["a"], "docs") == ["d"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"collection": ""}, "collection"),
        ({"collection": 7}, "collection"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 100_001}, "page_size"),
    ],
)
def test_a_bad_collection_or_page_size_is_refused(
    store: fallthrough.Store, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.purge_tombstones(1.0, **arguments)  # type: ignore[arg-type]


def test_a_grace_period_longer_than_the_epoch_purges_nothing(store: fallthrough.Store, urls: dict[str, str]) -> None:
    store.delete_documents("docs", ["d"])
    assert store.purge_tombstones(timedelta(days=365 * 100)).total == 0
    assert tombstones(urls["a"], "docs") == ["d"]


def test_a_plugin_answering_a_count_out_of_range_is_left_out_and_the_others_are_purged(
    registry: fallthrough.Registry, urls: dict[str, str], clock: ManualClock
) -> None:
    registry.register("overcounts", f"{__name__}:Overcounts")
    with fallthrough.Store(
        [("over", "overcounts://"), ("a", urls["a"])], registry=registry, stamper=Stamper(clock)
    ) as store:
        store.delete_documents("docs", ["d"])
        clock.days_pass(2)
        report = store.purge_tombstones(timedelta(days=1))
        assert report.purged == {"over": 0, "a": 1}
        assert "returned 1001, not a count up to 1000" in report.left_out["over"]


def test_a_repair_mark_from_the_purge_s_own_replay_stops_it_everywhere(
    registry: fallthrough.Registry, urls: dict[str, str], clock: ManualClock
) -> None:
    """b refuses its replayed delete, and is marked: purging a's tombstone would let the repair copy b's x back."""
    registry.register("refuses", f"{__name__}:RefusesOnce")
    with fallthrough.Store(
        [("a", gated(urls["a"])), ("b", gated(urls["b"], "refuses"))],
        registry=registry,
        stamper=Stamper(clock),
        breaker=fallthrough.BreakerPolicy(failure_threshold=1, cooldown=3600),
    ) as store:
        store.upsert_documents("docs", [Document("x", "secret plans")])
        b = store.plugin_manager.get_plugin("b")
        assert isinstance(b, RefusesOnce)
        b.outage = True
        store.delete_documents("docs", ["x"])  # b misses it: a hint waits
        clock.days_pass(2)
        b.outage = False
        b.refuse.add("fallthrough_delete_documents")

        report = store.purge_tombstones(timedelta(days=1))

        assert report.purged == {}
        assert set(report.left_out) == {"a", "b"}
        assert tombstones(urls["a"], "docs") == ["x"]
        store.repair()
        assert store.get_documents("docs", ["x"]) == []


@pytest.mark.parametrize("down", [False, True])
def test_a_backend_of_records_alone_has_nothing_to_purge_and_is_not_reported_up_or_down(
    registry: fallthrough.Registry, urls: dict[str, str], clock: ManualClock, down: bool
) -> None:
    with fallthrough.Store(
        [("a", urls["a"]), ("records", "flaky://?records_only=1")], registry=registry, stamper=Stamper(clock)
    ) as store:
        store.delete_documents("docs", ["d"])
        if down:
            store.create_batch(["k"])  # opens it, so its capabilities are known: it declares no documents
            gate(store, "records").outage = True
        # Up, it is pinged first and skipped once it declares no documents.
        clock.days_pass(2)
        assert store.purge_tombstones(timedelta(days=1)) == PurgeReport(purged={"a": 1})
