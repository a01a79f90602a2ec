"""Edge cases probed in review, on the real servers.

These failed before their fix: the sslpassword in the repr, vectors longer
than an HNSW index (or pgvector's type) takes, a token longer than a GIN
entry, two new collections deadlocking on their first vectors, an ``in``
list longer than a statement's parameter limit (reported as "unavailable"),
and a driver refusal on a healthy connection reported as "unavailable".
The others pin behaviour that was right already: mixed-type filters, exact
JSON values, counters through delete and re-create, concurrent creation of
one batch, and vectors removed by a later upsert.
"""

from __future__ import annotations

import json
import math
import random
import threading
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

import fallthrough.filters
from fallthrough.errors import BackendUnavailable
from fallthrough.filters import parse_filter
from fallthrough.registry import Registry
from fallthrough.testing.drivers import fresh_version
from fallthrough.testing.model import ReferenceBackend
from fallthrough.types import Document, RecordUpdate, SearchQuery
from fallthrough.validation import check_vector
from fallthrough_postgresql import PostgresBackend
from fallthrough_postgresql.connection import driver_connection
from fallthrough_postgresql.filters import CONTAINMENT_OPTIONS
from tests.postgresql.helpers import Hooks, at, open_backend


def _collection(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- secrets --------------------------------------------------------------------------


def test_an_ssl_key_password_in_the_url_is_masked_like_the_password() -> None:
    secret = "Sup3r-ssl-key-secret"
    hooks = Hooks(Registry().create(f"postgresql://app:pw@127.0.0.1:1/app?sslpassword={secret}&connect_timeout=2"))
    assert secret not in repr(hooks.plugin)
    with pytest.raises(BackendUnavailable) as raised:
        hooks.fallthrough_open()
    assert secret not in str(raised.value)
    assert "sslpassword=***" in repr(hooks.plugin)


# -- vectors beyond what an HNSW index takes ------------------------------------------


@pytest.mark.parametrize("dimension", [2001, 16_001])
def test_vectors_longer_than_an_hnsw_index_takes_are_stored_and_searched_exactly(
    pgvector_database: str, dimension: int
) -> None:
    hooks, model = open_backend(pgvector_database), Hooks(ReferenceBackend())
    rng = random.Random(dimension)
    documents = [Document(f"d{index}", "x", vector=[rng.gauss(0, 1) for _ in range(dimension)]) for index in range(5)]
    collection = _collection("wide")
    for relay in (hooks, model):
        relay.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    query = SearchQuery(check_vector([rng.gauss(0, 1) for _ in range(dimension)]), None, None, 3)
    got = hooks.fallthrough_search(collection=collection, query=query)
    want = model.fallthrough_search(collection=collection, query=query)
    assert [hit.id for hit in got] == [hit.id for hit in want]
    assert all(abs(a.score - b.score) <= 1e-5 for a, b in zip(got, want, strict=True))
    assert hooks.fallthrough_get_documents(collection=collection, ids=["d0"]) == [documents[0]]
    hooks.fallthrough_close()


# -- long tokens ----------------------------------------------------------------------


def test_a_document_with_a_token_longer_than_an_index_entry_is_stored_and_found(database: str) -> None:
    hooks = open_backend(database)
    rng = random.Random(7)
    # Random letters, so the server cannot compress the token below its index entry limit.
    long_token = "".join(rng.choice("абвгдежзиклмнопрстуфхцчшщэюя") for _ in range(3000))
    collection = _collection("long")
    documents = [Document("a", f"{long_token} short"), Document("b", "short other")]
    hooks.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    hits = hooks.fallthrough_search(collection=collection, query=SearchQuery(None, long_token.upper(), None, 10))
    assert [hit.id for hit in hits] == ["a"]
    assert hooks.fallthrough_get_documents(collection=collection, ids=["a"]) == [documents[0]]
    hooks.fallthrough_close()


# -- two collections getting their first vectors at once --------------------------------


def test_first_vectors_of_new_collections_at_once_do_not_deadlock(pgvector_database: str) -> None:
    # Each call inserts its rows, then builds its collection's HNSW index; big enough calls overlap.
    hooks = open_backend(pgvector_database)
    documents = [Document(f"d{index}", "t", vector=[1.0, 2.0, float(index)]) for index in range(3000)]
    errors: list[BaseException] = []
    for _ in range(3):
        barrier = threading.Barrier(2)

        def upsert(collection: str, barrier: threading.Barrier) -> None:
            barrier.wait()
            try:
                hooks.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=upsert, args=(_collection("race"), barrier)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    hooks.fallthrough_close()


# -- filters with mixed types ---------------------------------------------------------

MIXED_METADATA: list[dict[str, object]] = [
    {"n": 1, "f": {"x y": "a"}},
    {"n": 1.0, "f": {"x y": ["a", 1, True]}},
    {"n": True, "f": [{"x y": None}, {"x y": 2.5}, 3]},
    {"n": "1"},
    {"n": None, "f": {"x y": []}},
    {},
    {"n": 2**53 - 1, "big": 2**53 - 1},
    {"n": 2**53 - 2, "big": -(2**53 - 1)},
    {"n": 9007199254740992.0, "big": 1e308},
    {"n": -0.0, "big": 5e-324},
    {"n": 0, "big": -1e308},
    {"n": [1, "1", True, 0.5], "ключ, с: пунктуацией!": "да"},
    {"n": [False, 0]},
    {"n": 0.1 + 0.2},
    {"n": 0.3},
]

MIXED_FILTERS: list[dict[str, object]] = [
    {"n": 1},
    {"n": 1.0},
    {"n": True},
    {"n": False},
    {"n": "1"},
    {"n": 0},
    {"n": -0.0},
    {"n": {"ne": 1}},
    {"n": {"in": [1, "1"]}},
    {"n": {"in": [True, 0.5, "x"]}},
    {"n": {"nin": [1, True]}},
    {"n": {"gt": 0}},
    {"n": {"gte": 1, "lt": 2}},
    {"n": {"lt": 0.5}},
    {"n": {"lte": 0}},
    {"n": {"gte": 2**53 - 1}},
    {"n": {"gt": 2**53 - 2}},
    {"n": 2**53 - 1},
    {"n": 9007199254740992.0},
    {"n": {"gt": 9007199254740991.0}},
    {"n": 0.3},
    {"n": 0.30000000000000004},
    {"n": {"gt": 0.3}},
    {"big": {"gt": 1e307}},
    {"big": {"lt": -1e307}},
    {"big": {"gt": 0, "lt": 1e-300}},
    {"big": {"gte": -(2**53 - 1), "lte": -(2**53 - 2)}},
    {"f.x y": "a"},
    {"f.x y": 1},
    {"f.x y": True},
    {"f.x y": {"gt": 2}},
    {"f.x y": {"ne": "a"}},
    {"ключ, с: пунктуацией!": "да"},
    {"not": {"n": {"gt": 0}}},
    {"or": [{"n": True}, {"n": "1"}]},
    {"and": [{"n": {"gte": 0}}, {"not": {"n": 1}}]},
]


def test_filters_with_mixed_types_agree_with_the_reference(database: str) -> None:
    hooks, model = open_backend(database), Hooks(ReferenceBackend())
    collection = _collection("mixed")
    documents = [Document(f"d{index:02}", metadata=metadata) for index, metadata in enumerate(MIXED_METADATA)]
    for relay in (hooks, model):
        relay.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    # Each equality, in and nin again, as an in / nin with more values than containment tests take.
    padding = [f"zz{index}" for index in range(CONTAINMENT_OPTIONS)]
    padded: list[dict[str, object]] = []
    for spec in MIXED_FILTERS:
        for field, condition in spec.items():
            if field in ("and", "or", "not"):
                continue
            if not isinstance(condition, dict):
                padded.append({field: {"in": [condition, *padding]}})
                continue
            for op, values in condition.items():
                if op in ("in", "nin"):
                    padded.append({field: {op: [*values, *padding]}})
    disagreements = []
    for spec in MIXED_FILTERS + padded:
        query = SearchQuery(None, None, parse_filter(spec), 100)
        got = [hit.id for hit in hooks.fallthrough_search(collection=collection, query=query)]
        want = [hit.id for hit in model.fallthrough_search(collection=collection, query=query)]
        if got != want:
            disagreements.append((spec, got, want))
    assert disagreements == []
    assert hooks.fallthrough_get_documents(collection=collection, ids=[d.id for d in documents]) == documents
    hooks.fallthrough_close()


# -- values that must read back exactly -----------------------------------------------


def _nested(depth: int) -> object:
    value: object = "bottom"
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return value


EXACT_RESULTS: list[object] = [
    2**63 - 1,
    -(2**63),
    1e308,
    -1e308,
    5e-324,
    -0.0,
    0.1,
    1.0,
    {"a.b c": [1, 1.0, True, None, "ж", {"": -0.0}]},
    _nested(64),
    "😀" * 100,
]


def test_results_metadata_and_keys_read_back_exactly(database: str) -> None:
    hooks = open_backend(database)
    batch_id = uuid.uuid4()
    keys = ["ж" * 512, "😀" * 512, "k" * 512]
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=1, metadata={"m": -0.0}, created_at=at(0))
    for step, result in enumerate(EXACT_RESULTS):
        key = keys[step % len(keys)]
        update = RecordUpdate(batch_id, key, "completed", result=result, attempt=step)
        applied = hooks.fallthrough_update_records(updates=[update], updated_at=at(step + 1))
        assert len(applied) == 1
        record = hooks.fallthrough_get_record(batch_id=batch_id, key=key)
        assert record is not None
        assert json.dumps(record.result) == json.dumps(result), step
    batch = hooks.fallthrough_get_batch(batch_id=batch_id)
    assert batch is not None and json.dumps(batch.metadata) == '{"m": -0.0}'
    listed = hooks.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10)
    assert [record.key for record in listed] == keys
    collection = _collection("exact")
    document = Document("😀" * 512, "т", vector=[-0.0, 1.0], metadata={"a b, c!": -0.0, "big": [2**53 - 1, 5e-324]})
    hooks.fallthrough_upsert_documents(collection=collection, documents=[document], version=fresh_version())
    (read,) = hooks.fallthrough_get_documents(collection=collection, ids=[document.id])
    assert json.dumps(read.metadata) == json.dumps(document.metadata)
    assert read.vector is not None and math.copysign(1, read.vector[0]) == -1
    hooks.fallthrough_close()


# -- batches created, grown, deleted and created again ----------------------------------


def _counts(hooks: Hooks, batch_id: uuid.UUID) -> tuple[int, ...]:
    progress = hooks.fallthrough_progress(batch_id=batch_id)
    return progress.total, progress.pending, progress.processing, progress.completed, progress.failed


def test_counters_stay_exact_through_add_delete_and_recreate_with_the_same_id(database: str) -> None:
    hooks = open_backend(database)
    batch_id = uuid.uuid4()
    keys = [f"k{index}" for index in range(300)]
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=at(0))
    updates = [RecordUpdate(batch_id, key, "completed") for key in keys[:100]]
    hooks.fallthrough_update_records(updates=updates, updated_at=at(1))
    added = hooks.fallthrough_add_records(
        batch_id=batch_id, keys=[*keys[250:], "n1", "n2"], first_seq=1000, created_at=at(2)
    )
    assert added == 2
    assert _counts(hooks, batch_id) == (302, 202, 0, 100, 0)
    assert hooks.fallthrough_delete_batch(batch_id=batch_id) is True
    assert hooks.fallthrough_get_batch(batch_id=batch_id) is None
    again = hooks.fallthrough_create_batch(
        batch_id=batch_id, keys=keys[:250], first_seq=2000, metadata={"v": 2}, created_at=at(3)
    )
    assert again.total == 250 and again.metadata == {"v": 2}
    assert _counts(hooks, batch_id) == (250, 250, 0, 0, 0)
    record = hooks.fallthrough_get_record(batch_id=batch_id, key="k0")
    assert record is not None and record.status.value == "pending" and record.seq == 2000
    hooks.fallthrough_close()


def test_two_threads_creating_the_same_batch_at_once_end_with_the_union(database: str) -> None:
    hooks = open_backend(database)
    for _ in range(3):
        batch_id = uuid.uuid4()
        halves = [[f"k{index}" for index in range(start, start + 400)] for start in (0, 200)]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def create(
            keys: list[str],
            first_seq: int,
            batch_id: uuid.UUID,
            barrier: threading.Barrier,
            errors: list[BaseException],
        ) -> None:
            barrier.wait()
            try:
                hooks.fallthrough_create_batch(
                    batch_id=batch_id, keys=keys, first_seq=first_seq, metadata={}, created_at=at(first_seq)
                )
            except BaseException as error:
                errors.append(error)

        threads = [
            threading.Thread(target=create, args=(keys, 1 + 10_000 * i, batch_id, barrier, errors))
            for i, keys in enumerate(halves)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert _counts(hooks, batch_id) == (600, 600, 0, 0, 0)
        listed = hooks.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=1000)
        assert sorted(record.key for record in listed) == sorted({f"k{index}" for index in range(600)})
    hooks.fallthrough_close()


def test_an_in_filter_with_more_values_than_a_statement_takes_parameters(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The core refuses filters past MAX_FILTER_TERMS; the backend must still cope with what a hook is handed.
    monkeypatch.setattr(fallthrough.filters, "MAX_FILTER_TERMS", 10**6)
    hooks = open_backend(database)
    collection = _collection("manyin")
    documents = [Document(f"d{index}", metadata={"n": index, "tags": [index, str(index)]}) for index in range(5)]
    hooks.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    many = list(range(3, 40_003))
    for spec, expected in (
        ({"n": {"in": many}}, ["d3", "d4"]),
        ({"tags": {"in": [str(value) for value in many]}}, ["d3", "d4"]),
        ({"n": {"nin": many}}, ["d0", "d1", "d2"]),
        ({"or": [{"n": {"gte": value, "lt": value + 1}} for value in many[:2000]]}, ["d3", "d4"]),
    ):
        query = SearchQuery(None, None, parse_filter(spec), 10)
        assert [hit.id for hit in hooks.fallthrough_search(collection=collection, query=query)] == expected
    hooks.fallthrough_close()


def test_a_driver_error_on_a_healthy_connection_is_not_unavailable(database: str) -> None:
    # psycopg raises OperationalError without a SQLSTATE for a statement it cannot send; the server is fine,
    # so falling through would hide a bug.
    backend = PostgresBackend(database)
    backend.fallthrough_open()
    try:
        for block in (backend._database.write, backend._database.read):
            with pytest.raises(psycopg.OperationalError, match="number of parameters"), block() as conn:
                driver_connection(conn).execute("SELECT " + ", ".join(["%s::int"] * 70_000), [1] * 70_000)
        backend.fallthrough_ping()
    finally:
        backend.fallthrough_close()


def test_vector_search_skips_vectors_removed_by_a_later_upsert_and_returns_every_match(
    pgvector_database: str,
) -> None:
    hooks, model = open_backend(pgvector_database), Hooks(ReferenceBackend())
    rng = random.Random(11)
    collection = _collection("removed")
    first = [
        Document(f"d{index:02}", "t", vector=[rng.gauss(0, 1) for _ in range(4)], metadata={"k": index % 3})
        for index in range(30)
    ]
    without = [Document(f"d{index:02}", "t", metadata={"k": 0}) for index in range(0, 30, 2)]
    for relay in (hooks, model):
        relay.fallthrough_upsert_documents(collection=collection, documents=first, version=fresh_version())
        relay.fallthrough_upsert_documents(collection=collection, documents=without, version=fresh_version())
    vector = check_vector([rng.gauss(0, 1) for _ in range(4)])
    for spec in (None, {"k": 0}, {"k": {"in": [1, 2]}}):
        query = SearchQuery(vector, None, parse_filter(spec), 100)
        got = hooks.fallthrough_search(collection=collection, query=query)
        want = model.fallthrough_search(collection=collection, query=query)
        assert [hit.id for hit in got] == [hit.id for hit in want]
    hooks.fallthrough_close()


# -- a review of search and filters ------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [{"50%": {"gt": "D1"}}, {"50%": {"gte": "D1", "lt": "D2"}}, {"n.p%": {"lte": "D1"}}, {"%s": {"gte": "D1"}}],
    ids=["gt", "between", "nested", "placeholder-like"],
)
def test_a_datetime_range_on_a_field_named_with_a_percent_sign_answers_as_the_model(
    pgvector_database: str, spec: dict[str, dict[str, str]]
) -> None:
    """The field's name is a literal in the range's SQL (its index expression), which psycopg formats: '%' broke it."""
    d1, d2 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)
    moments = {"D1": d1, "D2": d2}
    spec = {field: {op: moments[bound] for op, bound in ops.items()} for field, ops in spec.items()}
    documents = [
        Document("a", "x", metadata={"50%": d1, "n": {"p%": d1}, "%s": d1}),
        Document("b", "x", metadata={"50%": d2, "n": {"p%": d2}, "%s": d2}),
    ]
    hooks, model = open_backend(pgvector_database), ReferenceBackend()
    collection = _collection("percent")
    version = fresh_version()
    for backend in (hooks, model):
        backend.fallthrough_upsert_documents(collection=collection, documents=documents, version=version)
    query = SearchQuery(None, None, parse_filter(spec), 10)
    expected = [hit.id for hit in model.fallthrough_search(collection=collection, query=query)]
    assert expected  # the filter selects something
    assert [hit.id for hit in hooks.fallthrough_search(collection=collection, query=query)] == expected
    assert hooks.fallthrough_count_documents(collection=collection, filter=parse_filter(spec)) == len(expected)


def test_numbers_of_numpy_types_filter_and_store_as_plain_numbers(pgvector_database: str) -> None:
    """numpy.float64 is a float: the core took it, and the plugin spelled it np.float64(420.0) in a jsonpath."""
    numpy = pytest.importorskip("numpy")
    hooks = open_backend(pgvector_database)
    collection = _collection("numpy")
    documents = [Document("a", "x", metadata={"price": numpy.float64(420.0), "n": numpy.float64(1.5)})]
    hooks.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    (stored,) = hooks.fallthrough_get_documents(collection=collection, ids=["a"])
    assert stored.metadata == {"price": 420.0, "n": 1.5}
    assert type(stored.metadata["price"]) is float
    for spec in (
        {"price": numpy.float64(420.0)},
        {"price": {"in": [numpy.float64(420.0), numpy.int64(7).item()]}},
        {"price": {"ne": numpy.float64(1.0)}},
        {"n": {"gt": numpy.float64(1.0)}},
    ):
        query = SearchQuery(None, None, parse_filter(spec), 10)
        assert [hit.id for hit in hooks.fallthrough_search(collection=collection, query=query)] == ["a"], spec
