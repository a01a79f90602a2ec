"""A forked child never touches the PostgreSQL connections it inherited from its parent.

Both processes would otherwise speak on the same sockets: the child's
statements answered by the parent's reads, or a ``close`` in the child
ending the parent's sessions.
"""

from __future__ import annotations

from typing import cast

import fallthrough
from fallthrough import Status
from tests.forking import run_in_fork
from tests.postgresql.conftest import Server


def sessions(server: Server, url: str) -> list[int]:
    """The server process ids of the client sessions open on the database, this one's excepted."""
    database = url.rsplit("/", 1)[1].split("?", 1)[0]
    with server.admin() as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid() ORDER BY pid",
            (database,),
        ).fetchall()
    return [cast(int, pid) for (pid,) in rows]


def test_a_forked_child_neither_writes_on_nor_closes_the_parents_connections(
    pgvector_server: Server,
) -> None:
    url = pgvector_server.new_database()
    with fallthrough.connect(url) as store:
        batch = store.create_batch([f"k{n}" for n in range(5000)])
        opened = sessions(pgvector_server, url)
        assert opened

        written = run_in_fork(lambda: store.update(batch.id, "k1", Status.COMPLETED))

        def close_then_read() -> object:
            store.close()
            return store.progress(batch.id)

        closed = run_in_fork(close_then_read)

        assert (written.raised, "fork" in written.message) == ("WrongProcess", True), written
        assert closed.raised == "WrongProcess", closed
        assert sessions(pgvector_server, url) == opened  # the same sessions, none ended by the child
        assert store.progress(batch.id).completed == 0
        store.update(batch.id, "k2", Status.COMPLETED)
        assert store.progress(batch.id).completed == 1
        assert sessions(pgvector_server, url) == opened  # and the parent went on with them
