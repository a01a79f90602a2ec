"""Reading keys and documents from files, streaming, with the file and line of every problem.

Files are read as UTF-8 bytes a line at a time, so memory holds one chunk
and the caller can show progress by bytes read. Every reader is a
generator that raises :class:`~fallthrough.cli.exits.InputError` naming
``file:line`` at the first malformed line; the commands read a file once
to check it whole before they write anything, then again to write it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

from ..errors import InvalidInput
from ..types import Document
from ..validation import check_key
from .exits import InputError, one_line

KeyFormat = Literal["lines", "csv", "jsonl"]
KEY_FORMATS: tuple[KeyFormat, ...] = ("lines", "csv", "jsonl")
DOCUMENT_FIELDS = frozenset({"id", "text", "vector", "metadata"})

OnBytes = Callable[[int], None]
"""Told how many bytes were just read, for a progress bar."""


def key_format(path: Path, chosen: KeyFormat | None, column: str | None, field: str | None) -> KeyFormat:
    """The format of a key file: as chosen, else implied by ``--column``/``--field``, else by the suffix."""
    if column is not None and field is not None:
        raise InputError("give --column (CSV) or --field (JSON Lines), not both")
    implied: KeyFormat | None = "csv" if column is not None else "jsonl" if field is not None else None
    if chosen is not None and implied is not None and chosen != implied:
        raise InputError(f"--format {chosen} does not go with --{'column' if column else 'field'}")
    found = chosen or implied
    if found is None:
        suffix = path.suffix.lower()
        found = "csv" if suffix == ".csv" else "jsonl" if suffix in {".jsonl", ".ndjson"} else "lines"
    if found == "csv" and column is None:
        raise InputError(f"{path.name}: a CSV file needs --column NAME, the column holding the keys")
    if found == "jsonl" and field is None:
        raise InputError(f"{path.name}: a JSON Lines file needs --field NAME, the field holding the keys")
    return found


def _lines(path: Path, on_bytes: OnBytes | None) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line, newline kept; a UTF-8 BOM at the start is dropped."""
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if on_bytes is not None:
                on_bytes(len(raw))
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise InputError(f"{path.name}:{number}: not UTF-8 ({error.reason} at byte {error.start})") from None
            yield number, text


def read_keys(
    path: Path,
    fmt: KeyFormat,
    *,
    column: str | None = None,
    field: str | None = None,
    on_bytes: OnBytes | None = None,
) -> Iterator[str]:
    """Every key of the file in order, each checked as a record key."""
    if fmt == "lines":
        source: Iterator[tuple[int, str]] = _plain_keys(path, on_bytes)
    elif fmt == "csv":
        assert column is not None
        source = _csv_keys(path, column, on_bytes)
    else:
        assert field is not None
        source = _jsonl_keys(path, field, on_bytes)
    for number, key in source:
        try:
            check_key(key)
        except InvalidInput as error:
            raise InputError(f"{path.name}:{number}: {error}") from None
        yield key


def _plain_keys(path: Path, on_bytes: OnBytes | None) -> Iterator[tuple[int, str]]:
    for number, text in _lines(path, on_bytes):
        key = text.strip()
        if "\r" in key:
            # A file with classic Mac line endings (CR alone) reads as one line: its keys would become one.
            raise InputError(
                f"{path.name}:{number}: a carriage return inside the line (a file with old Mac line ends?); "
                "a lines file holds one key a line, each ended by '\\n' or '\\r\\n'"
            )
        if key:
            yield number, key


def _csv_keys(path: Path, column: str, on_bytes: OnBytes | None) -> Iterator[tuple[int, str]]:
    numbered = _lines(path, on_bytes)
    position = {"line": 0}

    def texts() -> Iterator[str]:
        for number, text in numbered:
            position["line"] = number
            yield text

    try:
        reader = csv.reader(texts(), strict=True)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path.name}: empty file, no CSV header")
        if column not in header:
            shown = ", ".join(repr(name) for name in header[:20])
            raise InputError(f"{path.name}:1: no column {column!r} in the header (columns: {shown})")
        index = header.index(column)
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise InputError(f"{path.name}:{position['line']}: {len(row)} fields, the header has {len(header)}")
            key = row[index].strip()
            if not key:
                raise InputError(f"{path.name}:{position['line']}: empty value in column {column!r}")
            yield position["line"], key
    except csv.Error as error:
        raise InputError(f"{path.name}:{position['line']}: malformed CSV ({error})") from None


def _json_lines(path: Path, on_bytes: OnBytes | None) -> Iterator[tuple[int, object]]:
    for number, text in _lines(path, on_bytes):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{path.name}:{number}: not JSON ({error.msg} at column {error.colno})") from None
        except (ValueError, RecursionError) as error:  # an integer of thousands of digits, nesting too deep
            raise InputError(
                f"{path.name}:{number}: JSON this reader cannot take ({describe_json_error(error)})"
            ) from None
        yield number, value


def describe_json_error(error: ValueError | RecursionError) -> str:
    """What Python's JSON parser refused beyond syntax, in a few words."""
    if isinstance(error, RecursionError):
        return "nested too deep"
    return one_line(str(error)).partition(";")[0]


def _jsonl_keys(path: Path, field: str, on_bytes: OnBytes | None) -> Iterator[tuple[int, str]]:
    for number, value in _json_lines(path, on_bytes):
        if not isinstance(value, dict):
            raise InputError(f"{path.name}:{number}: a JSON object is expected, got {type(value).__name__}")
        if field not in value:
            raise InputError(f"{path.name}:{number}: no field {field!r}")
        key = value[field]
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str):
            raise InputError(f"{path.name}:{number}: field {field!r} must be a string, got {type(key).__name__}")
        yield number, key


def read_documents(path: Path, *, on_bytes: OnBytes | None = None) -> Iterator[Document]:
    """Every document of a JSON Lines file: ``{"id": ..., "text": ..., "vector": [...], "metadata": {...}}``.

    Only ``id`` is required. Every document is checked as
    :class:`~fallthrough.Document` checks it, and all vectors must share one
    dimension, since a collection has one.
    """
    dimension: int | None = None
    for number, value in _json_lines(path, on_bytes):
        if not isinstance(value, dict):
            raise InputError(f"{path.name}:{number}: a JSON object is expected, got {type(value).__name__}")
        unknown = sorted(set(value) - DOCUMENT_FIELDS)
        if unknown:
            raise InputError(
                f"{path.name}:{number}: unknown fields {unknown}; a document has {sorted(DOCUMENT_FIELDS)}"
            )
        if "id" not in value:
            raise InputError(f"{path.name}:{number}: no field 'id'")
        try:
            metadata = value.get("metadata")
            document = Document(
                value["id"],
                value.get("text", ""),
                vector=value.get("vector"),
                metadata={} if metadata is None else metadata,
            )
        except InvalidInput as error:
            raise InputError(f"{path.name}:{number}: {error}") from None
        if document.vector is not None:
            if dimension is None:
                dimension = len(document.vector)
            elif len(document.vector) != dimension:
                raise InputError(
                    f"{path.name}:{number}: vector of dimension {len(document.vector)}, earlier ones have {dimension}"
                )
        yield document


def chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """``items`` in lists of ``size``, each without repeats (a key repeated in the file is taken once)."""
    chunk: dict[str, None] = {}
    for item in items:
        chunk[item] = None
        if len(chunk) >= size:
            yield list(chunk)
            chunk = {}
    if chunk:
        yield list(chunk)


def document_chunks(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    """``documents`` in lists of ``size``; an id repeated in the file is kept at its last line, as a reload would."""
    chunk: dict[str, Document] = {}
    for document in documents:
        chunk[document.id] = document
        if len(chunk) >= size:
            yield list(chunk.values())
            chunk = {}
    if chunk:
        yield list(chunk.values())


__all__ = [
    "KEY_FORMATS",
    "KeyFormat",
    "OnBytes",
    "chunks",
    "describe_json_error",
    "document_chunks",
    "key_format",
    "read_documents",
    "read_keys",
]
