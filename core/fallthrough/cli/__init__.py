"""The ``fallthrough`` command line: batches, runs, search and the stores' health from a shell.

``main`` is the console script. It runs the click group with
``standalone_mode=False`` so that every failure, a usage error included,
becomes one line on stderr and a documented exit code
(:class:`~fallthrough.cli.exits.ExitCode`), never a traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import click

from .app import SHOWN_ON_CONSOLE, cli, on_sigterm
from .exits import ExitCode, Failure, failure_from, one_line, printable

DEBUG_VARIABLE = "FALLTHROUGH_DEBUG"


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command line; returns the exit code.

    The core logs each fall-through as a warning; a command's outcome
    already says what failed, so those go nowhere unless
    ``FALLTHROUGH_DEBUG`` is set (then tracebacks show too).
    """
    with _log_display(debug=bool(os.environ.get(DEBUG_VARIABLE))), warnings.catch_warnings():
        # catch_warnings restores the process's warning display on the way out.
        warnings.showwarning = _one_line_warning
        return _run(argv)


@contextmanager
def _log_display(*, debug: bool) -> Iterator[None]:
    """While one command runs: the core's log silenced, or with ``debug`` shown on this call's stderr.

    The handler and the root logger's level are put back on the way out, so
    that a process calling :func:`run` more than once (a test, an embedding
    application) gets each call's own stderr and keeps its own logging
    set-up; ``logging.basicConfig`` would do nothing where the root logger
    already has a handler, and would leave its handler and level behind.
    """
    if not debug:
        logger = logging.getLogger("fallthrough")
        quiet = logging.NullHandler()
        logger.addHandler(quiet)
        try:
            yield
        finally:
            logger.removeHandler(quiet)
        return
    root = logging.getLogger()
    shown = logging.StreamHandler(sys.stderr)
    shown.setFormatter(_PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    shown.addFilter(_not_shown_yet)
    level = root.level
    root.addHandler(shown)
    root.setLevel(min(level, logging.INFO))  # NOTSET, below INFO, already shows everything
    try:
        yield
    finally:
        root.setLevel(level)
        root.removeHandler(shown)


class _PrintableFormatter(logging.Formatter):
    """Log lines with stored text's control characters escaped, as every other line the command prints."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def _not_shown_yet(record: logging.LogRecord) -> bool:
    """False for a record ``run`` already printed whole above its bar (see ``app.SHOWN_ON_CONSOLE``): shown once.

    That line is the message only: a record with a traceback is logged again, traceback and all.
    """
    shown = getattr(record, SHOWN_ON_CONSOLE, False)
    return not shown or bool(record.exc_info or record.stack_info)


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: object = None,
) -> None:
    """A library's warning (a driver's, say) as one line on stderr, like every other note of the command."""
    print(f"fallthrough: warning: {one_line(str(message))}", file=sys.stderr)


def _run(argv: Sequence[str] | None) -> int:
    try:
        # SIGTERM raises KeyboardInterrupt, as Ctrl-C does: ``kill`` stops any command cleanly, with exit 130
        # (``run`` puts its own handler over this one while it runs).
        with on_sigterm(signal.default_int_handler):
            code = cli.main(
                args=list(argv) if argv is not None else None, prog_name="fallthrough", standalone_mode=False
            )
    except click.exceptions.Abort:
        return _fail(ExitCode.INTERRUPTED, "interrupted")
    except KeyboardInterrupt:
        return _fail(ExitCode.INTERRUPTED, "interrupted")
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as error:
        hint = f" (see '{error.ctx.command_path} --help')" if isinstance(error, click.UsageError) and error.ctx else ""
        return _fail(ExitCode.USAGE, error.format_message() + hint)
    except Failure as failure:
        return _fail(failure.code, failure.message)
    except Exception as error:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        return _fail(*_unpack(failure_from(error)))
    return code if isinstance(code, int) else ExitCode.OK


def _unpack(failure: Failure) -> tuple[ExitCode, str]:
    return failure.code, failure.message


def _fail(code: ExitCode, message: str) -> int:
    click.echo(f"fallthrough: error: {one_line(message)}", err=True)
    return int(code)


def main() -> None:
    """The console script ``fallthrough``."""
    sys.exit(run())


__all__ = ["ExitCode", "main", "run"]
