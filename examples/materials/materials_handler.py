"""The handler ``fallthrough run`` calls for each material: parse its price, embed its name, index it.

Statuses and search live in different stores. The batch (one record per
SKU) is in the store ``fallthrough run --url`` opens, ``materials.db``;
the documents this handler writes go to a search store of their own,
``MATERIALS_SEARCH_URL`` (default ``sqlite:///materials-search.db``; a
Qdrant in local mode, ``qdrant+local:///materials-index``, works as well).

    fallthrough run BATCH materials_handler:process_material --workers 4 --url sqlite:///materials.db

The handler reads the row of a SKU from the price list
(``MATERIALS_FILE``, default ``materials.csv`` in the current directory),
turns ``1 250,00 ₽`` into ``1250.0`` (a price it cannot read raises, and
the runner records the error), builds a small embedding of the name
(hashed character trigrams: deterministic, no network, no model) and
upserts the document. What it returns becomes the record's result.
"""

from __future__ import annotations

import atexit
import csv
import functools
import hashlib
import json
import math
import os
import re
import sys
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path

import fallthrough
from fallthrough import Document, Record

COLLECTION = "materials"
DIMENSION = 64
SEARCH_URL_VARIABLE = "MATERIALS_SEARCH_URL"
FILE_VARIABLE = "MATERIALS_FILE"
DEFAULT_SEARCH_URL = "sqlite:///materials-search.db"
DEFAULT_FILE = "materials.csv"

_CURRENCY = re.compile(r"(₽|руб\.?|р\.)\s*$")
_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_WORD = re.compile(r"\w+")


def parse_price(text: str) -> float:
    """``1 250,00 ₽``, ``420 руб.``, ``89,90`` or ``1 250 р.`` as a number of roubles.

    :raises ValueError: the text holds no price (``договорная``, ``по запросу``).
    """
    cleaned = _SPACES.sub("", _CURRENCY.sub("", text.strip())).replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"цена не распознана: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"цена не распознана: {text!r}")
    return float(round(value, 2))


def embed(text: str, dimension: int = DIMENSION) -> list[float]:
    """A unit vector of ``text``'s character trigrams, each hashed to a signed slot.

    Names that share words and word stems share trigrams, so their cosine
    is high: enough to rank ``цемент м500`` near ``Цемент М500 Д0``. It uses
    blake2b, not ``hash()``, so every process and machine computes the same
    vector.
    """
    vector = [0.0] * dimension
    for word in _WORD.findall(text.lower().replace("ё", "е")):
        padded = f" {word} "
        for start in range(len(padded) - 2):
            digest = hashlib.blake2b(padded[start : start + 3].encode(), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "little") % dimension
            vector[slot] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0:
        raise ValueError(f"nothing to embed in {text!r}")
    return [round(value / norm, 6) for value in vector]


@functools.cache
def price_list(path: str) -> dict[str, dict[str, str]]:
    """The price list's rows by SKU, read once per process."""
    with Path(path).open(encoding="utf-8", newline="") as file:
        return {row["sku"]: row for row in csv.DictReader(file)}


_stores: dict[str, fallthrough.Store] = {}
_stores_lock = threading.Lock()


def search_store() -> fallthrough.Store:
    """The search store, opened once per process and shared by the runner's worker threads.

    A handler is a plain function, so the open Store is kept here, the way a
    worker keeps a connection pool, and closed when the process exits.
    """
    url = os.environ.get(SEARCH_URL_VARIABLE, DEFAULT_SEARCH_URL)
    with _stores_lock:
        if url not in _stores:
            store = fallthrough.connect(url)
            atexit.register(store.close)
            _stores[url] = store
        return _stores[url]


def process_material(record: Record) -> dict[str, object]:
    """Index the material of ``record.key``; the result is its parsed price and unit."""
    row = price_list(os.environ.get(FILE_VARIABLE, DEFAULT_FILE)).get(record.key)
    if row is None:
        raise KeyError(f"SKU {record.key} is not in the price list")
    price = parse_price(row["price"])
    document = Document(
        record.key,
        f"{row['name']}, {row['unit']}",
        vector=embed(row["name"]),
        metadata={"price": price, "unit": row["unit"], "category": row["category"]},
    )
    search_store().upsert_documents(COLLECTION, [document])
    return {"price": price, "unit": row["unit"]}


if __name__ == "__main__":
    # python materials_handler.py "цемент м500": the query vector, for `fallthrough search --vector`.
    print(json.dumps(embed(" ".join(sys.argv[1:]))))
