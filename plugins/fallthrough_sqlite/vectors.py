"""Vectors: their BLOB encoding, a per-collection matrix cache, and cosine ranking.

SQLite has no vector index here (sqlite-vec needs extension loading, which
this Python's sqlite3 lacks), so search is brute force with numpy over a
matrix of the collection's vectors, cached until the collection changes.

Ranking is done twice. numpy scores every candidate in float64, which is
fast and accurate to about 1e-12; then the few candidates that can reach
the top ``limit`` are scored again exactly as the reference model does
(products in float64, :func:`math.fsum`, then the norms), so the scores,
and the order of near-ties and exact ties, are the reference's to the bit.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import attrs
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, select

from fallthrough.kit import cosine_similarity

from .schema import documents

_FLOAT32 = np.dtype("<f4")

# numpy's float64 cosine is within about d * 2**-53 of the exact one; any
# candidate within this margin of the cut-off is re-scored exactly.
_MARGIN = 1e-9
_ROWS_PER_CHUNK = 4096


def encode(vector: Sequence[float] | None) -> bytes | None:
    """A vector as little-endian float32 bytes (the core already rounded it to float32)."""
    return None if vector is None else np.asarray(vector, dtype=_FLOAT32).tobytes()


@attrs.frozen
class Matrix:
    """The vectors of one collection at one generation, rows ordered by row_id."""

    generation: int
    row_ids: NDArray[np.int64]
    ids: list[str]
    vectors: NDArray[np.float32]  # (n, dimension)
    norms: NDArray[np.float64]

    def positions(self, row_ids: Sequence[int]) -> NDArray[np.intp]:
        """Indices into the matrix of ``row_ids``, which must all be in it."""
        wanted = np.asarray(sorted(row_ids), dtype=np.int64)
        positions = np.searchsorted(self.row_ids, wanted)
        assert positions.size == 0 or (
            positions.max() < self.row_ids.size and np.array_equal(self.row_ids[positions], wanted)
        ), "a candidate row has no vector in the cached matrix"
        return positions

    def rank(
        self, query: Sequence[float], candidates: NDArray[np.intp] | None, limit: int
    ) -> list[tuple[float, int, str]]:
        """The best ``limit`` candidates as (score, row_id, id), best first, ties by id."""
        if candidates is None:
            candidates = np.arange(self.row_ids.size, dtype=np.intp)
        if candidates.size == 0:
            return []
        query64 = np.asarray(query, dtype=np.float64)
        query_norm = float(np.linalg.norm(query64))
        approx = np.empty(candidates.size, dtype=np.float64)
        for start in range(0, candidates.size, _ROWS_PER_CHUNK):
            chunk = candidates[start : start + _ROWS_PER_CHUNK]
            approx[start : start + chunk.size] = (self.vectors[chunk].astype(np.float64) @ query64) / (
                self.norms[chunk] * query_norm
            )
        if candidates.size > limit:
            cut_off = np.partition(approx, candidates.size - limit)[candidates.size - limit]
            contenders = candidates[approx >= cut_off - _MARGIN]
        else:
            contenders = candidates
        query_list = list(query)
        scored = [(cosine_similarity(query_list, self.vectors[index].tolist()), int(index)) for index in contenders]
        scored.sort(key=lambda pair: (-pair[0], self.ids[pair[1]]))
        return [(score, int(self.row_ids[index]), self.ids[index]) for score, index in scored[:limit]]


class MatrixCache:
    """The last matrix read for each collection. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._matrices: dict[str, Matrix] = {}

    def get(self, conn: Connection, collection: str, generation: int) -> Matrix:
        """The collection's matrix at ``generation``, read through ``conn`` when the cached one is older."""
        with self._lock:
            cached = self._matrices.get(collection)
        if cached is not None and cached.generation == generation:
            return cached
        matrix = _load(conn, collection, generation)
        with self._lock:
            self._matrices[collection] = matrix
        return matrix

    def discard(self, collection: str) -> None:
        with self._lock:
            self._matrices.pop(collection, None)

    def clear(self) -> None:
        with self._lock:
            self._matrices.clear()


def _load(conn: Connection, collection: str, generation: int) -> Matrix:
    query = (
        select(documents.c.row_id, documents.c.id, documents.c.vector)
        # A tombstone's vector is NULL anyway; every read of live documents says tombstone = 0.
        .where(documents.c.collection == collection, documents.c.vector.is_not(None), documents.c.tombstone == 0)
        .order_by(documents.c.row_id)
    )
    rows = conn.execute(query).all()
    row_ids = np.fromiter((row.row_id for row in rows), dtype=np.int64, count=len(rows))
    if rows:
        vectors = np.frombuffer(b"".join(row.vector for row in rows), dtype=_FLOAT32).reshape(len(rows), -1)
    else:
        vectors = np.empty((0, 0), dtype=_FLOAT32)
    norms = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), _ROWS_PER_CHUNK):
        chunk = vectors[start : start + _ROWS_PER_CHUNK].astype(np.float64)
        norms[start : start + chunk.shape[0]] = np.linalg.norm(chunk, axis=1)
    return Matrix(generation, row_ids, [row.id for row in rows], vectors, norms)


__all__ = ["Matrix", "MatrixCache", "encode"]
