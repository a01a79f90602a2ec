"""The plugin authors' kit: each public function does what its docstring promises."""

from __future__ import annotations

import array
import ctypes
import json
import math
import struct
import threading
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from fallthrough import Document, Hit
from fallthrough.errors import BackendUnavailable, InvalidInput
from fallthrough.kit import (
    Endpoint,
    Opened,
    UrlOptions,
    check_dimensions,
    chunked,
    cosine_similarity,
    decode_document,
    decode_hit,
    decode_records,
    dump_json,
    dump_json_optional,
    dump_metadata,
    float32_vector,
    from_rfc3339,
    is_collection_name,
    lexicographic_below,
    load_json,
    load_json_optional,
    load_metadata,
    load_metadata_all,
    page_from_seq_order,
    require_modules,
    rfc3339,
    tag_datetimes,
    untag_datetimes,
)
from fallthrough.testing import strategies as fallthrough_strategies
from fallthrough.types import Metadata, Record, Status, from_micros, to_micros

MOMENT = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)
FIRST = datetime(1, 1, 1, tzinfo=UTC)
# Pure functions, but a loaded machine can pause any example past Hypothesis's default deadline of 200 ms.
_NO_DEADLINE = settings(deadline=None)


# -- JSON text ---------------------------------------------------------------


def test_json_text_is_compact_unescaped_and_reads_back_type_for_type() -> None:
    value = {"ключ": [1, 1.0, True, None, "x\u00e9", -0.0, 1e300], "b": {"n": 2**53}}
    text = dump_json(value)
    assert text == '{"ключ":[1,1.0,true,null,"xé",-0.0,1e+300],"b":{"n":9007199254740992}}'
    loaded = load_json(text)
    assert loaded == value
    assert [type(element) for element in loaded["ключ"]] == [int, float, bool, type(None), str, float, float]
    assert math.copysign(1, loaded["ключ"][5]) == -1


def test_json_text_refuses_nan() -> None:
    with pytest.raises(ValueError):
        dump_json([math.nan])


def test_optional_json_is_none_for_none_only() -> None:
    assert dump_json_optional(None) is None
    assert dump_json_optional(0) == "0"
    assert load_json_optional(None) is None
    assert load_json_optional("null") is None
    assert load_json_optional("[]") == []


# -- datetimes ---------------------------------------------------------------


def test_datetimes_are_tagged_as_micros_by_default_and_read_back_in_utc() -> None:
    local = MOMENT.astimezone(timezone(timedelta(hours=5)))
    stored = tag_datetimes([local, "t", None])
    assert stored == [{"$dt": 1709251199123456}, "t", None]
    assert tag_datetimes((MOMENT,)) == [{"$dt": 1709251199123456}]
    assert tag_datetimes(3) == 3
    back = untag_datetimes(stored)
    assert back == [MOMENT, "t", None]
    assert back[0].tzinfo == UTC


def test_metadata_text_tags_datetimes_and_nothing_else_in_either_spelling() -> None:
    metadata = {"at": MOMENT, "list": [FIRST, "2024-01-01T00:00:00.000000Z", None, 1.0], "n": 1}
    micros = dump_metadata(metadata)
    assert json.loads(micros)["at"] == {"$dt": 1709251199123456}
    assert load_metadata(micros) == metadata
    text = dump_metadata(metadata, rfc3339)
    assert json.loads(text) == {
        "at": {"$dt": "2024-02-29T23:59:59.123456Z"},
        "list": [{"$dt": "0001-01-01T00:00:00.000000Z"}, "2024-01-01T00:00:00.000000Z", None, 1.0],
        "n": 1,
    }
    decoded = load_metadata(text, from_rfc3339)
    assert decoded == metadata
    assert isinstance(decoded["n"], int) and isinstance(decoded["list"][3], float)  # type: ignore[index]


@_NO_DEADLINE
@given(st.lists(fallthrough_strategies.metadata(), max_size=6), st.booleans())
def test_metadata_of_many_rows_reads_as_each_row_alone(metadatas: list[dict[str, object]], as_rfc3339: bool) -> None:
    spell, read = (rfc3339, from_rfc3339) if as_rfc3339 else (to_micros, from_micros)
    texts = [dump_metadata(metadata, spell) for metadata in metadatas]
    assert load_metadata_all(texts, read) == [load_metadata(text, read) for text in texts]


def test_metadata_of_many_rows_tags_only_where_a_row_has_a_datetime() -> None:
    texts = [dump_metadata({"n": 1}), dump_metadata({"at": MOMENT}), "{}"]
    assert load_metadata_all(texts) == [{"n": 1}, {"at": MOMENT}, {}]
    assert load_metadata_all([]) == []


def test_metadata_of_many_rows_refuses_text_that_is_not_one_value_a_row() -> None:
    with pytest.raises(ValueError, match="one JSON object per row"):
        load_metadata_all(['{"a":1},{"b":2}'])


def test_metadata_without_a_tag_reads_as_written() -> None:
    assert load_metadata('{"a":[1,"x",null],"b":true,"c":"$dt"}') == {"a": [1, "x", None], "b": True, "c": "$dt"}
    assert load_metadata('{"$dt":[1]}', from_micros) == {"$dt": [1]}


def test_rfc3339_is_fixed_width_utc_and_exact() -> None:
    assert rfc3339(FIRST) == "0001-01-01T00:00:00.000000Z"
    assert rfc3339(MOMENT.astimezone(timezone(timedelta(hours=-3)))) == "2024-02-29T23:59:59.123456Z"
    assert from_rfc3339("2024-02-29T23:59:59.123456Z") == MOMENT
    assert from_rfc3339("2024-03-01T01:59:59.123456+02:00") == MOMENT
    with pytest.raises(ValueError, match="no offset"):
        from_rfc3339("2024-02-29T23:59:59")


# -- calls and vectors -------------------------------------------------------


def test_chunked_keeps_order_and_bounds_every_slice() -> None:
    assert [list(chunk) for chunk in chunked(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []
    assert [list(chunk) for chunk in chunked("ab", 5)] == [["a", "b"]]
    with pytest.raises(ValueError):
        list(chunked([1], 0))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((1.0, 0.0), (0.0, 1.0)),
        ((0.1, 0.2, 0.3), (0.3, 0.2, 0.1)),
        ((1e-30, 1.0), (1.0, 1e-30)),
        ((3.0, 4.0), (6.0, 8.0)),
    ],
)
def test_cosine_similarity_is_exact_sums_then_norms_to_the_bit(a: tuple[float, ...], b: tuple[float, ...]) -> None:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    assert cosine_similarity(a, b) == dot / norms


_FLOAT32S = st.floats(width=32, allow_nan=False, allow_infinity=False)


@_NO_DEADLINE
@given(st.lists(_FLOAT32S, max_size=40))
def test_float32_vector_reads_little_endian_float32_exactly(components: list[float]) -> None:
    packed = struct.pack(f"<{len(components)}f", *components)
    assert float32_vector(packed) == tuple(components)
    assert float32_vector(memoryview(packed)) == tuple(components)


def test_float32_vector_refuses_a_length_that_is_not_whole_components() -> None:
    with pytest.raises(ValueError):
        float32_vector(b"\x00\x00\x80\x3f\x00")


@_NO_DEADLINE
@given(st.lists(_FLOAT32S, min_size=1, max_size=40))
def test_decode_document_reads_packed_bytes_as_the_components_they_hold(components: list[float]) -> None:
    packed = struct.pack(f"<{len(components)}f", *components)
    from_bytes = decode_document("d", "text", packed, {"n": 1})
    assert from_bytes == decode_document("d", "text", components, {"n": 1})
    assert from_bytes.vector == tuple(components)
    assert decode_document("d", "text", memoryview(packed), {}).vector == tuple(components)
    assert decode_document("d", "text", bytearray(packed), {}).vector == tuple(components)


@_NO_DEADLINE
@given(st.integers(1, 40).flatmap(fallthrough_strategies.vectors), st.sampled_from(["f", "d"]))
def test_a_typed_memoryview_reads_as_the_components_it_holds_as_hit_reads_it(
    components: tuple[float, ...], typecode: str
) -> None:
    """A view of floats (numpy's buffer, an ``array``) holds components, not packed bytes to reinterpret."""
    view = memoryview(array.array(typecode, components))
    assert decode_document("d", "text", view, {}).vector == tuple(components)
    assert decode_hit("d", 0.5, "text", {}, view) == Hit("d", 0.5, "text", {}, view)
    packed = struct.pack(f"<{len(components)}f", *components)
    byte_views = [memoryview(packed).cast(byte_format) for byte_format in ("B", "b", "c")]
    byte_views.append(memoryview((ctypes.c_ubyte * len(packed)).from_buffer_copy(packed)))  # format "<B"
    for byte_view in byte_views:  # a view of bytes, whatever it calls them, is packed float32
        assert decode_hit("d", 0.5, "text", {}, byte_view).vector == tuple(components)


def test_decode_document_rounds_components_to_float32_again() -> None:
    """A driver may parse a float4 from its text form (0.1): the Document holds float32's 0.1 again."""
    assert decode_document("d", "text", [0.1], {}).vector == struct.unpack("<f", struct.pack("<f", 0.1))


@_NO_DEADLINE
@given(
    st.text(min_size=1),
    st.floats(allow_nan=False),
    st.text(),
    fallthrough_strategies.metadata(),
    st.none() | st.integers(1, 40).flatmap(fallthrough_strategies.vectors),
)
def test_decode_hit_builds_the_hit_that_hit_builds_from_valid_values(
    document_id: str, score: float, text: str, metadata: Metadata, components: tuple[float, ...] | None
) -> None:
    """What a store read back builds the same Hit without ``Hit``'s checks; packed bytes read as their components."""
    expected = Hit(document_id, score, text, metadata, components)
    decoded = decode_hit(document_id, score, text, metadata, components)
    assert decoded == expected
    assert type(decoded) is Hit and decoded.vector == expected.vector
    if components is not None:
        packed = struct.pack(f"<{len(components)}f", *components)
        assert decode_hit(document_id, score, text, metadata, memoryview(packed)) == expected


def test_decode_hit_rounds_components_to_float32_again_and_keeps_no_list() -> None:
    """As decode_document: a float4 parsed from text (0.1) reads as float32's 0.1, in a tuple of its own."""
    components = [0.1, 2.0]
    hit = decode_hit("d", 0.5, "text", {}, components)
    components[1] = 3.0
    assert hit.vector == struct.unpack("<2f", struct.pack("<2f", 0.1, 2.0))
    assert decode_hit("d", 0.5, "text", {}).vector is None


def test_cosine_similarity_values() -> None:
    assert cosine_similarity((1.0, 0.0), (0.0, 2.0)) == 0.0
    assert cosine_similarity((3.0, 4.0), (6.0, 8.0)) == pytest.approx(1.0, abs=1e-15)
    assert cosine_similarity((1.0, 0.0), (-1.0, 0.0)) == -1.0
    with pytest.raises(ValueError):
        cosine_similarity((1.0,), (1.0, 2.0))


def test_check_dimensions_refuses_a_mix_and_a_mismatch_and_names_the_one_dimension() -> None:
    plain = Document("p", "plain")
    two = [Document("a", "a", vector=(1.0, 0.0)), plain, Document("b", "b", vector=(0.0, 1.0))]
    assert check_dimensions("c", None, two) == 2
    assert check_dimensions("c", 2, two) == 2
    assert check_dimensions("c", 5, [plain]) is None
    with pytest.raises(InvalidInput, match=r"mix vector dimensions \[2, 3\]"):
        check_dimensions("c", None, [*two, Document("x", "x", vector=(1.0, 2.0, 3.0))])
    with pytest.raises(InvalidInput, match="holds vectors of dimension 3"):
        check_dimensions("c", 3, two)


def test_is_collection_name_follows_the_core() -> None:
    assert is_collection_name("docs_2024-a")
    assert not is_collection_name("")
    assert not is_collection_name("-docs")
    assert not is_collection_name("a" * 64)
    assert not is_collection_name("dös")


# -- the merge order ---------------------------------------------------------


def test_lexicographic_below_lists_one_alternative_per_field() -> None:
    key = [("attempt", 2), ("rank", 1), ("tiebreak", 9)]
    assert lexicographic_below(key) == [
        ([], ("attempt", 2)),
        ([("attempt", 2)], ("rank", 1)),
        ([("attempt", 2), ("rank", 1)], ("tiebreak", 9)),
    ]
    assert lexicographic_below([]) == []


@pytest.mark.parametrize("stored", [(a, b, c) for a in range(3) for b in range(3) for c in range(3)])
def test_lexicographic_below_means_tuple_order(stored: tuple[int, int, int]) -> None:
    key = [("a", 1), ("b", 1), ("c", 1)]
    fields = dict(zip("abc", stored, strict=True))
    holds = any(
        all(fields[name] == value for name, value in equal) and fields[field] < bound
        for equal, (field, bound) in lexicographic_below(key)
    )
    assert holds == (stored < (1, 1, 1))


# -- URLs --------------------------------------------------------------------


def test_endpoint_masks_declared_and_common_secrets_and_redacts_text() -> None:
    url = make_url("mydb://app:pw-1@host/db?vault_pin=pin-2&sslpassword=ssl-3&region=eu")
    endpoint = Endpoint.from_url("mydb", url, {"VAULT_PIN"})
    assert endpoint.text == "mydb mydb://app:***@host/db?region=eu&sslpassword=***&vault_pin=***"
    assert str(endpoint) == endpoint.text
    assert set(endpoint.secrets) == {"pw-1", "pin-2", "ssl-3"}
    assert "pin-2" not in repr(endpoint) and "pw-1" not in repr(endpoint)
    assert endpoint.redact("login pw-1 with pin-2") == "login *** with ***"
    error = endpoint.unavailable("is unavailable", OSError("refused pin-2"))
    assert isinstance(error, BackendUnavailable)
    assert str(error) == f"{endpoint.text} is unavailable: OSError: refused ***"
    undeclared = Endpoint.from_url("mydb", url)
    assert "pin-2" in undeclared.text


def test_endpoint_may_show_a_path_instead_of_the_url() -> None:
    endpoint = Endpoint.from_url("sqlite database", make_url("sqlite:///x.db"), where="'x.db'")
    assert endpoint.text == "sqlite database 'x.db'"


def test_url_options_refuse_unknown_names_without_repeating_the_url() -> None:
    url = make_url("mydb://app:secret@h/db?colour=red&timeout=1")
    with pytest.raises(InvalidInput, match=r"unknown mydb URL options \['colour'\]") as raised:
        UrlOptions(url, "mydb", {"timeout"})
    assert "secret" not in str(raised.value)
    assert UrlOptions(url, "mydb").names() == ["colour", "timeout"]


def test_url_options_refuse_an_option_given_twice_without_repeating_the_url() -> None:
    url = make_url("mydb://app:secret@h/db?timeout=1&many=1&timeout=5&many=3&one=1")
    expected = r"the mydb URL gives the options \['many', 'timeout'\] more than once"
    with pytest.raises(InvalidInput, match=expected) as raised:
        UrlOptions(url, "mydb")
    assert "secret" not in str(raised.value)


def test_url_options_numbers_take_defaults_and_bounds() -> None:
    options = UrlOptions(make_url("mydb://h?timeout=2.5&zero=0&top=10"), "mydb")
    assert options.text("top") == "10"
    assert options.text("absent") is None
    assert options.number("timeout", 5, low=0, high=10) == 2.5
    assert options.number("absent", 5, low=0, high=1) == 5
    assert options.number("zero", 5, low=0, high=10) == 0
    assert options.number("top", 5, low=0, high=10) == 10
    with pytest.raises(InvalidInput, match="zero must be a number of seconds above 0 to 10"):
        options.number("zero", 5, low=0, high=10, low_open=True)
    with pytest.raises(InvalidInput, match="top must be a number of seconds from 0 below 10, got '10'"):
        options.number("top", 5, low=0, high=10, high_open=True)
    bad = UrlOptions(make_url("mydb://h?timeout=soon&nan=nan"), "mydb")
    with pytest.raises(InvalidInput, match="timeout"):
        bad.number("timeout", 5, low=0, high=10)
    with pytest.raises(InvalidInput, match="nan"):
        bad.number("nan", 5, low=0, high=10)


def test_url_options_integers() -> None:
    options = UrlOptions(make_url("mydb://h?pool=5&whole=5.0&half=2.5&word=many&low=0"), "mydb")
    assert options.integer("pool", 1, low=1, high=10) == 5
    assert options.integer("whole", 1, low=1) == 5
    assert options.integer("absent", None, low=1) is None
    with pytest.raises(InvalidInput, match=r"half must be an integer, got '2\.5'"):
        options.integer("half", 1, low=1)
    with pytest.raises(InvalidInput, match="word must be an integer"):
        options.integer("word", 1, low=1)
    with pytest.raises(InvalidInput, match="low must be an integer at least 1, got 0"):
        options.integer("low", 1, low=1)
    with pytest.raises(InvalidInput, match="pool must be an integer from 1 to 4, got 5"):
        options.integer("pool", 1, low=1, high=4)


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("On", True), ("1", True), ("no", False), ("0", False)])
def test_url_options_flags(raw: str, expected: bool) -> None:
    assert UrlOptions(make_url(f"mydb://h?fast={raw}"), "mydb").flag("fast", not expected) is expected


def test_url_options_flags_refuse_anything_else() -> None:
    options = UrlOptions(make_url("mydb://h?fast=maybe"), "mydb")
    assert options.flag("absent", True) is True
    with pytest.raises(InvalidInput, match="fast must be true or false, got 'maybe'"):
        options.flag("fast", False)


# -- lifecycle ---------------------------------------------------------------


def test_opened_builds_once_guards_every_call_and_hands_back_on_close() -> None:
    opened: Opened[list[int]] = Opened(Endpoint("mydb", "h"))
    with pytest.raises(BackendUnavailable, match="mydb h is not open"):
        opened.get()
    assert opened.close() is None, "closing what was never opened is fine"
    builds: list[int] = []

    def build() -> list[int]:
        builds.append(1)
        return builds

    assert opened.open(build) is builds
    assert opened.open(build) is builds
    assert builds == [1] and opened.is_open and opened.get() is builds
    assert opened.close() is builds
    assert not opened.is_open
    with pytest.raises(BackendUnavailable):
        opened.get()


def test_opened_stays_closed_when_building_fails_and_builds_once_under_races() -> None:
    opened: Opened[object] = Opened(Endpoint("mydb", "h"))

    def fail() -> object:
        raise BackendUnavailable("down")

    with pytest.raises(BackendUnavailable, match="down"):
        opened.open(fail)
    assert not opened.is_open
    builds: list[object] = []
    gate = threading.Barrier(8)

    def build() -> object:
        builds.append(object())
        return builds[-1]

    def racer() -> None:
        gate.wait()
        opened.open(build)

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1


def test_require_modules_names_the_extra_that_installs_a_missing_driver() -> None:
    require_modules("JSON", "json", "json", "math")
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'fallthrough\[mydb\]'") as raised:
        require_modules("MyDB", "mydb", "json", "fallthrough_no_such_driver")
    assert raised.value.name == "fallthrough_no_such_driver"
    assert "the MyDB backend needs it" in str(raised.value)


def test_require_modules_names_a_third_party_distribution_when_told_it() -> None:
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'fallthrough-mydb\[driver\]'$"):
        require_modules("MyDB", "", "fallthrough_no_such_driver", install="fallthrough-mydb[driver]")


def test_decode_records_puts_every_column_in_its_field_and_shares_equal_stamps() -> None:
    batch_id = uuid.uuid4()
    rows = [
        ("a", 1, "completed", 2, '{"n":1}', None, 1_000_000, None, None),
        ("b", 2, "processing", 0, None, "boom", 1_000_000, "w", 3_000_000),
    ]
    first, second = decode_records(batch_id, rows)
    assert first == Record(batch_id, "a", 1, Status.COMPLETED, 2, {"n": 1}, None, from_micros(1_000_000))
    assert second == Record(
        batch_id, "b", 2, Status.PROCESSING, 0, None, "boom", from_micros(1_000_000), "w", from_micros(3_000_000)
    )
    assert first.updated_at is second.updated_at  # one datetime per distinct stamp
    with pytest.raises(ValueError):
        list(decode_records(batch_id, [("c", 3, "lost", 0, None, None, 1, None, None)]))


# Few values per field, so that rows agreeing on all but one field are common.
_SHARED_FIELDS = st.tuples(
    st.sampled_from(["pending", "failed"]),
    st.integers(0, 1),
    st.sampled_from([None, None, '{"n": 1}']),
    st.sampled_from([None, "boom"]),
    st.sampled_from([1_000_000, 2_000_000]),
    st.sampled_from([None, "w"]),
    st.sampled_from([None, 3_000_000]),
)


@_NO_DEADLINE
@given(st.lists(_SHARED_FIELDS, max_size=12))
def test_decode_records_builds_every_record_as_its_constructor_would(shared: list[tuple[object, ...]]) -> None:
    """Rows that agree on all but key and seq (a created batch's) are built from one another's fields:
    each still equals the record built field by field, and no two share a result."""
    batch_id = uuid.uuid4()
    rows = [(f"k{index}", index, *fields) for index, fields in enumerate(shared)]
    decoded = list(decode_records(batch_id, rows))
    expected = [
        Record(
            batch_id,
            key,
            seq,
            Status(status),
            attempt,
            None if result is None else json.loads(result),
            error,
            from_micros(updated_us),
            lease_owner,
            None if lease_us is None else from_micros(lease_us),
        )
        for key, seq, status, attempt, result, error, updated_us, lease_owner, lease_us in rows
    ]
    assert decoded == expected
    assert [(record.key, record.seq) for record in decoded] == [(row[0], row[1]) for row in rows]
    results = [id(record.result) for record in decoded if record.result is not None]
    assert len(results) == len(set(results)), "two records share one decoded result"


def test_a_record_page_builds_each_record_when_reached_and_keeps_none() -> None:
    batch_id = uuid.uuid4()
    rows = [(f"k{index}", index, "pending", 0, None, None, 1_000_000, None, None) for index in range(5)]
    page = decode_records(batch_id, iter(rows))  # a cursor is read whole at once
    expected = [
        Record(batch_id, f"k{index}", index, Status.PENDING, 0, None, None, from_micros(1_000_000))
        for index in range(5)
    ]
    assert len(page) == 5
    assert page == expected and expected == page and page == decode_records(batch_id, rows)
    assert page != expected[:4] and page != tuple(expected)
    assert (page[0], page[-1], page[1:3]) == (expected[0], expected[-1], expected[1:3])
    assert list(reversed(page)) == expected[::-1] and page.index(expected[2]) == 2
    # Nothing is held between passes: each pass builds fresh, equal records, and a record the
    # caller dropped is gone once the next is built (so the collector never sees a page of them).
    first_pass, second_pass = iter(page), iter(page)
    one = next(first_pass)
    assert one == next(second_pass) and one is not page[0]
    reached = weakref.ref(one)
    del one
    assert next(first_pass).key == "k1"
    assert reached() is None
    # The page keeps the rows as they were: the caller's list may change after.
    mutable = list(rows)
    kept = decode_records(batch_id, mutable)
    mutable.clear()
    assert kept == expected
    # An unknown status is refused when its record is reached, not before.
    broken = decode_records(batch_id, [*rows[:1], ("c", 9, "lost", 0, None, None, 1, None, None)])
    assert broken[0] == expected[0]
    with pytest.raises(ValueError):
        broken[1]
    assert repr(broken) == "<RecordPage of 2 rows, not all decodable>"
    assert repr(decode_records(batch_id, rows[:1])) == f"RecordPage([{expected[0]!r}])"


# -- Keyset pages from a store that orders by seq alone ----------------------------


def _seq_ordered_store(
    records: list[tuple[int, str]], randoms: st.DataObject
) -> Callable[[int | None, int], list[dict[str, object]]]:
    """A store that answers "``fetch`` records from this seq on, by seq", ties in an order of its own each time."""

    def fetch_from(start: int | None, fetch: int) -> list[dict[str, object]]:
        chosen = [record for record in records if start is None or record[0] >= start]
        shuffled = randoms.draw(st.permutations(chosen))
        by_seq = sorted(shuffled, key=lambda record: record[0])  # stable: ties stay shuffled
        return [{"seq": seq, "key": key} for seq, key in by_seq[:fetch]]

    return fetch_from


@_NO_DEADLINE
@given(
    records=st.dictionaries(st.text("abc", min_size=1, max_size=3), st.integers(0, 4), max_size=30),
    limit=st.integers(1, 8),
    randoms=st.data(),
)
def test_pages_from_seq_order_walk_every_record_once_in_seq_then_key_order(
    records: dict[str, int], limit: int, randoms: st.DataObject
) -> None:
    """The loop a plugin writes around it, over seqs with many ties: the pages, joined, are the records in order."""
    store = _seq_ordered_store([(seq, key) for key, seq in records.items()], randoms)
    seen: list[tuple[int, str]] = []
    after: tuple[int, str] | None = None
    while True:
        fetch = limit + 2
        while (
            page := page_from_seq_order(store(None if after is None else after[0], fetch), fetch, after, limit)
        ) is None:
            fetch *= 2
        seen += [(int(str(record["seq"])), str(record["key"])) for record in page]
        assert len(page) <= limit
        if len(page) < limit:
            break
        after = seen[-1]
    assert seen == sorted((seq, key) for key, seq in records.items())


def test_a_page_of_distinct_seqs_is_decided_by_one_fetch_of_two_more() -> None:
    stored = [{"seq": seq, "key": f"k{seq}"} for seq in range(10, 20)]
    # The cursor's own record, the page, and one past it.
    assert page_from_seq_order(stored[2:7], 5, (12, "k12"), 3) == stored[3:6]


def test_a_page_whose_last_seq_may_continue_past_the_fetch_is_not_decided() -> None:
    fetched = [{"seq": 1, "key": "b"}, {"seq": 2, "key": "z"}, {"seq": 2, "key": "x"}]
    # "y" at seq 2 may be past the fetch: only seq 1 is certain, fewer than the page.
    assert page_from_seq_order(fetched, 3, None, 2) is None
    assert page_from_seq_order(fetched, 4, None, 2) == [fetched[0], fetched[2]]  # fewer than asked: that is all
