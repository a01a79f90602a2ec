"""fallthrough_qdrant: the Qdrant backend plugin of fallthrough.

It serves every capability: records, statuses and progress as payload-only
points, documents, and vector, text and filter search, on a Qdrant server
(``qdrant://``, ``qdrant+https://``, ``qdrant+grpc://``) or in
qdrant-client's local mode (``qdrant+local:///dir``, ``qdrant+memory://``).
``docs/backends/qdrant.md`` is the user's page.

The modules, one job each:

* :mod:`.backend`: the plugin class and its hooks.
* :mod:`.connection`: the URL, the client, and the local-mode lock.
* :mod:`.errors`: which qdrant-client errors mean "unavailable".
* :mod:`.schema`: collection names, point ids, payload indexes.
* :mod:`.records`: batches and records, with the merge as a conditional upsert.
* :mod:`.documents`: the document payload, upsert, delete and get.
* :mod:`.search`: vector, text and filter search.
* :mod:`.filters`: the filter tree compiled to a Qdrant filter.
"""

from __future__ import annotations

# The driver comes with an extra, not with fallthrough itself; say which one.
try:
    import qdrant_client  # noqa: F401
except ModuleNotFoundError as missing:
    raise ModuleNotFoundError(
        f"{missing.msg}: the Qdrant backend needs it; pip install 'fallthrough[qdrant]'",
        name=missing.name,
    ) from missing

from .backend import QdrantBackend
from .errors import QdrantAccessDenied, QdrantProtocolError

__all__ = ["QdrantAccessDenied", "QdrantBackend", "QdrantProtocolError"]
