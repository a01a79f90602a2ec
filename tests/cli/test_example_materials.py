"""The materials example runs end to end, exactly as its README says, on a small price list."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from tests.cli.helpers import cli_environment, json_of, run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "materials"
ROWS = 300


def readme_commands() -> str:
    """The README's first shell block, on a smaller price list."""
    block = re.findall(r"```sh\n(.*?)```", (EXAMPLE / "README.md").read_text(), flags=re.DOTALL)[0]
    assert "--rows 3000" in block
    return block.replace("--rows 3000", f"--rows {ROWS}")


def shims(directory: Path) -> Path:
    """A bin directory where ``fallthrough`` and ``python`` are this interpreter, as in an installed venv."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    for name, body in (
        ("fallthrough", f'exec "{sys.executable}" -m fallthrough.cli "$@"'),
        ("python", f'exec "{sys.executable}" "$@"'),
    ):
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_the_readme_commands_create_run_and_watch_the_batch_into_a_separate_search_store(tmp_path: Path) -> None:
    work = tmp_path / "materials"
    shutil.copytree(EXAMPLE, work)
    environment = cli_environment(PATH=f"{shims(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    script = "set -eu\n" + readme_commands() + 'echo "BATCH=$BATCH"\n'
    completed = subprocess.run(
        ["bash", "-c", script], cwd=work, env=environment, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr
    batch_id = re.findall(r"^BATCH=(\S+)$", completed.stdout, flags=re.MULTILINE)[-1]

    with (work / "materials.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    unpriced = [row["sku"] for row in rows if not re.search(r"\d", row["price"])]
    assert len(rows) == ROWS and unpriced  # the generator makes some rows without a price

    statuses = "sqlite:///materials.db"
    shown = json_of(run_cli("status", batch_id, "--url", statuses, "--failed", "100", "--json", cwd=work))
    assert shown["progress"]["total"] == ROWS
    assert shown["progress"]["completed"] == ROWS - len(unpriced) and shown["progress"]["failed"] == len(unpriced)
    assert sorted(record["key"] for record in shown["failed"]) == sorted(unpriced)
    assert all("цена не распознана" in record["error"] for record in shown["failed"])
    assert "served by sqlite" in completed.stdout and "Цемент" in completed.stdout  # the README's search

    search = "sqlite:///materials-search.db"
    found = json_of(
        run_cli("search", "materials", "--url", search, "--text", "цемент", "--limit", "100", "--json", cwd=work)
    )
    cement = {row["sku"] for row in rows if row["name"].startswith("Цемент") and row["sku"] not in unpriced}
    assert {hit["id"] for hit in found["hits"]} == cement
    vector = subprocess.run(
        [sys.executable, "materials_handler.py", "цемент", "м500"], cwd=work, capture_output=True, text=True, check=True
    ).stdout
    nearest = json_of(
        run_cli("search", "materials", "--url", search, "--vector", vector, "--limit", "3", "--json", cwd=work)
    )
    assert all(hit["text"].startswith("Цемент М500") for hit in nearest["hits"])
    # Statuses and documents are in different stores: the status store has no documents.
    assert json_of(run_cli("search", "materials", "--url", statuses, "--limit", "5", "--json", cwd=work))["hits"] == []
    assert json.loads(vector) and len(json.loads(vector)) == 64


def test_the_generator_is_deterministic(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        subprocess.run(
            [sys.executable, str(EXAMPLE / "generate.py"), "--rows", "200", "--out", str(tmp_path / name)],
            check=True,
            capture_output=True,
            env=cli_environment(),
        )
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
