"""The examples of issue 13's "Why", each refused before any backend is called, the same on every store."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator

import pytest

import fallthrough
from fallthrough import Document, RecordUpdate
from fallthrough.errors import FilterError, InvalidInput, PluginError, scrubbed
from fallthrough.filters import MAX_FILTER_DEPTH, MAX_FILTER_TERMS, parse_filter
from fallthrough.validation import MAX_ATTEMPT, MAX_KEY_LENGTH

URLS = ["sqlite://", "qdrant+memory://"]


@pytest.fixture
def store() -> Iterator[fallthrough.Store]:
    with fallthrough.connect(*URLS) as both:
        yield both


def _unchanged(store: fallthrough.Store, batch_id: uuid.UUID) -> list[object]:
    return [store.get_record(batch_id, "k"), store.progress(batch_id)]


@pytest.mark.parametrize("attempt", [-1, MAX_ATTEMPT + 1, 2**31, 2**63, 2**100])
def test_an_attempt_past_the_limit_is_refused_before_any_store(store: fallthrough.Store, attempt: int) -> None:
    batch = store.create_batch(["k"])
    before = _unchanged(store, batch.id)
    # The range quoted is what a caller may name, not the wider one a store may hold.
    with pytest.raises(InvalidInput, match=f"attempt must be an int from 0 to {MAX_ATTEMPT} or None"):
        store.update(batch.id, "k", "completed", attempt=attempt)
    assert _unchanged(store, batch.id) == before


def test_the_greatest_attempt_is_stored_alike_everywhere(store: fallthrough.Store) -> None:
    batch = store.create_batch(["k"])
    assert store.update(batch.id, "k", "failed", attempt=MAX_ATTEMPT)
    assert store.retry(batch.id) == 1
    for name in store.backend_names:
        record = store.plugin_manager.get_plugin(name).fallthrough_get_record(batch_id=batch.id, key="k")
        assert record.attempt == MAX_ATTEMPT + 1, name


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "x\x00"])
def test_a_bad_string_in_a_filter_is_a_filter_error(store: fallthrough.Store, value: str) -> None:
    for spec in ({"tag": value}, {"tag": {"in": ["ok", value]}}, {"not": {"tag": {"ne": value}}}):
        with pytest.raises(FilterError):
            store.search("c", filter=spec)


def test_a_filter_of_five_thousand_conditions_is_refused_at_once(store: fallthrough.Store) -> None:
    started = time.monotonic()
    with pytest.raises(FilterError, match="terms"):
        store.search("c", filter={"or": [{"n": index} for index in range(5000)]})
    assert time.monotonic() - started < 1, "refused by the core, not after a store tried"


def test_the_filter_limits_hold_at_their_edges() -> None:
    widest = {"or": [{"n": index} for index in range(MAX_FILTER_TERMS - 1)]}
    assert parse_filter(widest) is not None
    with pytest.raises(FilterError):
        parse_filter({"or": [{"n": index} for index in range(MAX_FILTER_TERMS)]})
    with pytest.raises(FilterError):
        parse_filter({"n": {"in": list(range(MAX_FILTER_TERMS))}})
    deepest: dict[str, object] = {"n": 1}
    for _ in range(MAX_FILTER_DEPTH):
        deepest = {"not": deepest}
    assert parse_filter(deepest) is not None
    with pytest.raises(FilterError):
        parse_filter({"not": deepest})


@pytest.mark.parametrize("vector", [[10**400, 1], [1, -(10**400)], [1.0, "2"], [1.0, None]])
def test_a_vector_no_float_can_hold_is_invalid_input(store: fallthrough.Store, vector: list[object]) -> None:
    with pytest.raises(InvalidInput):
        Document("x", vector=vector)
    with pytest.raises(InvalidInput):
        store.search("c", vector=vector)


def test_wrong_types_are_invalid_input_never_type_error(store: fallthrough.Store) -> None:
    batch = store.create_batch(["k"])
    calls = [
        lambda: store.create_batch(None),  # type: ignore[arg-type]
        lambda: store.create_batch(5),  # type: ignore[arg-type]
        lambda: store.add_records(batch.id, None),  # type: ignore[arg-type]
        lambda: store.update_many(None),  # type: ignore[arg-type]
        lambda: store.update_many(3),  # type: ignore[arg-type]
        lambda: store.get_documents("c", 0),  # type: ignore[arg-type]
        lambda: store.delete_documents("c", None),  # type: ignore[arg-type]
        lambda: store.upsert_documents("c", None),  # type: ignore[arg-type]
        lambda: store.records(batch.id, page_size=None),  # type: ignore[arg-type]
        lambda: store.search(None),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            call()
    assert store.progress(batch.id).total == 1


@pytest.mark.parametrize(
    "element", [math.nan, math.inf, 2**53, -(2**53), {"$nested": 1}, {"a": [[1]]}, [1], "a\x00", "\ud800", (1,)]
)
def test_metadata_list_elements_are_checked_like_scalars(element: object) -> None:
    with pytest.raises(InvalidInput):
        Document("x", metadata={"tags": ["ok", element]})
    if not isinstance(element, list):  # a list is a list field; its element is what counts
        with pytest.raises(InvalidInput):
            Document("x", metadata={"tag": element})


@pytest.mark.parametrize("element", [math.nan, math.inf, 2**63, -(2**63) - 1, "a\x00", "\ud800", (1,), {1: 2}])
def test_result_list_elements_are_checked(element: object) -> None:
    with pytest.raises(InvalidInput):
        RecordUpdate(uuid.uuid4(), "k", "completed", result=[1, element])


def test_keys_at_the_limit_pass_and_one_past_is_refused(store: fallthrough.Store) -> None:
    longest = "\U0001f600" * MAX_KEY_LENGTH
    batch = store.create_batch([longest])
    assert store.get_record(batch.id, longest) is not None
    with pytest.raises(InvalidInput):
        store.add_records(batch.id, ["k" * (MAX_KEY_LENGTH + 1)])
    store.upsert_documents("c", [Document(longest, text="x")])
    assert [document.id for document in store.get_documents("c", [longest])] == [longest]
    with pytest.raises(InvalidInput):
        Document("d" * (MAX_KEY_LENGTH + 1))


def test_a_scrubbed_error_carries_no_chain_and_names_a_driver_error() -> None:
    class DriverError(Exception):
        def __init__(self) -> None:
            super().__init__("failed for user:hunter2")
            self.connection = "dsn password=hunter2"

    try:
        try:
            raise DriverError
        except DriverError:
            raise fallthrough.BackendUnavailable("lost the connection") from None
    except fallthrough.BackendUnavailable as translated:
        assert isinstance(translated.__context__, DriverError)
        clean = scrubbed(translated, lambda text: text.replace("hunter2", "***"))
    assert type(clean) is fallthrough.BackendUnavailable and str(clean) == "lost the connection"
    assert clean.__context__ is None and clean.__cause__ is None
    raw = scrubbed(DriverError(), lambda text: text.replace("hunter2", "***"))
    assert isinstance(raw, PluginError) and "DriverError" in str(raw) and "hunter2" not in str(raw)
    assert not vars(raw)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda result: result.update(text="a\x00b"), "NUL"),
        (lambda result: result.update(big=2**70), "64-bit"),
        (lambda result: result.update(number=math.nan), "nan"),
        (lambda result: result.update({1: "x"}), "key"),
    ],
    ids=["nul", "big-int", "nan", "int-key"],
)
def test_a_result_changed_after_its_update_was_built_is_checked_before_any_store(
    store: fallthrough.Store, change: object, complaint: str
) -> None:
    """A RecordUpdate is frozen, its result dict is not: update_many checks every result again, whole, first."""
    batch = store.create_batch(["k", "other"])
    before = [_unchanged(store, batch.id), store.get_record(batch.id, "other")]
    good = RecordUpdate(batch.id, "other", "completed", result={"x": 1})
    bad = RecordUpdate(batch.id, "k", "completed", result={"x": 1})
    change(bad.result)  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=rf"updates\[1\]\.result.*{complaint}"):
        store.update_many([good, bad])
    assert [_unchanged(store, batch.id), store.get_record(batch.id, "other")] == before


class _HidesItsCharacters(str):
    """A str whose own ``__contains__`` and ``encode`` deny what its characters hold."""

    def __contains__(self, part: object) -> bool:
        return False

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"fine"


@pytest.mark.parametrize("characters", ["a\x00b", "a\ud800b"], ids=["nul", "surrogate"])
@pytest.mark.parametrize("where", ["error", "result", "batch metadata", "document text", "worker", "filter"])
def test_a_str_subclass_is_checked_by_its_characters(store: fallthrough.Store, characters: str, where: str) -> None:
    """Its own methods said it held no NUL and encoded fine: SQLite and Qdrant stored the NUL, PostgreSQL failed."""
    value = _HidesItsCharacters(characters)
    batch = store.create_batch(["k"])
    before = [_unchanged(store, batch.id), [b.batch for b in store.batches()], list(store.documents("c"))]
    with pytest.raises(InvalidInput):
        if where == "error":
            store.update(batch.id, "k", "failed", error=value)
        elif where == "result":
            store.update(batch.id, "k", "completed", result={"note": value})
        elif where == "batch metadata":
            store.create_batch(["x"], metadata={"source": value})
        elif where == "document text":
            store.upsert_documents("c", [Document("d", value)])
        elif where == "worker":
            store.claim(batch.id, worker=value)
        else:
            store.search("c", filter={"tag": value})
    assert [_unchanged(store, batch.id), [b.batch for b in store.batches()], list(store.documents("c"))] == before
