"""fallthrough_sqlite: the SQLite backend plugin of fallthrough.

``sqlite://`` is one in-memory database per backend; ``sqlite:///path.db``
a file in WAL mode that several processes can share. It serves every
capability: records, documents, and vector, text and filter search.

The modules, one job each, as in a SQLAlchemy dialect package:

* :mod:`.backend`: the plugin class and its hooks.
* :mod:`.connection`: the URL, the engine, the lock and transactions.
* :mod:`.errors`: which sqlite3 errors mean "unavailable".
* :mod:`.schema`: the tables, the FTS5 index and the datetime index.
* :mod:`.records`: batch and record SQL, with the monotonic merge.
* :mod:`.documents`: document upsert, delete and get.
* :mod:`.search`: search, dispatching to the three below.
* :mod:`.filters`: the filter tree compiled to SQL over JSON1.
* :mod:`.fts`: the FTS5 MATCH expression and the tokenizer probe.
* :mod:`.vectors`: vector encoding, the matrix cache and cosine ranking.

Every read fetches its rows whole (``.all()``) before turning them into
values. ``sqlite3`` releases the GIL around each step of a statement and
takes it straight back, and a thread waiting for the GIL (an asyncio event
loop) restarts its 5 ms wait at every such hand-over: decoding row by row
between steps kept the loop waiting for the whole page (54 ms at the median
for a page of 1000 documents of 1536 dimensions, against 14 ms fetched
first; ``benchmarks/async_documents.py``).
"""

from __future__ import annotations

from .backend import SqliteBackend

__all__ = ["SqliteBackend"]
