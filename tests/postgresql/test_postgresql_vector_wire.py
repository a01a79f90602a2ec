"""Vectors read back in binary: a ``real[]`` loads as packed little-endian float32, exact to the bit.

The reads that return vectors (searches with ``with_vectors``, ``get_documents``,
the listings and the repair's scans) ask for binary results, where
``vectors.Float4ArrayBinaryLoader`` turns the array into the bytes
``kit.decode_document`` reads; parsing the text form cost about 40 µs a
384-dimensional vector. Checked on a real server, against the values sent.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fallthrough.kit import float32_vector
from fallthrough_postgresql import vectors
from tests.postgresql.helpers import direct

_FLOAT32S = st.floats(width=32, allow_nan=False, allow_infinity=False)


@pytest.fixture(scope="module")
def conn(pgvector_database: str) -> Iterator[psycopg.Connection[Any]]:
    opened = direct(pgvector_database)
    vectors.register(opened)
    yield opened
    opened.close()


@settings(max_examples=60, deadline=None)
@given(components=st.lists(_FLOAT32S, min_size=1, max_size=300))
def test_a_real_array_read_in_binary_is_its_float32_components_exactly(
    conn: psycopg.Connection[Any], components: list[float]
) -> None:
    sent = vectors.Float4Array.of(components)
    row = conn.execute("SELECT %s, %s::real[]::text", (sent, sent), binary=True).fetchone()
    assert row is not None
    packed, as_text = row
    assert isinstance(packed, bytes) and packed == struct.pack(f"<{len(components)}f", *components)
    # What the server holds, by its own text form: each the same float32 as the component read back (-0.0 too).
    held = [struct.pack("<f", float(text)) for text in as_text[1:-1].split(",")]
    assert held == [struct.pack("<f", value) for value in float32_vector(packed)]


def test_arrays_that_are_no_vector_are_refused_and_text_results_are_left_as_psycopg_reads_them(
    conn: psycopg.Connection[Any],
) -> None:
    with pytest.raises(psycopg.DataError, match="of one dimension, not of 2"):
        conn.execute("SELECT ARRAY[[1, 2], [3, 4]]::real[]", binary=True).fetchone()
    for with_a_null in ("ARRAY[1, NULL]::real[]", "ARRAY[NULL, NULL]::real[]", "ARRAY[NULL]::real[]"):
        with pytest.raises(psycopg.DataError, match="without NULLs"):
            conn.execute(f"SELECT {with_a_null}", binary=True).fetchone()
    # A slice of an array with a NULL keeps its NULL bitmap (the has-nulls flag), not the NULL.
    assert conn.execute("SELECT (ARRAY[1, 2, NULL]::real[])[1:2]", binary=True).fetchone() == (
        struct.pack("<2f", 1, 2),
    )
    assert conn.execute("SELECT '[0:1]={1.5,-0}'::real[]", binary=True).fetchone() == (struct.pack("<2f", 1.5, -0.0),)
    assert conn.execute("SELECT '{}'::real[]", binary=True).fetchone() == (b"",)
    assert conn.execute("SELECT ARRAY[0.5, -2]::real[]").fetchone() == ([0.5, -2.0],)
