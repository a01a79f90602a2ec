"""A Hypothesis state machine that runs backends beside the reference model.

Each step draws one hook call, the way the core would make it (validated
arguments, stamped seqs and times, at most one update per record), makes it
on :class:`~fallthrough.testing.model.ReferenceBackend` and on every backend
under test, and compares what came back: the value, type for type, or the
error class. Searches are compared with :func:`~fallthrough.testing.compare.assert_search_agrees`.

Use it through :func:`make_state_machine`::

    from hypothesis.stateful import run_state_machine_as_test
    from fallthrough.testing import conformance_settings, make_state_machine

    def test_my_backend_follows_the_model():
        machine = make_state_machine(lambda: MyBackend(make_url("mine://")))
        run_state_machine_as_test(machine, settings=conformance_settings())

or ``TestMyBackend = make_state_machine(factory).TestCase`` for unittest.

The machine never assumes the store is empty: batch ids are fresh random
UUIDs and collection names carry a random prefix per run, so it can run
against a persistent server or file. At teardown it deletes what it wrote
(best effort) and closes the backends it opened.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from ..filters import parse_filter
from ..types import Capabilities, Record, RecordUpdate, SearchQuery, Status
from ..validation import check_vector
from . import strategies
from .compare import assert_same, assert_same_outcome, assert_same_set, assert_search_agrees
from .drivers import HookDriver, Outcome
from .model import ReferenceBackend

BackendFactory = Callable[[], object]
"""Returns a backend plugin object, such as ``lambda: Registry().create(url)``."""

EVERYTHING = 10_000
"""A limit that no run reaches, for reading all of a batch or of a collection's matches."""

# The dimension of most vectors; the odd one out makes a dimension mismatch.
_DIMENSIONS = (3, 3, 3, 2)
_WORKERS = strategies.WORKERS
"""Workers that claim and extend in the random sequences: few, so that they meet on the same records."""
_LEASES = strategies.lease_lengths()
"""Leases as long as the stamps' window, which later steps see end (often at the very microsecond), or longer."""


@attrs.frozen
class SubjectSpec:
    """A backend for the machine to test.

    :param name: how failures name it.
    :param factory: builds the plugin object; called once per run.
    :param capabilities: what to exercise; None means what the backend
        declares when opened.
    :param close: close it at teardown. False when the factory hands out a
        backend that outlives the run (the suite's ``backend`` fixture).
    """

    name: str
    factory: BackendFactory
    capabilities: Capabilities | None = None
    close: bool = True


@attrs.frozen
class _Subject:
    name: str
    driver: HookDriver
    capabilities: Capabilities
    close: bool

    def able(self, capability: str) -> bool:
        return bool(getattr(self.capabilities, capability))


def _describe(arguments: Mapping[str, Any]) -> str:
    text = ", ".join(f"{name}={value!r}" for name, value in arguments.items())
    return text if len(text) <= 400 else text[:400] + "..."


class BackendStateMachine(RuleBasedStateMachine):
    """Random hook sequences on the backends of :attr:`subjects` and on the reference model.

    Subclass it and set :attr:`subjects`, or let :func:`make_state_machine`
    do so. Only what a backend's capabilities cover is called on it; a rule
    runs when at least one backend can take it.
    """

    subjects: ClassVar[tuple[SubjectSpec, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self.reference = HookDriver(ReferenceBackend(), "reference")
        self.reference.open()
        self.running: list[_Subject] = []
        try:
            for spec in self.subjects:
                driver = HookDriver(spec.factory(), spec.name)
                declared = driver.open()
                self.running.append(_Subject(spec.name, driver, spec.capabilities or declared, spec.close))
        except BaseException:
            self._close_all()
            raise
        if not (self.can("records") or self.can("documents")):
            self._close_all()
            raise ValueError("no backend declares records or documents: there is nothing to test")
        prefix = f"ft{uuid.uuid4().hex[:12]}"
        self.batch_ids: list[uuid.UUID] = []
        self.collections = (f"{prefix}-0", f"{prefix}-1")
        self.unknown_collection = f"{prefix}-never-written"
        self.dimensions: dict[str, int] = {}
        self.written_ids: dict[str, set[str]] = {name: set() for name in self.collections}
        self.update_calls: list[tuple[tuple[RecordUpdate, ...], datetime]] = []
        self.latest_version = strategies.BASE_SEQ
        self.document_calls: list[tuple[str, dict[str, Any]]] = []

    # -- plumbing ----------------------------------------------------------

    def can(self, capability: str) -> bool:
        return any(subject.able(capability) for subject in self.running)

    def all_can_claim(self) -> bool:
        return all(subject.able("claims") for subject in self.running if subject.able("records"))

    def compare(self, hook: str, capability: str | None, **arguments: Any) -> Outcome:
        """Call ``hook`` on the reference and on every backend with ``capability``; all must agree.

        Returns the reference's outcome. ``capability=None`` calls every backend.
        """
        expected = self.reference.outcome(hook, **arguments)
        for subject in self.running:
            if capability is None or subject.able(capability):
                actual = subject.driver.outcome(hook, **arguments)
                assert_same_outcome(actual, expected, f"{subject.name}: {hook}({_describe(arguments)})")
        return expected

    def next_version(self) -> int:
        """A document version newer than every one sent so far, as the core's stamper makes them."""
        self.latest_version += 1
        return self.latest_version

    def draw_version(self, data: st.DataObject) -> int:
        """A new version usually; one time in three an older or equal one, as a late replay or another process sends."""
        if self.latest_version > strategies.BASE_SEQ and data.draw(st.integers(0, 2), label="older version (0)") == 0:
            # Near the latest, so that a write often meets an entry of its very version.
            lowest = max(strategies.BASE_SEQ + 1, self.latest_version - 4)
            return data.draw(st.integers(lowest, self.latest_version), label="older version")
        return self.next_version()

    def new_batch_id(self) -> uuid.UUID:
        # Random, not drawn: a replayed example must not meet its own batches
        # from an earlier run in a persistent store.
        batch_id = uuid.uuid4()
        self.batch_ids.append(batch_id)
        return batch_id

    def draw_batch_id(self, data: st.DataObject) -> uuid.UUID:
        """A batch this run made (maybe deleted since), or one that never existed."""
        if not self.batch_ids:
            return self.new_batch_id()
        # Four times in five a known batch; otherwise one that does not exist.
        if data.draw(st.integers(0, 4), label="known batch unless 0") == 0:
            return self.new_batch_id()
        return data.draw(st.sampled_from(self.batch_ids), label="batch")

    def records_of(self, batch_id: uuid.UUID) -> list[Record]:
        """The reference's records of a batch, in order; none when it does not exist."""
        outcome = self.reference.outcome(
            "fallthrough_list_records", batch_id=batch_id, status=None, after=None, limit=EVERYTHING
        )
        return [] if outcome.error is not None else list(outcome.value)

    def draw_keys(self, data: st.DataObject, batch_id: uuid.UUID) -> tuple[str, ...]:
        """New keys, mixed with keys the batch already has."""
        existing = [record.key for record in self.records_of(batch_id)]
        key = st.one_of(strategies.keys(), st.sampled_from(existing)) if existing else strategies.keys()
        return tuple(data.draw(st.lists(key, unique=True, max_size=5), label="keys"))

    def draw_unknown_record(self, data: st.DataObject) -> tuple[uuid.UUID, str]:
        """A (batch, key) that names no record: a new key in a known batch, or an unknown batch."""
        batch_id = self.draw_batch_id(data)
        existing = {record.key for record in self.records_of(batch_id)}
        return batch_id, data.draw(strategies.keys().filter(lambda key: key not in existing), label="unknown key")

    def check_batches(self, batch_ids: Iterable[uuid.UUID]) -> None:
        """Compare every record of these batches, after a write: what it left, or that a refused one left nothing.

        Checking after each write, rather than only in reading rules, catches
        a wrong write in every run: Hypothesis leaves a random part of the
        rules out of each run.
        """
        for batch_id in dict.fromkeys(batch_ids):
            self.compare(
                "fallthrough_list_records", "records", batch_id=batch_id, status=None, after=None, limit=EVERYTHING
            )

    # -- lifecycle ---------------------------------------------------------

    def teardown(self) -> None:
        try:
            for subject in self.running:
                self._clean(subject)
        finally:
            self._close_all()

    def _clean(self, subject: _Subject) -> None:
        # Best effort, for persistent stores: a failure here must not hide
        # the failure the run found, and the rules check these hooks anyway.
        try:
            if subject.able("records"):
                for batch_id in self.batch_ids:
                    subject.driver.call("fallthrough_delete_batch", batch_id=batch_id)
            if subject.able("documents"):
                for collection, ids in self.written_ids.items():
                    if ids:
                        subject.driver.call(
                            "fallthrough_delete_documents",
                            collection=collection,
                            ids=tuple(sorted(ids)),
                            version=self.next_version(),
                        )
        except Exception:
            pass

    def _close_all(self) -> None:
        for subject in self.running:
            if subject.close:
                subject.driver.close()

    @initialize(data=st.data())
    def seed(self, data: st.DataObject) -> None:
        """Start every run with a ping, a batch and documents, so that the rules have something to work on."""
        self.compare("fallthrough_ping", None)
        if self.can("records"):
            self.create_batch(data)
        if self.can("documents"):
            self.upsert_documents(data)

    # -- batches and records -----------------------------------------------

    @precondition(lambda self: self.can("records"))
    @rule(data=st.data())
    def create_batch(self, data: st.DataObject) -> None:
        reuse = bool(self.batch_ids) and data.draw(st.booleans(), label="reuse a batch id")
        batch_id = data.draw(st.sampled_from(self.batch_ids), label="batch") if reuse else self.new_batch_id()
        self.compare(
            "fallthrough_create_batch",
            "records",
            batch_id=batch_id,
            keys=self.draw_keys(data, batch_id),
            first_seq=data.draw(strategies.first_seqs(), label="first_seq"),
            metadata=data.draw(strategies.json_objects(), label="metadata"),
            created_at=data.draw(strategies.timestamps(), label="created_at"),
        )
        self.check_batches([batch_id])

    @precondition(lambda self: self.can("records"))
    @rule(data=st.data())
    def extend_batch(self, data: st.DataObject) -> None:
        """``fallthrough_add_records``, to a known batch or a missing one."""
        batch_id = self.draw_batch_id(data)
        self.compare(
            "fallthrough_add_records",
            "records",
            batch_id=batch_id,
            keys=self.draw_keys(data, batch_id),
            first_seq=data.draw(strategies.first_seqs(), label="first_seq"),
            created_at=data.draw(strategies.timestamps(), label="created_at"),
        )
        self.check_batches([batch_id])

    # Named to sort first: Hypothesis orders rules by name and draws the
    # first one more often than the rest, and the merge is where backends
    # most often go wrong.
    @precondition(lambda self: self.can("records"))
    @rule(data=st.data())
    def apply_updates(self, data: st.DataObject) -> None:
        """``fallthrough_update_records`` on a few records, stale, pinned or not, sometimes naming a missing one."""
        known = [(batch_id, record.key) for batch_id in self.batch_ids for record in self.records_of(batch_id)]
        targets = data.draw(st.lists(st.sampled_from(known), unique=True, max_size=4), label="records") if known else []
        # About one call in five also names a record that does not exist:
        # the whole call must then fail with nothing applied.
        if not targets or data.draw(st.integers(0, 4), label="name an unknown record (0)") == 0:
            targets.append(self.draw_unknown_record(data))
            targets = data.draw(st.permutations(targets), label="order")
        updates = tuple(data.draw(strategies.record_updates(b, k), label="update") for b, k in targets)
        updated_at = data.draw(strategies.timestamps(), label="updated_at")
        self.update_calls.append((updates, updated_at))
        self.compare("fallthrough_update_records", "records", updates=updates, updated_at=updated_at)
        self.check_batches(batch_id for batch_id, _ in targets)

    @precondition(lambda self: self.can("records") and bool(self.update_calls))
    @rule(data=st.data())
    def replay_update_call(self, data: st.DataObject) -> None:
        """Send an earlier call again, stamps and all, as a journal replaying a missed write does."""
        updates, updated_at = data.draw(st.sampled_from(self.update_calls), label="earlier call")
        self.compare("fallthrough_update_records", "records", updates=updates, updated_at=updated_at)
        self.check_batches(update.batch_id for update in updates)

    # Only where every backend with records can claim: one that cannot would fall behind the model.
    @precondition(lambda self: self.can("claims") and self.all_can_claim())
    @rule(data=st.data())
    def claim_records(self, data: st.DataObject) -> None:
        """``fallthrough_claim_records`` at a random time: pending records, and expired leases at attempt + 1."""
        batch_id = self.draw_batch_id(data)
        self.claim(data, batch_id, data.draw(strategies.timestamps(), label="claimed_at"))
        self.check_batches([batch_id])

    @precondition(lambda self: self.can("claims") and self.all_can_claim())
    @rule(data=st.data())
    def extend_leases(self, data: st.DataObject) -> None:
        """``fallthrough_extend_leases`` by some worker, on held, expired, other workers' and missing keys."""
        batch_id = self.draw_batch_id(data)
        self.extend(
            data,
            batch_id,
            self.draw_keys(data, batch_id),
            data.draw(st.sampled_from(_WORKERS), label="worker"),
            data.draw(strategies.timestamps(), label="now"),
        )
        self.check_batches([batch_id])

    @precondition(lambda self: self.can("claims") and self.all_can_claim())
    @rule(data=st.data())
    def claim_at_the_end_of_a_lease(self, data: st.DataObject) -> None:
        """A claim; then, a microsecond before, at or after one of its leases' end, an extension and a claim.

        The extension is by the lease's holder. A lease has ended *at* its
        end: a rule backends get wrong (``<`` for ``<=``), which random stamps
        rarely meet.
        """
        batch_id = self.draw_batch_id(data)
        claimed = self.claim(data, batch_id, data.draw(strategies.timestamps(), label="claimed_at"))
        if claimed.error is None and claimed.value:
            held = data.draw(st.sampled_from(claimed.value), label="held record")
            then = held.lease_expires + timedelta(microseconds=data.draw(st.integers(-1, 1), label="from its end (us)"))
            if data.draw(st.booleans(), label="holder extends"):
                self.extend(data, batch_id, (held.key,), held.lease_owner, then)
            self.claim(data, batch_id, then)
        self.check_batches([batch_id])

    @precondition(lambda self: self.can("claims") and self.all_can_claim())
    @rule(data=st.data())
    def claim_after_a_lease_is_shortened(self, data: st.DataObject) -> None:
        """A claim, a second one passing over its records, the holder shortening a lease, a claim at the new end.

        A backend that remembers where claims may start again (the earliest
        lease end it passed over) must move that when an extension shortens
        a lease: a sequence random stamps rarely make.
        """
        batch_id = self.draw_batch_id(data)
        claimed_at = data.draw(strategies.timestamps(), label="claimed_at")
        first = self.claim(data, batch_id, claimed_at)
        if first.error is None and first.value:
            held = data.draw(st.sampled_from(first.value), label="held record")
            self.claim(data, batch_id, claimed_at + timedelta(microseconds=1))
            now = claimed_at + timedelta(microseconds=2)
            shortened = timedelta(microseconds=data.draw(st.integers(1, 1_000), label="shortened lease (us)"))
            self.compare(
                "fallthrough_extend_leases",
                "claims",
                batch_id=batch_id,
                keys=(held.key,),
                worker=held.lease_owner,
                now=now,
                lease_until=now + shortened,
            )
            self.claim(data, batch_id, now + shortened)
        self.check_batches([batch_id])

    def claim(self, data: st.DataObject, batch_id: uuid.UUID, claimed_at: datetime) -> Outcome:
        return self.compare(
            "fallthrough_claim_records",
            "claims",
            batch_id=batch_id,
            worker=data.draw(st.sampled_from(_WORKERS), label="worker"),
            limit=data.draw(st.integers(1, 4), label="limit"),
            claimed_at=claimed_at,
            lease_until=claimed_at + data.draw(_LEASES, label="lease"),
        )

    def extend(self, data: st.DataObject, batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime) -> None:
        self.compare(
            "fallthrough_extend_leases",
            "claims",
            batch_id=batch_id,
            keys=tuple(keys),
            worker=worker,
            now=now,
            lease_until=now + data.draw(_LEASES, label="lease"),
        )

    @precondition(lambda self: self.can("records"))
    @rule(data=st.data())
    def retry_failed(self, data: st.DataObject) -> None:
        batch_id = self.draw_batch_id(data)
        updated_at = data.draw(strategies.timestamps(), label="updated_at")
        self.compare("fallthrough_retry_failed", "records", batch_id=batch_id, updated_at=updated_at)
        self.check_batches([batch_id])

    @precondition(lambda self: self.can("records"))
    @rule(data=st.data())
    def delete_batch(self, data: st.DataObject) -> None:
        batch_id = self.draw_batch_id(data)
        self.compare("fallthrough_delete_batch", "records", batch_id=batch_id)
        self.check_batches([batch_id])

    @precondition(lambda self: self.can("records"))
    @rule(data=st.data())
    def take_back_records(self, data: st.DataObject) -> None:
        """``fallthrough_delete_records``: keys the batch has, at their own ``seq`` or a near one; a key it lacks."""
        batch_id, missing = self.draw_unknown_record(data)
        seq_of = {record.key: record.seq for record in self.records_of(batch_id)}
        keys: list[str] = []
        if seq_of:
            keys = data.draw(
                st.lists(st.sampled_from(sorted(seq_of)), unique=True, min_size=1, max_size=4), label="keys"
            )
        if not keys or data.draw(st.booleans(), label="and a key it lacks"):
            keys.append(missing)
        seqs = [
            data.draw(strategies.first_seqs(), label="seq")
            if key not in seq_of
            else data.draw(
                st.sampled_from([seq_of[key], seq_of[key] - 1, seq_of[key] + 1]), label="its seq, or a near one"
            )
            for key in keys
        ]
        self.compare("fallthrough_delete_records", "records", batch_id=batch_id, keys=tuple(keys), seqs=tuple(seqs))
        self.compare("fallthrough_progress", "records", batch_id=batch_id)
        self.check_batches([batch_id])

    @precondition(lambda self: self.can("records"))
    @rule(data=st.data())
    def repair_batch(self, data: st.DataObject) -> None:
        """``fallthrough_repair_batch`` on a known batch (overwriting its header) or a new one (creating it empty)."""
        batch_id = self.draw_batch_id(data)
        self.compare(
            "fallthrough_repair_batch",
            "records",
            batch_id=batch_id,
            metadata=data.draw(strategies.json_objects(), label="metadata"),
            created_at=data.draw(strategies.timestamps(), label="created_at"),
        )
        self.compare("fallthrough_get_batch", "records", batch_id=batch_id)
        self.check_batches([batch_id])

    @precondition(lambda self: self.can("records"))
    @rule(data=st.data())
    def merge_records(self, data: st.DataObject) -> None:
        """``fallthrough_merge_records``: full states for keys the batch has and keys it lacks, older and newer."""
        batch_id = self.draw_batch_id(data)
        keys = self.draw_keys(data, batch_id)
        records = tuple(data.draw(strategies.full_records(batch_id, key), label="record") for key in keys)
        self.compare("fallthrough_merge_records", "records", batch_id=batch_id, records=records)
        self.check_batches([batch_id])

    @precondition(lambda self: self.can("records"))
    @rule(data=st.data())
    def read_everything(self, data: st.DataObject) -> None:
        """Every batch page by page (this run's, as a set), and some records by key."""
        limit = data.draw(st.integers(1, 4), label="limit")
        expected = self.reference.call("fallthrough_list_batches", after=None, limit=EVERYTHING)
        ours = set(self.batch_ids)
        for subject in self.running:
            if subject.able("records"):
                where = f"{subject.name}: fallthrough_list_batches(limit={limit})"
                batches = walk_pages(
                    functools.partial(subject.driver.call, "fallthrough_list_batches", limit=limit),
                    lambda batch: batch.id,
                    limit,
                    where,
                )
                mine = [batch for batch in batches if batch.id in ours]
                assert_same_set(mine, expected, lambda batch: batch.id, where)
        # Large pages three times in four: a walk costs a call per page over every batch the store holds.
        pages = data.draw(st.sampled_from((limit, 100, 100, 100)), label="newest-first page size")
        self.walk_batch_progress(pages, ours)
        batch_id = self.draw_batch_id(data)
        existing = [record.key for record in self.records_of(batch_id)]
        key = st.one_of(st.sampled_from(existing), strategies.keys()) if existing else strategies.keys()
        keys = tuple(data.draw(st.lists(key, unique=True, max_size=5), label="keys"))
        self.compare("fallthrough_get_records", "records", batch_id=batch_id, keys=keys)

    def walk_batch_progress(self, limit: int, ours: set[uuid.UUID]) -> None:
        """Every page of the newest-first listing: this run's batches in the model's order, ties by id."""
        expected = self.reference.call("fallthrough_list_batch_progress", before=None, limit=EVERYTHING)
        for subject in self.running:
            if subject.able("records"):
                where = f"{subject.name}: fallthrough_list_batch_progress(limit={limit})"
                listed = walk_pages(
                    functools.partial(subject.driver.call, "fallthrough_list_batch_progress", limit=limit),
                    lambda item: (item.batch.created_at, item.batch.id),
                    limit,
                    where,
                    cursor="before",
                )
                # In the order the model lists them, newest first, ties by id: the store may hold others between.
                assert_same([item for item in listed if item.batch.id in ours], expected, where)

    # Reads are grouped into two rules, so that most steps write: it takes
    # writes to build the states where backends disagree.

    @precondition(lambda self: self.can("records"))
    @rule(data=st.data())
    def read_batch(self, data: st.DataObject) -> None:
        """The batch, its progress, and one record (or a key it does not have)."""
        batch_id = self.draw_batch_id(data)
        self.compare("fallthrough_get_batch", "records", batch_id=batch_id)
        self.compare("fallthrough_progress", "records", batch_id=batch_id)
        existing = [record.key for record in self.records_of(batch_id)]
        key_strategy = st.one_of(st.sampled_from(existing), strategies.keys()) if existing else strategies.keys()
        self.compare("fallthrough_get_record", "records", batch_id=batch_id, key=data.draw(key_strategy, label="key"))

    @precondition(lambda self: self.can("records"))
    @rule(data=st.data())
    def list_records(self, data: st.DataObject) -> None:
        """One page after an arbitrary cursor, or every page in turn, as ``Store.records`` reads them."""
        batch_id = self.draw_batch_id(data)
        status: Status | None = data.draw(st.one_of(st.none(), strategies.statuses()), label="status")
        limit = data.draw(st.integers(1, 4), label="limit")
        if data.draw(st.booleans(), label="walk every page"):
            self.walk_pages(batch_id, status, limit)
            return
        cursors = [(record.seq, record.key) for record in self.records_of(batch_id)]
        arbitrary = st.tuples(strategies.first_seqs(), strategies.keys())
        after = data.draw(st.one_of(st.none(), st.sampled_from(cursors), arbitrary) if cursors else st.none())
        self.compare("fallthrough_list_records", "records", batch_id=batch_id, status=status, after=after, limit=limit)

    def walk_pages(self, batch_id: uuid.UUID, status: Status | None, limit: int) -> None:
        after: tuple[int, str] | None = None
        for _ in range(EVERYTHING):
            page = self.compare(
                "fallthrough_list_records", "records", batch_id=batch_id, status=status, after=after, limit=limit
            )
            if page.error is not None or len(page.value) < limit:
                return
            after = (page.value[-1].seq, page.value[-1].key)

    # -- documents ---------------------------------------------------------

    def draw_collection(self, data: st.DataObject, *, written: bool = False) -> str:
        # The never-written collection comes up one time in five.
        choices = self.collections if written else (*self.collections, *self.collections, self.unknown_collection)
        return data.draw(st.sampled_from(choices), label="collection")

    def draw_ids(self, data: st.DataObject) -> tuple[str, ...]:
        ids = st.lists(strategies.document_ids(), unique=True, max_size=4)
        return tuple(data.draw(ids, label="ids"))

    def check_documents_unchanged(self, collection: str, ids: Sequence[str]) -> None:
        self.compare("fallthrough_get_documents", "documents", collection=collection, ids=tuple(ids))

    @precondition(lambda self: self.can("documents"))
    @rule(data=st.data())
    def upsert_documents(self, data: st.DataObject) -> None:
        collection = self.draw_collection(data, written=True)
        dimension = data.draw(st.sampled_from(_DIMENSIONS), label="dimension")
        documents = data.draw(
            st.lists(strategies.documents(dimension), min_size=1, max_size=8, unique_by=lambda document: document.id),
            label="documents",
        )
        ids = [document.id for document in documents]
        self.written_ids[collection].update(ids)
        arguments: dict[str, Any] = {
            "collection": collection,
            "documents": tuple(documents),
            "version": self.draw_version(data),
        }
        outcome = self.compare("fallthrough_upsert_documents", "documents", **arguments)
        if outcome.error is not None:
            self.check_documents_unchanged(collection, ids)
        else:
            self.document_calls.append(("fallthrough_upsert_documents", arguments))
            if any(document.vector is not None for document in documents):
                self.dimensions.setdefault(collection, dimension)
        self.check_entries(collection, ids)
        self.run_queries(data, collection)

    @precondition(lambda self: self.can("documents"))
    @rule(data=st.data())
    def delete_documents(self, data: st.DataObject) -> None:
        collection = self.draw_collection(data)
        ids = self.draw_ids(data)
        self.written_ids.setdefault(collection, set()).update(ids)
        arguments: dict[str, Any] = {"collection": collection, "ids": ids, "version": self.draw_version(data)}
        self.compare("fallthrough_delete_documents", "documents", **arguments)
        self.document_calls.append(("fallthrough_delete_documents", arguments))
        self.check_entries(collection, ids)
        self.run_queries(data, collection)

    @precondition(lambda self: self.can("documents") and bool(self.document_calls))
    @rule(data=st.data())
    def replay_document_write(self, data: st.DataObject) -> None:
        """Send an earlier upsert or delete again, version and all, as a journal replaying a missed write does."""
        hook, arguments = data.draw(st.sampled_from(self.document_calls), label="earlier call")
        self.compare(hook, "documents", **arguments)
        if "documents" in arguments:
            ids = [document.id for document in arguments["documents"]]
        else:
            ids = arguments.get("ids") or sorted(self.written_ids.get(arguments["collection"], ()))
        self.check_entries(arguments["collection"], ids)

    @precondition(lambda self: self.can("documents"))
    @rule(data=st.data())
    def drop_collection(self, data: st.DataObject) -> None:
        """Drop a collection at a drawn version: older writes replayed after it must stay out."""
        collection = self.draw_collection(data)
        arguments: dict[str, Any] = {"collection": collection, "version": self.draw_version(data)}
        self.compare("fallthrough_drop_collection", "documents", **arguments)
        self.document_calls.append(("fallthrough_drop_collection", arguments))
        self.check_entries(collection, sorted(self.written_ids.get(collection, ())))
        self.run_queries(data, collection)

    def all_can_purge(self) -> bool:
        """Whether every backend of documents has the optional purge hook (else it keeps what the model purges)."""
        return all(
            subject.driver.implements("fallthrough_purge_tombstones")
            for subject in self.running
            if subject.able("documents")
        )

    @precondition(lambda self: self.can("documents") and self.all_can_purge())
    @rule(data=st.data())
    def purge_tombstones(self, data: st.DataObject) -> None:
        """Purge a collection's tombstones older than a drawn version, a few a call, as ``Store.purge_tombstones`` does.

        Which tombstones one call of ``limit`` takes is the backend's choice,
        so only the totals are compared, then the entries.
        """
        collection = self.draw_collection(data)
        # Near the latest version, so that tombstones on both sides of ``before`` are common.
        lowest = max(strategies.BASE_SEQ, self.latest_version - 4)
        before = data.draw(st.integers(lowest, self.latest_version + 1), label="purge before")
        limit = data.draw(st.integers(1, 4), label="purge limit")
        expected = _purge_all(self.reference, collection, before, limit)
        for subject in self.running:
            if subject.able("documents"):
                where = f"{subject.name}: fallthrough_purge_tombstones({collection!r}, before={before}, limit={limit})"
                assert_same(_purge_all(subject.driver, collection, before, limit, most=expected), expected, where)
        self.check_entries(collection, sorted(self.written_ids.get(collection, ())))
        self.compare_collections()

    @precondition(lambda self: self.can("documents"))
    @rule(data=st.data())
    def count_and_page(self, data: st.DataObject) -> None:
        """Count a collection's matches and page through them by id, as ``Store.count`` and ``Store.documents`` do."""
        collection = self.draw_collection(data)
        filtered = any(s.capabilities.filter_search for s in self.running if s.able("documents"))
        drawn = data.draw(strategies.filters(), label="filter") if filtered and data.draw(st.booleans()) else None
        parsed = parse_filter(drawn)
        capability = "documents" if parsed is None else "filter_search"
        self.compare("fallthrough_count_documents", capability, collection=collection, filter=parsed)
        limit = data.draw(st.integers(1, 4), label="page size")
        after: str | None = None
        for _ in range(EVERYTHING):
            page = self.compare(
                "fallthrough_list_documents", capability, collection=collection, filter=parsed, after=after, limit=limit
            )
            if page.error is not None or len(page.value) < limit:
                break
            after = page.value[-1].id
        expected = self.reference.call("fallthrough_list_live_collections")
        ours = {*self.collections, self.unknown_collection}
        for subject in self.running:
            if subject.able("documents"):
                listed = list(subject.driver.call("fallthrough_list_live_collections"))
                where = f"{subject.name}: fallthrough_list_live_collections()"
                assert listed == sorted(set(listed)), f"{where}: not sorted and distinct: {listed!r}"
                assert_same([name for name in listed if name in ours], expected, where)

    def check_entries(self, collection: str, ids: Sequence[str]) -> None:
        """After a document write: the entries it touched, versions and tombstones included."""
        self.compare("fallthrough_document_versions", "documents", collection=collection, ids=tuple(ids))

    @precondition(lambda self: self.can("documents"))
    @rule(data=st.data())
    def read_entries(self, data: st.DataObject) -> None:
        """Every collection, a collection's entries page by page, and some entries by id."""
        self.compare_collections()
        collection = self.draw_collection(data)
        self.compare_scan(collection, data.draw(st.integers(1, 4), label="limit"))
        self.compare("fallthrough_document_versions", "documents", collection=collection, ids=self.draw_ids(data))

    def compare_collections(self) -> None:
        expected = self.reference.call("fallthrough_list_collections")
        ours = {*self.collections, self.unknown_collection}
        for subject in self.running:
            if subject.able("documents"):
                listed = list(subject.driver.call("fallthrough_list_collections"))
                where = f"{subject.name}: fallthrough_list_collections()"
                assert listed == sorted(set(listed)), f"{where}: not sorted and distinct: {listed!r}"
                assert_same([name for name in listed if name in ours], expected, where)

    def compare_scan(self, collection: str, limit: int) -> None:
        expected = self.reference.call(
            "fallthrough_scan_documents", collection=collection, after=None, limit=EVERYTHING
        )
        for subject in self.running:
            if subject.able("documents"):
                where = f"{subject.name}: fallthrough_scan_documents({collection!r}, limit={limit})"
                entries = walk_pages(
                    functools.partial(
                        subject.driver.call, "fallthrough_scan_documents", collection=collection, limit=limit
                    ),
                    lambda entry: entry.id,
                    limit,
                    where,
                )
                assert_same_set(entries, expected, lambda entry: entry.id, where)

    @precondition(lambda self: self.can("documents"))
    @rule(data=st.data())
    def get_documents(self, data: st.DataObject) -> None:
        self.compare(
            "fallthrough_get_documents", "documents", collection=self.draw_collection(data), ids=self.draw_ids(data)
        )

    @precondition(lambda self: self.can("documents"))
    @rule(data=st.data())
    def search(self, data: st.DataObject) -> None:
        self.run_queries(data, self.draw_collection(data))

    def run_queries(self, data: st.DataObject, collection: str) -> None:
        """A few queries on one collection.

        Every document write is followed by some too: Hypothesis leaves a
        random part of the rules out of each run, and searching is cheap next
        to building the state it reads.
        """
        for _ in range(data.draw(st.integers(1, 4), label="queries")):
            self.compare_search(collection, self.draw_query(data, collection))

    def draw_query(self, data: st.DataObject, collection: str) -> SearchQuery:
        """A query using any mix of the parts some backend can serve."""
        offered = sorted(set().union(*(s.capabilities.search_parts for s in self.running if s.able("documents"))))
        parts = data.draw(st.sets(st.sampled_from(offered)) if offered else st.just(set()), label="query parts")
        return SearchQuery(
            vector=self.draw_query_vector(data, collection) if "vector" in parts else None,
            text=data.draw(strategies.query_texts(), label="text") if "text" in parts else None,
            filter=parse_filter(data.draw(strategies.filters(), label="filter")) if "filter" in parts else None,
            limit=data.draw(st.integers(1, 6), label="limit"),
            with_vectors=data.draw(st.booleans(), label="with vectors"),
        )

    def draw_query_vector(self, data: st.DataObject, collection: str) -> tuple[float, ...]:
        dimension = self.dimensions.get(collection, 3)
        if data.draw(st.integers(0, 5), label="mismatched dimension (0)") == 0:
            dimension = 2 if dimension == 3 else 3
        return check_vector(data.draw(strategies.vectors(dimension), label="vector"))

    def compare_search(self, collection: str, query: SearchQuery) -> None:
        expected = self.reference.outcome("fallthrough_search", collection=collection, query=query)
        every_match = (
            None
            if expected.error is not None
            else self.reference.call(
                "fallthrough_search", collection=collection, query=attrs.evolve(query, limit=EVERYTHING)
            )
        )
        for subject in self.running:
            if not subject.capabilities.serves(query.needs):
                continue
            actual = subject.driver.outcome("fallthrough_search", collection=collection, query=query)
            where = f"{subject.name}: fallthrough_search({collection!r}, {query!r})"
            if every_match is None or actual.error is not None:
                assert_same_outcome(actual, expected, where)
                continue
            assert_search_agrees(actual.value, query, every_match, where=where)


def _purge_all(driver: HookDriver, collection: str, before: int, limit: int, most: int | None = None) -> int:
    """Call the purge hook until a call removes fewer than ``limit``; how many went in all.

    :param most: how many the reference removed: a backend said to remove
        more is wrong already, and one that always answers ``limit`` would
        keep the loop going for ever, so the calls stop there.
    """
    removed = 0
    while True:
        count: int = driver.call("fallthrough_purge_tombstones", collection=collection, before=before, limit=limit)
        removed += count
        if count < limit or (most is not None and removed > most):
            return removed


def walk_pages(
    page_after: Callable[..., Sequence[Any]], name: Callable[[Any], Any], limit: int, where: str, cursor: str = "after"
) -> list[Any]:
    """Chain ``page_after(<cursor>=...)`` from the first page to the last, checking each page's size and no repeats."""
    items: list[Any] = []
    seen: set[Any] = set()
    after = None
    for _ in range(EVERYTHING):
        page = list(page_after(**{cursor: after}))
        assert len(page) <= limit, f"{where}: a page of {len(page)}, more than the limit"
        for item in page:
            assert name(item) not in seen, f"{where}: {name(item)!r} came twice (after {after!r})"
            seen.add(name(item))
        items.extend(page)
        if len(page) < limit:
            return items
        after = name(page[-1])
    raise AssertionError(f"{where}: more than {EVERYTHING} pages")


def make_state_machine(
    backend_factory: BackendFactory,
    *,
    capabilities: Capabilities | None = None,
    close: bool = True,
    name: str = "backend",
) -> type[BackendStateMachine]:
    """A state machine class that tests one backend against the reference model.

    :param backend_factory: returns the backend plugin object; called at the
        start of every run (example). It may return the same object each
        time, with ``close=False``.
    :param capabilities: what to exercise; by default what the backend declares.
    :param close: close the backend at the end of each run.
    :param name: the backend's name in failure messages.
    """

    class OneBackendStateMachine(BackendStateMachine):
        subjects = (SubjectSpec(name, backend_factory, capabilities, close),)

    return OneBackendStateMachine


def make_differential_state_machine(factories: Mapping[str, BackendFactory]) -> type[BackendStateMachine]:
    """A state machine class that runs the same sequences on several backends.

    Each backend is compared with the reference model, exactly where the
    spec is exact and within tolerance for vector scores, so any two of them
    agree with each other wherever they agree with the model.
    """

    class DifferentialStateMachine(BackendStateMachine):
        subjects = tuple(SubjectSpec(name, factory) for name, factory in factories.items())

    return DifferentialStateMachine


__all__ = [
    "EVERYTHING",
    "walk_pages",
    "BackendFactory",
    "BackendStateMachine",
    "SubjectSpec",
    "make_differential_state_machine",
    "make_state_machine",
]
