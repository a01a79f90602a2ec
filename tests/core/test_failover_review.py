"""Adversarial review of the failover machinery (issue 9): each test here shows one bug.

Every test is a real Store over real backends (SQLite, the reference model)
behind the fault-injecting gate from the public registry, or a subclass of it
that scripts one more fault (a busy store, a call that blocks until the test
lets it go, a slow store). Nothing in the router is mocked. Each test is marked
``xfail(strict=True)`` with the bug it shows, so the suite stays green until
the bug is fixed; the fix then turns the mark into an error, to be removed.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fallthrough
from fallthrough import hookimpl
from fallthrough.errors import BackendBusy, BackendUnavailable, FallthroughError, InvalidInput
from fallthrough.journal import JournalError, JournalPolicy, SqliteJournal
from fallthrough.testing.faults import FaultInjectingBackend
from fallthrough.types import RecordUpdate, Status
from fallthrough.validation import STREAM_CHUNK

from .conftest import FakeClock
from .helpers import gate, health, sqlite_file


class ScriptedBackend(FaultInjectingBackend):
    """The fault gate with a few more faults a test can script.

    :ivar busy_hooks: hooks that answer :class:`BackendBusy` (a lock another process holds).
    :ivar failing_hooks: hooks that raise :class:`BackendUnavailable` with ``error_message``.
    :ivar hold_updates: while true, ``fallthrough_update_records`` (and
        ``fallthrough_merge_records``, which replay sends runs of updates as)
        applies the update on the inner store, sets ``held`` and waits for ``release``.
    :ivar update_delay: seconds every applied update or merge takes.
    """

    def __init__(self, url: Any = None) -> None:
        super().__init__(url)
        self.busy_hooks: set[str] = set()
        self.failing_hooks: set[str] = set()
        self.hold_updates = False
        self.held = threading.Event()
        self.release = threading.Event()
        self.update_delay = 0.0

    def _gate(self, hook: str) -> None:
        super()._gate(hook)
        if hook in self.failing_hooks:
            raise BackendUnavailable(self.error_message)
        if hook in self.busy_hooks:
            raise BackendBusy("database is locked")

    @hookimpl
    def fallthrough_update_records(self, updates: Any, updated_at: Any) -> Any:
        applied = super().fallthrough_update_records(updates, updated_at)
        self._after_an_update()
        return applied

    @hookimpl
    def fallthrough_merge_records(self, batch_id: Any, records: Any) -> Any:
        changed = super().fallthrough_merge_records(batch_id, records)
        self._after_an_update()
        return changed

    def _after_an_update(self) -> None:
        if self.update_delay:
            time.sleep(self.update_delay)
        if self.hold_updates:
            self.held.set()
            self.release.wait(10)


@pytest.fixture
def quick_breaker() -> fallthrough.BreakerPolicy:
    return fallthrough.BreakerPolicy(cooldown=0.01)


@pytest.fixture
def scripted_registry(registry: fallthrough.Registry) -> fallthrough.Registry:
    registry.register("scripted", f"{__name__}:ScriptedBackend")
    return registry


def scripted(store: fallthrough.Store, name: str) -> ScriptedBackend:
    plugin = store.plugin_manager.get_plugin(name)
    assert isinstance(plugin, ScriptedBackend)
    return plugin


# -- repair and batch deletions ------------------------------------------------------------


def test_repair_does_not_resurrect_a_batch_whose_deletion_waits_in_the_journal(
    scripted_registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy
) -> None:
    store = fallthrough.connect(
        a="scripted://?inner=sqlite://", b="scripted://?inner=sqlite://", registry=scripted_registry, breaker=breaker
    )
    batch = store.create_batch(["k"])
    b = scripted(store, "b")
    b.outage = True
    assert store.delete_batch(batch.id)  # acknowledged; b gets it as a hint
    b.outage = False
    b.busy_hooks = {"fallthrough_delete_batch"}  # b is reachable, but the replay of the deletion waits
    store.repair()
    b.busy_hooks = set()
    assert store.drain(timeout=10)
    assert store.get_batch(batch.id) is None, "an acknowledged delete_batch was undone"
    for name in ("a", "b"):
        assert scripted(store, name).inner.fallthrough_get_batch(batch.id) is None, name
    store.close()


def bounded_pair(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, *, max_hints: int
) -> fallthrough.Store:
    """SQLite stores a and b behind fault gates, whose journal keeps ``max_hints`` hints a backend."""
    return fallthrough.connect(
        a="flaky://?inner=sqlite://",
        b="flaky://?inner=sqlite://",
        registry=registry,
        breaker=breaker,
        journal_policy=JournalPolicy(max_hints=max_hints),
    )


@pytest.mark.parametrize("deletion_passes_the_bound", [False, True], ids=["update-passes", "deletion-passes"])
def test_a_deletion_is_kept_through_the_journal_bound_and_not_undone_by_the_repair(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, deletion_passes_the_bound: bool
) -> None:
    """The bound keeps one hint; whichever write passes it, b's deletion stays and is replayed before the repair."""
    store = bounded_pair(registry, breaker, max_hints=1)
    deleted = store.create_batch(["k"])
    other = store.create_batch(["x"])
    b = gate(store, "b")
    b.outage = True
    if deletion_passes_the_bound:
        store.update(deleted.id, "k", "completed")  # the one hint b may keep
        assert store.delete_batch(deleted.id)  # past the bound: b's other hints go, this one stays
    else:
        assert store.delete_batch(deleted.id)  # the one hint b may keep
        store.update(other.id, "x", "completed")  # past the bound: b's hints are dropped, b needs a repair
    assert health(store, "b").needs_repair
    b.outage = False
    store.repair()
    assert store.get_batch(deleted.id) is None, "the repair brought back a batch deleted by an acknowledged call"
    assert b.inner.fallthrough_get_batch(deleted.id) is None
    store.close()


def test_a_take_back_dropped_by_the_journal_bound_is_not_undone_by_the_repair(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy
) -> None:
    """A failed streamed add takes back its records; b missed that take-back and then its journal's bound."""
    store = bounded_pair(registry, breaker, max_hints=2)
    batch = store.create_batch(["kept"])
    b = gate(store, "b")

    def keys() -> Any:
        yield from (f"added-{i}" for i in range(STREAM_CHUNK))  # one whole chunk, written to both
        b.outage = True
        yield ""  # invalid: the call takes back what it added, and b gets the take-back as a hint

    with pytest.raises(InvalidInput):
        store.add_records(batch.id, keys())
    for key in ("x", "y", "z"):
        store.create_batch([key])  # past the bound: b's hints are dropped, b needs a repair
    assert health(store, "b").needs_repair
    b.outage = False
    store.repair()
    assert store.progress(batch.id).total == 1, "the repair brought back the records of a call that failed"
    assert b.inner.fallthrough_progress(batch.id).total == 1
    store.close()


def test_a_hint_the_full_journal_cannot_take_marks_the_backend_for_repair_and_the_write_stands(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, tmp_path: Path
) -> None:
    """The journal's file is full (SQLite's page limit, as a full disk): the write is the other stores', b is marked."""
    journal = SqliteJournal(tmp_path / "hints.db")
    store = fallthrough.connect(
        a="flaky://?inner=sqlite://", b="flaky://?inner=sqlite://", registry=registry, breaker=breaker, journal=journal
    )
    keys = [f"k{i}" for i in range(200)]
    batch = store.create_batch(keys)
    b = gate(store, "b")
    b.outage = True
    (pages,) = journal._db.execute("PRAGMA page_count").fetchone()
    journal._db.execute(f"PRAGMA max_page_count = {pages}")
    for key in keys:  # each hint fits in the free room of the last page, until none does
        store.update(batch.id, key, "completed", result="x" * 200)
        if health(store, "b").needs_repair:
            break
    else:
        pytest.fail("the journal's file never filled up")
    assert store.get_record(batch.id, key).status is Status.COMPLETED  # type: ignore[union-attr]
    b.outage = False
    assert not health(store, "b").serves_reads, "b missed a write no journal holds: it must serve no reads"
    store.repair()
    assert b.inner.fallthrough_get_record(batch.id, key).status is Status.COMPLETED
    assert health(store, "b").serves_reads
    store.close()


# A full disk under the durable journal, in a child process of its own: RLIMIT_FSIZE at the WAL's size
# (SIGXFSZ ignored, so writes fail with EFBIG). The backends are in memory: only the journal is affected.
_FULL_DISK = """
import pathlib, resource, signal, sys
import fallthrough
from fallthrough.journal import JournalError, JournalPolicy, SqliteJournal

directory = pathlib.Path(sys.argv[1])
registry = fallthrough.Registry()
registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
journal = SqliteJournal(directory / "hints.db", JournalPolicy(max_hints=2))
store = fallthrough.connect(
    a="flaky://?inner=sqlite://", b="flaky://?inner=sqlite://", registry=registry, journal=journal,
    breaker=fallthrough.BreakerPolicy(failure_threshold=1, cooldown=3600),
)
b = store.plugin_manager.get_plugin("b")

def disk_full():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, ((directory / "hints.db-wal").stat().st_size, resource.RLIM_INFINITY))
"""


def run_with_a_full_disk(tmp_path: Path, scenario: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK + textwrap.dedent(scenario), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_deletion_the_full_journal_cannot_take_waits_in_memory_and_the_repair_does_not_undo_it(
    tmp_path: Path,
) -> None:
    run_with_a_full_disk(
        tmp_path,
        """
        doomed = store.create_batch(["x", "y"])
        b.outage = True
        disk_full()
        assert store.delete_batch(doomed.id)  # b misses it, and its hint cannot be written
        assert {entry.name: entry.needs_repair for entry in store.health()}["b"]
        b.outage = False
        store.repair()
        assert store.get_batch(doomed.id) is None, "the repair brought back a batch deleted by an acknowledged call"
        assert b.inner.fallthrough_get_batch(doomed.id) is None
        store.close(timeout=0)
        """,
    )


def test_the_bound_reached_while_the_journal_is_full_still_lets_the_write_stand(tmp_path: Path) -> None:
    """Dropping the hints past the bound is a DELETE, which a full disk cannot take either."""
    run_with_a_full_disk(
        tmp_path,
        """
        batch = store.create_batch(["k"])
        b.outage = True
        store.update(batch.id, "k", "processing")
        store.update(batch.id, "k", "processing")
        disk_full()
        store.update(batch.id, "k", "completed", result={"ok": 1})  # past the bound
        assert store.get_record(batch.id, "k").status == "completed"
        assert {entry.name: entry.needs_repair for entry in store.health()}["b"]
        store.close(timeout=0)
        """,
    )


# -- the journal's counts ------------------------------------------------------------------------


def test_a_hint_recorded_while_a_replay_runs_stays_counted_when_the_bound_drops_the_rest(
    scripted_registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, clock: FakeClock
) -> None:
    store = fallthrough.connect(
        a="scripted://",
        b="scripted://",
        registry=scripted_registry,
        breaker=breaker,
        journal_policy=JournalPolicy(max_hints=2),
    )
    batch = store.create_batch(["k1", "k2", "k3", "k4"])
    b = scripted(store, "b")
    b.outage = True
    store.update(batch.id, "k1", "completed")  # hint 1; b's breaker opens
    b.outage = False
    b.hold_updates = True
    clock.advance(30.0)  # the breaker lets the replay make its trial call
    drainer = threading.Thread(target=store.drain, kwargs={"timeout": 10})
    drainer.start()
    assert b.held.wait(10), "the replay did not reach b"
    # While hint 1 is being applied on b:
    store.update(batch.id, "k2", "completed")  # hint 2
    store.update(batch.id, "k3", "completed")  # past the bound: hints 1 and 2 dropped, b needs a repair
    store.update(batch.id, "k4", "completed")  # b's trial is taken: hint 3, kept
    assert health(store, "b").pending_hints == 1
    b.hold_updates = False
    b.release.set()
    drainer.join(10)
    # Hint 3 was never replayed, so it must still be counted (and replayed by the next drain).
    record = b.inner.fallthrough_get_record(batch.id, "k4")
    replayed = record is not None and record.status is Status.COMPLETED
    assert replayed or health(store, "b").pending_hints == 1, "a hint left in the journal is no longer counted"
    store.close()


# -- a damaged durable journal -----------------------------------------------------------------


def test_an_undecodable_hint_marks_its_backend_for_repair_and_close_still_closes(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy, tmp_path: Path
) -> None:
    urls: dict[str, Any] = {"a": sqlite_file(tmp_path, "a"), "b": sqlite_file(tmp_path, "b")}
    journal = f"sqlite:///{tmp_path}/hints.db"
    store = fallthrough.connect(**urls, registry=registry, breaker=quick_breaker, journal=journal)
    batch = store.create_batch(["k"])
    gate(store, "b").outage = True
    store.update(batch.id, "k", "completed")
    store.close(timeout=0.1)  # b is still down: the hint stays in the file
    with sqlite3.connect(tmp_path / "hints.db") as damage:
        (rows,) = damage.execute("SELECT count(*) FROM hints").fetchone()
        assert rows == 1
        damage.execute("UPDATE hints SET arguments = substr(arguments, 1, 20)")  # a torn write
    damage.close()

    restarted = fallthrough.connect(**urls, registry=registry, breaker=quick_breaker, journal=journal)
    try:
        restarted.drain(timeout=2)
        entry = health(restarted, "b")
        assert entry.needs_repair and not entry.serves_reads
        assert restarted.get_record(batch.id, "k").status is Status.COMPLETED  # type: ignore[union-attr]
    finally:
        restarted.close()
    SqliteJournal(tmp_path / "hints.db").close()  # close() released the file


@contextlib.contextmanager
def reopened_over_a_damaged_journal(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, tmp_path: Path, **options: Any
) -> Iterator[tuple[fallthrough.Store, uuid.UUID]]:
    """A Store over a and b whose journal holds 10 hints for b, then has pages of them damaged on disk.

    A failing disk under the open journal: the first hints' pages are no longer in SQLite's page cache
    (about 6 MB of hints is more than it keeps), so the next read of them reads the damage.
    """
    urls: dict[str, Any] = {"a": sqlite_file(tmp_path, "a"), "b": sqlite_file(tmp_path, "b")}
    path = tmp_path / "hints.db"
    store = fallthrough.connect(**urls, registry=registry, breaker=breaker, journal=f"sqlite:///{path}")
    keys = [f"k{i}" for i in range(500)]
    batch = store.create_batch(keys)
    gate(store, "b").outage = True
    for round_ in range(10):
        store.update_many([RecordUpdate(batch.id, key, "completed", result=f"{round_}" * 1000) for key in keys])
    store.close(timeout=0)  # b is still down: the hints stay in the file

    restarted = fallthrough.connect(**urls, registry=registry, breaker=breaker, journal=f"sqlite:///{path}", **options)
    try:
        assert health(restarted, "b").pending_hints == 10
        data = bytearray(path.read_bytes())
        page = 4096  # SQLite's default page size; a tenth into the file, the first hints' pages
        damaged = len(data) // 10 // page * page
        data[damaged : damaged + 4 * page] = bytes(byte ^ 0xFF for byte in data[damaged : damaged + 4 * page])
        path.write_bytes(bytes(data))
        yield restarted, batch.id
    finally:
        restarted.close()


def test_a_journal_that_cannot_be_read_back_is_a_journal_error_and_its_backend_serves_no_reads(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy, tmp_path: Path
) -> None:
    """A bare sqlite3 error escaped the replay, which the Store reported as a plugin's bug."""
    with reopened_over_a_damaged_journal(registry, quick_breaker, tmp_path) as (restarted, batch_id):
        with pytest.raises(JournalError, match=r"cannot read the journal .*hints\.db"):
            restarted.drain(timeout=5)
        entry = health(restarted, "b")
        assert entry.needs_repair and not entry.serves_reads
        gate(restarted, "a").outage = True  # b is all that is left: it must not serve what it may lack
        with pytest.raises(fallthrough.AllBackendsFailed) as failed:
            restarted.get_record(batch_id, "k0")
        assert isinstance(failed.value.causes["b"], JournalError), failed.value.causes
        gate(restarted, "a").outage = False
        assert restarted.get_record(batch_id, "k0").result == "9" * 1000  # type: ignore[union-attr]
        report = restarted.repair()  # b is left out, not repaired from a journal it cannot read
        assert set(report.sent) == {"a"}, report
        assert health(restarted, "b").needs_repair


def test_a_write_applied_under_write_concern_first_stands_when_the_journal_cannot_be_read_back(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy, tmp_path: Path
) -> None:
    """The caller's replay for a store past max_lag raised JournalError from a write a had taken."""
    options = {"write_concern": "first", "max_lag": 1}
    with reopened_over_a_damaged_journal(registry, quick_breaker, tmp_path, **options) as (restarted, batch_id):
        assert restarted.update(batch_id, "k1", "failed", error="applied")
        assert restarted.get_record(batch_id, "k1").error == "applied"  # type: ignore[union-attr]
        assert health(restarted, "b").needs_repair


# -- close -----------------------------------------------------------------------------------------------


def test_a_write_in_flight_when_the_store_closes_keeps_its_hint(
    scripted_registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy, tmp_path: Path
) -> None:
    urls: dict[str, Any] = {"a": sqlite_file(tmp_path, "a", "scripted"), "b": sqlite_file(tmp_path, "b", "scripted")}
    journal = f"sqlite:///{tmp_path}/hints.db"
    store = fallthrough.connect(
        **urls, registry=scripted_registry, breaker=quick_breaker, journal=journal, write_concern="first"
    )
    batch = store.create_batch(["k"])
    assert store.drain(timeout=10)
    a = scripted(store, "a")
    a.hold_updates = True
    errors: list[BaseException] = []

    def write() -> None:
        try:
            store.update(batch.id, "k", "completed", result="done")
        except BaseException as error:
            errors.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    assert a.held.wait(10), "the write did not reach a"
    closer = threading.Thread(target=store.close, kwargs={"timeout": 0.5})
    closer.start()
    closer.join(1.0)  # a close() that waits for the write in flight is still running here: that is fine
    a.release.set()
    writer.join(10)
    closer.join(10)
    assert not [error for error in errors if not isinstance(error, FallthroughError)], errors

    restarted = fallthrough.connect(**urls, registry=scripted_registry, breaker=quick_breaker, journal=journal)
    try:
        restarted.health(ping=True)  # opens both backends
        applied_on_a = scripted(restarted, "a").inner.fallthrough_get_record(batch.id, "k")
        assert applied_on_a is not None and applied_on_a.status is Status.COMPLETED
        assert restarted.drain(timeout=10)
        on_b = scripted(restarted, "b").inner.fallthrough_get_record(batch.id, "k")
        caught_up = on_b is not None and on_b.status is Status.COMPLETED
        assert caught_up or health(restarted, "b").needs_repair, "b lost a write a applied, and nothing says so"
    finally:
        restarted.close()


_NEVER_CLOSED = """
import sys
import fallthrough
store = fallthrough.connect("sqlite://", f"sqlite:///{sys.argv[1]}/volume/b.db", journal=sys.argv[2] or None)
store.create_batch(["a"])  # b's directory is not there: b misses it
if sys.argv[3] == "close":
    store.close(timeout=0)
"""


@pytest.mark.parametrize(
    ("journal", "ending", "warned"),
    [("", "exit", True), ("", "close", False), ("hints.db", "exit", False)],
    ids=["memory-journal-never-closed", "memory-journal-closed", "durable-journal-never-closed"],
)
def test_a_store_never_closed_says_what_its_memory_journal_loses_at_exit(
    tmp_path: Path, journal: str, ending: str, warned: bool
) -> None:
    """Nothing was logged: the writes b missed went with the process, and nothing said b needed a repair."""
    durable = f"sqlite:///{tmp_path / journal}" if journal else ""
    done = subprocess.run(
        [sys.executable, "-c", _NEVER_CLOSED, str(tmp_path), durable, ending],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    told = "a Store was never closed: sqlite-2 misses 1 journaled write, lost with it" in done.stderr
    assert told is warned, done.stderr


def test_a_store_collected_unclosed_says_what_its_memory_journal_loses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = fallthrough.connect("sqlite://", f"sqlite:///{tmp_path}/volume/b.db")
    store.create_batch(["a"])
    with caplog.at_level(logging.WARNING, logger="fallthrough"):
        del store
        gc.collect()
    assert "a Store was never closed: sqlite-2 misses 1 journaled write, lost with it" in caplog.text


@pytest.mark.parametrize("ending", ["close", "never closed"])
def test_a_store_the_memory_journal_gave_up_on_is_told_at_close_and_when_never_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ending: str
) -> None:
    """Past the bound b had no hints left, only its repair mark, which went with the Store unsaid."""
    store = fallthrough.connect(
        "sqlite://", f"sqlite:///{tmp_path}/volume/b.db", journal_policy=JournalPolicy(max_hints=2)
    )
    batch = store.create_batch(["k1", "k2"])
    for key in ("k1", "k2"):  # the second hint is the bound: the third write drops them all
        store.update(batch.id, key, "completed")
    assert (health(store, "sqlite-2").pending_hints, health(store, "sqlite-2").needs_repair) == (0, True)
    with caplog.at_level(logging.WARNING, logger="fallthrough"):
        if ending == "close":
            store.close(timeout=0)
        else:
            del store
            gc.collect()
    told = {
        "close": "closing with sqlite-2 marked as needing a repair, a mark lost with this process",
        "never closed": "a Store was never closed: sqlite-2 needs a repair, lost with it",
    }
    assert told[ending] in caplog.text


def test_close_stops_replaying_at_its_timeout(
    scripted_registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy
) -> None:
    store = fallthrough.connect(a="scripted://", b="scripted://", registry=scripted_registry, breaker=quick_breaker)
    keys = [f"k{i}" for i in range(20)]
    batch = store.create_batch(keys)
    b = scripted(store, "b")
    b.outage = True
    for index, key in enumerate(keys):
        store.update(batch.id, key, "completed")
        store.add_records(batch.id, [f"added{index}"])  # ends the run, so replay sends 20 merges, not one
    assert health(store, "b").pending_hints == 40
    b.update_delay = 0.1  # a slow store: replaying all 20 runs of updates takes 2 s
    b.outage = False
    store.close(timeout=0.2)
    replayed = b.inner.fallthrough_progress(batch.id).completed
    assert replayed < 20, "close(timeout=0.2) replayed every hint, however long it took"


# -- secrets ---------------------------------------------------------------------------------------------

SECRET = "s3cr3t-pa55"


def test_repair_logs_no_secret_of_a_backend_it_leaves_out(
    registry: fallthrough.Registry, caplog: pytest.LogCaptureFixture
) -> None:
    store = fallthrough.connect(a="flaky://", b=f"flaky://app:{SECRET}@replica/app", registry=registry)
    store.create_batch(["k"])
    b = gate(store, "b")
    b.outage = True
    b.error_message = f"could not connect as app:{SECRET}"
    caplog.set_level(logging.DEBUG, logger="fallthrough")
    store.repair()
    assert "leaves out b" in caplog.text
    assert SECRET not in caplog.text
    store.close()


def test_repair_raises_no_secret_when_a_backend_fails_midway(scripted_registry: fallthrough.Registry) -> None:
    store = fallthrough.connect(a="scripted://", b=f"scripted://app:{SECRET}@replica/app", registry=scripted_registry)
    store.create_batch(["k"])
    b = scripted(store, "b")
    b.failing_hooks = {"fallthrough_get_batch"}
    b.error_message = f"could not connect as app:{SECRET}"
    with pytest.raises(BackendUnavailable) as raised:
        store.repair()
    assert SECRET not in str(raised.value)
    assert SECRET not in repr(raised.value.__cause__) and SECRET not in repr(raised.value.__context__)
    store.close()


# -- what the memory journal keeps -------------------------------------------------------------------


def test_a_hint_in_memory_replays_the_value_that_was_written_not_a_later_mutation(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, clock: FakeClock
) -> None:
    store = fallthrough.connect(
        a="flaky://?inner=sqlite://",
        b="flaky://?inner=sqlite://",
        registry=registry,
        breaker=breaker,
        write_concern="first",
    )
    batch = store.create_batch(["k"])
    assert store.drain(timeout=10)
    b = gate(store, "b")
    b.outage = True  # the replay cannot send the hint before the caller reuses its dict
    result: dict[str, Any] = {"rows": 1}
    assert store.update(batch.id, "k", "completed", result=result)
    result["rows"] = 2  # the caller reuses its dict for the next record
    b.outage = False
    clock.advance(30.0)
    assert store.drain(timeout=10)
    on_a = gate(store, "a").inner.fallthrough_get_record(batch.id, "k")
    on_b = b.inner.fallthrough_get_record(batch.id, "k")
    assert on_a is not None and on_a.result == {"rows": 1}
    assert on_b is not None and on_b.result == {"rows": 1}, "b holds a result nobody wrote"
    store.close()


# -- observers -------------------------------------------------------------------------------------------


def test_an_observer_that_raises_does_not_cost_later_backends_the_write(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy
) -> None:
    class Broken:
        @hookimpl
        def fallthrough_missed_write(self, backend_name: str) -> None:
            raise RuntimeError(f"observer bug on {backend_name}")

    store = fallthrough.connect(
        a="flaky://", b="flaky://", c="flaky://", registry=registry, breaker=breaker, plugins=[Broken()]
    )
    batch = store.create_batch(["k"])
    gate(store, "b").outage = True
    with contextlib.suppress(RuntimeError):  # whether the observer's error reaches the caller is not the point
        store.update_many([RecordUpdate(batch.id, "k", "completed")])
    on_c = gate(store, "c").inner.fallthrough_get_record(batch.id, "k")
    caught_up = on_c is not None and on_c.status is Status.COMPLETED
    assert caught_up or health(store, "c").pending_hints == 1, "c silently missed a write a applied"
    store.close()
