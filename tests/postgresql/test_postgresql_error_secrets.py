"""No error that reaches a Store's caller leads to the PostgreSQL password, by any path.

Not in its text, and not through ``__cause__``/``__context__``, ``causes`` or
any attribute of an object attached to it: a psycopg error left as
``__context__`` holds its connection, whose ``info.password`` is the password.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import fallthrough
from fallthrough.errors import BackendUnavailable, FallthroughError, PluginError
from tests.postgresql.conftest import Server, cluster_with_app_role
from tests.postgresql.helpers import direct
from tests.postgresql.servers import LocalCluster

PASSWORD = "Hostile-pa55word-7"
_PLAIN = (str, bytes, int, float, bool, type(None))


def reachable_texts(root: object, depth: int = 6) -> Iterator[tuple[str, str]]:
    """(path, text) for the str and repr of every object reachable from ``root``.

    Follows exception chains, ``args``, ``causes``, instance dicts, slots and
    every public non-callable attribute (properties included, such as a
    psycopg error's ``pgconn`` or a connection's ``info``), ``depth`` levels
    deep. Tracebacks and frames are left out: the caller's own frames hold
    the Store, whose URL holds the password by necessity.
    """
    seen: set[int] = set()
    pending: list[tuple[str, object, int]] = [("error", root, 0)]
    while pending:
        path, value, level = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        for render in (str, repr):
            try:
                yield path, render(value)
            except Exception as error:  # an attribute that cannot render is no leak
                yield path, type(error).__name__
        if isinstance(value, _PLAIN) or level >= depth or isinstance(value, type):
            continue
        children: list[tuple[str, object]] = []
        if isinstance(value, dict):
            children += [(f"{path}[{key!r}]", item) for key, item in value.items()]
            children += [(f"{path}.keys", list(value))]
        elif isinstance(value, list | tuple | set | frozenset):
            children += [(f"{path}[{index}]", item) for index, item in enumerate(value)]
        if isinstance(value, BaseException):
            children += [
                (f"{path}.__cause__", value.__cause__),
                (f"{path}.__context__", value.__context__),
                (f"{path}.args", value.args),
            ]
        for name in dir(value):
            if name.startswith("__") or name in {"with_traceback", "add_note"}:
                continue
            try:
                attribute = getattr(value, name)
            except Exception:
                continue
            if callable(attribute) and not isinstance(attribute, BaseException):
                continue
            children.append((f"{path}.{name}", attribute))
        pending.extend((child_path, child, level + 1) for child_path, child in children if child is not None)


def assert_no_password(error: BaseException) -> None:
    leaks = [path for path, text in reachable_texts(error) if PASSWORD in text]
    assert leaks == [], f"the password is reachable from the error at {leaks[:5]}"


@pytest.fixture(scope="module")
def password_cluster(pgvector_server: Server) -> Iterator[LocalCluster]:
    """A server of its own that checks passwords, with a role ``app`` whose password is PASSWORD."""
    with cluster_with_app_role(PASSWORD) as cluster:
        yield cluster


def _superuser(cluster: LocalCluster) -> str:
    return f"postgresql://{cluster.superuser}@/app?host={cluster.socket_dir}&port={cluster.port}"


def test_the_walk_finds_a_password_on_a_psycopg_error(password_cluster: LocalCluster) -> None:
    """The check can fail: a psycopg connection error leads to the password through its ``pgconn``."""
    import psycopg

    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect(password_cluster.url("app", user="app", password=PASSWORD + "x"))
    leaks = [path for path, text in reachable_texts(raised.value) if PASSWORD in text]
    assert leaks, "the walk should reach the password through the error's connection"


def test_an_outage_error_leads_to_no_password(password_cluster: LocalCluster) -> None:
    good = password_cluster.url("app", user="app", password=PASSWORD)
    with fallthrough.connect(good) as store:
        batch = store.create_batch(["a"])
        password_cluster.stop("immediate")
        try:
            with pytest.raises(BackendUnavailable) as raised:
                store.progress(batch.id)
            with pytest.raises(BackendUnavailable) as raised_write:
                store.update(batch.id, "a", "completed")
        finally:
            password_cluster.start()
    for error in (raised.value, raised_write.value):
        assert error.__cause__ is None and error.__context__ is None
        assert "postgresql" in str(error)  # the translated text, for debugging
        assert_no_password(error)


def test_a_driver_error_the_plugin_lets_through_leads_to_no_password(password_cluster: LocalCluster) -> None:
    """An error the plugin does not translate reaches the caller as a PluginError naming the driver's error."""
    good = password_cluster.url("app", user="app", password=PASSWORD)
    with fallthrough.connect(good) as store:
        batch = store.create_batch(["customer-4711"])
        # A CHECK the application added to its own table judges the row: the call's error, not an outage.
        with direct(_superuser(password_cluster)) as conn:
            conn.execute("ALTER TABLE processing_results ADD CONSTRAINT never_done CHECK (status <> 'completed')")
        try:
            with pytest.raises(FallthroughError) as raised:
                store.update(batch.id, "customer-4711", fallthrough.Status.COMPLETED, result={"price": 410})
        finally:
            with direct(_superuser(password_cluster)) as conn:
                conn.execute("ALTER TABLE processing_results DROP CONSTRAINT never_done")
        assert store.get_record(batch.id, "customer-4711") is not None
    error = raised.value
    assert isinstance(error, PluginError), f"{type(error).__name__}: {error}"
    assert "CheckViolation" in str(error) and "never_done" in str(error)
    # The server's DETAIL line quotes the failing row: the caller's key and result.
    assert "customer-4711" not in str(error) and "410" not in str(error)
    assert error.__cause__ is None and error.__context__ is None
    assert_no_password(error)


def test_a_wrong_password_error_leads_to_no_password(password_cluster: LocalCluster) -> None:
    wrong = password_cluster.url("app", user="app", password=PASSWORD + "x")
    with fallthrough.connect(wrong) as store, pytest.raises(BackendUnavailable) as raised:
        store.get_batch(uuid.uuid4())
    assert "password authentication failed" in str(raised.value)
    assert_no_password(raised.value)
