"""Text search with FTS5: building the MATCH expression from the core's tokens.

The index holds each document's tokens as the core defines them, and a
query asks for each query token as a quoted phrase. FTS5 splits text with
its own tokenizer (unicode61, built on Unicode 6.1 tables), so the index
can disagree with :mod:`fallthrough.text` in two ways:

* It can split one core token into several, or fold two core tokens into
  one. Then MATCH returns extra candidates, and :mod:`.search` drops them by
  checking the token sets in Python.
* A character that is alphanumeric for Python today may be a separator in
  Unicode 6.1 (New Tai Lue vowel signs, for one). A core token made only of
  such characters vanishes from the index and from the query; a query of
  nothing but such tokens would find nothing. :class:`Unicode61Probe`
  finds those characters by asking FTS5 itself, so that such tokens are
  left out of MATCH, and a query with no token left falls back to a scan.

So MATCH only ever narrows to a superset of the true matches, and the
Python check makes the answer exactly the reference's.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable

from .schema import FTS_TOKENIZER


class Unicode61Probe:
    """Tells which characters the FTS5 tokenizer treats as part of a token.

    Asks a private in-memory FTS5 table with the same tokenizer, once per
    character, and remembers the answer for the life of the object.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token_chars: dict[str, bool] = {}
        self._connection: sqlite3.Connection | None = None

    def indexed(self, token: str) -> bool:
        """True if FTS5 indexes at least one character of ``token``."""
        with self._lock:
            unknown = {char for char in token if char not in self._token_chars}
            if unknown:
                self._classify(unknown)
            return any(self._token_chars[char] for char in token)

    def _classify(self, chars: Iterable[str]) -> None:
        if self._connection is None:
            self._connection = sqlite3.connect(":memory:", check_same_thread=False)
            self._connection.execute(f"CREATE VIRTUAL TABLE probe USING fts5(text, tokenize='{FTS_TOKENIZER}')")
        ordered = sorted(chars)
        # "q" + char + "q" is one token "q<char>q" when the char belongs to
        # tokens, and two tokens "q" when it separates them.
        with self._connection:
            self._connection.executemany(
                "INSERT INTO probe(rowid, text) VALUES (?, ?)",
                ((index, f"q{char}q") for index, char in enumerate(ordered, start=1)),
            )
            rows = self._connection.execute("SELECT rowid FROM probe WHERE probe MATCH '\"q\"'").fetchall()
            self._connection.execute("DELETE FROM probe")
        separators = {ordered[rowid - 1] for (rowid,) in rows}
        for char in ordered:
            self._token_chars[char] = char not in separators

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def match_expression(tokens: Iterable[str]) -> str:
    """An FTS5 query that every document holding all ``tokens`` matches.

    Each token is a quoted string (a phrase of whatever FTS5 makes of it),
    so no token is read as an operator such as AND, OR, NOT or NEAR.
    """
    return " ".join('"' + token.replace('"', '""') + '"' for token in sorted(tokens))


__all__ = ["Unicode61Probe", "match_expression"]
