"""Hook arguments to JSON text and back, for a durable journal.

A hint holds the keyword arguments of a write hook. They are encoded by
argument name, so the same names mean the same types in every hook
(``batch_id`` is always a UUID, ``updated_at`` always a datetime); any
other argument must already be JSON (keys, ids, metadata, ``first_seq``,
``version``). Values come back exactly: datetimes as microseconds, floats
through ``repr``, and updates and documents are rebuilt through their
validating constructors (the whole record states of a claim, sent as a merge,
are checked field by field), so a damaged file cannot smuggle an invalid
value into a store.

A datetime in a document's metadata (at any depth) is written as
``{"$dt": <microseconds since the epoch>}`` and read back as the UTC
datetime it was. No metadata key starts with ``$``, so the tag cannot be
mistaken for an object of the user's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .errors import InvalidInput
from .types import Document, Record, RecordUpdate, Status, from_micros, to_micros
from .validation import check_json, check_key, check_string


def _encode_updates(updates: Any) -> list[list[Any]]:
    return [
        [str(update.batch_id), update.key, update.status.value, update.result, update.error, update.attempt]
        for update in updates
    ]


def _decode_updates(rows: Any) -> tuple[RecordUpdate, ...]:
    return tuple(
        RecordUpdate(batch_id, key, status, result=result, error=error, attempt=attempt)
        for batch_id, key, status, result, error, attempt in rows
    )


def _encode_records(records: Any) -> list[list[Any]]:
    return [
        [
            str(record.batch_id),
            record.key,
            record.seq,
            record.status.value,
            record.attempt,
            record.result,
            record.error,
            to_micros(record.updated_at),
            record.lease_owner,
            None if record.lease_expires is None else to_micros(record.lease_expires),
        ]
        for record in records
    ]


def _decode_records(rows: Any) -> tuple[Record, ...]:
    """Whole record states (a claim's, sent as a merge), checked as the core checks what it writes."""
    decoded = []
    for batch_id, key, seq, status, attempt, result, error, updated_at, lease_owner, lease_expires in rows:
        for name, number in (("seq", seq), ("attempt", attempt), ("updated_at", updated_at)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise InvalidInput(f"journal entry holds a record {name} of {number!r}, not a non-negative int")
        if (lease_owner is None) != (lease_expires is None):
            raise InvalidInput("journal entry holds a record with half a lease")
        if lease_expires is not None and (isinstance(lease_expires, bool) or not isinstance(lease_expires, int)):
            raise InvalidInput(f"journal entry holds a lease expiry of {lease_expires!r}, not an int")
        decoded.append(
            Record(
                batch_id=uuid.UUID(batch_id),
                key=check_key(key),
                seq=seq,
                status=Status.coerce(status),
                attempt=attempt,
                result=check_json(result, "result"),
                error=None if error is None else check_string(error, "error"),
                updated_at=from_micros(updated_at),
                lease_owner=None if lease_owner is None else check_string(lease_owner, "worker"),
                lease_expires=None if lease_expires is None else from_micros(lease_expires),
            )
        )
    return tuple(decoded)


_DATETIME_TAG = "$dt"


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME_TAG: to_micros(value)}
    if isinstance(value, list):
        return [_encode_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _encode_value(item) for key, item in value.items()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and _DATETIME_TAG not in value:
        # A nested object of the user's: its keys never start with '$' (the core checks).
        return {key: _decode_value(item) for key, item in value.items()}
    if isinstance(value, dict):
        micros = value.get(_DATETIME_TAG)
        if set(value) != {_DATETIME_TAG} or isinstance(micros, bool) or not isinstance(micros, int):
            raise InvalidInput(f"journal entry holds {value!r} in document metadata, not a tagged datetime")
        try:
            return from_micros(micros)
        except OverflowError:
            raise InvalidInput(f"journal entry holds a datetime of {micros} microseconds, out of range") from None
    if isinstance(value, list):
        return [_decode_value(item) for item in value]
    return value


def _encode_documents(documents: Any) -> list[list[Any]]:
    return [
        [
            document.id,
            document.text,
            None if document.vector is None else list(document.vector),
            {field: _encode_value(value) for field, value in document.metadata.items()},
        ]
        for document in documents
    ]


def _decode_documents(rows: Any) -> tuple[Document, ...]:
    return tuple(
        Document(
            document_id,
            text,
            vector=vector,
            metadata={field: _decode_value(value) for field, value in metadata.items()},
        )
        for document_id, text, vector, metadata in rows
    )


def _encode_time(moment: Any) -> int:
    return to_micros(moment)


def _decode_uuid(text: Any) -> uuid.UUID:
    return uuid.UUID(text)


_CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "batch_id": (str, _decode_uuid),
    "created_at": (_encode_time, from_micros),
    "updated_at": (_encode_time, from_micros),
    "updates": (_encode_updates, _decode_updates),
    "records": (_encode_records, _decode_records),
    "documents": (_encode_documents, _decode_documents),
}


def encode(operation: str, arguments: Mapping[str, Any]) -> str:
    """The JSON text of one hint's arguments."""
    plain: dict[str, Any] = {}
    for name, value in arguments.items():
        codec = _CODECS.get(name)
        if codec is not None:
            plain[name] = codec[0](value)
        elif isinstance(value, tuple):
            plain[name] = list(value)
        else:
            plain[name] = value
    try:
        return json.dumps({"operation": operation, "arguments": plain}, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"cannot journal the arguments of {operation}: {error}") from None


def decode(operation: str, text: str) -> dict[str, Any]:
    """The keyword arguments :func:`encode` wrote for ``operation``."""
    stored = json.loads(text)
    if stored.get("operation") != operation:
        raise InvalidInput(f"journal entry is for {stored.get('operation')!r}, not {operation!r}")
    arguments: dict[str, Any] = {}
    for name, value in stored["arguments"].items():
        codec = _CODECS.get(name)
        arguments[name] = codec[1](value) if codec is not None else _freeze(value)
    return arguments


def _freeze(value: Any) -> Any:
    """Lists back to tuples at the top level, as the core passes key and id sequences."""
    return tuple(value) if isinstance(value, list) else value


__all__ = ["decode", "encode"]
