"""The integration uses fallthrough's public API only (docs/writing-a-backend.md lists it).

So a change inside the core cannot break it silently.
"""

from __future__ import annotations

import ast
from pathlib import Path

import haystack_fallthrough

PUBLIC = frozenset({"fallthrough", "fallthrough.errors", "fallthrough.filters", "fallthrough.types"})
# The default registry is documented in docs/writing-a-backend.md: connect() builds plugins from it.
PUBLIC_NAMES = frozenset(
    {"fallthrough.urls:mask_url", "fallthrough.urls:redact", "fallthrough.registry:default_registry"}
)


def _imports(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.split(".")[0] == "fallthrough")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fallthrough":
            if node.module in PUBLIC:
                continue
            found.extend(f"{node.module}:{alias.name}" for alias in node.names)
    return [name for name in found if name not in PUBLIC and name not in PUBLIC_NAMES]


def test_the_package_imports_only_public_fallthrough_modules() -> None:
    package = Path(haystack_fallthrough.__file__).parent
    private = {path.name: _imports(path.read_text()) for path in sorted(package.glob("*.py"))}
    assert {name: found for name, found in private.items() if found} == {}


def test_the_check_sees_a_private_import() -> None:
    assert _imports("from fallthrough.validation import check_collection\nimport fallthrough.store\n") == [
        "fallthrough.validation:check_collection",
        "fallthrough.store",
    ]
