"""The plugin imports nothing of fallthrough but its public API."""

from __future__ import annotations

import ast
from pathlib import Path

import fallthrough_qdrant_edge

PUBLIC_MODULES = frozenset(
    {
        "fallthrough",
        "fallthrough.types",
        "fallthrough.errors",
        "fallthrough.filters",
        "fallthrough.text",
        "fallthrough.ordering",
        "fallthrough.kit",
    }
)
PACKAGE = Path(fallthrough_qdrant_edge.__file__).parent


def private_imports(source: str) -> list[str]:
    """Every import of a fallthrough module or name that is not public API, as ``module:name``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fallthrough" and not _public(alias.name):
                    found.append(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "fallthrough":
                continue
            if not _public(node.module):
                found.append(node.module)
                continue
            for alias in node.names:
                # A private name, or a submodule reached through the package (from fallthrough import store).
                if alias.name.startswith("_") or (
                    node.module == "fallthrough"
                    and alias.name in _SUBMODULES
                    and not _public(f"fallthrough.{alias.name}")
                ):
                    found.append(f"{node.module}:{alias.name}")
    return found


_SUBMODULES = frozenset({"breaker", "clock", "hookspecs", "registry", "store", "urls", "validation", "testing"})


def _public(module: str) -> bool:
    return module in PUBLIC_MODULES or module == "fallthrough.testing" or module.startswith("fallthrough.testing.")


def test_the_checker_catches_private_modules_and_names() -> None:
    source = (
        "from fallthrough.validation import JSON\n"
        "import fallthrough.urls\n"
        "from fallthrough import store\n"
        "from fallthrough.types import _RANK\n"
        "from fallthrough.types import Batch\n"
        "from fallthrough import hookimpl\n"
    )
    assert private_imports(source) == [
        "fallthrough.validation",
        "fallthrough.urls",
        "fallthrough:store",
        "fallthrough.types:_RANK",
    ]


def test_the_plugin_imports_only_public_fallthrough_modules() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 8, f"expected the plugin's modules in {PACKAGE}"
    offenders = {
        module.name: found for module in modules if (found := private_imports(module.read_text(encoding="utf-8")))
    }
    assert not offenders, f"private fallthrough imports: {offenders}"
