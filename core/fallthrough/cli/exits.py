"""Exit codes of the ``fallthrough`` command, and the one-line failure every error becomes.

A script tells outcomes apart by the exit code alone, so each kind of
failure has its own, and the codes are part of the documented interface
(``docs/cli.md``). Error text is redacted with the core's own redaction
before it is printed: a backend URL's password never reaches the terminal.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable

from ..errors import (
    BackendUnavailable,
    FallthroughError,
    InvalidInput,
    NotFound,
    PluginError,
    UnknownBackend,
    Unsupported,
    UnsupportedQuery,
)
from ..journal import JournalError
from ..urls import redact


class ExitCode(enum.IntEnum):
    """What the process exit status means."""

    OK = 0
    INTERNAL = 1
    """An unexpected error: a bug in fallthrough or a plugin."""
    USAGE = 2
    """The command line itself is wrong: an unknown option, a missing argument, a missing file."""
    INVALID_INPUT = 3
    """An argument or input file breaks the rules: a bad URL, a malformed file, a bad filter."""
    NOT_FOUND = 4
    """The batch named does not exist."""
    UNAVAILABLE = 5
    """No store could serve the call (every one is down or unreachable), or the journal cannot be opened."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C (SIGINT), after stopping cleanly."""


class Failure(Exception):
    """A command failed in a way the user can act on: one line of text and an exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        self.code = code
        self.message = one_line(message)
        super().__init__(self.message)


class InputError(Failure):
    """An input file is malformed; the message names the file and the line."""

    def __init__(self, message: str) -> None:
        super().__init__(ExitCode.INVALID_INPUT, message)


_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})
"""Unicode's control and format characters and its line and paragraph separators: none shows as itself."""


def printable(text: str) -> str:
    """``text`` with its control and format characters, but tab and line feed, shown as escapes (ESC as ``\\x1b``).

    Keys, errors and metadata come from handlers and files: printed raw, an
    escape sequence among them would drive the operator's terminal (colours,
    its title, its clipboard), a bidi override (U+202E) would show a key
    reordered and a zero-width space hide a difference, and any of them
    throws a table's widths off. Letters of every script, and spaces (a
    no-break space too), are left as they are.
    """
    if text.isprintable():
        return text
    return "".join(map(_shown, text))


def _shown(character: str) -> str:
    if character in "\t\n" or unicodedata.category(character) not in _HIDDEN:
        return character
    return character.encode("unicode_escape").decode("ascii")


def one_line(text: str) -> str:
    """``text`` made :func:`printable`, with every run of whitespace (driver errors span lines) made one space."""
    return " ".join(printable(text).split())


def failure_from(error: BaseException, secrets: Iterable[str] = ()) -> Failure:
    """The :class:`Failure` an exception stands for, its text redacted of ``secrets``."""
    if isinstance(error, Failure):
        return Failure(error.code, redact(error.message, secrets))
    text = redact(str(error), secrets)
    code = ExitCode.INTERNAL
    if isinstance(error, NotFound):
        code = ExitCode.NOT_FOUND
    elif isinstance(error, BackendUnavailable | JournalError):
        code = ExitCode.UNAVAILABLE
    elif isinstance(error, InvalidInput | UnknownBackend | UnsupportedQuery | Unsupported):
        code = ExitCode.INVALID_INPUT
    elif isinstance(error, PluginError):
        text = f"a plugin broke its contract: {text}"
    elif not isinstance(error, FallthroughError):
        text = f"unexpected {type(error).__name__}: {text}"
    return Failure(code, text)


__all__ = ["ExitCode", "Failure", "InputError", "failure_from", "one_line"]
