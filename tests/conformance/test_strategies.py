"""The strategies yield only inputs the core accepts, of the kinds they promise."""

from __future__ import annotations

import json
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from fallthrough.filters import matches, parse_filter
from fallthrough.testing import strategies
from fallthrough.testing.compare import assert_same
from fallthrough.testing.profiles import conformance_settings
from fallthrough.text import token_set
from fallthrough.types import Document, RecordUpdate
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
