"""Replaying a run of journaled updates as one merge per batch.

A backend that was down for a while has a journal full of
``fallthrough_update_records`` hints, one per call the application made:
100,000 single-record updates are 100,000 hints. Sent one by one, each is a
round trip and, on most stores, a transaction. But pinned updates are plain
maxima under the merge order (``docs/semantics.md``), so a run of them has
the same effect as the greatest state of each record in the run, applied
once. This module folds a run that way and applies it with two calls per
batch: ``fallthrough_get_records`` for the records' ``seq`` (a merge needs a
whole record, and ``seq`` is the one part an update does not carry) and
``fallthrough_merge_records``, whose conditional write is the same
comparison ``fallthrough_update_records`` makes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from .ordering import merge_key
from .types import Record, RecordUpdate

UPDATE_HOOK = "fallthrough_update_records"


def greatest_states(calls: Iterable[Mapping[str, Any]]) -> dict[uuid.UUID, dict[str, tuple[RecordUpdate, datetime]]]:
    """Per batch and key, the greatest pinned update of a run of update calls, with its call's stamp."""
    greatest: dict[uuid.UUID, dict[str, tuple[RecordUpdate, datetime]]] = {}
    for arguments in calls:
        updated_at: datetime = arguments["updated_at"]
        for update in arguments["updates"]:
            if update.attempt is None:
                raise ValueError("a journaled update must be pinned to an attempt")
            by_key = greatest.setdefault(update.batch_id, {})
            held = by_key.get(update.key)
            if held is None or _order(update, updated_at) > _order(*held):
                by_key[update.key] = (update, updated_at)
    return greatest


def apply_greatest(call: Callable[..., Any], calls: Iterable[Mapping[str, Any]]) -> list[str]:
    """Apply a run of update calls to one backend through ``call(hook, **arguments)``.

    :return: what could not be applied ("batch/key" for each record the
        backend does not hold), which means the stores differ: the caller
        marks the backend for a repair. Errors of the backend propagate.
    """
    missing: list[str] = []
    for batch_id, by_key in greatest_states(calls).items():
        stored = call("fallthrough_get_records", batch_id=batch_id, keys=tuple(by_key))
        seqs = {record.key: record.seq for record in stored}
        records = [
            _record(update, seqs[key], updated_at) for key, (update, updated_at) in by_key.items() if key in seqs
        ]
        missing.extend(f"{batch_id}/{key}" for key in by_key if key not in seqs)
        if records:
            call("fallthrough_merge_records", batch_id=batch_id, records=records)
    return missing


def _record(update: RecordUpdate, seq: int, updated_at: datetime) -> Record:
    """The whole record state a pinned update writes, at the ``seq`` the backend holds."""
    assert update.attempt is not None
    return Record(
        update.batch_id, update.key, seq, update.status, update.attempt, update.result, update.error, updated_at
    )


def _order(update: RecordUpdate, updated_at: datetime) -> tuple[int, int, int, int]:
    assert update.attempt is not None
    return merge_key(update.attempt, update.status, updated_at, update.tiebreak)


__all__ = ["UPDATE_HOOK", "apply_greatest", "greatest_states"]
