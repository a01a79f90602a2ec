"""Collection names that differ only in case get directories that differ on a case-blind filesystem too."""

from __future__ import annotations

from pathlib import Path

from fallthrough.testing.drivers import HookDriver
from fallthrough.types import Document

from fallthrough_qdrant_edge import QdrantEdgeBackend
from fallthrough_qdrant_edge.schema import collection_path


def test_collections_differing_in_case_get_directories_differing_without_case(store_dir: Path) -> None:
    """macOS and Windows filesystems ignore case: ``Docs`` and ``docs`` must not share a shard directory there."""
    names = ["docs", "Docs", "DOCS", "dOcS", "d0cs", "docs-", "Docs_", "a", "A"]
    directories = {str(collection_path(store_dir, name).relative_to(store_dir)).casefold() for name in names}
    assert len(directories) == len(names)
    # The directory of an all-lowercase name is the name itself: shards written before stay where they are.
    assert collection_path(store_dir, "docs-1_x") == store_dir / "collections" / "docs-1_x"
    url = f"qdrant+edge:///{store_dir}"
    for _ in range(2):  # written, then read again after reopening
        driver = HookDriver(QdrantEdgeBackend(url), "qdrant+edge")
        driver.open()
        for name in names:
            if not driver.call("fallthrough_get_documents", collection=name, ids=("only",)):
                driver.call("fallthrough_upsert_documents", collection=name, documents=(Document("only", name),))
        for name in names:
            (document,) = driver.call("fallthrough_get_documents", collection=name, ids=("only",))
            assert document.text == name
        driver.close()
