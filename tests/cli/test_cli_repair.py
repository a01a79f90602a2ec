"""``fallthrough repair``, and the warning a command gives when writes a down store missed die with it.

The stores are SQLite files; one is down because its directory does not
exist yet, as a volume not mounted.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

import fallthrough
from fallthrough.cli.app import _tell_of_writes_lost_at_exit
from fallthrough.cli.exits import ExitCode
from fallthrough.journal import JournalPolicy
from tests.cli.helpers import json_of, one_line_error, run_cli, started, wait_while_running

LOST = "sqlite-2 missed writes that nothing replays once this command exits (the journal is in memory)"


def urls(directory: Path) -> tuple[str, str]:
    """Store a, and store b on a volume that is not there until the test makes it."""
    return f"sqlite:///{directory / 'a.db'}", f"sqlite:///{directory / 'volume' / 'b.db'}"


def create_while_b_is_down(directory: Path, *args: str) -> tuple[str, str]:
    """The batch id, and what the command said on stderr."""
    (directory / "keys.txt").write_text("k1\nk2\nk3\n")
    a, b = urls(directory)
    created = run_cli("create", "keys.txt", "--url", a, "--url", b, *args, cwd=directory)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip(), created.stderr


def test_a_command_says_when_a_down_store_loses_its_missed_writes_and_repair_sends_them(tmp_path: Path) -> None:
    batch, said = create_while_b_is_down(tmp_path)
    assert said.startswith(f"fallthrough: warning: {LOST}") and "run `fallthrough repair`" in said
    (tmp_path / "volume").mkdir()
    a, b = urls(tmp_path)
    # The mark died with the command: nothing but a repair knows b lacks the batch.
    assert (
        json_of(run_cli("health", "--url", a, "--url", b, "--json", cwd=tmp_path))["stores"][1]["needs_repair"] is False
    )
    first, second = json_of(run_cli("repair", "--url", a, "--url", b, "--json", cwd=tmp_path))["stores"]
    assert (first["name"], sum(first["sent"].values()), first["needs_repair"]) == ("sqlite", 0, False)
    assert second["sent"] == {"batches": 1, "records": 3, "documents": 0, "tombstones": 0, "dimensions": 0}
    assert (second["name"], second["needs_repair"]) == ("sqlite-2", False)
    alone = json_of(run_cli("status", batch, "--url", b, "--json", cwd=tmp_path))
    assert alone["progress"]["pending"] == 3
    again = run_cli("repair", "--url", a, "--url", b, cwd=tmp_path)  # the table, now with nothing to send
    assert again.returncode == 0 and again.stderr == ""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in again.stdout.splitlines() if "sqlite" in line]
    assert rows == [["sqlite", *["0"] * 5], ["sqlite-2", *["0"] * 5]], again.stdout


def test_a_durable_journal_keeps_the_missed_writes_for_the_next_command_without_a_warning(tmp_path: Path) -> None:
    journal = f"sqlite:///{tmp_path / 'hints.db'}"
    batch, said = create_while_b_is_down(tmp_path, "--journal", journal)
    assert said == ""
    (tmp_path / "volume").mkdir()
    a, b = urls(tmp_path)
    # This command's Store replays the hint in the background, and closing waits for it.
    assert run_cli("health", "--url", a, "--url", b, "--journal", journal, cwd=tmp_path).returncode == 0
    assert json_of(run_cli("status", batch, "--url", b, "--json", cwd=tmp_path))["progress"]["total"] == 3


def test_a_repair_that_leaves_a_store_out_reports_what_it_did_and_exits_5(tmp_path: Path) -> None:
    create_while_b_is_down(tmp_path)
    a, b = urls(tmp_path)
    repaired = run_cli("repair", "--url", a, "--url", b, "--json", cwd=tmp_path)
    assert repaired.returncode == ExitCode.UNAVAILABLE
    first, second = json.loads(repaired.stdout)["stores"]
    assert first["sent"] is not None and (second["name"], second["sent"]) == ("sqlite-2", None)
    assert repaired.stderr.splitlines()[-1] == (
        "fallthrough: error: the repair left out sqlite-2 (down, or behind its journaled writes); "
        "run it again when they are back"
    )
    assert "Traceback" not in repaired.stderr


def test_a_repair_of_a_batch_id_that_is_no_uuid_is_invalid_input(tmp_path: Path) -> None:
    a, _ = urls(tmp_path)
    refused = run_cli("repair", "--batch", "nope", "--url", a, cwd=tmp_path)
    assert "nope" in one_line_error(refused, ExitCode.INVALID_INPUT)


def test_a_store_the_memory_journal_gave_up_on_is_told_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Past the journal's bound, b had no hints left, only a repair mark: nothing was said, and the mark died."""
    a, b = urls(tmp_path)
    store = fallthrough.connect(a, b, journal_policy=JournalPolicy(max_hints=2))
    try:
        batch = store.create_batch(["k1", "k2", "k3"])
        for key in ("k1", "k2"):  # the second hint is the bound: the third write drops them all
            store.update(batch.id, key, "completed")
        entry = store.health()[1]
        assert (entry.pending_hints, entry.needs_repair) == (0, True)
        _tell_of_writes_lost_at_exit(store)
    finally:
        store.close(timeout=0)
    assert capsys.readouterr().err.startswith(f"fallthrough: warning: {LOST}")


def test_a_second_ctrl_c_during_the_replay_at_exit_still_warns(tmp_path: Path) -> None:
    """The second interrupt left the command before the warning, and before the Store was closed."""
    (tmp_path / "handlers.py").write_text("import time\n\ndef handle(record):\n    time.sleep(0.01)\n    return 1\n")
    (tmp_path / "keys.txt").write_text("".join(f"k{index}\n" for index in range(3000)))
    a, b = urls(tmp_path)
    created = run_cli("create", "keys.txt", "--url", a, cwd=tmp_path)
    batch = created.stdout.strip()
    running = started(tmp_path, "run", batch, "handlers:handle", "--url", a, "--url", b, "--workers", "2")
    try:
        with fallthrough.connect(a) as store:
            wait_while_running(lambda: store.progress(batch).completed >= 100, running)
        running.send_signal(signal.SIGINT)
        time.sleep(1.5)  # the run has stopped; the command replays b's hints, for up to 5 s, as b stays down
        running.send_signal(signal.SIGINT)
        _, stderr = running.communicate(timeout=60)
    finally:
        running.kill()
    assert running.returncode == ExitCode.INTERRUPTED, stderr
    assert f"fallthrough: warning: {LOST}" in stderr
