"""The URL, the shards and the lock.

``qdrant+edge:///relative/dir`` or ``qdrant+edge:////absolute/dir``, as
SQLAlchemy spells SQLite file paths. Query options:

* ``search_threads``: threads of each shard's search pool, 1 to 64
  (default: the engine's, one per CPU).
* ``hnsw_ef``: the HNSW beam width of a vector search (default: the
  engine's).
* ``optimize_after``: once this many documents were written to a collection
  since its last optimisation, the next vector search runs the engine's
  optimiser first, which builds the HNSW graph (default 10000; 0 never).
  Until then a search scans the unindexed vectors exactly.
* ``open_collections``: how many collection shards stay open at once
  (default 256). Each open shard maps about 50 regions of memory, and a
  process may map 65,530 (Linux's ``vm.max_map_count``): about 1,300 open
  shards made every later call fail with "Out of memory". Past the bound,
  the collection used least recently is closed, and opened again when next
  used.

Every shard call runs under one lock per backend. A directory can hold one
open shard only, so no other process writes to these shards while they are
open here, and the lock makes each hook one atomic step, read and write
together.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import attrs
from fallthrough.errors import InvalidInput
from fallthrough.kit import Endpoint, Opened, UrlOptions
from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeShard,
    FieldCondition,
    Filter,
    IsEmptyCondition,
    MatchValue,
    Point,
    UpdateOperation,
)
from sqlalchemy.engine import URL

from . import schema
from .errors import translate_errors
from .filters import META_LAYOUT

_OPTIONS = ("search_threads", "hnsw_ef", "optimize_after", "open_collections")
MAX_SEARCH_THREADS = 64
"""The most ``search_threads``: every open shard starts that many threads (3,000 made 6,003 for two
shards and took 15 s to open them; 100,000 never opened)."""
DEFAULT_OPTIMIZE_AFTER = 10_000
DEFAULT_OPEN_COLLECTIONS = 256


@attrs.frozen
class Options:
    directory: Path
    search_threads: int | None = None
    hnsw_ef: int | None = None
    optimize_after: int = DEFAULT_OPTIMIZE_AFTER
    open_collections: int = DEFAULT_OPEN_COLLECTIONS

    @classmethod
    def from_url(cls, url: URL) -> Options:
        if not url.database:
            raise InvalidInput("a qdrant+edge URL names a directory: qdrant+edge:///path/to/dir")
        options = UrlOptions(url, "qdrant+edge", _OPTIONS)
        return cls(
            directory=Path(url.database),
            search_threads=options.integer("search_threads", None, low=1, high=MAX_SEARCH_THREADS),
            hnsw_ef=options.integer("hnsw_ef", None, low=1),
            optimize_after=options.integer("optimize_after", DEFAULT_OPTIMIZE_AFTER, low=0),
            open_collections=options.integer("open_collections", DEFAULT_OPEN_COLLECTIONS, low=1),
        )


@attrs.define
class Collection:
    """An open collection shard, its vector dimension, and writes since its last optimisation."""

    shard: EdgeShard
    dimension: int | None
    unoptimized_writes: int = 0
    legacy_metadata: bool = False
    """Whether the shard held, when opened, a document written before ``meta_layout`` 2 (see filters.py)."""
    datetime_indexes: set[str] = attrs.Factory(set)
    """``meta_dt.<field>`` paths known to have a datetime index."""
    dropped: int | None = None
    """The version of the collection's latest drop (its ``drop`` point), None when never dropped."""


class Database:
    """The open shards of one backend, and the lock every shard call takes."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.endpoint = Endpoint("qdrant+edge", str(options.directory))
        self._records: Opened[EdgeShard] = Opened(self.endpoint)
        # Every shard call holds it: see the module docstring.
        self.lock = self._records.lock
        # Least recently used first: past options.open_collections, the first is closed.
        self._collections: OrderedDict[str, Collection] = OrderedDict()

    @property
    def name(self) -> str:
        return str(self.options.directory)

    def open(self) -> None:
        self._records.open(self._open_records)

    def _open_records(self) -> EdgeShard:
        shard = self._open_or_create(schema.records_path(self.options.directory))
        try:
            with translate_errors(self.endpoint):
                _create_indexes(shard, schema.RECORD_INDEXES)
        except BaseException:
            shard.close()
            raise
        return shard

    def close(self) -> None:
        with self.lock:
            shards = [collection.shard for collection in self._collections.values()]
            records = self._records.close()
            if records is not None:
                shards.append(records)
            self._collections.clear()
            for shard in shards:
                # Closing flushes the WAL; one failure must not keep the others open.
                with contextlib.suppress(Exception):
                    shard.close()

    @contextmanager
    def read(self) -> Iterator[EdgeShard]:
        """The records shard for a hook that reads, under the lock, errors translated."""
        with self.lock:
            shard = self._records.get()
            with translate_errors(self.endpoint):
                yield shard

    def write(self) -> AbstractContextManager[EdgeShard]:
        """The records shard for a hook that writes; as :meth:`read` (the lock makes the hook one step)."""
        return self.read()

    @contextmanager
    def collection(self, name: str, *, create: bool) -> Iterator[Collection | None]:
        """The collection's shard, opened on first use; None when it does not exist and ``create`` is false."""
        with self.lock:
            self._records.get()
            with translate_errors(self.endpoint):
                yield self._collection(name, create)

    def _collection(self, name: str, create: bool) -> Collection | None:
        found = self._collections.get(name)
        if found is not None:
            self._collections.move_to_end(name)
            return found
        path = schema.collection_path(self.options.directory, name)
        if not path.exists() and not create:
            return None
        shard = self._open_or_create(path)
        try:
            _create_indexes(shard, schema.DOCUMENT_INDEXES)
            stored = shard.retrieve([schema.COLLECTION_POINT_ID], True, False)
            drop = shard.retrieve([schema.DROP_POINT_ID], True, False)
            info = shard.info()
            legacy = shard.count(CountRequest(exact=True, filter=_LEGACY_DOCUMENTS)) > 0
        except BaseException:
            shard.close()
            raise
        dimension = stored[0].payload.get("dimension") if stored and stored[0].payload else None
        # Vectors a previous process wrote and never indexed count towards the next optimisation.
        dropped = drop[0].payload.get("version") if drop and drop[0].payload else None
        collection = Collection(
            shard,
            dimension,
            max(info.points_count - info.indexed_vectors_count - 1, 0),
            legacy_metadata=legacy,
            dropped=dropped,
        )
        self._collections[name] = collection
        while len(self._collections) > self.options.open_collections:
            # Not the one just opened: the bound is at least 1, so the oldest is another collection.
            _, evicted = self._collections.popitem(last=False)
            evicted.shard.close()
        return collection

    @property
    def open_collections(self) -> int:
        """How many collection shards are open now (for tests of the bound)."""
        return len(self._collections)

    def collection_names(self) -> list[str]:
        """Every collection with a shard directory, sorted; directories that are not a collection's are skipped."""
        root = schema.collections_root(self.options.directory)
        if not root.is_dir():
            return []
        names = []
        for entry in root.iterdir():
            name = schema.collection_name(entry.name)
            if entry.is_dir() and name is not None and schema.collection_path(self.options.directory, name) == entry:
                names.append(name)
        return sorted(names)

    def fix_dimension(self, collection: Collection, dimension: int) -> None:
        """Give a collection its dense vector; the first vector written decides the size, for good."""
        collection.shard.update(UpdateOperation.create_dense_vector(schema.DENSE_VECTOR, dimension, Distance.Cosine))
        payload = {schema.KIND: schema.KIND_COLLECTION, "dimension": dimension}
        collection.shard.update(UpdateOperation.upsert_points([Point(schema.COLLECTION_POINT_ID, {}, payload)]))
        collection.dimension = dimension

    def _open_or_create(self, path: Path) -> EdgeShard:
        config = schema.shard_config(self.options.search_threads)
        with translate_errors(self.endpoint):
            if (path / "edge_config.json").exists() or (path / "wal").exists():
                return EdgeShard.load(str(path), config)
            path.mkdir(parents=True, exist_ok=True)
            return EdgeShard.create(str(path), config)


_LEGACY_DOCUMENTS = Filter(
    must=[
        FieldCondition(schema.KIND, match=MatchValue(schema.KIND_DOCUMENT)),
        IsEmptyCondition(META_LAYOUT),
    ]
)
"""Documents written before the metadata layout that leaves None out of ``meta``."""


def _create_indexes(shard: EdgeShard, indexes: dict[str, schema.IndexSchema]) -> None:
    # Creating an index flushes the shard, which is slow on a real disk: only the missing ones.
    existing = shard.info().payload_schema
    for field, index in indexes.items():
        if field not in existing:
            shard.update(UpdateOperation.create_field_index(field, index))


__all__ = ["DEFAULT_OPTIMIZE_AFTER", "Collection", "Database", "Options"]
