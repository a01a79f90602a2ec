"""The ``--json`` output of every command: plain dicts with a stable, documented shape.

Scripts depend on these keys, so they change only with a note in
``docs/cli.md``. Datetimes are ISO 8601 in UTC, batch ids are strings, and
text is written as UTF-8 (Cyrillic stays readable).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from ..types import (
    BackendHealth,
    BackendInfo,
    Batch,
    Capabilities,
    Hit,
    Progress,
    Record,
    RepairReport,
    SearchResult,
)

Shape = dict[str, Any]


def dumps(shape: Shape) -> str:
    """One line of JSON."""
    return json.dumps(shape, ensure_ascii=False, default=_default, separators=(",", ":"))


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def progress_shape(progress: Progress) -> Shape:
    return {
        "total": progress.total,
        "pending": progress.pending,
        "processing": progress.processing,
        "completed": progress.completed,
        "failed": progress.failed,
        "done": progress.done,
        "fraction": progress.fraction,
    }


def batch_shape(batch: Batch) -> Shape:
    return {
        "id": str(batch.id),
        "total": batch.total,
        "created_at": batch.created_at.isoformat(),
        "metadata": batch.metadata,
    }


def record_shape(record: Record) -> Shape:
    return {
        "key": record.key,
        "status": record.status.value,
        "attempt": record.attempt,
        "error": record.error,
        "result": record.result,
        "updated_at": record.updated_at.isoformat(),
    }


def hit_shape(hit: Hit) -> Shape:
    return {"id": hit.id, "score": hit.score, "text": hit.text, "metadata": hit.metadata}


def search_shape(collection: str, result: SearchResult) -> Shape:
    return {
        "collection": collection,
        "backend": result.backend,
        "degraded": result.degraded,
        "hits": [hit_shape(hit) for hit in result],
    }


def capabilities_shape(capabilities: Capabilities | None) -> Shape | None:
    if capabilities is None:
        return None
    return {
        "records": capabilities.records,
        "documents": capabilities.documents,
        "vector_search": capabilities.vector_search,
        "text_search": capabilities.text_search,
        "filter_search": capabilities.filter_search,
    }


def repair_shape(report: RepairReport, after: Sequence[BackendHealth]) -> Shape:
    """Each store in priority order: what the repair sent it (null: left out), and whether it is still marked."""
    stores = []
    for health in after:
        sent = report.sent.get(health.name)
        stores.append(
            {
                "name": health.name,
                "sent": None if sent is None else attrs.asdict(sent),
                "needs_repair": health.needs_repair,
            }
        )
    return {"stores": stores}


def health_shape(health: BackendHealth) -> Shape:
    return {
        "name": health.name,
        "url": health.url,
        "state": health.state,
        "serves_reads": health.serves_reads,
        "pending_hints": health.pending_hints,
        "lag": health.lag,
        "needs_repair": health.needs_repair,
        "missed_writes": health.missed_writes,
        "last_error": health.last_error,
        "capabilities": capabilities_shape(health.capabilities),
    }


def backend_info_shape(info: BackendInfo) -> Shape:
    return {
        "name": info.name,
        "target": info.target,
        "distribution": info.distribution,
        "version": info.version,
        "error": info.error,
    }


__all__ = [
    "Shape",
    "backend_info_shape",
    "batch_shape",
    "capabilities_shape",
    "dumps",
    "health_shape",
    "hit_shape",
    "progress_shape",
    "record_shape",
    "search_shape",
]
