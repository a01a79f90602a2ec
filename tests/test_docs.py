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


def test_fallthrough_testing_exports_every_part_of_the_suite_and_each_name_resolves() -> None:
    """docs/writing-a-backend.md lists the suite's parts as what ``fallthrough.testing`` holds."""
    import fallthrough.testing as testing
    from fallthrough.testing import suite

    assert [name for name in testing.__all__ if not hasattr(testing, name)] == []
    parts = [name for name in suite.__all__ if name.endswith("Conformance")]
    assert [name for name in parts if name not in testing.__all__] == []
    guide = (DOCS / "writing-a-backend.md").read_text()
    assert [name for name in parts if f"`{name}`" not in guide] == []


def test_the_modules_the_guide_names_on_fallthrough_testing_resolve_without_importing_them_first() -> None:
    """``fallthrough.testing.strategies`` and the like, in a fresh process that imported only the package."""
    import fallthrough.testing as testing

    names = ["strategies", "compare", "cases"]
    assert testing.__doc__ is not None
    assert [name for name in names if f":mod:`.{name}`" not in testing.__doc__] == []
    script = (
        "import fallthrough.testing as testing\n"
        f"for name in {names!r} + list(testing.__all__):\n"
        "    getattr(testing, name)\n"
    )
    guide = (DOCS / "writing-a-backend.md").read_text()
    assert [name for name in ("strategies", "compare") if f"`{name}`" not in guide] == []
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr


def test_the_postgresql_page_names_the_current_schema_version_and_every_one_before() -> None:
    from fallthrough_postgresql.schema import SCHEMA_VERSION

    page = (DOCS / "backends" / "postgresql.md").read_text()
    assert f"the current version ({SCHEMA_VERSION})" in page
    rows = re.findall(r"^\| (\d+) \| ", page, flags=re.MULTILINE)
    assert rows == [str(version) for version in range(1, SCHEMA_VERSION + 1)]


def _anchors(document: Path) -> set[str]:
    """The ``#fragment`` names GitHub gives a page's headings: lower case, punctuation dropped, spaces to ``-``."""
    text = re.sub(r"^```.*?^```", "", document.read_text(), flags=re.MULTILINE | re.DOTALL)
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


DOCUMENTS = [*sorted(DOCS.glob("*.md")), *sorted(DOCS.glob("backends/*.md")), ROOT / "README.md"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    """Every relative link names a file that exists and, when it has one, a heading of that page."""
    broken = []
    for target, fragment in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]*))?\)", document.read_text()):
        if not target and not fragment:
            continue
        linked = document.parent / target if target else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in _anchors(linked):
            broken.append(f"{target}#{fragment}: no such heading")
    assert broken == []


def _limits_table() -> dict[str, str]:
    semantics = (DOCS / "semantics.md").read_text()
    section = semantics.split("### Limits", 1)[1].split("\n#", 1)[0]
    return dict(re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]+?) \|", section, flags=re.MULTILINE))


def test_the_limits_table_equals_the_code() -> None:
    """docs/semantics.md's one table of limits lists every limit constant, with the code's value."""
    from fallthrough import filters, validation

    table = _limits_table()
    constants = {
        name: value
        for module in (validation, filters)
        for name, value in vars(module).items()
        if re.fullmatch(r"(MAX|MIN|INT64|FLOAT32)_[A-Z0-9_]+", name) and isinstance(value, int | float)
    }
    assert set(table) == set(constants), "the limits table and the code's constants differ"
    for name, text in table.items():
        assert re.fullmatch(r"[-0-9_.e*() ]+", text), f"{name}: {text!r} is not a plain number"
        documented = eval(text, {"__builtins__": {}})  # arithmetic only, checked just above
        assert documented == constants[name], f"{name} is {constants[name]!r} in the code, {text} in the docs"
