"""A PostgreSQL the Store cannot create its tables in is a store it cannot use: the next one serves.

PostgreSQL 15 and later give no CREATE on ``public`` but to its owner, so a
role that owns nothing meets this on a new database; a ``search_path``
naming no schema is the other way. Both raised a PluginError (a plugin's
bug) at the first call, which fails every call at once, the other stores'
too, rather than the one store that cannot serve.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.engine import make_url

import fallthrough
from tests.postgresql.conftest import Server


def misconfigured(server: Server, how: str) -> str:
    url = server.new_database()
    if how == "role":
        role = f"ft_role_{uuid.uuid4().hex[:12]}"
        with server.admin() as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN")
        return make_url(url).set(username=role).render_as_string(hide_password=False)
    return make_url(url).update_query_dict({"options": "-c search_path=nope"}).render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("how", "sqlstate"),
    [("role", "42501"), ("search_path", "3F000")],
    ids=["a role without CREATE on the schema", "a search_path naming no schema"],
)
def test_a_store_that_cannot_create_its_tables_is_unavailable_and_the_next_store_serves(
    server: Server, how: str, sqlstate: str
) -> None:
    url = misconfigured(server, how)
    with fallthrough.connect(url, "sqlite://") as store:
        batch = store.create_batch(["a"])
        assert store.get_batch(batch.id) is not None
        (postgresql, _) = store.health()
        assert postgresql.last_error is not None and "cannot create its tables: " in postgresql.last_error
        assert f"[{sqlstate}]" in postgresql.last_error
    with fallthrough.connect(url) as alone, pytest.raises(fallthrough.AllBackendsFailed, match=rf"\[{sqlstate}\]"):
        alone.create_batch(["a"])
