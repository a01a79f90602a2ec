"""The docs agree with the code: examples run and print what they say, every hook and error is documented."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fallthrough
from fallthrough import errors, hookspecs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


def test_the_readme_example_runs_and_prints_what_its_comments_say() -> None:
    example = python_blocks(ROOT / "README.md")[0]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(example, "README.md", "exec"), {})
    printed = output.getvalue().splitlines()
    promised = [comment.strip() for comment in re.findall(r"print\(.*\)\s*#(.*)", example)]
    assert printed == promised


def test_the_quickstart_prints_progress_and_a_search_hit() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert re.search(r"2/3 done .* 1 completed, 1 failed, 1 pending", lines[0])
    assert lines[1].startswith("best hit for 'цемент' under 500: m1 ")


def test_every_hook_is_documented_for_plugin_authors() -> None:
    guide = (DOCS / "writing-a-backend.md").read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("fallthrough_")]
    assert len(hooks) >= 17
    assert [hook for hook in hooks if f"`{hook}`" not in guide] == []


def test_every_error_is_documented_in_the_semantics() -> None:
    semantics = (DOCS / "semantics.md").read_text()
    assert [name for name in errors.__all__ if f"`{name}`" not in semantics] == []


def test_every_core_module_is_in_the_architecture_map() -> None:
    architecture = (DOCS / "architecture.md").read_text()
    modules = sorted(path.name for path in (ROOT / "core" / "fallthrough").glob("*.py"))
    assert [module for module in modules if f"fallthrough/{module}" not in architecture] == []


def test_every_public_name_is_exported_and_exists() -> None:
    assert [name for name in fallthrough.__all__ if not hasattr(fallthrough, name)] == []


@pytest.mark.parametrize("document", [*sorted(DOCS.glob("*.md")), ROOT / "README.md"], ids=lambda path: path.name)
def test_relative_links_resolve(document: Path) -> None:
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", document.read_text())
    assert [target for target in targets if not (document.parent / target).exists()] == []
