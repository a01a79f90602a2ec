"""No first-party plugin imports a private core module or name: they use only what a third party may.

The public API for plugin authors is listed in ``docs/writing-a-backend.md``;
``contrib/fallthrough-qdrant-edge`` has the same check for itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
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
PUBLIC_NAMES = {"fallthrough.urls": frozenset({"mask_url", "redact"})}
_SUBMODULES = frozenset({"breaker", "clock", "hookspecs", "registry", "store", "urls", "validation", "testing", "kit"})


def private_imports(source: str) -> list[str]:
    """Every import of a fallthrough module or name that is not public API, as ``module:name``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _core(alias.name) and alias.name not in PUBLIC_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _core(node.module):
            allowed = PUBLIC_NAMES.get(node.module)
            if node.module not in PUBLIC_MODULES and allowed is None:
                found.append(node.module)
                continue
            for alias in node.names:
                submodule = f"fallthrough.{alias.name}"
                if (
                    alias.name.startswith("_")
                    or (allowed is not None and alias.name not in allowed)
                    or (node.module == "fallthrough" and alias.name in _SUBMODULES and submodule not in PUBLIC_MODULES)
                ):
                    found.append(f"{node.module}:{alias.name}")
    return found


def _core(module: str) -> bool:
    return module.split(".")[0] == "fallthrough"


def test_the_checker_catches_private_modules_and_names() -> None:
    source = (
        "from fallthrough.validation import check_collection\n"
        "import fallthrough.store\n"
        "from fallthrough import store\n"
        "from fallthrough.types import _RANK\n"
        "from fallthrough.urls import MASK, mask_url\n"
        "from fallthrough.types import Batch\n"
        "from fallthrough.kit import Endpoint\n"
        "from fallthrough import hookimpl, kit\n"
        "import fallthrough_sqlite\n"
    )
    assert private_imports(source) == [
        "fallthrough.validation",
        "fallthrough.store",
        "fallthrough:store",
        "fallthrough.types:_RANK",
        "fallthrough.urls:MASK",
    ]


@pytest.mark.parametrize("plugin", ["fallthrough_sqlite", "fallthrough_postgresql", "fallthrough_qdrant"])
def test_the_plugin_imports_only_public_fallthrough_modules(plugin: str) -> None:
    modules = sorted((PLUGINS / plugin).glob("*.py"))
    assert len(modules) >= 9, f"expected the plugin's modules in {PLUGINS / plugin}"
    offenders = {
        module.name: found for module in modules if (found := private_imports(module.read_text(encoding="utf-8")))
    }
    assert not offenders, f"private fallthrough imports: {offenders}"
