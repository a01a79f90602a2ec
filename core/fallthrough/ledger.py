"""Which records a streamed create or add wrote: exactly enough to refuse a repeat and to take the call back.

A streamed call (:meth:`fallthrough.Store.create_batch`,
:meth:`fallthrough.Store.add_records`) writes its keys a chunk at a time,
each write under a ``seq`` range its Store reserved from the wall clock, and
keeps a digest of each key rather than the key. Within one Store the ranges
never overlap. Two Stores (two processes) adding to one batch within a
chunk's worth of microseconds reserve overlapping ranges, though, so a
record whose ``seq`` is one of this call's may be another call's: a key the
batch held before this call, which this call must neither take back nor
refuse as a repeat.

So the ledger places each ``seq`` of the call's ranges at its position in
the input, and a record is the call's when the key the call read at that
position has the record's key's digest. Another call's record passes only
when it is the very key this call gave at that very ``seq``, which takes two
calls giving one key at one microsecond's range (or a 60-bit digest
collision at one position).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from .validation import KeyDigests


class WriteLedger:
    """The digests of a streamed call's keys in input order, and the ``seq`` range of each write it made.

    One streamed call owns one, in its calling thread. A write is counted
    with :meth:`count` before it starts, so a call that fails or is
    interrupted while the write runs takes it back as well.
    """

    def __init__(self) -> None:
        self._digests = KeyDigests()
        # (first seq, count, input position of the first key): ascending in seq, since a Stamper's seqs only grow.
        self._writes: list[tuple[int, int, int]] = []
        self._counted = 0

    def suspects(self, chunk: Sequence[str]) -> list[str]:
        """The keys of the next chunk read whose digest an earlier chunk had (see :class:`KeyDigests`)."""
        return self._digests.suspects(chunk)

    def count(self, first_seq: int, count: int) -> None:
        """Count a write of the next ``count`` keys read, which get ``first_seq`` on."""
        self._writes.append((first_seq, count, self._counted))
        self._counted += count

    def __bool__(self) -> bool:
        """Whether a write was counted."""
        return bool(self._writes)

    @property
    def first_seq(self) -> int:
        """The first seq of the call's first write. The ledger must not be empty."""
        return self._writes[0][0]

    @property
    def end_seq(self) -> int:
        """One past the last seq of the call's last write. The ledger must not be empty."""
        first, count, _ = self._writes[-1]
        return first + count

    def wrote(self, seq: int, key: str) -> bool:
        """Whether this call gave ``key`` the ``seq``: whether a stored record so is the call's own."""
        index = bisect.bisect_right(self._writes, (seq, 2**63, 0)) - 1
        if index < 0:
            return False
        first, count, position = self._writes[index]
        return seq < first + count and self._digests.read_at(position + seq - first, key)

    def writes_after(self, seq: int) -> WriteLedger:
        """A ledger of the writes whose range starts after ``seq`` (the chunks after one that failed)."""
        later = WriteLedger()
        later._digests = self._digests
        later._writes = [write for write in self._writes if write[0] > seq]
        later._counted = self._counted
        return later
