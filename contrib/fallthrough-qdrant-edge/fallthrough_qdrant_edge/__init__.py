"""fallthrough_qdrant_edge: a fallthrough backend on qdrant-edge, Qdrant's shard engine in process.

``qdrant+edge:///path/to/dir`` keeps every batch, record and document in
persistent shards under one directory, with payload indexes, conditional
upserts for the monotonic merge, exact facet counts for progress, and HNSW
cosine search. It is built only on fallthrough's public plugin API.

The modules, one job each:

* :mod:`.backend`: the plugin class and its hooks.
* :mod:`.connection`: the URL options, the shards and the lock.
* :mod:`.errors`: which engine errors mean "unavailable".
* :mod:`.schema`: shard layout, configs, point ids and payload indexes.
* :mod:`.records`: batches and records, with the monotonic merge and the repair merge.
* :mod:`.documents`: versioned document upsert, delete (tombstones), get and scan.
* :mod:`.search`: vector, text and filter search.
* :mod:`.filters`: the filter tree compiled to an engine filter.
"""

from __future__ import annotations

from .backend import QdrantEdgeBackend

__all__ = ["QdrantEdgeBackend"]
