"""Vectors on the wire: a ``real[]`` parameter built straight in PostgreSQL's binary array format, and read back.

psycopg dumps a Python list element by element in Python, which was most
of the time of a bulk upsert of 384-dimensional vectors. Here ``struct``
packs the components in one C call (a third faster than numpy converting
the tuple itself) and numpy puts each one's byte length before it. The
values are already float32 (the core rounds every vector), so nothing is
lost.

Read back, a ``real[]`` arrives as text, each component in the shortest
decimal that names its float32 (``1.2881848``); psycopg parses that as a
float64, which is not the stored float32 (1.2881847620010376).
:func:`fallthrough.kit.decode_document` rounds every vector a store reads
back to float32, which gives the exact values back (a float32's shortest
decimal is nearer to it than to any other float32).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import attrs
import numpy as np
from psycopg import adapt, pq
from psycopg.abc import AdaptContext

FLOAT4_OID = 700
FLOAT4_ARRAY_OID = 1021
# One element: its byte length (4), then the big-endian float32.
_ELEMENT = np.dtype([("length", ">i4"), ("value", ">f4")])
_HEADER = struct.Struct(">iiiii")  # dimensions, has-nulls flag, element type, length, lower bound


@attrs.frozen
class Float4Array:
    """A vector, sent as a binary ``real[]`` parameter."""

    payload: bytes

    @classmethod
    def of(cls, vector: Sequence[float]) -> Float4Array:
        """``vector``'s components as a ``real[]``; each must be a float32, as ``check_vector`` makes them."""
        count = len(vector)
        elements = np.empty(count, dtype=_ELEMENT)
        elements["length"] = 4
        elements["value"] = np.frombuffer(struct.pack(f">{count}f", *vector), dtype=">f4")
        return cls(_HEADER.pack(1, 0, FLOAT4_OID, count, 1) + elements.tobytes())


@attrs.frozen
class PgVector:
    """A query vector, sent in pgvector's own binary format (``vector_recv``'s input).

    Its type is left to the server (no OID: the statement casts it,
    ``%(vector)b::vector(d)``), so no query of the catalog for pgvector's
    OID is needed. Against a ``real[]`` parameter cast to ``vector``, it
    is half the bytes, one ``struct`` call to build, and no array for the
    server to take apart element by element: together about a tenth of a
    kNN search over 10,000 vectors.
    """

    payload: bytes

    @classmethod
    def of(cls, vector: Sequence[float]) -> PgVector:
        """``vector``'s components; each must be a float32, as ``check_vector`` makes them."""
        count = len(vector)
        # The dimension, a reserved zero, then the big-endian float32 components.
        return cls(struct.pack(f">HH{count}f", count, 0, *vector))


class PgVectorDumper(adapt.Dumper):
    format = pq.Format.BINARY
    oid = 0  # unknown: the server takes the type from the statement's cast

    def dump(self, obj: PgVector) -> bytes:
        return obj.payload


class Float4ArrayDumper(adapt.Dumper):
    format = pq.Format.BINARY
    oid = FLOAT4_ARRAY_OID

    def dump(self, obj: Float4Array) -> bytes:
        return obj.payload


def register(context: AdaptContext) -> None:
    """Teach a psycopg connection or cursor to send :class:`Float4Array` and :class:`PgVector` values."""
    context.adapters.register_dumper(Float4Array, Float4ArrayDumper)
    context.adapters.register_dumper(PgVector, PgVectorDumper)


__all__ = ["Float4Array", "Float4ArrayDumper", "PgVector", "PgVectorDumper", "register"]
