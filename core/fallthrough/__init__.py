"""fallthrough: batch records and document search over interchangeable stores.

>>> import fallthrough
>>> with fallthrough.connect() as store:
...     batch = store.create_batch(["a", "b"])
...     store.update(batch.id, "a", "completed")
...     store.progress(batch.id).done
True
1
"""

from __future__ import annotations

from . import errors, filters, ordering, registry, text
from .aio import AsyncStore, connect_async
from .breaker import BreakerPolicy
from .errors import (
    AllBackendsFailed,
    BackendBusy,
    BackendUnavailable,
    FallthroughError,
    FilterError,
    InvalidInput,
    JournalError,
    NotFound,
    PluginError,
    TurnHeld,
    UnknownBackend,
    Unsupported,
    UnsupportedQuery,
    WrongProcess,
)
from .hookspecs import hookimpl
from .journal import JournalPolicy
from .registry import Registry, available_backends
from .router import WriteConcern
from .runner import exponential_backoff, process
from .store import Store, connect
from .types import (
    BackendHealth,
    BackendInfo,
    Batch,
    BatchProgress,
    Capabilities,
    Document,
    Hit,
    Metadata,
    MetadataValue,
    Progress,
    PurgeReport,
    Record,
    RecordUpdate,
    RepairCounts,
    RepairReport,
    SearchQuery,
    SearchResult,
    Status,
    StoredDocument,
)

__version__ = "0.1.0"

__all__ = [
    "AllBackendsFailed",
    "AsyncStore",
    "BackendHealth",
    "BackendInfo",
    "BackendBusy",
    "BackendUnavailable",
    "Batch",
    "BatchProgress",
    "BreakerPolicy",
    "Capabilities",
    "Document",
    "FallthroughError",
    "FilterError",
    "Hit",
    "InvalidInput",
    "JournalError",
    "JournalPolicy",
    "Metadata",
    "MetadataValue",
    "NotFound",
    "PluginError",
    "Progress",
    "PurgeReport",
    "Record",
    "RecordUpdate",
    "Registry",
    "RepairCounts",
    "RepairReport",
    "SearchQuery",
    "SearchResult",
    "Status",
    "Store",
    "StoredDocument",
    "TurnHeld",
    "UnknownBackend",
    "Unsupported",
    "UnsupportedQuery",
    "WriteConcern",
    "WrongProcess",
    "available_backends",
    "connect",
    "connect_async",
    "errors",
    "filters",
    "hookimpl",
    "exponential_backoff",
    "ordering",
    "process",
    "registry",
    "text",
]
