"""fallthrough_qdrant: the Qdrant backend plugin of fallthrough.

It serves every capability: records, statuses and progress as payload-only
points, documents, and vector, text and filter search, on a Qdrant server
(``qdrant://``, ``qdrant+https://``, ``qdrant+grpc://``, ``qdrant+grpcs://``) or in
qdrant-client's local mode (``qdrant+local:///dir``, ``qdrant+memory://``).
``docs/backends/qdrant.md`` is the user's page.

The modules, one job each:

* :mod:`.backend`: the plugin class and its hooks.
* :mod:`.connection`: the URL, the client, and the local-mode lock.
* :mod:`.errors`: which qdrant-client errors mean "unavailable".
* :mod:`.schema`: collection names, point ids, payload indexes.
* :mod:`.records`: batches and records, with the merge as a conditional upsert.
* :mod:`.claims`: claims, leases, and the newest-first batch listing.
* :mod:`.order`: local mode's (seq, key) order of each listed batch.
* :mod:`.counts`: local mode's status counts of each counted batch.
* :mod:`.document_order`: local mode's sorted document ids of each listed collection.
* :mod:`.documents`: the document payload, upsert, delete and get.
* :mod:`.search`: vector, text and filter search.
* :mod:`.filters`: the filter tree compiled to a Qdrant filter.
"""

from __future__ import annotations

from fallthrough.kit import require_modules

require_modules("Qdrant", "qdrant", "qdrant_client")

from .backend import QdrantBackend  # noqa: E402
from .errors import QdrantAccessDenied, QdrantProtocolError  # noqa: E402

__all__ = ["QdrantAccessDenied", "QdrantBackend", "QdrantProtocolError"]
