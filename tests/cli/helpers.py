"""Running the ``fallthrough`` command as a user does: a subprocess, in a directory of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fallthrough
import fallthrough_sqlite

PACKAGE_ROOTS = [str(Path(fallthrough.__file__).parent.parent), str(Path(fallthrough_sqlite.__file__).parent.parent)]


def cli_environment(**extra: str) -> dict[str, str]:
    """This process's environment, with the code under test first on the path and no FALLTHROUGH_* left over."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FALLTHROUGH_")}
    paths = [*PACKAGE_ROOTS, *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    environment.pop("COLUMNS", None)
    environment.update(extra)
    return environment


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fallthrough.cli", *args]


def run_cli(*args: str, cwd: Path, timeout: float = 120, **environment: str) -> subprocess.CompletedProcess[str]:
    """``fallthrough ARGS`` in ``cwd``; stdout and stderr captured as text."""
    return subprocess.run(
        command(*args), cwd=cwd, env=cli_environment(**environment), capture_output=True, text=True, timeout=timeout
    )


def _signals_as_at_a_terminal() -> None:
    # A test run started in the background (`cmd &`) ignores SIGINT, and so would the CLI.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def started(workdir: Path, *args: str, **environment: str) -> subprocess.Popen[str]:
    """The command running in ``workdir``, its output piped, taking SIGINT and SIGTERM as from a terminal."""
    return subprocess.Popen(
        command(*args),
        cwd=workdir,
        env=cli_environment(**environment),
        preexec_fn=_signals_as_at_a_terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_while_running(condition: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 60) -> None:
    """Poll ``condition`` until it holds; fail, with the command's output, if it ends or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)


def json_of(completed: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON object a ``--json`` command printed, after checking it succeeded."""
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) == 1, completed.stdout
    return json.loads(lines[0])


def one_line_error(completed: subprocess.CompletedProcess[str], code: int) -> str:
    """Check a failure is exit ``code`` with one line on stderr, no traceback and nothing on stdout; return it."""
    assert completed.returncode == code, (completed.returncode, completed.stdout, completed.stderr)
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("fallthrough: error: ")
    return lines[0]
