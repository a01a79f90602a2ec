"""A plugin declares its secret URL options, and the core masks them everywhere it shows text.

The plugin (:mod:`.vault_plugin`) is registered through the public registry
as a third party's would be; ``undeclared://`` is the same plugin without
the declaration, to show that each check would catch the secret.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest

import fallthrough
from fallthrough.errors import AllBackendsFailed, InvalidInput, PluginError

from .helpers import gate, gated
from .vault_plugin import UndeclaredVaultBackend

PIN = "pin-7c1d93e2"


@pytest.fixture
def vault_registry() -> fallthrough.Registry:
    registry = fallthrough.Registry(entry_point_group=None)
    registry.register("vault", "tests.core.vault_plugin:VaultBackend")
    registry.register("undeclared", "tests.core.vault_plugin:UndeclaredVaultBackend")
    registry.register("wrong", "tests.core.vault_plugin:WrongDeclarationBackend")
    registry.register("number", "tests.core.vault_plugin:NumberDeclarationBackend")
    registry.register("generator", "tests.core.vault_plugin:GeneratorDeclarationBackend")
    registry.register("raising", "tests.core.vault_plugin:RaisingDeclarationBackend")
    registry.register("refusing", "tests.core.vault_plugin:refusing_factory")
    registry.register("crashing", "tests.core.vault_plugin:crashing_factory")
    return registry


def _texts_after_an_outage(scheme: str, registry: fallthrough.Registry, caplog: pytest.LogCaptureFixture) -> list[str]:
    store = fallthrough.connect(f"{scheme}://vault.example/db?vault_pin={PIN}&region=eu", registry=registry)
    plugin = store.plugin_manager.get_plugin(store.backend_names[0])
    assert isinstance(plugin, UndeclaredVaultBackend)
    plugin.outage = True
    caplog.set_level(logging.DEBUG, logger="fallthrough")
    with pytest.raises(AllBackendsFailed) as raised:
        store.create_batch(["a"])
    texts = [repr(store), str(raised.value), repr(raised.value.causes), caplog.text]
    texts += [str(cause) for cause in raised.value.causes.values()]
    health = store.health(ping=True)
    texts += [repr(entry) for entry in health] + [entry.url for entry in health]
    store.close()
    return texts


def test_a_declared_secret_option_is_masked_in_repr_health_logs_and_errors(
    vault_registry: fallthrough.Registry, caplog: pytest.LogCaptureFixture
) -> None:
    texts = _texts_after_an_outage("vault", vault_registry, caplog)

    assert "vault_pin=***" in texts[0], texts[0]
    assert "region=eu" in texts[0], "only the declared option is masked"
    assert "the vault refused pin *** at vault.example" in texts[1]
    for text in texts:
        assert PIN not in text


def test_an_undeclared_secret_option_shows_which_is_why_plugins_declare_them(
    vault_registry: fallthrough.Registry, caplog: pytest.LogCaptureFixture
) -> None:
    texts = _texts_after_an_outage("undeclared", vault_registry, caplog)

    assert PIN in texts[0]
    assert PIN in texts[1]


@pytest.mark.parametrize("scheme", ["wrong", "number", "generator", "raising"])
def test_a_declaration_that_is_not_a_collection_of_names_is_a_plugin_error(
    vault_registry: fallthrough.Registry, scheme: str
) -> None:
    with pytest.raises(PluginError, match="fallthrough_secret_url_keys") as raised:
        fallthrough.connect(f"{scheme}://vault.example/db?vault_pin={PIN}", registry=vault_registry)
    assert PIN not in str(raised.value)
    assert raised.value.__context__ is None


@pytest.mark.parametrize(("scheme", "error"), [("refusing", InvalidInput), ("crashing", PluginError)])
@pytest.mark.parametrize(
    ("password", "pin"),
    [("pw-0f9e", PIN), ("s3cr%40t%2Fpw", "p%2Fn%3D7c1d%26x"), ("correct%20horse", PIN)],
    ids=["plain", "percent-encoded", "with a space"],  # SQLAlchemy renders a password's space as a space
)
def test_a_factory_quoting_its_url_cannot_show_its_secrets_though_it_could_not_declare_them(
    vault_registry: fallthrough.Registry, scheme: str, error: type[Exception], password: str, pin: str
) -> None:
    """The factory runs before its plugin can declare a secret option: a URL it quotes loses every option value."""
    url = f"{scheme}://app:{password}@vault.example/db?vault_pin={pin}&region=europe&timeout=5"
    with pytest.raises(error) as raised:
        fallthrough.connect(url, registry=vault_registry)
    text = str(raised.value)
    for secret in (password, pin, unquote(password), unquote(pin), "europe", "horse"):
        assert secret not in text, text
    assert f"{scheme}://app:***@vault.example/db?region=***&timeout=***&vault_pin=***" in text, text
    assert raised.value.__cause__ is None and raised.value.__context__ is None


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("postgresql+psycopg://postgres:postgres@localhost/postgres?sslmode=requird", "sslmode='requird'"),
        ("postgresql+psycopg://u:p@h/d?timeout=abc", "postgresql URL option timeout must be"),
        ("sqlite:///data/app.db?timeout=second", "from 0 below 86400, got 'second'"),
        ("qdrant://localhost?prefix=qdrant&timeout=-1", "qdrant URL option timeout must be"),
        # A password that is also part of an option's name masks no letters of it (the option "timeout",
        # the same word, is masked: a message may not show the password).
        ("postgresql://u:timeout@h/db?bogusopt=1", "expected one of connect_timeout, hnsw_ef_search, lock_timeout"),
    ],
)
def test_a_first_party_factorys_message_for_a_bad_option_is_kept_whole(url: str, kept: str) -> None:
    """Masking every option value of 4 characters or more, and the password as text, left these unreadable."""
    pytest.importorskip("psycopg")
    pytest.importorskip("qdrant_client")
    with pytest.raises(InvalidInput) as raised:
        fallthrough.connect(url, registry=fallthrough.Registry())
    assert kept in str(raised.value), str(raised.value)
    assert str(raised.value).count("***") == ("u:timeout@" in url), str(raised.value)


def test_the_postgresql_plugin_declares_libpq_secrets_the_core_does_not_know() -> None:
    pytest.importorskip("psycopg")
    store = fallthrough.connect(
        "postgresql://app@127.0.0.1:1/app?scram_client_key=c2VjcmV0LWtleQ&connect_timeout=2",
        registry=fallthrough.Registry(),
    )
    assert "c2VjcmV0LWtleQ" not in repr(store)
    assert "scram_client_key=***" in store.health()[0].url
    store.close()


def test_a_password_inside_an_option_of_another_name_is_masked_in_repr_and_health() -> None:
    """libpq's ``options=-c password=...`` showed it in the URL, though error text masked it by its value."""
    pytest.importorskip("psycopg")
    password = "p@ss w0rd"  # percent-encoded in the URL's text, with a space
    quoted = "p%40ss%20w0rd"
    store = fallthrough.connect(
        f"postgresql+psycopg://app:{quoted}@127.0.0.1:1/app?timeout=1&options=-c%20password%3D{quoted}",
        "sqlite://",
    )
    shown = [repr(store), *(entry.url for entry in store.health())]
    store.close()
    assert "options=-c+password%3D***&timeout=1" in shown[1], shown[1]
    assert "@127.0.0.1:1/app?" in shown[1]  # the host and database are not masked
    for text in shown:
        for form in (password, quoted, "p%40ss+w0rd"):
            assert form not in text, text


def test_a_short_password_is_masked_as_a_whole_word_only_and_leaves_the_journal_identity_alone(tmp_path: Path) -> None:
    """Masked as text, password "1" turned connect_timeout=10 into connect_timeout=***0, and the masked URL,
    which a durable journal knows the store by, changed when the password did."""
    pytest.importorskip("psycopg")
    journal = f"sqlite:///{tmp_path / 'hints.db'}"

    def postgresql(password: str) -> str:
        return f"postgresql+psycopg://app:{password}@127.0.0.1:1/app?connect_timeout=10&timeout=1"

    store = fallthrough.connect(postgresql("1"), "sqlite://", journal=journal)
    assert store.health()[0].url.endswith("?connect_timeout=10&timeout=***")  # a whole word: over-masked, not garbled
    store.create_batch(["a"])  # nothing listens on port 1: a hint for postgresql
    store.close(timeout=0)
    rotated = fallthrough.connect(postgresql("xyz"), "sqlite://", journal=journal)
    try:
        first, second = rotated.health()
        assert (first.pending_hints, first.needs_repair, second.needs_repair) == (1, False, False)
    finally:
        rotated.close(timeout=0)


def test_the_fault_gate_masks_an_inner_url_that_holds_secrets(caplog: pytest.LogCaptureFixture) -> None:
    """``flaky://?inner=...`` carries another backend's URL in one option: its password and declared secrets too."""
    pytest.importorskip("psycopg")
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    inner = "postgresql://app:pw-5e0b41@127.0.0.1:1/app?scram_client_key=c2VjcmV0LWtleQ&connect_timeout=2"
    caplog.set_level(logging.DEBUG, logger="fallthrough")
    with fallthrough.connect(gated(inner), gated("sqlite://"), registry=registry) as store:
        gate(store, "flaky-2").outage = True
        with pytest.raises(AllBackendsFailed) as raised:
            store.progress(uuid.uuid4())
        health = store.health(ping=True)
        texts = [repr(store), str(raised.value), caplog.text, *(repr(entry) for entry in health)]

    assert "inner=***" in texts[0]
    assert "inner=sqlite" in texts[0], "an inner URL with no secret stays readable"
    for text in texts:
        assert "pw-5e0b41" not in text
        assert "c2VjcmV0LWtleQ" not in text


def test_a_registry_tells_a_plugins_secret_options_without_a_store(vault_registry: fallthrough.Registry) -> None:
    assert vault_registry.declared_secret_keys("vault://vault.example/db") == {"vault_pin"}
    assert vault_registry.declared_secret_keys("undeclared://vault.example/db") == frozenset()
    with pytest.raises(PluginError, match="fallthrough_secret_url_keys raised KeyError") as raised:
        vault_registry.declared_secret_keys(f"raising://vault.example/db?vault_pin={PIN}")
    assert PIN not in str(raised.value)
