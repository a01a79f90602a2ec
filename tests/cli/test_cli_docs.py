"""docs/cli.md agrees with the command: every command, option and exit code, and the shape of every --json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from fallthrough.cli import app
from fallthrough.cli.exits import ExitCode

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "cli.md").read_text()
SHARED_OPTIONS = {"--url", "--journal", "--json", "--help"}


def sections() -> dict[str, str]:
    """Each command's section of the guide, by command name."""
    parts = re.split(r"^### `fallthrough (\w+)[^`]*`$", GUIDE, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_command_has_a_section_and_every_option_is_in_it() -> None:
    documented = sections()
    assert sorted(documented) == sorted(app.cli.commands)
    for name, command in app.cli.commands.items():
        options = {opt for param in command.params if isinstance(param, click.Option) for opt in param.opts}
        missing = [opt for opt in sorted(options - SHARED_OPTIONS) if f"`{opt}" not in documented[name]]
        assert missing == [], name


def test_every_exit_code_is_in_the_table() -> None:
    assert [code for code in ExitCode if f"\n| {int(code)} |" not in GUIDE] == []


def test_the_readme_points_to_the_guide_and_shows_the_three_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/cli.md" in readme
    for command in ("fallthrough create", "fallthrough run", "fallthrough status"):
        assert command in readme


def keys(value: Any) -> Any:
    """The shape of a JSON value: the keys of objects, recursively, and of a list's first item.

    ``metadata`` is the user's own object, so only its presence counts.
    """
    if isinstance(value, dict):
        return {key: None if key == "metadata" else keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [keys(value[0])] if value else []
    return None


def documented_shape(command: str) -> Any:
    block = re.findall(r"```json\n(.*?)```", sections()[command], flags=re.DOTALL)
    assert len(block) == 1, command
    return keys(json.loads(block[0]))


@pytest.fixture
def real_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One --json output of each command, from a small scenario on a SQLite file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keys.txt").write_text("a\nbad\n")
    (tmp_path / "handlers.py").write_text(
        "def handle(record):\n    if record.key == 'bad':\n        raise ValueError('bad')\n    return 1\n"
    )
    (tmp_path / "docs.jsonl").write_text('{"id": "m1", "text": "цемент", "metadata": {"price": 1}}\n')
    runner = CliRunner()

    def output(*args: str) -> Any:
        result = runner.invoke(app.cli, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.splitlines()[-1])

    outputs = {"create": output("create", "keys.txt")}
    batch = outputs["create"]["batch"]
    outputs["run"] = output("run", batch, "handlers:handle", "--max-attempts", "1")
    outputs["status"] = output("status", batch)
    outputs["batches"] = output("batches")
    outputs["retry"] = output("retry", batch)
    outputs["load"] = output("load", "materials", "docs.jsonl")
    outputs["search"] = output("search", "materials", "--text", "цемент")
    outputs["health"] = output("health")
    outputs["repair"] = output("repair")
    outputs["backends"] = output("backends")
    return outputs


def test_every_documented_json_shape_is_what_the_command_prints(real_outputs: dict[str, Any]) -> None:
    assert sorted(real_outputs) == sorted(app.cli.commands)
    for command, printed in real_outputs.items():
        assert documented_shape(command) == keys(printed), command
