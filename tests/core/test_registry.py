"""Plugins are found by URL through entry points, as a third party would install them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fallthrough
from fallthrough.errors import InvalidInput, UnknownBackend
from fallthrough.registry import PluginLoadWarning


def install_distribution(site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Lay out an installed distribution (a .dist-info folder and its modules) in ``site``."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{key} = {value}" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[fallthrough.backends]\n{lines}\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


OUTSIDE_BACKEND = """
    from fallthrough.testing.model import ReferenceBackend

    class OutsideBackend(ReferenceBackend):
        def __init__(self, url):
            super().__init__(url)
            self.url = url

    class FastOutsideBackend(OutsideBackend):
        pass
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    install_distribution(
        site,
        "outside_plugin",
        {
            "outside": "outside_backend:OutsideBackend",
            "outside.fast": "outside_backend:FastOutsideBackend",
            "broken": "broken_backend:Backend",
        },
        {"outside_backend": OUTSIDE_BACKEND, "broken_backend": "raise ImportError('needs a driver that is missing')"},
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def test_a_backend_defined_outside_the_package_is_found_by_its_url(site: Path) -> None:
    with fallthrough.connect("outside://", registry=fallthrough.Registry()) as store:
        batch = store.create_batch(["a"])
        assert store.progress(batch.id).total == 1
        plugin = store.plugin_manager.get_plugin("outside")
        assert type(plugin).__name__ == "OutsideBackend"


def test_name_plus_driver_prefers_the_dotted_entry_point_then_the_bare_name(site: Path) -> None:
    registry = fallthrough.Registry()
    assert registry.load("outside+fast://").__name__ == "FastOutsideBackend"
    assert registry.load("outside+other://").__name__ == "OutsideBackend"


def test_a_broken_plugin_breaks_only_its_own_scheme(site: Path) -> None:
    registry = fallthrough.Registry()
    with fallthrough.connect("outside://", registry=registry) as store:
        assert store.backend_names == ["outside"]
    with pytest.warns(PluginLoadWarning, match="broken"), pytest.raises(UnknownBackend) as raised:
        fallthrough.connect("broken://", registry=registry)
    assert "needs a driver that is missing" in str(raised.value)
    assert "outside_plugin" in str(raised.value)


def test_an_unknown_scheme_lists_the_installed_ones(site: Path) -> None:
    with pytest.raises(UnknownBackend) as raised:
        fallthrough.connect("nosuchdb://", registry=fallthrough.Registry())
    message = str(raised.value)
    assert "nosuchdb" in message
    for installed in ("outside", "outside.fast", "sqlite"):
        assert installed in message


def test_the_unknown_scheme_message_names_the_register_of_the_registry_asked() -> None:
    """fallthrough.registry.register() registers on the default registry: another one must be told its own."""
    with pytest.raises(UnknownBackend, match=r"register one with fallthrough\.registry\.register\(\)$"):
        fallthrough.registry.default_registry.load("nosuchdb://")
    fallthrough.registry.register("nosuchdb", "fallthrough.testing.model:ReferenceBackend")
    try:
        with pytest.raises(UnknownBackend, match=r"register\(\) on this Registry .*default registry only") as raised:
            fallthrough.Registry().load("nosuchdb://")
    finally:
        fallthrough.registry.default_registry.unregister("nosuchdb")
    assert "register one with fallthrough.registry.register()" not in str(raised.value)


def test_available_lists_distribution_version_and_import_errors(site: Path) -> None:
    registry = fallthrough.Registry()
    with pytest.warns(PluginLoadWarning):
        infos = {info.name: info for info in registry.available()}
    assert (infos["outside"].distribution, infos["outside"].version, infos["outside"].error) == (
        "outside_plugin",
        "1.0",
        None,
    )
    assert infos["broken"].error is not None and "needs a driver" in infos["broken"].error
    assert infos["sqlite"].distribution == "fallthrough"


def test_runtime_registration_takes_precedence_over_entry_points(site: Path) -> None:
    registry = fallthrough.Registry()
    registry.register("outside", "fallthrough.testing.faults:FaultInjectingBackend")
    assert registry.load("outside://").__name__ == "FaultInjectingBackend"
    registry.unregister("outside")
    assert registry.load("outside://").__name__ == "OutsideBackend"


def test_registries_do_not_share_registrations() -> None:
    first, second = fallthrough.Registry(entry_point_group=None), fallthrough.Registry(entry_point_group=None)
    first.register("reference", "fallthrough.testing.model:ReferenceBackend")
    assert first.load("reference://") is not None
    with pytest.raises(UnknownBackend):
        second.load("reference://")


def test_a_registered_target_that_does_not_import_is_a_clear_error() -> None:
    registry = fallthrough.Registry(entry_point_group=None)
    registry.register("ghost", "no_such_module_anywhere:Backend")
    with pytest.warns(PluginLoadWarning), pytest.raises(UnknownBackend, match="no_such_module_anywhere"):
        registry.load("ghost://")


def test_an_unparseable_url_does_not_echo_its_password() -> None:
    with pytest.raises(InvalidInput) as raised:
        fallthrough.connect("not a url with hunter2")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("port", [0, 65536, 99999])
@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "qdrant"])
def test_a_port_outside_the_tcp_range_is_invalid_input_at_connect(scheme: str, port: int) -> None:
    # Otherwise the mistyped URL connects, and its backend reads as down at the first call.
    with pytest.raises(InvalidInput, match=f"port must be 1 to 65535, got {port}") as raised:
        fallthrough.connect(f"{scheme}://app:hunter2@127.0.0.1:{port}/app")
    assert "hunter2" not in str(raised.value)


def test_a_plugin_with_a_misspelt_hook_is_refused_at_connect() -> None:
    registry = fallthrough.Registry(entry_point_group=None)
    registry.register("typo", "tests.core.plugins:MisspeltHookBackend")
    with pytest.raises(fallthrough.PluginError, match="fallthrough_progres"):
        fallthrough.connect("typo://", registry=registry)


def test_a_plugin_missing_hooks_for_its_capabilities_is_refused_when_opened() -> None:
    registry = fallthrough.Registry(entry_point_group=None)
    registry.register("partial", "tests.core.plugins:RecordsWithoutProgressBackend")
    store = fallthrough.connect("partial://", registry=registry)
    with pytest.raises(fallthrough.PluginError, match="fallthrough_progress"):
        store.create_batch(["a"])


@pytest.mark.parametrize(
    ("scheme", "driver_module", "extra"),
    [("postgresql", "psycopg", "postgres"), ("qdrant", "qdrant_client", "qdrant")],
)
def test_a_first_party_plugin_without_its_driver_names_the_extra_to_install(
    scheme: str, driver_module: str, extra: str
) -> None:
    # A fresh interpreter where the driver cannot be imported, as after a bare `pip install fallthrough`.
    program = textwrap.dedent(
        f"""
        import sys, warnings
        sys.modules[{driver_module!r}] = None
        import fallthrough
        from fallthrough.errors import UnknownBackend
        try:
            fallthrough.registry.Registry().load("{scheme}://x")
        except UnknownBackend as error:
            print(error)
        """
    )
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert f"pip install 'fallthrough[{extra}]'" in completed.stdout, completed.stdout + completed.stderr
