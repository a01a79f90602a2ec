"""Text, filters and documents against the reference model, and why MatchText alone would not do."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from qdrant_client import QdrantClient, models

from fallthrough.filters import matches, parse_filter
from fallthrough.testing import strategies
from fallthrough.testing.drivers import HookDriver, fresh_version
from fallthrough.testing.twin import Twin
from fallthrough.text import token_set
from fallthrough.types import Document, SearchQuery
from fallthrough_qdrant import QdrantBackend

SHOP = (
    Document("cement", "Цемент М-500, мешок 50 кг"),
    Document("pipe", "Труба ПВХ/PVC 2.5мм", metadata={"price": 420, "tags": ["pvc", "pipe"]}),
    Document("street", "Straße"),
    Document("accent", "e\u0301te"),
    Document("file", "ﬁle"),
    Document("upper", "ЦЕМЕНТ М500", vector=(1.0, 0.0, 0.0)),
)


def test_text_matches_the_core_tokens_cyrillic_and_punctuation_included(twin: Twin) -> None:
    collection = twin.new_collection()
    twin.upsert(collection, *SHOP)
    expectations = {
        "М-500": {"cement"},  # tokens м and 500
        "м 500": {"cement"},
        "цемент": {"cement", "upper"},
        "2.5мм": {"pipe"},  # tokens 2 and 5мм
        "5мм": {"pipe"},
        "2.5": set(),  # 5 is not a token of 2.5мм
        "пвх": {"pipe"},
        "PVC": {"pipe"},
        "STRASSE": {"street"},  # casefold: ß is ss
        "\u00e9te": {"accent"},  # NFC
        "FILE": {"file"},  # casefold of the ligature
        "м500": {"upper"},
    }
    for text, expected in expectations.items():
        hits = twin.search(collection, text=text, limit=20)
        assert {hit.id for hit in hits} == expected, text


def test_qdrant_match_text_alone_would_break_the_token_rule() -> None:
    """Why tokens are stored: local mode's MatchText lower-cases without casefold or NFC."""
    client = QdrantClient(location=":memory:")
    client.create_collection("t", vectors_config={})
    client.upsert("t", [models.PointStruct(id=1, vector={}, payload={"text": "Straße"})])
    core_says = token_set("STRASSE") <= token_set("Straße")
    by_match_text = client.count(
        "t", models.Filter(must=[models.FieldCondition(key="text", match=models.MatchText(text="STRASSE"))])
    ).count
    assert core_says and by_match_text == 0
    client.close()


def test_vectors_and_documents_round_trip_exactly_and_move_between_kinds(twin: Twin) -> None:
    collection = twin.new_collection()
    twin.upsert(collection, Document("a", "x", metadata={"n": 1.0}), Document("b", "y", vector=(0.1, 0.2, 0.3)))
    assert twin.get(collection, "b", "a")[0].vector == Document("b", vector=(0.1, 0.2, 0.3)).vector
    # a gains a vector, b loses its own: each lives in one collection only, and search sees that.
    twin.upsert(collection, Document("a", "x", vector=(3.0, 1.0, 0.0)), Document("b", "y"))
    twin.search(collection, vector=(1.0, 0.0, 0.0), limit=5)
    twin.search(collection, text="y", limit=5)
    twin.search(collection, limit=5)
    assert (
        twin.call("fallthrough_delete_documents", collection=collection, ids=("a", "b", "c"), version=fresh_version())
        == 2
    )
    # The dimension stays fixed after every document is gone.
    try:
        twin.upsert(collection, Document("c", vector=(1.0, 2.0)))
    except ValueError:
        pass
    else:
        raise AssertionError("a vector of another dimension must be refused")
    assert twin.get(collection, "c") == []


_CORPUS = st.lists(
    st.builds(Document, strategies.document_ids(), st.just(""), st.none(), strategies.metadata()),
    min_size=1,
    max_size=12,
    unique_by=lambda document: document.id,
)


@settings(max_examples=40, deadline=None)
@given(documents=_CORPUS, filters=st.lists(strategies.filters(), min_size=1, max_size=4))
def test_filters_select_exactly_what_the_reference_semantics_select(
    documents: list[Document], filters: list[dict[str, object]]
) -> None:
    driver = HookDriver(QdrantBackend("qdrant+memory://"), "qdrant")
    driver.open()
    try:
        driver.call("fallthrough_upsert_documents", collection="c", documents=tuple(documents), version=fresh_version())
        for spec in filters:
            node = parse_filter(spec)
            query = SearchQuery(vector=None, text=None, filter=node, limit=10_000)
            hits = driver.call("fallthrough_search", collection="c", query=query)
            expected = sorted(document.id for document in documents if matches(node, document.metadata))
            assert [hit.id for hit in hits] == expected, spec
    finally:
        driver.close()
