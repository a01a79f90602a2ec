"""The journal of missed writes: hinted handoff.

When a write reaches some backends but not another (it was down, its
breaker was open, or the write concern let the call return before it was
sent), the router records a :class:`Hint` for that backend: the exact hook
call it missed, stamped and pinned as the other stores received it. Hints
are replayed in the order they were recorded, so a batch's creation always
comes before the updates that name it, and are removed only once the
backend has applied them. While a backend has hints it serves no reads (see
:mod:`fallthrough.router`).

Two journals ship: :class:`MemoryJournal` (the default) and
:class:`SqliteJournal`, a local file that survives a restart of the
application process. :func:`open_journal` picks one from ``connect(...,
journal=...)``.

A journal is bounded, like Cassandra's ``max_hint_window``: past
``max_hints`` hints or ``max_age`` seconds for one backend, its hints are
dropped and it is marked as needing a repair (``Store.repair``), instead of
growing without limit. The mark survives a restart in a durable journal.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
from sqlalchemy.engine import URL

from . import hint_codec
from .errors import InvalidInput, JournalError
from .urls import mask_url, parse_url, without_option_values

logger = logging.getLogger("fallthrough")

DEFAULT_MAX_HINTS = 1_000_000

KEPT_FOR_REPAIR = ("fallthrough_delete_batch", "fallthrough_delete_records")
"""The hints a journal keeps when its bound drops the rest: deletions, which a repair could not infer.

A repair copies every batch and record any store holds, so it would bring
back a batch deleted, or the records a failed streamed create took back,
on the backend that missed the deletion. Both are conditional (a batch that
is gone, a key only at the ``seq`` the failed call gave it), so replaying
them before the repair reads the backend is safe.
"""
DEFAULT_MAX_AGE = 3 * 3600.0


@attrs.frozen
class Hint:
    """A write one backend missed: the hook call to replay there.

    :ivar operation: the hook name, for example ``"fallthrough_update_records"``.
    :ivar arguments: its keyword arguments, stamped and pinned by the core.
    :ivar capability: what the backend needs to take it (``records`` or
        ``documents``); a backend that turns out not to have it drops the hint.
    :ivar recorded_at: wall-clock seconds when the hint was recorded; the age bound reads it.
    """

    operation: str
    arguments: Mapping[str, Any]
    capability: str
    recorded_at: float


def _positive(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInput(f"{attribute.name} must be a positive number, got {value!r}")


@attrs.frozen
class JournalPolicy:
    """How much a journal keeps for one backend before it gives up and asks for a repair.

    :param max_hints: hints kept per backend.
    :param max_age: seconds the oldest hint of a backend may wait (Cassandra's
        ``max_hint_window`` is 3 hours, the default here too).
    :param clock: wall-clock seconds; tests pass a fake one.
    """

    max_hints: int = attrs.field(default=DEFAULT_MAX_HINTS, validator=_positive)
    max_age: float = attrs.field(default=DEFAULT_MAX_AGE, validator=_positive)
    clock: Callable[[], float] = attrs.field(default=time.time, eq=False, repr=False)


class Journal:
    """Hints per backend, in order, with the bound and the repair mark. Thread-safe.

    Subclasses store the hints (:meth:`_append`, :meth:`_peek`,
    :meth:`_remove_through`, :meth:`_drop_all_but`) and the repair marks; this class
    keeps the counts in memory, so that the router's "does it serve reads?"
    check on every call costs no I/O.
    """

    durable = False
    """Whether hints survive the process (and so ``close`` may leave some behind)."""

    def __init__(self, policy: JournalPolicy | None = None) -> None:
        self.policy = policy or JournalPolicy()
        self._lock = threading.RLock()
        self._counts: dict[str, int] = {}
        self._oldest: dict[str, float] = {}
        self._repair: dict[str, int] = {}  # backend -> generation of its mark; present while a repair is needed
        self._generation = 0
        # Deletions the storage could not take (a full disk): kept here, replayed after the stored hints.
        self._unsaved: dict[str, deque[Hint]] = {}
        # Marks the storage could not take: saved again at the next write it takes, and at close.
        self._unsaved_marks: set[str] = set()

    # -- what the router asks ---------------------------------------------

    def pending(self, backend: str) -> int:
        """How many hints wait for ``backend``."""
        return self._counts.get(backend, 0)

    def lag(self, backend: str) -> float | None:
        """Seconds since the oldest hint of ``backend`` was recorded, or None when it has none."""
        with self._lock:
            oldest = self._oldest.get(backend)
        return None if oldest is None else max(0.0, self.policy.clock() - oldest)

    def needs_repair(self, backend: str) -> bool:
        return backend in self._repair

    def behind(self, backend: str) -> bool:
        """True while ``backend`` has hints to replay or needs a repair: it must serve no reads."""
        return backend in self._counts or backend in self._repair

    def backends_with_hints(self) -> list[str]:
        with self._lock:
            return list(self._counts)

    # -- writing ------------------------------------------------------------

    def record(self, backend: str, operation: str, arguments: Mapping[str, Any], capability: str) -> bool:
        """Keep a hint for ``backend``; False when it was marked for repair instead.

        That is when the bound was reached, and when the journal's storage
        cannot take the hint (a full disk, a file gone): the write then
        reached the other stores, and the mark keeps this backend from
        serving reads without it until a repair.
        """
        with self._lock:
            if self.pending(backend) >= self.policy.max_hints or self._too_old(backend):
                self._give_up(backend, f"more than {self.policy.max_hints} hints or older than {self.policy.max_age} s")
                if operation not in KEPT_FOR_REPAIR:
                    return False
                # A deletion past the bound is kept like those before it: a repair could not infer it.
            hint = Hint(operation, dict(arguments), capability, self.policy.clock())
            try:
                self._append(backend, hint)
            except Exception as error:  # the storage's own error: sqlite3's, an OSError
                why = f"a missed {operation} could not be journaled ({type(error).__name__}: {error})"
                self.mark_needs_repair(backend, why, drop_hints=False)
                if operation not in KEPT_FOR_REPAIR:
                    return False
                # A repair would undo a deletion it never saw: this one waits in memory, and is
                # replayed before the repair reads the backend (a restart loses it).
                logger.error("backend %s: %s; the deletion is kept in memory until it is replayed", backend, why)
                self._unsaved.setdefault(backend, deque()).append(hint)
            else:
                if self._unsaved_marks:
                    self._save_unsaved_marks()
            self._counts[backend] = self._counts.get(backend, 0) + 1
            self._oldest.setdefault(backend, hint.recorded_at)
            return True

    def peek(self, backend: str, limit: int) -> list[tuple[int, Hint]]:
        """The oldest ``limit`` hints of ``backend`` with their ids, oldest first; they stay until removed."""
        with self._lock:
            if self._too_old(backend) and backend not in self._repair:
                # What is left after giving up (deletions) is replayed, however old.
                self._give_up(backend, f"its oldest hint is older than {self.policy.max_age} s")
            if backend not in self._counts:
                return []
            stored = self._read_back(backend, limit)
            if stored or backend not in self._unsaved:
                return stored
            # Ids below 0 name the deletions kept in memory, oldest first; remove_through knows them.
            return [(-(index + 1), hint) for index, hint in enumerate(list(self._unsaved[backend])[:limit])]

    def remove_through(self, backend: str, hint_id: int) -> None:
        """Drop the hints of ``backend`` up to ``hint_id``: they were applied.

        What is subtracted is what storage actually removed: the bound may
        have dropped the replayed page while it was being applied, and hints
        recorded since then must stay counted.
        """
        with self._lock:
            if backend not in self._counts:
                return
            if hint_id < 0:
                unsaved = self._unsaved[backend]
                removed = min(-hint_id, len(unsaved))
                for _ in range(removed):
                    unsaved.popleft()
                if not unsaved:
                    del self._unsaved[backend]
            else:
                try:
                    removed = self._remove_through(backend, hint_id)
                except JournalError as error:
                    # Applied, and still stored: replayed again, they would be taken for a refusal.
                    self.mark_needs_repair(backend, f"its replayed hints cannot be removed ({error})", drop_hints=False)
                    raise
                if self._unsaved_marks:
                    self._save_unsaved_marks()  # the storage took a write: there may be room again
            left = self._counts[backend] - removed
            if left <= 0:
                del self._counts[backend]
                self._oldest.pop(backend, None)
            else:
                self._counts[backend] = left
                following = self._read_back(backend, 1)
                if following:
                    self._oldest[backend] = following[0][1].recorded_at
                elif backend in self._unsaved:
                    self._oldest[backend] = self._unsaved[backend][0].recorded_at

    def _read_back(self, backend: str, limit: int) -> list[tuple[int, Hint]]:
        """:meth:`_peek`; storage that cannot be read marks ``backend``: what it missed is unknown."""
        try:
            return self._peek(backend, limit)
        except JournalError as error:
            self.mark_needs_repair(backend, f"its hints cannot be read back ({error})", drop_hints=False)
            raise

    def mark_needs_repair(self, backend: str, reason: str, *, drop_hints: bool) -> None:
        """Mark ``backend`` as needing a repair; with ``drop_hints`` its hints go too (the repair covers them).

        Deletions stay (:data:`KEPT_FOR_REPAIR`): a repair copies every batch
        and record any store holds, so it would bring back what they deleted.
        They are replayed before the repair reads the backend.
        """
        with self._lock:
            if backend not in self._repair:
                logger.warning("backend %s needs a repair: %s", backend, reason)
            self._generation += 1
            self._repair[backend] = self._generation
            try:
                self._save_repair_mark(backend, self._generation)
                self._unsaved_marks.discard(backend)
            except Exception as error:  # kept in memory: this process still serves no reads from it
                self._unsaved_marks.add(backend)
                logger.error(
                    "the repair mark of backend %s could not be saved: %s: %s", backend, type(error).__name__, error
                )
            if drop_hints and backend in self._counts:
                try:
                    left = self._drop_all_but(backend, KEPT_FOR_REPAIR) + len(self._unsaved.get(backend, ()))
                except Exception as error:  # a full disk: the hints stay where they are, and are replayed
                    logger.error(
                        "the hints of backend %s could not be dropped: %s: %s", backend, type(error).__name__, error
                    )
                    return
                if left:
                    self._counts[backend] = left
                    try:
                        first = self._peek(backend, 1)
                    except JournalError:
                        return  # marked already; the deletions left keep the age they had
                    self._oldest[backend] = (first[0][1] if first else self._unsaved[backend][0]).recorded_at
                else:
                    del self._counts[backend]
                    self._oldest.pop(backend, None)

    def repair_generation(self, backend: str) -> int | None:
        """The mark a repair starts from; :meth:`clear_repair` takes it back only if no newer mark came."""
        return self._repair.get(backend)

    def clear_repair(self, backend: str, generation: int | None) -> None:
        with self._lock:
            if generation is not None and self._repair.get(backend) == generation:
                del self._repair[backend]
                self._save_repair_mark(backend, None)
                self._unsaved_marks.discard(backend)

    def _save_unsaved_marks(self) -> list[str]:
        """Save again the marks the storage could not take; returns the backends whose mark it still cannot."""
        with self._lock:
            for backend in sorted(self._unsaved_marks):
                generation = self._repair.get(backend)
                try:
                    if generation is not None:
                        self._save_repair_mark(backend, generation)
                except Exception:  # still full: logged when the mark was made, and at close
                    continue
                self._unsaved_marks.discard(backend)
            return sorted(self._unsaved_marks)

    def bind(self, identities: Mapping[str, str]) -> None:
        """Learn which store each backend name stands for: ``identities`` maps names to masked URLs.

        A journal in memory lives and dies with one Store, whose names never
        change. A durable one (:class:`SqliteJournal`) matches what an earlier
        process left to the stores it was left for, by URL, not by name.
        """

    def writing(self) -> None:
        """A write is about to be applied: what this Store leaves out now misses it (see :meth:`bind`).

        Called before every write, so it must cost nothing once done; a
        journal in memory has nothing to keep.
        """

    def close(self) -> None:
        """Release the journal's file, if any. Hints of a durable journal stay for the next process."""

    # -- storage, for subclasses --------------------------------------------

    def _append(self, backend: str, hint: Hint) -> None:
        raise NotImplementedError

    def _peek(self, backend: str, limit: int) -> list[tuple[int, Hint]]:
        raise NotImplementedError

    def _remove_through(self, backend: str, hint_id: int) -> int:
        """Remove the hints of ``backend`` with an id up to ``hint_id``; returns how many there were."""
        raise NotImplementedError

    def _drop_all_but(self, backend: str, kept: tuple[str, ...]) -> int:
        """Drop ``backend``'s hints except those of the operations ``kept``; return how many are left."""
        raise NotImplementedError

    def _save_repair_mark(self, backend: str, generation: int | None) -> None:
        """Persist a repair mark (None: cleared). The memory journal keeps nothing beyond ``_repair``."""

    # -- the bound -------------------------------------------------------------

    def _too_old(self, backend: str) -> bool:
        oldest = self._oldest.get(backend)
        return oldest is not None and self.policy.clock() - oldest > self.policy.max_age

    def _give_up(self, backend: str, why: str) -> None:
        self.mark_needs_repair(backend, f"its journal is full ({why}); its hints were dropped", drop_hints=True)


class MemoryJournal(Journal):
    """Hints in this process's memory: lost when it exits (use :class:`SqliteJournal` to keep them)."""

    def __init__(self, policy: JournalPolicy | None = None) -> None:
        super().__init__(policy)
        self._hints: dict[str, deque[tuple[int, Hint]]] = {}
        self._next_id = 0

    def _append(self, backend: str, hint: Hint) -> None:
        self._next_id += 1
        detached = attrs.evolve(hint, arguments=_detached(hint.arguments))
        self._hints.setdefault(backend, deque()).append((self._next_id, detached))

    def _peek(self, backend: str, limit: int) -> list[tuple[int, Hint]]:
        queue = self._hints.get(backend, deque())
        return [queue[index] for index in range(min(limit, len(queue)))]

    def _remove_through(self, backend: str, hint_id: int) -> int:
        queue = self._hints.get(backend, deque())
        removed = 0
        while queue and queue[0][0] <= hint_id:
            queue.popleft()
            removed += 1
        return removed

    def _drop_all_but(self, backend: str, kept: tuple[str, ...]) -> int:
        queue = deque(entry for entry in self._hints.pop(backend, deque()) if entry[1].operation in kept)
        if queue:
            self._hints[backend] = queue
        return len(queue)


def _detached(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments with their own copy of every mutable JSON value.

    A caller may change a result dict or a document's metadata after the
    call returned; the replay must send what was written, as the durable
    journal (which encodes at once) does. Immutable values are shared, so a
    hint of plain statuses costs no copy.
    """
    detached: dict[str, Any] = {}
    for name, value in arguments.items():
        if name == "updates":
            detached[name] = tuple(
                attrs.evolve(update, result=_copy_json(update.result))
                if isinstance(update.result, dict | list)
                else update
                for update in value
            )
        elif name == "records":
            detached[name] = tuple(
                attrs.evolve(record, result=_copy_json(record.result))
                if isinstance(record.result, dict | list)
                else record
                for record in value
            )
        elif name == "documents":
            detached[name] = tuple(attrs.evolve(document, metadata=_copy_json(document.metadata)) for document in value)
        else:
            detached[name] = _copy_json(value)
    return detached


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS hints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        backend TEXT NOT NULL,
        operation TEXT NOT NULL,
        capability TEXT NOT NULL,
        arguments TEXT NOT NULL,
        recorded_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS hints_by_backend ON hints (backend, id)",
    "CREATE TABLE IF NOT EXISTS repair_marks (backend TEXT PRIMARY KEY, generation INTEGER NOT NULL)",
    # Which store each name stood for (its masked URL): names come from the
    # order of connect's URLs, and that order may change between processes.
    "CREATE TABLE IF NOT EXISTS backends (backend TEXT PRIMARY KEY, identity TEXT NOT NULL)",
    # Stores (masked URLs) an earlier process's Store left out: back in a list, they missed its writes.
    "CREATE TABLE IF NOT EXISTS departed (identity TEXT PRIMARY KEY)",
)


class SqliteJournal(Journal):
    """Hints in a local SQLite file, kept across restarts of the application process.

    The file is held with an exclusive lock while the Store is open: one
    process replays one journal. A second process opening the same file gets
    :class:`JournalError`. Commits are WAL with ``synchronous=NORMAL``: a hint
    survives the process crashing, not the machine losing power.
    """

    durable = True

    def __init__(self, path: str | Path, policy: JournalPolicy | None = None) -> None:
        super().__init__(policy)
        self.path = Path(path)
        self._departing: list[str] = []  # what bind found left out, kept as departed at the first write
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=0.5)
        except sqlite3.Error as error:  # a directory that is not there, a path that is one
            raise JournalError(f"cannot open the journal {self.path}: {error}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("BEGIN IMMEDIATE")  # takes the exclusive lock now, not at the first write
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute("COMMIT")
            # Inside the try: a file damaged past its first pages is found here, by the reads.
            self._load()
        except sqlite3.Error as error:
            self._db.close()
            raise JournalError(f"cannot open the journal {self.path}: {error}") from None

    def bind(self, identities: Mapping[str, str]) -> None:
        """Move an earlier process's hints and repair marks to the names their stores have now.

        Names are positional (``sqlite``, ``sqlite-2``) or chosen, and may
        change between processes while the URLs stay: hints recorded under
        a name follow the store whose masked URL that name had. When hints or
        a mark were recorded for a URL no backend of this Store has (the
        store is gone from the list, or its URL changed: a new option, a new
        host), they stay under their name, and every backend whose URL the
        journal has never seen gets a repair mark: it may be that store, and
        must not serve reads without what it missed. A backend whose URL an
        earlier Store over this journal left out (given another URL under
        its name, or not given at all) gets a repair mark too, once that
        Store wrote (or when the journal held hints or a mark for it): it
        missed writes no hint of its own records. Only in a Store of two backends or more: alone, it has no
        store to be repaired from, and the mark waits for the next Store
        that has others. A URL given to two backends names neither; hints
        recorded before URLs were kept stay by name. The renames, the URLs
        and the marks are one transaction.
        """
        with self._lock:
            rows = self._db.execute("SELECT backend, identity FROM backends").fetchall()
            # A URL given twice (two "sqlite://" in memory) names no one store: those stay by name.
            current = Counter(identities.values())
            earlier = Counter(identity for _, identity in rows)
            by_identity = {identity: name for name, identity in identities.items() if current[identity] == 1}
            held = set(self._counts) | set(self._repair)
            renames: dict[str, str] = {}
            unmatched: dict[str, str] = {}
            for old_name, identity in rows:
                if earlier[identity] != 1:
                    continue
                new_name = by_identity.get(identity)
                if new_name is None:
                    if old_name in held:
                        unmatched[old_name] = identity
                elif new_name != old_name:
                    renames[old_name] = new_name
            unseen = [name for name, identity in identities.items() if identity not in earlier] if unmatched else []
            unique = {name: identity for name, identity in identities.items() if current[identity] == 1}
            departed = {identity for (identity,) in self._db.execute("SELECT identity FROM departed")}
            returned = [identity for identity in unique.values() if identity in departed] if len(identities) > 1 else []
            returning = [name for name, identity in unique.items() if identity in returned and name not in unseen]
            # One that left hints or a mark here (unmatched) missed writes already; the others miss this
            # Store's writes, so they are kept as departed at its first write (writing()).
            owing = list(unmatched.values())
            self._departing = [identity for identity in earlier if identity not in current and identity not in owing]
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # Through names no backend has, so that two stores can swap names.
                staging = uuid.uuid4().hex
                staged = {old_name: f"{staging} {old_name}" for old_name in renames}
                for old_name, staging_name in staged.items():
                    self._rename(old_name, staging_name)
                for old_name, new_name in renames.items():
                    self._rename(staged[old_name], new_name)
                self._db.executemany(
                    "INSERT INTO backends (backend, identity) VALUES (?, ?) "
                    "ON CONFLICT (backend) DO UPDATE SET identity = excluded.identity",
                    identities.items(),
                )
                self._db.executemany("DELETE FROM departed WHERE identity = ?", [(i,) for i in returned])
                self._db.executemany("INSERT OR IGNORE INTO departed (identity) VALUES (?)", [(i,) for i in owing])
                for offset, name in enumerate(unseen + returning, start=1):
                    self._save_repair_mark(name, self._generation + offset)
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                self._db.execute("ROLLBACK")
                raise JournalError(f"cannot match the journal {self.path} to this Store's backends: {error}") from None
            if renames or unseen or returning:
                self._counts.clear()
                self._oldest.clear()
                self._repair.clear()
                self._load()
        if renames:
            logger.warning(
                "the journal's hints follow their stores to new names: %s",
                ", ".join(f"{old} -> {new}" for old, new in renames.items()),
            )
        for old_name, identity in unmatched.items():
            logger.warning(
                "the journal holds writes missed by %s (then named %s), a URL this Store does not have; "
                "they stay under that name",
                without_option_values(identity),
                old_name,
            )
        for name in unseen:
            logger.warning("backend %s needs a repair: it may be the store that missed those writes", name)
        for name in returning:
            logger.warning(
                "backend %s needs a repair: an earlier Store over this journal left its URL out, and it missed "
                "that Store's writes",
                name,
            )

    def writing(self) -> None:
        # Kept at the first write, not at bind: a Store that only reads (an operator's one-off command
        # with fewer URLs) leaves no store behind.
        if not self._departing:
            return
        with self._lock:
            departing, self._departing = self._departing, []
            try:
                self._db.executemany("INSERT OR IGNORE INTO departed (identity) VALUES (?)", [(i,) for i in departing])
            except sqlite3.Error as error:
                logger.error(
                    "the journal %s cannot keep that this Store leaves out %s (%s); when they are back, "
                    "run Store.repair()",
                    self.path,
                    ", ".join(map(without_option_values, departing)),
                    error,
                )

    def _rename(self, old_name: str, new_name: str) -> None:
        """Give ``old_name``'s hints, repair mark and identity to ``new_name``, merged with what it had."""
        self._db.execute("UPDATE hints SET backend = ? WHERE backend = ?", (new_name, old_name))
        self._db.execute(
            "INSERT INTO repair_marks (backend, generation) SELECT ?, generation FROM repair_marks WHERE backend = ? "
            "ON CONFLICT (backend) DO UPDATE SET generation = max(generation, excluded.generation)",
            (new_name, old_name),
        )
        self._db.execute("DELETE FROM repair_marks WHERE backend = ?", (old_name,))
        self._db.execute("DELETE FROM backends WHERE backend = ?", (new_name,))
        self._db.execute("UPDATE backends SET backend = ? WHERE backend = ?", (new_name, old_name))

    def _load(self) -> None:
        rows = self._db.execute("SELECT backend, count(*), min(recorded_at) FROM hints GROUP BY backend").fetchall()
        for backend, count, oldest in rows:
            self._counts[backend] = count
            self._oldest[backend] = oldest
        for backend, generation in self._db.execute("SELECT backend, generation FROM repair_marks"):
            self._repair[backend] = generation
            self._generation = max(self._generation, generation)

    def _append(self, backend: str, hint: Hint) -> None:
        text = hint_codec.encode(hint.operation, hint.arguments)
        self._db.execute(
            "INSERT INTO hints (backend, operation, capability, arguments, recorded_at) VALUES (?, ?, ?, ?, ?)",
            (backend, hint.operation, hint.capability, text, hint.recorded_at),
        )

    def _peek(self, backend: str, limit: int) -> list[tuple[int, Hint]]:
        try:
            return self._read_page(backend, limit)
        except sqlite3.Error as error:  # a damaged page, a disk that fails: typed, naming the file
            raise JournalError(f"cannot read the journal {self.path}: {error}") from None

    def _read_page(self, backend: str, limit: int) -> list[tuple[int, Hint]]:
        while True:
            rows = self._db.execute(
                "SELECT id, operation, capability, arguments, recorded_at FROM hints "
                "WHERE backend = ? ORDER BY id LIMIT ?",
                (backend, limit),
            ).fetchall()
            hints: list[tuple[int, Hint]] = []
            for hint_id, operation, capability, text, recorded_at in rows:
                try:
                    arguments = hint_codec.decode(operation, text)
                except Exception as error:  # a torn or foreign row: what it held is unknown
                    if hints:
                        return hints  # the page ends before it, so hints keep their order
                    self._discard(
                        backend, hint_id, f"a journaled {operation} cannot be read back ({type(error).__name__})"
                    )
                    break
                hints.append((hint_id, Hint(operation, arguments, capability, recorded_at)))
            else:
                return hints

    def _discard(self, backend: str, hint_id: int, why: str) -> None:
        """Drop one unreadable hint: the backend may have missed a write, so it needs a repair."""
        self._db.execute("DELETE FROM hints WHERE id = ?", (hint_id,))
        left = self._counts.get(backend, 1) - 1
        if left <= 0:
            self._counts.pop(backend, None)
            self._oldest.pop(backend, None)
        else:
            self._counts[backend] = left
        self.mark_needs_repair(backend, why, drop_hints=False)

    def _remove_through(self, backend: str, hint_id: int) -> int:
        try:
            cursor = self._db.execute("DELETE FROM hints WHERE backend = ? AND id <= ?", (backend, hint_id))
        except sqlite3.Error as error:
            raise JournalError(f"cannot remove replayed hints from the journal {self.path}: {error}") from None
        return cursor.rowcount

    def _drop_all_but(self, backend: str, kept: tuple[str, ...]) -> int:
        marks = ", ".join("?" * len(kept))
        self._db.execute(f"DELETE FROM hints WHERE backend = ? AND operation NOT IN ({marks})", (backend, *kept))
        (left,) = self._db.execute("SELECT count(*) FROM hints WHERE backend = ?", (backend,)).fetchone()
        return int(left)

    def _save_repair_mark(self, backend: str, generation: int | None) -> None:
        if generation is None:
            self._db.execute("DELETE FROM repair_marks WHERE backend = ?", (backend,))
        else:
            self._db.execute(
                "INSERT INTO repair_marks (backend, generation) VALUES (?, ?) "
                "ON CONFLICT (backend) DO UPDATE SET generation = excluded.generation",
                (backend, generation),
            )

    def close(self) -> None:
        with self._lock:
            unsaved = self._save_unsaved_marks()
            if unsaved:
                logger.error(
                    "closing the journal %s without the repair marks of %s, which its storage could not take (a full "
                    "disk?): after a restart those stores would serve reads without the writes they missed; run "
                    "Store.repair() (or `fallthrough repair`) before they serve again",
                    self.path,
                    ", ".join(unsaved),
                )
            for backend, deletions in sorted(self._unsaved.items()):
                # Never written: the file cannot take them in their place among the stored hints, and a
                # repair would copy back what they deleted.
                logger.error(
                    "closing the journal %s without %d deletions that backend %s missed and its storage could not "
                    "take (a full disk?): delete them there again before a repair copies them back: %s",
                    self.path,
                    len(deletions),
                    backend,
                    "; ".join(_described(hint) for hint in deletions),
                )
            self._db.close()


def _described(hint: Hint) -> str:
    """A hint as an operator would name it: the operation and the batch it was for."""
    batch = hint.arguments.get("batch_id")
    return f"{hint.operation} of batch {batch}" if batch is not None else hint.operation


def open_journal(spec: Journal | str | URL | None, policy: JournalPolicy | None = None) -> Journal:
    """The journal ``connect(journal=...)`` asks for.

    None or ``"memory://"``: a :class:`MemoryJournal`. ``"sqlite:///path"``
    (or four slashes for an absolute path): a :class:`SqliteJournal` there.
    A :class:`Journal` instance is used as it is.
    """
    if isinstance(spec, Journal):
        return spec
    if spec is None:
        return MemoryJournal(policy)
    url = parse_url(spec)
    # A journal has no server and no options: a host, credentials or options given are a mistake, not ignored.
    if not (url.host or url.port or url.username or url.password or url.query):
        if url.drivername == "memory" and not url.database:
            return MemoryJournal(policy)
        if url.drivername == "sqlite" and url.database and url.database != ":memory:":
            return SqliteJournal(url.database, policy)
    raise InvalidInput(
        "journal must be 'memory://' or 'sqlite:///path/to/hints.db' (a durable file; no host, credentials or "
        f"options), got {mask_url(url)!r}"
    )


__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_HINTS",
    "Hint",
    "Journal",
    "JournalError",
    "JournalPolicy",
    "MemoryJournal",
    "SqliteJournal",
    "open_journal",
]
