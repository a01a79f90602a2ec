"""The monotonic merge: the one order in which a record's state may move.

A record's state is replaced by an update only when the update is newer in
the order ``(attempt, rank(status), updated_at, tiebreak)``. The core stamps
``updated_at`` once per call, and what it sends to the second and later
stores is pinned to an attempt (see ``fallthrough_update_records`` and
``fallthrough_retry_failed`` in :mod:`fallthrough.hookspecs`), so each such
write is a plain maximum: applied to any store, in any order, the writes end
in one state.

``tiebreak`` settles updates equal in the first three keys (two processes
writing the same record in the same microsecond): it is a 56-bit digest of
the state the update writes (status, result, error), and the larger digest
wins. Two updates with equal digests write the same state, so it does not
matter which one applied. 56 bits keeps the value a positive int64 for
every store, and below 2**63 for Qdrant's integer payloads.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from .types import Status, to_micros
from .validation import JSON

TIEBREAK_BITS = 56


def _digest(status: Status, result: JSON, error: str | None) -> int:
    canonical = json.dumps([status.value, result, error], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.blake2b(canonical.encode("utf-8"), digest_size=TIEBREAK_BITS // 8).digest()
    return int.from_bytes(digest, "big")


# Most updates carry neither result nor error; their digests are computed once.
_BARE_STATUS_TIEBREAKS = {status: _digest(status, None, None) for status in Status}


def content_tiebreak(status: Status, result: JSON, error: str | None) -> int:
    """The digest of the state an update writes; see the module docstring."""
    if result is None and error is None:
        return _BARE_STATUS_TIEBREAKS[status]
    return _digest(status, result, error)


PENDING_TIEBREAK = _BARE_STATUS_TIEBREAKS[Status.PENDING]
"""The tiebreak of a fresh or retried record: pending, no result, no error."""


def merge_key(attempt: int, status: Status, updated_at: datetime | int, tiebreak: int) -> tuple[int, int, int, int]:
    """The sort key of a record state; ``updated_at`` as datetime or microseconds."""
    micros = updated_at if isinstance(updated_at, int) else to_micros(updated_at)
    return (attempt, status.rank, micros, tiebreak)


__all__ = ["PENDING_TIEBREAK", "TIEBREAK_BITS", "content_tiebreak", "merge_key"]
