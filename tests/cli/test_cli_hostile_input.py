"""What the command does with input a review found it mishandled: each case a documented exit code, nothing lost.

A FILE that is not a regular file (a pipe) cannot be read twice, so it is
refused rather than written as an empty batch; text from the stores is shown
as it is, never read as rich markup; JSON too large or too deep for Python's
parser is invalid input naming where; metadata that is not an object is
refused; a float option must be a finite number; a journal another command
holds is not "a bug in fallthrough".
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pexpect
import pytest

import fallthrough
from fallthrough.cli.exits import ExitCode
from tests.cli.helpers import cli_environment, command, json_of, one_line_error, run_cli


def store_of(directory: Path) -> fallthrough.Store:
    return fallthrough.connect(f"sqlite:///{directory / 'fallthrough.db'}")


@pytest.mark.parametrize("verb", ["create", "load"])
def test_a_pipe_as_file_is_refused_and_nothing_is_written(tmp_path: Path, verb: str) -> None:
    arguments = ["create", "/dev/stdin"] if verb == "create" else ["load", "docs", "/dev/stdin"]
    piped = subprocess.run(
        command(*arguments, "--json"),
        cwd=tmp_path,
        env=cli_environment(),
        input='{"id": "a"}\n' if verb == "load" else "a\nb\nc\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = one_line_error(piped, ExitCode.USAGE)
    assert "not a regular file" in line
    with store_of(tmp_path) as store:
        assert list(store.batches()) == []
        assert store.count("docs") == 0


def test_stored_text_is_shown_as_it_is_not_as_markup(tmp_path: Path) -> None:
    with store_of(tmp_path) as store:
        batch = store.create_batch(["[bold]sku-1", "[/]"], metadata={"note": "[red]x"})
        store.update_many(
            [
                fallthrough.RecordUpdate(batch.id, "[bold]sku-1", "failed", error="closing [/] tag"),
                fallthrough.RecordUpdate(batch.id, "[/]", "failed", error="[link=x]y"),
            ]
        )
        store.upsert_documents("docs", [fallthrough.Document("[i]d1", "see [/] here", metadata={"m": "[b]"})])
    shown = run_cli("status", str(batch.id), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for text in ("[bold]sku-1", "closing [/] tag", "[link=x]y", '"note": "[red]x"'):
        assert text in shown.stdout
    listed = run_cli("batches", cwd=tmp_path)
    assert listed.returncode == 0 and '"note": "[red]x"' in listed.stdout
    found = run_cli("search", "docs", "--text", "see", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    for text in ("[i]d1", "see [/] here", '"m": "[b]"'):
        assert text in found.stdout


def test_control_characters_in_stored_text_are_shown_as_escapes_not_sent_to_the_terminal(tmp_path: Path) -> None:
    """An error built from a remote answer may hold ESC: raw, it would retitle the window or write the clipboard."""
    title, clipboard, c1 = "\x1b]0;pwned\x07", "\x1b]52;c;ZWNobyBoaQ==\x07", "\x9b31m"
    with store_of(tmp_path) as store:
        batch = store.create_batch([f"k{title}"], metadata={"note": f"m{c1}"})
        store.update(batch.id, f"k{title}", "failed", error=f"\x1b[31mRED\x1b[0m {clipboard}")
        store.upsert_documents("docs", [fallthrough.Document(f"d{c1}", f"see {title}", metadata={"m": clipboard})])
    outputs = [
        run_cli("status", str(batch.id), cwd=tmp_path),
        run_cli("batches", cwd=tmp_path),
        run_cli("search", "docs", "--text", "see", cwd=tmp_path),
    ]
    for shown in outputs:
        assert shown.returncode == 0, shown.stderr
        assert not set(shown.stdout) & {"\x1b", "\x07", "\x9b"}, repr(shown.stdout)
    assert "k\\x1b]0;pwned\\x07" in outputs[0].stdout and "\\x1b[31mRED" in outputs[0].stdout
    assert "\\x9b31m" in outputs[1].stdout
    assert "d\\x9b31m" in outputs[2].stdout
    # Invisible format characters too (a bidi override shows a key reordered); letters and spaces stay.
    with store_of(tmp_path) as store:
        shown_as_is = "Цемент\u00a050 кг"
        other = store.create_batch(["key-\u202eexe.txt", "zero\u200bwidth", shown_as_is])
        store.update_many(
            [fallthrough.RecordUpdate(other.id, key, "failed", error="x") for key in ("key-\u202eexe.txt", shown_as_is)]
        )
    status = run_cli("status", str(other.id), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "key-\\u202eexe.txt" in status.stdout and "\u202e" not in status.stdout
    assert shown_as_is in status.stdout
    # The one line of an error names the key as the escapes too.
    missing = run_cli("status", "not-a-batch-\x1b[2J", cwd=tmp_path)
    assert "\x1b" not in missing.stderr and "\\x1b[2J" in missing.stderr


def test_json_too_large_or_too_deep_for_the_parser_is_invalid_input_naming_where(tmp_path: Path) -> None:
    (tmp_path / "keys.jsonl").write_text('{"sku": "a"}\n{"sku": ' + "1" * 5000 + "}\n")
    line = one_line_error(run_cli("create", "keys.jsonl", "--field", "sku", cwd=tmp_path), ExitCode.INVALID_INPUT)
    assert "keys.jsonl:2" in line
    (tmp_path / "docs.jsonl").write_text('{"id": "x", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    line = one_line_error(run_cli("load", "docs", "docs.jsonl", cwd=tmp_path), ExitCode.INVALID_INPUT)
    assert "docs.jsonl:1" in line
    line = one_line_error(run_cli("search", "docs", "--filter", "[" * 100_000, cwd=tmp_path), ExitCode.INVALID_INPUT)
    assert "--filter" in line
    with store_of(tmp_path) as store:
        assert list(store.batches()) == []
        assert store.count("docs") == 0


@pytest.mark.parametrize("metadata", ["0", "[]", "false", '""'])
def test_document_metadata_that_is_not_an_object_is_refused(tmp_path: Path, metadata: str) -> None:
    (tmp_path / "docs.jsonl").write_text('{"id": "fine"}\n{"id": "a", "metadata": ' + metadata + "}\n")
    line = one_line_error(run_cli("load", "docs", "docs.jsonl", cwd=tmp_path), ExitCode.INVALID_INPUT)
    assert "docs.jsonl:2" in line
    with store_of(tmp_path) as store:
        assert store.count("docs") == 0


@pytest.mark.parametrize("option", [["status", "--watch", "--interval"], ["run", "handlers:f", "--lease"]])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_float_option_must_be_a_finite_number(tmp_path: Path, option: list[str], value: str) -> None:
    with store_of(tmp_path) as store:
        batch = store.create_batch(["a"])
    verb, *rest = option
    completed = run_cli(verb, str(batch.id), *rest, value, cwd=tmp_path, timeout=30)
    line = one_line_error(completed, ExitCode.USAGE)
    assert rest[-1] in line


def test_a_watch_interval_beyond_a_day_is_a_usage_error_not_a_bug(tmp_path: Path) -> None:
    with store_of(tmp_path) as store:
        batch = store.create_batch(["a"])
    completed = run_cli("status", str(batch.id), "--watch", "--interval", "1e10", cwd=tmp_path, timeout=30)
    assert "--interval" in one_line_error(completed, ExitCode.USAGE)


def test_more_failed_records_than_a_page_are_shown_without_naming_an_internal_parameter(tmp_path: Path) -> None:
    with store_of(tmp_path) as store:
        batch = store.create_batch(["a", "b"])
        store.update(batch.id, "b", "failed", error="broken")
    shown = json_of(run_cli("status", str(batch.id), "--failed", "100001", "--json", cwd=tmp_path))
    assert [record["key"] for record in shown["failed"]] == ["b"]


def test_a_journal_another_command_holds_is_unavailable_not_a_bug(tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "hints.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        completed = run_cli("batches", "--journal", "sqlite:///hints.db", cwd=tmp_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    line = one_line_error(completed, ExitCode.UNAVAILABLE)
    assert "journal" in line
    # Released, it works.
    assert json_of(run_cli("batches", "--journal", "sqlite:///hints.db", "--json", cwd=tmp_path)) == {"batches": []}


def test_the_file_name_in_creates_note_on_a_terminal_is_shown_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "k[bold]x.txt").write_text("a\n")
    arguments = command("create", "k[bold]x.txt")
    child = pexpect.spawn(
        arguments[0],
        arguments[1:],
        cwd=str(tmp_path),
        env={**cli_environment(), "TERM": "xterm-256color"},
        dimensions=(40, 200),
        encoding="utf-8",
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert "records added from k[bold]x.txt (1 keys read)" in (child.before or "")


@pytest.mark.parametrize(
    ("content", "where"), [(b"sku-1\rsku-2\rsku-3\r", "keys.txt:1:"), (b"sku-1\r\nsku-2\rsku-3\r\n", "keys.txt:2:")]
)
def test_a_lines_file_with_a_carriage_return_alone_is_refused_not_read_as_one_key(
    tmp_path: Path, content: bytes, where: str
) -> None:
    (tmp_path / "keys.txt").write_bytes(content)
    line = one_line_error(run_cli("create", "keys.txt", "--json", cwd=tmp_path), ExitCode.INVALID_INPUT)
    assert where in line and "carriage return" in line
    with store_of(tmp_path) as store:
        assert list(store.batches()) == []


def test_a_lines_file_with_windows_line_ends_is_one_key_a_line(tmp_path: Path) -> None:
    (tmp_path / "keys.txt").write_bytes("sku-1\r\n  sku-2\t\r\n\r\nsku-3\u2028x\r\nsku-4\x85y".encode())
    created = json_of(run_cli("create", "keys.txt", "--json", cwd=tmp_path))
    with store_of(tmp_path) as store:
        keys = [record.key for record in store.records(created["batch"])]
    assert keys == ["sku-1", "sku-2", "sku-3\u2028x", "sku-4\x85y"]  # other line breaks are a key's, as the API's
