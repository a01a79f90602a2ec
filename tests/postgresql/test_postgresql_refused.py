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

import re
import uuid

import pytest
from sqlalchemy.engine import make_url

import fallthrough
from fallthrough import Status
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
