"""Closing a Store releases what it opened: connections, files, threads.

A backend whose ``fallthrough_close`` releases nothing still passes the
conformance suite (the suite's backend may outlive the test), and an
application that connects per job would leak a connection or a thread each
time. So the process is watched while Stores over every built-in backend,
and a journal file, are opened, used and closed many times over.
"""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import fallthrough
from fallthrough import Document
from tests.core.helpers import eventually
from tests.postgresql.conftest import Server

ROUNDS = 12
SLACK = 2


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def _server_sessions(server: Server, url: str) -> int:
    database = url.rsplit("/", 1)[1].split("?", 1)[0]
    with server.admin() as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
        ).fetchone()
    assert row is not None and isinstance(row[0], int)
    return row[0]


def _use_and_close(urls: list[str], journal: str) -> None:
    with fallthrough.connect(*urls, journal=journal) as store:
        batch = store.create_batch(["a", "b"])
        store.update(batch.id, "a", "completed", result={"n": 1})
        assert store.progress(batch.id).completed == 1
        store.upsert_documents("c", [Document("d", "текст", vector=[1.0, 0.0])])
        assert [hit.id for hit in store.search("c", text="текст")] == ["d"]
        store.health(ping=True)


def test_stores_opened_and_closed_over_and_over_leave_no_files_sessions_or_threads(
    pgvector_server: Server, tmp_path: Path
) -> None:
    postgresql = pgvector_server.new_database()
    urls = [postgresql, f"sqlite:///{tmp_path / 'store.db'}", f"qdrant+local:///{tmp_path / 'qdrant'}"]
    journal = f"sqlite:///{tmp_path / 'journal.db'}"
    _use_and_close(urls, journal)  # the first round imports and caches what a process keeps
    gc.collect()
    files, threads = _open_files(), threading.active_count()
    for _ in range(ROUNDS):
        _use_and_close(urls, journal)
    # No collection here: a close that leaves its connections to the garbage collector leaks them until it runs.
    # A leak grows with the rounds (a connection or a thread each); the slack is for a
    # file or thread that something else in the process opens meanwhile.
    assert _open_files() <= files + SLACK, "closed Stores left files or sockets open"
    assert threading.active_count() <= threads + SLACK, f"closed Stores left threads: {threading.enumerate()}"
    # A server process leaves pg_stat_activity a moment after its client hangs up.
    assert eventually(lambda: _server_sessions(pgvector_server, postgresql) == 0, timeout=10), (
        "closed Stores left server sessions open"
    )
