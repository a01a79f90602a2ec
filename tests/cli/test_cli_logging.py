"""What the command line does to the process's logging: while a command runs, and after it."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import pytest

from fallthrough.cli import DEBUG_VARIABLE, run
from fallthrough.cli.exits import ExitCode
from tests.postgresql.servers import free_port


def test_the_debug_log_goes_to_each_calls_stderr_and_leaves_the_process_logging_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In process, as a test or an application embedding the command calls it; pytest's own log
    # capture has already given the root logger handlers, as such an application's set-up would.
    monkeypatch.setenv(DEBUG_VARIABLE, "1")
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    down = f"postgresql://app:pa55word@127.0.0.1:{free_port()}/app"
    shown = []
    for _ in range(2):
        with contextlib.redirect_stderr(io.StringIO()) as stderr:
            assert run(["batches", "--url", down, "--url", "sqlite://", "--json"]) == ExitCode.OK
        shown.append(stderr.getvalue())
        assert (list(root.handlers), root.level) == before
    for text in shown:
        assert "WARNING fallthrough" in text, text
        assert "pa55word" not in text


def test_without_the_debug_log_the_core_says_nothing_and_no_handler_is_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    logger = logging.getLogger("fallthrough")
    before = list(logger.handlers)
    down = f"postgresql://app:pa55word@127.0.0.1:{free_port()}/app"
    with contextlib.redirect_stderr(io.StringIO()) as stderr:
        assert run(["batches", "--url", down, "--url", "sqlite://", "--json"]) == ExitCode.OK
    assert "WARNING" not in stderr.getvalue()
    assert logger.handlers == before
