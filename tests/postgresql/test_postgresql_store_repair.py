"""Store.repair end to end with a real PostgreSQL server and SQLite files diverged behind the Store's back.

The divergence and the merge come from ``tests/core/test_store_repair.py``:
stores written together, the first SQLite file then restored from an old
backup, then each store written alone through its own ``connect``. Here one
of the stores is a PostgreSQL database (on each server variant: 18 with
pgvector, 15 without), and a server stopped for real (``pg_ctl stop -m
immediate``) is left out of a repair and mended by the next one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import fallthrough
from fallthrough import Document, Status
from fallthrough.testing.compare import assert_same
from tests.core.test_store_repair import Diverged, assert_holds, expected_sends, merge, read_alone
from tests.postgresql.conftest import Server
from tests.postgresql.servers import LocalCluster

CONNECT_TIMEOUT = 2


@pytest.mark.parametrize("third", [False, True], ids=["sqlite+postgresql", "sqlite+postgresql+sqlite"])
def test_a_postgresql_database_and_sqlite_files_reach_the_merge(server: Server, tmp_path: Path, third: bool) -> None:
    urls = [f"sqlite:///{tmp_path}/a.db", server.new_database()]
    if third:
        urls.append(f"sqlite:///{tmp_path}/c.db")
    diverged = Diverged(urls, tmp_path)
    names: dict[str, Any] = dict(zip("abc", urls, strict=False))
    for url, before in diverged.before.items():
        assert expected_sends(before, diverged.merged).total > 0, f"{url} already held the merge"
    with fallthrough.connect(**names) as store:
        report = store.repair(page_size=3)
        assert_same(
            report.sent,
            {name: expected_sends(diverged.before[url], diverged.merged) for name, url in names.items()},
            "what each store was sent",
        )
        assert store.repair().sent_nothing
    for url in urls:
        diverged.check_by_hand(assert_holds(url, diverged.merged, url))
    with fallthrough.connect(*reversed(urls)) as store:
        assert store.repair(page_size=1).sent_nothing


def test_a_scoped_repair_on_postgresql_mends_only_what_it_names(server: Server, tmp_path: Path) -> None:
    urls = [f"sqlite:///{tmp_path}/a.db", server.new_database()]
    diverged = Diverged(urls, tmp_path)
    with fallthrough.connect(*urls) as store:
        assert not store.repair(diverged.twice).sent_nothing
        assert not store.repair(collection="docs").sent_nothing
        assert store.repair(diverged.twice).sent_nothing and store.repair(collection="docs").sent_nothing
    for url in urls:
        found = read_alone(url)
        assert_same(found.batch(diverged.twice).plain(), diverged.merged.batch(diverged.twice).plain(), url)
        assert_same(found.collection("docs").plain(), diverged.merged.collection("docs").plain(), url)
        rest = diverged.before[url].without_batch(diverged.twice).without_collection("docs")
        assert_same(found.without_batch(diverged.twice).without_collection("docs").plain(), rest.plain(), url)


def test_a_stopped_server_is_left_out_of_a_repair_and_mended_by_the_next(
    throwaway_cluster: LocalCluster, tmp_path: Path
) -> None:
    database = throwaway_cluster.url() + f"?connect_timeout={CONNECT_TIMEOUT}&pool_timeout=2"
    urls: dict[str, Any] = {"a": f"sqlite:///{tmp_path}/a.db", "b": f"sqlite:///{tmp_path}/b.db", "pg": database}
    with fallthrough.connect(**urls) as together:
        batch = together.create_batch(["k0", "k1", "k2"], metadata={"run": 1})
        together.upsert_documents("docs", [Document("d1", "one"), Document("d2", "two")])
    with fallthrough.connect(urls["a"]) as alone:
        alone.update(batch.id, "k0", "completed", result={"by": "a"})
        alone.delete_documents("docs", ["d1"])
    with fallthrough.connect(urls["b"]) as alone:
        alone.update(batch.id, "k1", "failed", error="b alone")
        alone.upsert_documents("docs", [Document("d3", "three")])
    with fallthrough.connect(urls["pg"]) as alone:
        alone.update(batch.id, "k2", "processing")
        alone.upsert_documents("docs", [Document("d2", "two, on postgresql")])
    before = {name: read_alone(url) for name, url in urls.items()}
    merged_ab = merge(before["a"], before["b"])

    store = fallthrough.connect(**urls, breaker=fallthrough.BreakerPolicy(cooldown=0.05))
    with store:
        throwaway_cluster.stop("immediate")
        report = store.repair()
        assert sorted(report.sent) == ["a", "b"], report
        for name in "ab":
            assert_same(read_alone(urls[name]).plain(), merged_ab.plain(), f"{name} without postgresql")

        throwaway_cluster.start()
        everything = merge(merged_ab, before["pg"])
        report = store.repair()
        assert report["pg"] == expected_sends(before["pg"], everything)
        assert report["a"] == report["b"] == expected_sends(merged_ab, everything)
        assert store.repair().sent_nothing
    for name, url in urls.items():
        found = assert_holds(url, everything, name)
        records = {key: (record.status, record.result, record.error) for key, record in found.records[batch.id].items()}
        assert records == {
            "k0": (Status.COMPLETED, {"by": "a"}, None),
            "k1": (Status.FAILED, None, "b alone"),
            "k2": (Status.PROCESSING, None, None),
        }
        live = {i: entry.document for i, entry in found.entries["docs"].items() if entry.document is not None}
        assert live == {"d2": Document("d2", "two, on postgresql"), "d3": Document("d3", "three")}
