"""Collection names that differ only in case get directories that differ on a case-blind filesystem too,
and are read back from those directories as they were given."""

from __future__ import annotations

from pathlib import Path

from fallthrough.testing.drivers import HookDriver
from fallthrough.types import Document
from qdrant_edge import EdgeShard

from fallthrough_qdrant_edge import QdrantEdgeBackend
from fallthrough_qdrant_edge.schema import collection_name, collection_path, shard_config


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
                driver.call(
                    "fallthrough_upsert_documents", collection=name, documents=(Document("only", name),), version=1
                )
        for name in names:
            (document,) = driver.call("fallthrough_get_documents", collection=name, ids=("only",))
            assert document.text == name
        assert driver.call("fallthrough_list_collections") == sorted(names)
        driver.close()


def test_a_directory_name_maps_back_to_its_collection_and_nothing_else_does() -> None:
    root = Path("/x")
    for name in ["docs", "Docs", "DOCS", "dOcS", "d0cs", "docs-", "Docs_", "a", "A", "_9-Z"]:
        assert collection_name(collection_path(root, name).name) == name
    # Not a directory collection_path makes: skipped by list_collections (it checks the round trip).
    for stray in ["docs.zz", "docs.", "a.b.c"]:
        assert collection_name(stray) is None
    assert collection_path(root, collection_name("abc.10") or "").name != "abc.10"
    assert collection_path(root, collection_name("ABC") or "").name != "ABC"


def test_stray_directories_and_empty_shards_are_not_collections(store_dir: Path) -> None:
    # A shard with no entry in it, as a write that failed after creating the directory would leave.
    empty = collection_path(store_dir, "empty")
    empty.mkdir(parents=True)
    EdgeShard.create(str(empty), shard_config(None)).close()
    (store_dir / "collections" / "notes.txt.d").mkdir()
    (store_dir / "collections" / "ABC").mkdir()
    url = f"qdrant+edge:///{store_dir}"
    driver = HookDriver(QdrantEdgeBackend(url), "qdrant+edge")
    driver.open()
    driver.call("fallthrough_upsert_documents", collection="real", documents=(Document("d", "x"),), version=1)
    # An empty delete creates no collection.
    assert driver.call("fallthrough_delete_documents", collection="none", ids=(), version=1) == 0
    assert driver.call("fallthrough_list_collections") == ["real"]
    # A delete of an id never seen, in a collection never seen, leaves a tombstone there: it is listed.
    assert driver.call("fallthrough_delete_documents", collection="gone", ids=("d",), version=2) == 0
    assert driver.call("fallthrough_list_collections") == ["gone", "real"]
    driver.close()
