"""A PostgreSQL that refuses the store's role, or cannot hold its tables, is a store the Store cannot use.

The next store serves, as it would while the server is down, and ``health()``
says why. Both cases are the store's configuration, not the call's input:
raised as they were (a plugin's bug, or a bare permission error), they failed
every call at once, the other stores' too, rather than the one store that
cannot serve.

PostgreSQL 15 and later give no CREATE on ``public`` but to its owner, so a
role that owns nothing is refused at open on a new database; a privilege
revoked later is refused at the call that needs it; a ``search_path``
naming no schema leaves nowhere to create the tables.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import fallthrough
from fallthrough import Document, Status
from fallthrough.breaker import BreakerPolicy
from tests.postgresql.conftest import Server


def _new_role(server: Server) -> str:
    role = f"ft_role_{uuid.uuid4().hex[:12]}"
    with server.admin() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    return role


def _as_role(url: str, role: str) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def misconfigured(server: Server, how: str) -> str:
    url = server.new_database()
    if how == "role":
        return _as_role(url, _new_role(server))
    return make_url(url).update_query_dict({"options": "-c search_path=nope"}).render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("how", "why"),
    [("role", "refused the call: InsufficientPrivilege [42501]"), ("search_path", "cannot create its tables: ")],
    ids=["a role without CREATE on the schema", "a search_path naming no schema"],
)
def test_a_store_that_cannot_create_its_tables_is_unavailable_and_the_next_store_serves(
    server: Server, how: str, why: str
) -> None:
    url = misconfigured(server, how)
    store = fallthrough.connect(url, "sqlite://")
    try:
        batch = store.create_batch(["a"])
        assert store.get_batch(batch.id) is not None
        (postgresql, _) = store.health()
        assert postgresql.last_error is not None and why in postgresql.last_error
        # The server quotes the failed statement; a message names the error, never the SQL.
        assert "CREATE" not in postgresql.last_error and "LINE" not in postgresql.last_error
    finally:
        store.close(timeout=0)  # the writes the refused store missed stay unreplayed: no wait for them
    with fallthrough.connect(url) as alone, pytest.raises(fallthrough.AllBackendsFailed, match=re.escape(why)):
        alone.create_batch(["a"])


def test_a_privilege_revoked_after_open_is_refused_at_the_next_call_and_the_next_store_serves(
    server: Server,
) -> None:
    owner_url = server.new_database()
    with fallthrough.connect(owner_url) as owner:
        owner.create_batch(["made by the owner"])
    database = make_url(owner_url).database
    role = _new_role(server)
    with server.admin(database) as conn:
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    url = _as_role(owner_url, role)
    store = fallthrough.connect(url, "sqlite://")
    try:
        granted = store.create_batch(["a", "b"])
        with server.admin(database) as conn:
            conn.execute(f"REVOKE ALL ON processing_results FROM {role}")
        store.update(granted.id, "a", Status.COMPLETED, result={"n": 1})
        assert store.get_record(granted.id, "a").status is Status.COMPLETED
        (postgresql, _) = store.health()
        assert postgresql.last_error is not None
        assert "refused the call: InsufficientPrivilege [42501]" in postgresql.last_error
        assert "processing_results" in postgresql.last_error
    finally:
        store.close(timeout=0)  # the writes the refused store missed stay unreplayed: no wait for them
    with fallthrough.connect(url) as alone, pytest.raises(fallthrough.AllBackendsFailed, match=r"\[42501\]"):
        alone.update(granted.id, "b", Status.COMPLETED, result={"n": 2})


def _granted_all_that_records_need(server: Server) -> tuple[str, str]:
    """A database whose tables the admin made, and a role granted DML on them: (the role's URL, the database)."""
    owner_url = server.new_database()
    with fallthrough.connect(owner_url) as owner:
        owner.create_batch(["made by the owner"])
    database = make_url(owner_url).database
    assert database is not None
    role = _new_role(server)
    with server.admin(database) as conn:
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    return _as_role(owner_url, role), database


def test_a_role_that_may_not_index_the_documents_is_refused_at_the_write_that_needs_an_index(server: Server) -> None:
    """A collection's first datetime needs an index only the table's owner may create ("What the server needs")."""
    url, _ = _granted_all_that_records_need(server)
    store = fallthrough.connect(url, "sqlite://")
    try:
        batch = store.create_batch(["a"])  # records need no more than the grants
        assert store.health()[0].last_error is None
        when = datetime(2026, 12, 6, tzinfo=UTC)
        store.upsert_documents("notes", [Document("n1", "a note", metadata={"at": when})])
        assert [document.id for document in store.get_documents("notes", ["n1"])] == ["n1"]
        (postgresql, _) = store.health()
        assert postgresql.last_error is not None
        assert "refused the call: InsufficientPrivilege [42501]: must be owner of table fallthrough_documents" in (
            postgresql.last_error
        )
        assert store.get_batch(batch.id) is not None
    finally:
        store.close(timeout=0)


_ROW_REFUSALS = {
    "a row-level security policy": [
        "ALTER TABLE processing_results ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY no_forbidden_keys ON processing_results USING (true) WITH CHECK (key <> 'forbidden')",
    ],
    "a trigger's RAISE": [
        """CREATE FUNCTION refuse_forbidden() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.key = 'forbidden' THEN
                RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'this key is refused';
            END IF;
            RETURN NEW;
        END $$""",
        "CREATE TRIGGER refuse_forbidden BEFORE INSERT ON processing_results "
        "FOR EACH ROW EXECUTE FUNCTION refuse_forbidden()",
    ],
}


@pytest.mark.parametrize("how", sorted(_ROW_REFUSALS))
def test_a_row_refused_by_the_database_s_own_rules_is_about_the_call_and_does_not_fall_through(
    server: Server, how: str
) -> None:
    """42501 too, but raised for the row the call wrote: falling through would route the row around the rule."""
    url, database = _granted_all_that_records_need(server)
    with server.admin(database) as conn:
        for statement in _ROW_REFUSALS[how]:
            conn.execute(statement)
    with fallthrough.connect(url, "sqlite://") as store:
        allowed = store.create_batch(["allowed"])
        with pytest.raises(fallthrough.PluginError, match="InsufficientPrivilege"):
            store.create_batch(["forbidden"])
        (postgresql, _) = store.health()
        assert postgresql.last_error is None and postgresql.missed_writes == 0
        assert store.get_batch(allowed.id) is not None


def test_a_refusal_names_the_error_without_the_statement_or_the_data_the_server_quotes(server: Server) -> None:
    """Refused inside a function, the error comes with CONTEXT lines that quote the statement, data included."""
    url, database = _granted_all_that_records_need(server)
    with server.admin(database) as conn:
        conn.execute("CREATE TABLE guarded (note text)")  # no privilege on it for the role
        conn.execute("""
            CREATE FUNCTION look_up_guarded() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                EXECUTE format('SELECT 1 FROM guarded WHERE note = %L', NEW.key);
                RETURN NEW;
            END $$""")
        conn.execute(
            "CREATE TRIGGER look_up_guarded BEFORE INSERT ON processing_results "
            "FOR EACH ROW EXECUTE FUNCTION look_up_guarded()"
        )
    store = fallthrough.connect(url, "sqlite://")
    try:
        store.create_batch(["classified-bd7a1c"])
        (postgresql, _) = store.health()
        assert postgresql.last_error is not None
        assert "refused the call: InsufficientPrivilege [42501]: permission denied for table guarded" in (
            postgresql.last_error
        )
        assert "bd7a1c" not in postgresql.last_error and "look_up_guarded" not in postgresql.last_error
    finally:
        store.close(timeout=0)


def test_a_sequence_the_role_may_not_use_refuses_the_role(server: Server) -> None:
    """A sequence's privilege is checked by its own functions (``nextval_internal``), not by ``aclcheck_error``."""
    url, database = _granted_all_that_records_need(server)
    with server.admin(database) as conn:
        conn.execute("CREATE SEQUENCE audit_numbers")  # no USAGE for the role
        conn.execute("ALTER TABLE processing_results ADD COLUMN audit_number bigint DEFAULT nextval('audit_numbers')")
    store = fallthrough.connect(url, "sqlite://")
    try:
        batch = store.create_batch(["a"])
        assert store.get_batch(batch.id) is not None
        (postgresql, _) = store.health()
        assert postgresql.last_error is not None
        assert "refused the call: InsufficientPrivilege [42501]: permission denied for sequence audit_numbers" in (
            postgresql.last_error
        )
    finally:
        store.close(timeout=0)


def _wait_for_sessions_waiting_on_a_lock(server: Server, database: str, count: int) -> None:
    with server.admin() as conn:
        for _ in range(500):
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", (database,)
            ).fetchone()
            if waiting is not None and waiting[0] >= count:
                return
            time.sleep(0.01)
    raise AssertionError(f"{count} sessions never waited on the lock")


def _end_the_stores_sessions(conn: object, database: str) -> None:
    """End every session of ``database`` but this one: the Store's next call connects anew, under the new setup."""
    conn.execute(  # type: ignore[attr-defined]
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    )


def test_a_server_turned_read_only_is_unavailable_for_writes_and_the_next_store_serves(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A hot standby behind the URL after a failover, or ``default_transaction_read_only``: no write can land."""
    url = server.new_database()
    database = make_url(url).database
    assert database is not None
    store = fallthrough.connect(url, "sqlite://")
    try:
        batch = store.create_batch(["a", "b"])
        caplog.set_level(logging.DEBUG, logger="fallthrough")
        with server.admin(database) as conn:
            conn.execute(f"ALTER DATABASE {database} SET default_transaction_read_only = on")
            _end_the_stores_sessions(conn, database)
        # Reads still work, on sessions that start read-only: four held at once, so the pool keeps four.
        _hold_four_reads(server, database, lambda: store.progress(batch.id))
        store.update(batch.id, "a", Status.COMPLETED, result={"n": 1})
        assert store.get_record(batch.id, "a").status is Status.COMPLETED
        (postgresql, _) = store.health()
        assert postgresql.last_error is not None
        assert "is read-only" in postgresql.last_error and "[25006]" in postgresql.last_error
        assert not postgresql.serves_reads  # it missed the update: reads go to the store that has it

        # Mended: a session started from now on writes, and the one that met the refusal is not reused.
        with server.admin() as conn:  # a session of the database itself would be read-only too
            conn.execute(f"ALTER DATABASE {database} RESET default_transaction_read_only")
        caplog.clear()
        assert store.drain(timeout=20)
        assert store.health()[0].serves_reads
        # Four writes held at once take four sessions: none of those that started read-only may be lent.
        with server.admin(database) as blocker, ThreadPoolExecutor(4) as pool:
            with blocker.transaction():
                blocker.execute("LOCK TABLE fallthrough_batches IN ACCESS EXCLUSIVE MODE")
                creates = [pool.submit(store.create_batch, [f"c{index}"]) for index in range(4)]
                _wait_for_sessions_waiting_on_a_lock(server, database, 4)
            created = [create.result() for create in creates]
        assert "25006" not in caplog.text
    finally:
        store.close(timeout=0)
    with fallthrough.connect(url) as alone:
        assert alone.get_record(batch.id, "a").status is Status.COMPLETED
        assert [alone.progress(batch.id).total for batch in created] == [1] * 4


def _hold_four_reads(server: Server, database: str, read: Callable[[], object]) -> None:
    """Four reads at once, held by a lock until all four wait: the pool then keeps four sessions."""
    with server.admin(database) as blocker, ThreadPoolExecutor(4) as pool:
        with blocker.transaction():
            blocker.execute("LOCK TABLE fallthrough_status_counts IN ACCESS EXCLUSIVE MODE")
            reads = [pool.submit(read) for _ in range(4)]
            _wait_for_sessions_waiting_on_a_lock(server, database, 4)
        for done in reads:
            done.result()


def test_sessions_started_while_the_server_was_read_only_are_not_lent_to_writes_once_it_is_mended(
    server: Server,
) -> None:
    """The store alone, its breaker patient: reads go on during the outage and leave read-only sessions behind."""
    url = server.new_database()
    database = make_url(url).database
    assert database is not None
    with fallthrough.connect(url, breaker=BreakerPolicy(failure_threshold=100, cooldown=0.1)) as store:
        batch = store.create_batch(["a"])
        with server.admin(database) as conn:
            conn.execute(f"ALTER DATABASE {database} SET default_transaction_read_only = on")
            _end_the_stores_sessions(conn, database)
        with pytest.raises(fallthrough.AllBackendsFailed, match=r"\[25006\]"):
            store.update(batch.id, "a", Status.COMPLETED, result={"n": 1})
        _hold_four_reads(server, database, lambda: store.progress(batch.id))
        with server.admin() as conn:
            conn.execute(f"ALTER DATABASE {database} RESET default_transaction_read_only")

        created = store.create_batch(["b"])  # a write that is not retried
        store.update(batch.id, "a", Status.COMPLETED, result={"n": 1})
        assert store.progress(created.id).total == 1
        assert store.get_record(batch.id, "a").status is Status.COMPLETED


def test_a_read_only_server_opens_and_serves_reads_though_pgvector_is_there_but_not_created(
    pgvector_server: Server,
) -> None:
    """Opening tries to create the extension, which a read-only server refuses as a role without the right does."""
    url = pgvector_server.new_database()
    database = make_url(url).database
    assert database is not None
    with fallthrough.connect(url) as store:
        batch = store.create_batch(["a", "b"])
    with pgvector_server.admin(database) as conn:
        conn.execute("DROP EXTENSION vector CASCADE")
    with pgvector_server.admin() as conn:
        conn.execute(f"ALTER DATABASE {database} SET default_transaction_read_only = on")
    with fallthrough.connect(url) as alone:
        assert alone.progress(batch.id).total == 2
        (postgresql,) = alone.health()
        assert postgresql.last_error is None


def test_tables_dropped_under_a_running_store_are_unavailable_until_a_store_opened_anew_makes_them_and_repairs(
    server: Server, tmp_path: Path
) -> None:
    url = server.new_database()
    database = make_url(url).database
    assert database is not None
    other = f"sqlite:///{tmp_path}/other.sqlite"
    store = fallthrough.connect(url, other)
    try:
        batch = store.create_batch(["a", "b"])
        with server.admin(database) as conn:
            conn.execute("DROP TABLE processing_results, fallthrough_batches CASCADE")
        store.update(batch.id, "a", Status.COMPLETED, result={"n": 1})
        assert store.get_record(batch.id, "a").status is Status.COMPLETED
        assert store.progress(batch.id).completed == 1
        (postgresql, _) = store.health()
        assert postgresql.last_error is not None
        assert "cannot find its tables" in postgresql.last_error and "[42P01]" in postgresql.last_error
        assert "SELECT" not in postgresql.last_error and "UPDATE" not in postgresql.last_error
    finally:
        store.close(timeout=0)
    # What the message says to do: a Store opened anew makes the tables again, and a repair fills them.
    with fallthrough.connect(url, other) as reopened:
        reopened.repair()
    with fallthrough.connect(url) as alone:
        assert alone.get_record(batch.id, "a").status is Status.COMPLETED
        assert alone.progress(batch.id).total == 2


def test_a_missing_table_inside_the_applications_own_trigger_is_its_bug_not_an_outage(server: Server) -> None:
    """The original application's table may carry triggers of its own; their errors are about the call."""
    url = server.new_database()
    database = make_url(url).database
    assert database is not None
    with fallthrough.connect(url) as store:
        batch = store.create_batch(["a"])
        with server.admin(database) as conn:
            conn.execute("CREATE TABLE audit (key text)")
            conn.execute(
                "CREATE FUNCTION audit_update() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN INSERT INTO audit VALUES (NEW.key); RETURN NEW; END $$"
            )
            conn.execute(
                "CREATE TRIGGER audit_updates BEFORE UPDATE ON processing_results "
                "FOR EACH ROW EXECUTE FUNCTION audit_update()"
            )
            conn.execute("DROP TABLE audit")
        with pytest.raises(fallthrough.PluginError, match="UndefinedTable"):
            store.update(batch.id, "a", Status.COMPLETED, result={"n": 1})
        assert store.health()[0].last_error is None
