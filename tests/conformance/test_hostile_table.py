"""The hostile suite's table names every public Store method that takes data, so a new method cannot be left out."""

from __future__ import annotations

import inspect

from fallthrough import Store
from fallthrough.testing.hostile import HOSTILE_CALLS

# health(ping=) only says whether to ping, and close() would end the Store the suite goes on calling;
# test_store_arguments.py covers close's timeout.
NOT_DATA = {"health", "close"}


def test_every_public_store_method_that_takes_arguments_is_in_the_hostile_table() -> None:
    taking_arguments = {
        name
        for name, method in inspect.getmembers(Store, inspect.isfunction)
        if not name.startswith("_") and len(inspect.signature(method).parameters) > 1
    }
    assert taking_arguments - NOT_DATA - set(HOSTILE_CALLS) == set()
    assert set(HOSTILE_CALLS) <= taking_arguments, "the table names a method the Store does not have"
