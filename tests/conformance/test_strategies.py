"""The strategies yield only inputs the core accepts, of the kinds they promise."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from hypothesis import find, given
from hypothesis import strategies as st

from fallthrough.filters import matches, parse_filter
from fallthrough.testing import strategies
from fallthrough.testing.compare import assert_same
from fallthrough.testing.profiles import conformance_settings
from fallthrough.text import token_set
from fallthrough.types import Document, RecordUpdate, Status
from fallthrough.validation import check_json, check_key, check_metadata, check_vector

VOCABULARY_TOKENS = frozenset().union(*(token_set(word) for word in strategies.VOCABULARY))


@conformance_settings()
@given(strategies.keys(), strategies.document_ids())
def test_keys_and_ids_are_valid(key: str, document_id: str) -> None:
    check_key(key)
    check_key(document_id, "document id")


@conformance_settings()
@given(strategies.json_values())
def test_json_values_are_valid_and_survive_a_json_round_trip(value: object) -> None:
    check_json(value, "result")
    assert_same(json.loads(json.dumps(value)), value)


@conformance_settings()
@given(strategies.filters(), strategies.metadata())
def test_filters_parse_and_evaluate(spec: dict[str, object], metadata: dict[str, object]) -> None:
    node = parse_filter(spec)
    assert node is not None
    assert isinstance(matches(node, check_metadata(metadata)), bool)


@conformance_settings()
@given(strategies.documents())
def test_documents_are_valid_with_float32_vectors_of_the_dimension_asked(document: Document) -> None:
    assert document.vector is None or (len(document.vector) == 3 and check_vector(document.vector) == document.vector)


@conformance_settings()
@given(strategies.query_texts())
def test_query_texts_have_tokens_and_only_vocabulary_tokens(text: str) -> None:
    assert token_set(text)
    assert token_set(text) <= VOCABULARY_TOKENS


@conformance_settings()
@given(st.lists(strategies.timestamps(), min_size=2, max_size=2))
def test_timestamps_are_aware_and_within_the_window(stamps: list[datetime]) -> None:
    for stamp in stamps:
        assert stamp.tzinfo is not None and 0 <= (stamp - strategies.BASE_TIME).total_seconds() < 0.001


@conformance_settings()
@given(st.uuids(), strategies.keys(), st.data())
def test_record_updates_are_valid(batch_id: object, key: str, data: st.DataObject) -> None:
    update = data.draw(strategies.record_updates(batch_id, key))  # type: ignore[arg-type]
    assert isinstance(update, RecordUpdate) and (update.batch_id, update.key) == (batch_id, key)


@conformance_settings()
@given(st.uuids(), strategies.keys(), st.data())
def test_full_records_hold_a_lease_whole_or_none(batch_id: object, key: str, data: st.DataObject) -> None:
    record = data.draw(strategies.full_records(batch_id, key))  # type: ignore[arg-type]
    assert (record.batch_id, record.key) == (batch_id, key)
    assert (record.lease_owner is None) == (record.lease_expires is None)
    if record.lease_owner is not None:
        assert record.lease_expires is not None and record.lease_expires > record.updated_at
        assert (record.status, record.result, record.error) == (Status.PROCESSING, None, None)


def test_full_records_sometimes_hold_a_lease() -> None:
    """A merge that drops the lease is found only if the random sequences merge leases."""
    batch_id = uuid.uuid4()
    find(strategies.full_records(batch_id, "k"), lambda record: record.lease_owner is not None)
    find(strategies.full_records(batch_id, "k"), lambda record: record.lease_owner is None)


def _contains(value: object, wanted: type) -> bool:
    if isinstance(value, dict):
        return any(_contains(item, wanted) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_contains(item, wanted) for item in value)
    return isinstance(value, wanted)


def _uses_operator(spec: object, op: str, operand: type) -> bool:
    if isinstance(spec, dict):
        return any(
            (key == op and isinstance(value, operand)) or _uses_operator(value, op, operand)
            for key, value in spec.items()
        )
    if isinstance(spec, list):
        return any(_uses_operator(item, op, operand) for item in spec)
    return False


def test_metadata_holds_datetimes_in_other_time_zones_and_fields_without_a_value() -> None:
    find(strategies.metadata(), lambda metadata: _contains(metadata, datetime))
    find(
        strategies.metadata(),
        lambda metadata: any(isinstance(v, datetime) and v.utcoffset() for v in metadata.values()),
    )
    find(strategies.metadata(), lambda metadata: any(v == [None] for v in metadata.values()))
    find(strategies.metadata(), lambda metadata: any(v == [] for v in metadata.values()))


def test_filters_use_exists_and_datetime_operands() -> None:
    find(strategies.filters(), lambda spec: _uses_operator(spec, "exists", bool))
    for op in ("eq", "gt", "lte"):
        find(strategies.filters(), lambda spec, op=op: _uses_operator(spec, op, datetime))  # type: ignore[misc]
    find(strategies.filters(), lambda spec: _uses_operator(spec, "in", list) and _contains(spec, datetime))


@conformance_settings()
@given(strategies.datetimes())
def test_datetimes_are_aware_and_stay_within_years_1_to_9999_in_utc(moment: datetime) -> None:
    assert moment.utcoffset() is not None
    assert 1 <= check_metadata({"t": moment})["t"].year <= 9999  # type: ignore[union-attr]
