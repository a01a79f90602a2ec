"""Haystack ``Document`` to fallthrough ``Document`` and back.

The mapping is ``id -> id``, ``content -> text``, ``embedding -> vector`` and
``meta -> metadata`` (a tuple in ``meta`` becomes a list, as in any JSON
store). What fallthrough has no place for (``blob``,
``sparse_embedding``) is refused rather than dropped, so a document read back
is the document written. ``score`` is a property of a search hit, not of a
stored document, and is not written.

**ISO-8601 dates.** Haystack keeps dates in ``meta`` as ISO-8601 strings and
expects ``>``/``<`` filters on them to compare in time order. fallthrough's
filter language compares a str only for equality (docs/semantics.md,
"Filters": a range takes a number or an aware datetime), and a datetime never
equals its ISO form. So beside every metadata string that reads as an ISO
date, at any depth of nested meta, the adapter stores a *shadow* key,
``<key>#datetime``, in the same object, holding the same instant as an aware
datetime (a naive one taken as UTC), and date filters go to the shadow: a
filter on ``meta.made.on`` ranges over the path ``made.on#datetime``. The
string itself is kept unchanged, so reading back gives exactly what was
written; shadow keys are removed on the way out. Other clients of the
collection see the shadows as ordinary metadata (the README says what
follows from that).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import fallthrough
from fallthrough.errors import InvalidInput
from haystack import Document as HaystackDocument

DATETIME_SUFFIX = "#datetime"
"""Appended to a metadata key to name its shadow: the ISO-date string's instant as a datetime."""


def looks_like_iso_date(value: object) -> bool:
    """Whether ``value`` starts like a full ISO-8601 date (``YYYY-MM-DD``, then ``T``, ``t``, space or nothing).

    Haystack's own rule (``haystack.utils.filters``): partial dates such as
    ``"2025"`` and the basic format ``"20250203"`` are not dates, so a number
    written as a string is never read as one.
    """
    return (
        isinstance(value, str)
        and len(value) >= 10
        and value[:4].isdigit()
        and value[4] == "-"
        and value[5:7].isdigit()
        and value[7] == "-"
        and value[8:10].isdigit()
        and (len(value) == 10 or value[10] in {"T", "t", " "})
    )


def parse_iso_date(value: object) -> datetime | None:
    """The aware UTC datetime an ISO-8601 date string names, or None when it is not one.

    A naive string (no offset) is taken as UTC: fallthrough refuses naive
    datetimes, and Haystack compares two naive values as if they shared a
    zone, which UTC gives.
    """
    if not looks_like_iso_date(value):
        return None
    assert isinstance(value, str)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # past year 9999 or before year 1 once in UTC
        return None


def aware(value: datetime) -> datetime:
    """``value`` with a naive datetime taken as UTC, as :func:`parse_iso_date` does."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None or value.utcoffset() is None else value


def _with_shadows(meta: dict[str, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in meta.items():
        where = f"{path}[{key!r}]"
        if isinstance(key, str) and key.endswith(DATETIME_SUFFIX):
            raise InvalidInput(
                f"{where}: a key ending in {DATETIME_SUFFIX!r} is reserved for the adapter's date shadows"
            )
        kept = _shadowed_value(value, where)
        out[key] = kept
        shadow = _shadow_of(kept)
        if shadow is not None:
            out[f"{key}{DATETIME_SUFFIX}"] = shadow
    return out


def _shadowed_value(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return _with_shadows(value, where)
    # A tuple is kept as the list a JSON store would give back: Haystack's own
    # components put tuples in meta (DocumentSplitter's overlap "range").
    if isinstance(value, list | tuple):
        return [_shadowed_value(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


def _shadow_of(value: Any) -> datetime | list[datetime] | None:
    if isinstance(value, str):
        return parse_iso_date(value)
    if isinstance(value, list):
        found = [parsed for parsed in map(parse_iso_date, value) if parsed is not None]
        return found or None
    return None


def _without_shadows(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_shadows(item)
            for key, item in value.items()
            if not (isinstance(key, str) and key.endswith(DATETIME_SUFFIX))
        }
    if isinstance(value, list):
        return [_without_shadows(item) for item in value]
    return value


def to_fallthrough(document: object, index: int) -> fallthrough.Document:
    """A Haystack document as the fallthrough document that keeps it.

    :raises InvalidInput: not a Haystack ``Document``, or one with a ``blob``
        or ``sparse_embedding`` (nowhere to keep them), or metadata fallthrough
        refuses (docs/semantics.md, "Documents").
    """
    if not isinstance(document, HaystackDocument):
        raise InvalidInput(f"documents[{index}] must be a haystack Document, not {type(document).__name__}")
    if document.blob is not None:
        raise InvalidInput(
            f"documents[{index}] (id {document.id!r}) has a blob: fallthrough stores text, a vector and metadata, "
            "not binary content; keep the blob elsewhere and its reference in meta"
        )
    if document.sparse_embedding is not None:
        raise InvalidInput(
            f"documents[{index}] (id {document.id!r}) has a sparse_embedding: fallthrough stores dense vectors only"
        )
    if not isinstance(document.meta, dict):
        raise InvalidInput(f"documents[{index}].meta must be a dict, not {type(document.meta).__name__}")
    try:
        return fallthrough.Document(
            id=document.id,
            text=document.content if document.content is not None else "",
            vector=document.embedding,
            metadata=_with_shadows(document.meta, "meta"),
        )
    except InvalidInput as error:
        # Which of a bulk write's documents it is: the Document's own message names only the field.
        raise InvalidInput(f"documents[{index}] (id {document.id!r}): {error}") from None


def to_haystack(
    document_id: str,
    text: str,
    vector: tuple[float, ...] | None,
    metadata: fallthrough.Metadata,
    score: float | None = None,
) -> HaystackDocument:
    """A stored document (or a hit) as Haystack sees it: shadows removed, an empty text as no content."""
    return HaystackDocument(
        id=document_id,
        content=text if text else None,
        embedding=list(vector) if vector is not None else None,
        meta=_without_shadows(metadata),
        score=score,
    )
