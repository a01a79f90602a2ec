"""A durable journal's hints follow their stores by URL, whatever the stores are named in the next process.

Names are positional (``sqlite``, ``sqlite-2``) unless chosen, so an operator
who reorders ``connect``'s URLs, or starts naming them, changes which name
stands for which store. Each test writes with one process's Store while a
store misses the writes, closes it with the hints still in the journal file,
then opens another Store over the same stores and journal, named otherwise.
The stores are real SQLite files; one is unavailable because its directory
does not exist yet (as a volume not mounted), or behind a fault gate.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

import fallthrough
from fallthrough.journal import JournalError, SqliteJournal

from .helpers import gate, gated, health


def batch_ids(url: str) -> set[uuid.UUID]:
    """The batches the store at ``url`` holds, read through a Store over it alone."""
    with fallthrough.connect(url) as alone:
        return {listed.batch.id for listed in alone.batches()}


@pytest.fixture
def stores(tmp_path: Path) -> tuple[str, str, str]:
    """URLs of store a, of store b (its directory not there yet), and of the journal."""
    return (
        f"sqlite:///{tmp_path}/a.db",
        f"sqlite:///{tmp_path}/volume/b.db",
        f"sqlite:///{tmp_path}/hints.db",
    )


def write_while_b_is_missing(a: str, b: str, journal: str) -> uuid.UUID:
    with fallthrough.connect(a, b, journal=journal) as store:
        batch = store.create_batch(["k1", "k2"])
        assert health(store, "sqlite-2").pending_hints == 1
        store.close(timeout=0)
    return batch.id


def known_to_the_journal(stores: tuple[str, str, str], tmp_path: Path, key: str = "before") -> uuid.UUID:
    """b's volume mounted, one batch made through a Store over a and b: the journal knows both URLs."""
    a, b, journal = stores
    (tmp_path / "volume").mkdir()
    with fallthrough.connect(a, b, journal=journal) as store:
        return store.create_batch([key]).id


def made_by_one(url: str, journal: str, key: str) -> uuid.UUID:
    """A batch made through a Store over ``url`` alone and the journal: the other store is left out."""
    with fallthrough.connect(url, journal=journal) as store:
        return store.create_batch([key]).id


def test_hints_follow_their_store_when_the_urls_are_reordered(stores: tuple[str, str, str], tmp_path: Path) -> None:
    a, b, journal = stores
    batch_id = write_while_b_is_missing(a, b, journal)
    (tmp_path / "volume").mkdir()
    with fallthrough.connect(b, a, journal=journal) as store:  # b is "sqlite" now, a is "sqlite-2"
        assert health(store, "sqlite").pending_hints == 1
        assert health(store, "sqlite-2").pending_hints == 0
        assert store.drain(timeout=10)
        assert store.get_batch(batch_id) is not None
    assert batch_id in batch_ids(b)


def test_hints_follow_their_store_to_a_chosen_name(stores: tuple[str, str, str], tmp_path: Path) -> None:
    a, b, journal = stores
    batch_id = write_while_b_is_missing(a, b, journal)
    (tmp_path / "volume").mkdir()
    with fallthrough.connect(primary=b, fallback=a, journal=journal) as store:
        assert [(entry.name, entry.pending_hints) for entry in store.health()] == [("primary", 1), ("fallback", 0)]
        assert store.drain(timeout=10)
    assert batch_id in batch_ids(b)


def test_hints_of_a_store_this_store_does_not_have_stay_for_a_later_one(
    stores: tuple[str, str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, journal = stores
    batch_id = write_while_b_is_missing(a, b, journal)
    (tmp_path / "volume").mkdir()
    c = f"sqlite:///{tmp_path}/c.db"
    with caplog.at_level(logging.WARNING, "fallthrough"), fallthrough.connect(a, journal=journal) as store:
        assert health(store, "sqlite").pending_hints == 0
    assert "a URL this Store does not have; they stay under that name" in caplog.text
    with fallthrough.connect(a, c, b, journal=journal) as store:  # b is back, as "sqlite-3"
        assert health(store, "sqlite-3").pending_hints == 1
        assert store.drain(timeout=10)
    assert batch_id in batch_ids(b)
    assert batch_id not in batch_ids(c)


def test_a_name_whose_url_changed_gets_the_hints_and_a_repair_mark(
    stores: tuple[str, str, str], tmp_path: Path
) -> None:
    """It may be the same store at a new address, or another one: replaying is harmless, reading it is not."""
    a, b, journal = stores
    batch_id = write_while_b_is_missing(a, b, journal)
    moved = f"sqlite:///{tmp_path}/moved-b.db"
    with fallthrough.connect(a, moved, journal=journal) as store:
        entry = health(store, "sqlite-2")
        assert (entry.pending_hints, entry.needs_repair, entry.serves_reads) == (1, True, False)
        store.repair()
        assert health(store, "sqlite-2").serves_reads
    assert batch_id in batch_ids(moved)


def test_two_stores_swapping_names_each_keep_their_own_hints(registry: fallthrough.Registry, tmp_path: Path) -> None:
    """a and b each miss a write (c, always up, decides them), then trade names."""
    c, a, b = (gated(f"sqlite:///{tmp_path}/{name}.db") for name in "cab")
    journal = f"sqlite:///{tmp_path}/hints.db"
    breaker = fallthrough.BreakerPolicy(failure_threshold=1, cooldown=3600)  # no replay before the close
    with fallthrough.connect(c, a, b, registry=registry, journal=journal, breaker=breaker) as store:
        gate(store, "flaky-2").outage = True
        missed_by_a = store.create_batch(["x"]).id
        gate(store, "flaky-2").outage = False
        gate(store, "flaky-3").outage = True
        missed_by_b = store.create_batch(["y"]).id
        gate(store, "flaky-3").outage = False
        assert [entry.pending_hints for entry in store.health()] == [0, 2, 1]  # a is behind: it queues b's write too
        store.close(timeout=0)
    with fallthrough.connect(c, b, a, registry=registry, journal=journal) as store:
        assert [entry.pending_hints for entry in store.health()] == [0, 1, 2]
        assert store.drain(timeout=10)
        for name in ("flaky-2", "flaky-3"):
            for batch_id in (missed_by_a, missed_by_b):
                assert gate(store, name).inner.fallthrough_get_batch(batch_id) is not None, (name, batch_id)


def test_a_journal_written_before_identities_were_kept_is_read_by_name(
    stores: tuple[str, str, str], tmp_path: Path
) -> None:
    a, b, journal = stores
    batch_id = write_while_b_is_missing(a, b, journal)
    kept = SqliteJournal(tmp_path / "hints.db")
    kept._db.execute("DELETE FROM backends")  # as a journal file from before
    kept.close()
    (tmp_path / "volume").mkdir()
    with fallthrough.connect(a, b, journal=journal) as store:
        assert health(store, "sqlite-2").pending_hints == 1
        assert store.drain(timeout=10)
    assert batch_id in batch_ids(b)


def test_a_url_given_twice_names_no_one_store_and_its_hints_stay_by_name(
    registry: fallthrough.Registry, tmp_path: Path
) -> None:
    same = gated("sqlite://")  # two stores in memory: one URL, two stores
    journal = f"sqlite:///{tmp_path}/hints.db"
    breaker = fallthrough.BreakerPolicy(failure_threshold=1, cooldown=3600)
    with fallthrough.connect(same, same, registry=registry, journal=journal, breaker=breaker) as store:
        gate(store, "flaky").outage = True
        store.create_batch(["x"])
        store.close(timeout=0)
    with fallthrough.connect(same, same, registry=registry, journal=journal, breaker=breaker) as store:
        assert [entry.pending_hints for entry in store.health()] == [1, 0]


@pytest.mark.parametrize("named", [False, True])
def test_a_store_whose_url_gained_an_option_is_marked_for_repair_wherever_it_moved(
    stores: tuple[str, str, str], tmp_path: Path, named: bool
) -> None:
    """b's URL is new to the journal (an option added) and it moved: it must not serve reads without its hints."""
    a, b, journal = stores
    batch_id = write_while_b_is_missing(a, b, journal)
    (tmp_path / "volume").mkdir()
    b_now = b + "?timeout=10"
    opened = (
        fallthrough.connect(primary=b_now, fallback=a, journal=journal)
        if named
        else fallthrough.connect(b_now, a, journal=journal)
    )
    with opened as store:
        b_name = store.backend_names[0]
        assert health(store, b_name).needs_repair and not health(store, b_name).serves_reads
        store.repair()
        assert store.get_batch(batch_id) is not None
    assert batch_id in batch_ids(b)


def test_the_repair_mark_of_a_changed_url_is_in_the_file_for_the_next_start(
    stores: tuple[str, str, str], tmp_path: Path
) -> None:
    """The new URLs are saved, so the next start sees no change: only the saved mark keeps the store from reads."""
    a, b, journal = stores
    write_while_b_is_missing(a, b, journal)
    moved = f"sqlite:///{tmp_path}/moved-b.db"
    with fallthrough.connect(a, moved, journal=journal):
        pass
    kept = SqliteJournal(tmp_path / "hints.db")
    try:
        assert kept.needs_repair("sqlite-2")
    finally:
        kept.close()


def test_a_store_given_another_url_for_one_run_needs_a_repair_when_it_comes_back(
    stores: tuple[str, str, str], tmp_path: Path
) -> None:
    """b misses a write; c stands in its name for one run and takes b's hints; b's own copy was never written.

    The journal used to forget b when c's URL replaced it under the name: back in the next run, b served
    reads without the write, with no hint and no mark.
    """
    a, b, journal = stores
    batch_id = write_while_b_is_missing(a, b, journal)
    c = f"sqlite:///{tmp_path}/c.db"
    with fallthrough.connect(a, c, journal=journal) as store:
        assert store.drain(timeout=10)
        store.repair()
        assert health(store, "sqlite-2").serves_reads
    (tmp_path / "volume").mkdir()
    with fallthrough.connect(a, b, journal=journal) as store:
        entry = health(store, "sqlite-2")
        assert (entry.needs_repair, entry.serves_reads) == (True, False)
        store.repair()
        assert health(store, "sqlite-2").serves_reads
    assert batch_id in batch_ids(b)


def test_a_store_left_out_of_a_run_needs_a_repair_when_it_comes_back(
    stores: tuple[str, str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No hint records what b missed while a Store over the same journal ran without it."""
    a, b, journal = stores
    known_to_the_journal(stores, tmp_path)
    made_without_b = made_by_one(a, journal, "without b")
    with caplog.at_level(logging.WARNING, "fallthrough"), fallthrough.connect(a, b, journal=journal) as store:
        assert health(store, "sqlite-2").needs_repair
        store.repair()
    assert "an earlier Store over this journal left its URL out" in caplog.text
    assert made_without_b in batch_ids(b)
    with fallthrough.connect(a, b, journal=journal) as store:  # repaired: the mark does not come back
        assert not health(store, "sqlite-2").needs_repair


def test_a_journal_damaged_in_its_middle_is_a_journal_error(tmp_path: Path) -> None:
    """The damage was found by the first read after the file opened: a bare sqlite3.DatabaseError escaped."""
    path = tmp_path / "hints.db"
    journal = SqliteJournal(path)
    for index in range(2000):
        journal.record("b", "fallthrough_delete_batch", {"batch_id": uuid.UUID(int=index)}, "records")
    journal.close()
    data = bytearray(path.read_bytes())
    page = 4096  # SQLite's default page size: one whole page of the hints' table, flipped
    middle = len(data) // 2 // page * page
    data[middle : middle + page] = bytes(byte ^ 0xFF for byte in data[middle : middle + page])
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=r"cannot open the journal .*hints\.db"):
        SqliteJournal(path)


def test_a_run_that_only_reads_leaves_no_store_out(stores: tuple[str, str, str], tmp_path: Path) -> None:
    """An operator's one-off command over the same journal with fewer URLs took b out of reads until a repair."""
    a, b, journal = stores
    batch_id = known_to_the_journal(stores, tmp_path, "x")
    with fallthrough.connect(a, journal=journal) as store:
        assert store.get_batch(batch_id) is not None
        assert [listed.batch.id for listed in store.batches()] == [batch_id]
    with fallthrough.connect(a, b, journal=journal) as store:
        entry = health(store, "sqlite-2")
        assert (entry.needs_repair, entry.serves_reads) == (False, True)


def test_a_store_alone_after_being_left_out_serves_and_is_marked_once_others_are_back(
    stores: tuple[str, str, str], tmp_path: Path
) -> None:
    """Alone, a store has none to be repaired from: a mark there refused every call, and a repair cleared it idly."""
    a, b, journal = stores
    known_to_the_journal(stores, tmp_path)
    made_without_a = made_by_one(b, journal, "without a")
    with fallthrough.connect(a, journal=journal) as store:
        made_without_b = store.create_batch(["without b"]).id
        assert store.get_batch(made_without_b) is not None
        assert not health(store, "sqlite").needs_repair
    with fallthrough.connect(a, b, journal=journal) as store:
        assert [(entry.needs_repair, entry.serves_reads) for entry in store.health()] == [(True, False)] * 2
        store.repair()
        assert all(entry.serves_reads for entry in store.health())
    assert {made_without_a, made_without_b} <= batch_ids(a) & batch_ids(b)
