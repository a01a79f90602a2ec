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
from datetime import datetime, timedelta

from .types import Record, Status, to_micros
from .validation import JSON

TIEBREAK_BITS = 56


def _digest(status: Status, result: JSON, error: str | None, lease: tuple[str, int] | None = None) -> int:
    parts: list[JSON] = [status.value, result, error]
    if lease is not None:
        parts.extend(lease)
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.blake2b(canonical.encode("utf-8"), digest_size=TIEBREAK_BITS // 8).digest()
    return int.from_bytes(digest, "big")


# Most updates carry neither result nor error; their digests are computed once.
_BARE_STATUS_TIEBREAKS = {status: _digest(status, None, None) for status in Status}


def content_tiebreak(
    status: Status,
    result: JSON,
    error: str | None,
    lease_owner: str | None = None,
    lease_expires: datetime | None = None,
) -> int:
    """The digest of the state an update writes; see the module docstring.

    A claimed state (a lease owner and expiry) digests its lease too: two
    claims of one record stamped in the same microsecond by two Stores, on
    two stores that disagreed during a failover, write different holders,
    and every store must keep the same one. Without a lease the digest is
    what it always was, so stored tiebreaks stay valid.
    """
    if lease_owner is not None and lease_expires is not None:
        return _digest(status, result, error, (lease_owner, to_micros(lease_expires)))
    if result is None and error is None:
        return _BARE_STATUS_TIEBREAKS[status]
    return _digest(status, result, error)


def extension_stamp(stored: datetime, now: datetime) -> datetime:
    """The ``updated_at`` of an extended lease: ``now``, or one microsecond past the stored one if that is later.

    An extension keeps the attempt and the status, so only ``updated_at``
    moves its state forward in the merge order; a Store whose clock runs
    behind the one that claimed must still write a newer state, or the other
    stores would refuse the merge it sends them.
    """
    return max(now, stored + timedelta(microseconds=1))


def record_tiebreak(record: Record) -> int:
    """The tiebreak of a whole record state, lease included: what every store holds for it."""
    return content_tiebreak(record.status, record.result, record.error, record.lease_owner, record.lease_expires)


PENDING_TIEBREAK = _BARE_STATUS_TIEBREAKS[Status.PENDING]
"""The tiebreak of a fresh or retried record: pending, no result, no error."""


def merge_key(attempt: int, status: Status, updated_at: datetime | int, tiebreak: int) -> tuple[int, int, int, int]:
    """The sort key of a record state; ``updated_at`` as datetime or microseconds."""
    micros = updated_at if isinstance(updated_at, int) else to_micros(updated_at)
    return (attempt, status.rank, micros, tiebreak)


__all__ = ["PENDING_TIEBREAK", "TIEBREAK_BITS", "content_tiebreak", "extension_stamp", "merge_key", "record_tiebreak"]
