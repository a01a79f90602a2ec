"""A backend written as a third party would write one, with a secret URL option only it knows.

``vault://host/db?vault_pin=...``: the pin is a secret under a name the
core has never heard of. The plugin declares it with the
``fallthrough_secret_url_keys`` hook; :mod:`.test_secret_url_keys` checks
that the core then keeps it out of every repr, health entry, log line and
error. ``undeclared://`` is the same plugin without the declaration, which
proves those tests can fail. Its store is the reference model; its outage
message repeats the pin, as a careless driver's would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

from sqlalchemy.engine import URL

import fallthrough
from fallthrough import hookimpl
from fallthrough.errors import BackendUnavailable
from fallthrough.testing import ReferenceBackend
from fallthrough.types import JSON, Batch

SECRET_KEYS = frozenset({"vault_pin"})


class UndeclaredVaultBackend(ReferenceBackend):
    def __init__(self, url: URL) -> None:
        super().__init__()
        self.url = url
        self.outage = False

    def _check(self) -> None:
        if self.outage:
            pin = self.url.query.get("vault_pin")
            raise BackendUnavailable(f"the vault refused pin {pin} at {self.url.host}")

    @hookimpl
    def fallthrough_ping(self) -> None:
        self._check()

    @hookimpl
    def fallthrough_create_batch(
        self,
        batch_id: uuid.UUID,
        keys: Sequence[str],
        first_seq: int,
        metadata: Mapping[str, JSON],
        created_at: datetime,
    ) -> Batch:
        self._check()
        return super().fallthrough_create_batch(batch_id, keys, first_seq, metadata, created_at)


class VaultBackend(UndeclaredVaultBackend):
    @hookimpl
    def fallthrough_secret_url_keys(self) -> frozenset[str]:
        return SECRET_KEYS


class WrongDeclarationBackend(UndeclaredVaultBackend):
    @hookimpl
    def fallthrough_secret_url_keys(self) -> str:
        return "vault_pin"


class NumberDeclarationBackend(UndeclaredVaultBackend):
    @hookimpl
    def fallthrough_secret_url_keys(self) -> int:
        return 5


class GeneratorDeclarationBackend(UndeclaredVaultBackend):
    """Names its secret once only: reading the names to check them would leave none to mask."""

    @hookimpl
    def fallthrough_secret_url_keys(self) -> Iterator[str]:
        yield "vault_pin"


class RaisingDeclarationBackend(UndeclaredVaultBackend):
    """Fails to say which options are secret, with the pin in its error, as a lookup of a missing key does."""

    @hookimpl
    def fallthrough_secret_url_keys(self) -> frozenset[str]:
        raise KeyError(f"no declaration for vault_pin={self.url.query.get('vault_pin')}")


def refusing_factory(url: URL) -> UndeclaredVaultBackend:
    """Refuses its URL, quoting it whole, as a careless plugin's factory does; its plugin never exists."""
    raise fallthrough.InvalidInput(f"cannot use {url.render_as_string(hide_password=False)}")


def crashing_factory(url: URL) -> UndeclaredVaultBackend:
    """Raises what is no fallthrough error, quoting the URL whole."""
    raise ValueError(f"bad region in {url.render_as_string(hide_password=False)}")
