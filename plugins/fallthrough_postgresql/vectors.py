"""Vectors on the wire: a ``real[]`` parameter built straight in PostgreSQL's binary array format, and read back.

psycopg dumps a Python list element by element in Python, which was most
of the time of a bulk upsert of 384-dimensional vectors. Here ``struct``
packs the components in one C call (a third faster than numpy converting
the tuple itself) and numpy puts each one's byte length before it. The
values are already float32 (the core rounds every vector), so nothing is
lost.

Read back, the reads that return vectors ask for binary results, and a
``real[]`` arrives in the same format: :class:`Float4ArrayBinaryLoader`
turns it into the packed little-endian float32 bytes that
:func:`fallthrough.kit.decode_document` reads as they are. As text, each
component came as the shortest decimal that names its float32, which
psycopg parsed one by one: about 40 µs a 384-dimensional vector, against
a few here.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import attrs
import numpy as np
import psycopg
from psycopg import adapt, pq
from psycopg.abc import AdaptContext, Buffer

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


class Float4ArrayBinaryLoader(adapt.Loader):
    """A binary ``real[]`` of one dimension and no NULL, as packed little-endian float32 bytes.

    Those are what a stored vector is (see :meth:`Float4Array.of`); an
    array of more dimensions, or with a NULL, raises ``psycopg.DataError``.
    """

    format = pq.Format.BINARY

    def load(self, data: Buffer) -> bytes:
        (dimensions,) = struct.unpack_from(">i", data)
        if dimensions == 0:
            return b""
        if dimensions != 1:
            raise psycopg.DataError(f"a vector is a real[] of one dimension, not of {dimensions}")
        # Not the has-nulls flag: the server sets it for any array that carries a NULL bitmap,
        # a slice without NULLs of one with them included. A NULL element is a length of -1.
        body = len(data) - _HEADER.size
        elements = np.frombuffer(data, dtype=_ELEMENT, offset=_HEADER.size) if body % _ELEMENT.itemsize == 0 else None
        if elements is None or not (elements["length"] == 4).all():
            raise psycopg.DataError("a vector is a real[] without NULLs")
        return elements["value"].astype("<f4").tobytes()


def register(context: AdaptContext) -> None:
    """Teach a psycopg connection or cursor to send :class:`Float4Array` and :class:`PgVector` values, and read vectors.

    A ``real[]`` in binary results loads as packed float32 bytes
    (:class:`Float4ArrayBinaryLoader`); in text results it is a list of
    floats, as psycopg loads it.
    """
    context.adapters.register_dumper(Float4Array, Float4ArrayDumper)
    context.adapters.register_dumper(PgVector, PgVectorDumper)
    context.adapters.register_loader(FLOAT4_ARRAY_OID, Float4ArrayBinaryLoader)


__all__ = ["Float4Array", "Float4ArrayBinaryLoader", "Float4ArrayDumper", "PgVector", "PgVectorDumper", "register"]
