"""The one definition of a text token, shared by every backend.

A token is a maximal run of characters for which :meth:`str.isalnum` is
true, taken from the NFC-normalised text and casefolded. There is no
stemming and no stop list. ``"Цемент М-500, 2.5мм ПВХ/PVC"`` gives
``["цемент", "м", "500", "2", "5мм", "пвх", "pvc"]``.

Backends index whatever they like, but their set of matches must equal the
one this module defines; storing the output of :func:`tokenize` is the
simplest way to get there.
"""

from __future__ import annotations

import re
import unicodedata

# [^\W_] is "a word character that is not '_'": exactly str.isalnum().
_TOKEN = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Return the tokens of ``text`` in order, duplicates included."""
    return [token.casefold() for token in _TOKEN.findall(unicodedata.normalize("NFC", text))]


def token_set(text: str) -> frozenset[str]:
    """Return the distinct tokens of ``text``."""
    return frozenset(tokenize(text))


def matches_text(query_tokens: frozenset[str], document_tokens: frozenset[str]) -> bool:
    """A document matches when every query token is one of its tokens."""
    return query_tokens <= document_tokens


__all__ = ["matches_text", "token_set", "tokenize"]
