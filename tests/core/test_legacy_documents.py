"""A document stored under an older release's key rules stays readable, findable and repairable.

Metadata keys such as ``"a.b"`` and ``"$x"`` were accepted before metadata
could nest; now they are refused on the way in. Stores still hold such
documents, and ``docs/semantics.md`` tells users to rewrite them: that needs
reads that do not check the old keys again, and a repair that copies them.
The legacy document is written below the core, through the plugin's own hook,
as the older release did.
"""

from __future__ import annotations

import pathlib

import pytest

import fallthrough
from fallthrough.errors import InvalidInput
from fallthrough.kit import decode_document

LEGACY_METADATA = {"a.b": 1, "$x": "y", "ok": {"nested": True}}


def _urls(kind: str, tmp_path: pathlib.Path) -> tuple[str, str]:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/old.db", f"sqlite:///{tmp_path}/new.db"
    return f"qdrant+local:///{tmp_path}/old", f"qdrant+local:///{tmp_path}/new"


def _write_as_an_older_release(url: str) -> None:
    backend: object = fallthrough.Registry().create(url)
    backend.fallthrough_open()  # type: ignore[attr-defined]
    try:
        legacy = decode_document("old", "цемент М500", (1.0, 0.0), dict(LEGACY_METADATA))
        backend.fallthrough_upsert_documents(collection="docs", documents=[legacy], version=1)  # type: ignore[attr-defined]
    finally:
        backend.fallthrough_close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["sqlite", "qdrant"])
def test_a_legacy_document_is_read_listed_and_repaired_as_it_is(kind: str, tmp_path: pathlib.Path) -> None:
    old_url, new_url = _urls(kind, tmp_path)
    _write_as_an_older_release(old_url)
    with fallthrough.connect(old_url, new_url) as store:
        [read] = store.get_documents("docs", ["old"])
        assert read.metadata == LEGACY_METADATA
        assert [document.id for document in store.documents("docs")] == ["old"]
        store.repair(collection="docs")
    with fallthrough.connect(new_url) as repaired:
        assert repaired.get_documents("docs", ["old"]) == [read]


def test_the_old_keys_are_still_refused_on_the_way_in() -> None:
    with pytest.raises(InvalidInput, match=r"'a\.b'"):
        fallthrough.Document("new", metadata={"a.b": 1})


@pytest.mark.parametrize("kind", ["sqlite", "qdrant"])
def test_a_legacy_document_can_be_rewritten_under_the_new_rules(kind: str, tmp_path: pathlib.Path) -> None:
    """The recipe docs/semantics.md gives: read every document, rename the refused keys, upsert."""
    old_url, _ = _urls(kind, tmp_path)
    _write_as_an_older_release(old_url)
    with fallthrough.connect(old_url) as store:
        renamed = [
            fallthrough.Document(
                document.id,
                document.text,
                document.vector,
                {key.replace(".", "_").lstrip("$"): value for key, value in document.metadata.items()},
            )
            for document in store.documents("docs")
        ]
        store.upsert_documents("docs", renamed)
        assert store.count("docs", {"a_b": 1}) == 1
        [read] = store.get_documents("docs", ["old"])
    assert read.metadata == {"a_b": 1, "x": "y", "ok": {"nested": True}}


def test_metadata_changed_after_construction_is_checked_before_any_store_is_touched(tmp_path: pathlib.Path) -> None:
    """A Document is frozen, its metadata dict is not: the upsert checks it again, whole, first."""
    good = fallthrough.Document("good", metadata={"x": {"y": 1}})
    bad = fallthrough.Document("bad", metadata={"x": {"y": 1}})
    bad.metadata["x"]["$dt"] = 5  # type: ignore[index]
    with fallthrough.connect(f"sqlite:///{tmp_path}/a.db") as store:
        with pytest.raises(InvalidInput, match=r"documents\[1\]\.metadata\['x'\]"):
            store.upsert_documents("docs", [good, bad])
        assert store.count("docs") == 0
