"""The ``fallthrough`` command against a real SQLite file, run in a subprocess as a user runs it."""

from __future__ import annotations

import json
import tomllib
import uuid
from pathlib import Path

import pytest

import fallthrough
from fallthrough.cli.exits import ExitCode
from tests.cli.helpers import json_of, one_line_error, run_cli
from tests.postgresql.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def default_store(directory: Path) -> fallthrough.Store:
    """The store the CLI opens by default in ``directory``: the SQLite file fallthrough.db there."""
    return fallthrough.connect(f"sqlite:///{directory / 'fallthrough.db'}")


def create(directory: Path, name: str, text: str, *args: str) -> str:
    (directory / name).write_text(text, encoding="utf-8")
    completed = run_cli("create", name, *args, cwd=directory)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def test_create_prints_only_the_batch_id_and_the_state_persists_in_the_current_directory(tmp_path: Path) -> None:
    batch_id = create(tmp_path, "keys.txt", "sku-1\nsku-2\n\nsku-3\nsku-2\n")
    uuid.UUID(batch_id)
    assert (tmp_path / "fallthrough.db").exists()
    with default_store(tmp_path) as store:
        assert [record.key for record in store.records(batch_id)] == ["sku-1", "sku-2", "sku-3"]
        assert store.get_batch(batch_id).metadata == {"source": "keys.txt"}  # type: ignore[union-attr]
    shown = run_cli("status", batch_id, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert batch_id in shown.stdout
    assert "0/3 done (0%): 3 pending, 0 processing, 0 completed, 0 failed" in shown.stdout


def test_create_into_a_pipe_prints_the_batch_id_and_no_note(tmp_path: Path) -> None:
    (tmp_path / "keys.txt").write_text("a\nb\n", encoding="utf-8")
    completed = run_cli("create", "keys.txt", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    uuid.UUID(completed.stdout.strip())
    assert completed.stderr == ""  # notes go to stderr only when it is a terminal


def test_a_drivers_python_warning_is_one_line_like_every_other_note(tmp_path: Path) -> None:
    # qdrant-client warns (a UserWarning) that an API key goes over plain HTTP; nothing listens on the port.
    url = f"qdrant://127.0.0.1:{free_port()}/?api_key=hunter2&timeout=1"
    completed = run_cli("batches", "--url", url, cwd=tmp_path)
    lines = completed.stderr.splitlines()
    assert completed.returncode == ExitCode.UNAVAILABLE, completed.stderr
    assert any(line.startswith("fallthrough: warning: ") for line in lines), completed.stderr
    assert all(line.startswith("fallthrough: ") for line in lines), completed.stderr
    assert "hunter2" not in completed.stderr


def test_create_from_a_csv_column_and_a_json_lines_field(tmp_path: Path) -> None:
    csv_text = 'sku,name,price\nA-1,"Цемент М500, мешок",420\nA-2,Песок,90\nA-1,Цемент,420\n'
    (tmp_path / "prices.csv").write_text(csv_text, encoding="utf-8")
    made = json_of(run_cli("create", "prices.csv", "--column", "sku", "--json", cwd=tmp_path))
    assert made["total"] == 2 and made["added"] == 2 and made["read"] == 3
    (tmp_path / "items.jsonl").write_text('{"sku": "x"}\n\n{"sku": 7}\n', encoding="utf-8")
    other = json_of(run_cli("create", "items.jsonl", "--field", "sku", "--json", cwd=tmp_path))
    with default_store(tmp_path) as store:
        assert [record.key for record in store.records(made["batch"])] == ["A-1", "A-2"]
        assert [record.key for record in store.records(other["batch"])] == ["x", "7"]


def test_create_again_with_the_batch_id_adds_only_the_new_keys(tmp_path: Path) -> None:
    batch_id = create(tmp_path, "keys.txt", "a\nb\n")
    (tmp_path / "more.txt").write_text("a\nb\nc\n", encoding="utf-8")
    again = json_of(run_cli("create", "more.txt", "--batch-id", batch_id, "--json", cwd=tmp_path))
    assert again == {"batch": batch_id, "total": 3, "added": 1, "read": 3}


@pytest.mark.parametrize(
    ("name", "text", "args", "expected"),
    [
        ("prices.csv", "sku,price\nA,1\n", ["--column", "name"], "prices.csv:1: no column 'name'"),
        ("prices.csv", "sku,price\nA,1\nB,2,3\n", ["--column", "sku"], "prices.csv:3: 3 fields, the header has 2"),
        ("prices.csv", "sku,price\nA,1\n,2\n", ["--column", "sku"], "prices.csv:3: empty value in column 'sku'"),
        ("items.jsonl", '{"sku": "a"}\n{"sku": \n', ["--field", "sku"], "items.jsonl:2: not JSON"),
        ("items.jsonl", '{"sku": "a"}\n{"id": "b"}\n', ["--field", "sku"], "items.jsonl:2: no field 'sku'"),
        ("items.jsonl", '{"sku": "a"}\n[1]\n', ["--field", "sku"], "items.jsonl:2: a JSON object is expected"),
        ("items.jsonl", '{"sku": ["a"]}\n', ["--field", "sku"], "items.jsonl:1: field 'sku' must be a string"),
        ("keys.txt", "a\n" + "x" * 600 + "\n", [], "keys.txt:2: key must be 1 to 512 characters"),
        ("prices.csv", "sku\nA\n", [], "a CSV file needs --column NAME"),
    ],
)
def test_a_malformed_key_file_is_one_line_naming_the_line_and_writes_nothing(
    tmp_path: Path, name: str, text: str, args: list[str], expected: str
) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    # One key per write: a file written as it is read would have written its first key before the bad line.
    completed = run_cli("create", name, *args, "--chunk-size", "1", cwd=tmp_path)
    assert expected in one_line_error(completed, ExitCode.INVALID_INPUT)
    assert not (tmp_path / "fallthrough.db").exists()


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "keys.txt").write_bytes(b"a\n" + "б\n".encode("cp1251"))
    message = one_line_error(run_cli("create", "keys.txt", cwd=tmp_path), ExitCode.INVALID_INPUT)
    assert "keys.txt:2: not UTF-8" in message


def test_a_missing_file_or_argument_is_a_usage_error(tmp_path: Path) -> None:
    assert "does not exist" in one_line_error(run_cli("create", "nothing.txt", cwd=tmp_path), ExitCode.USAGE)
    assert "Missing argument 'BATCH'" in one_line_error(run_cli("status", cwd=tmp_path), ExitCode.USAGE)
    assert "No such option" in one_line_error(run_cli("status", "x", "--bogus", cwd=tmp_path), ExitCode.USAGE)
    assert "No such command" in one_line_error(run_cli("launch", cwd=tmp_path), ExitCode.USAGE)


def test_an_unknown_batch_is_not_found_and_a_malformed_id_is_invalid(tmp_path: Path) -> None:
    create(tmp_path, "keys.txt", "a\n")
    unknown = str(uuid.uuid4())
    for command in (["status", unknown], ["retry", unknown], ["status", unknown, "--json"]):
        assert unknown in one_line_error(run_cli(*command, cwd=tmp_path), ExitCode.NOT_FOUND)
    assert "batch id must be a UUID" in one_line_error(run_cli("status", "nope", cwd=tmp_path), ExitCode.INVALID_INPUT)


def test_status_shows_counts_a_bar_and_the_failed_records_with_their_errors(tmp_path: Path) -> None:
    batch_id = create(tmp_path, "keys.txt", "a\nb\nc\nd\n")
    with default_store(tmp_path) as store:
        store.update(batch_id, "a", "completed", result={"price": 420})
        store.update(batch_id, "b", "failed", error="цена не распознана:\n'договорная'")
        store.update(batch_id, "c", "processing")
    shown = run_cli("status", batch_id, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "2/4 done (50%): 1 pending, 1 processing, 1 completed, 1 failed" in shown.stdout
    assert "█" * 8 + "█" * 7 + "░" * 15 in shown.stdout  # completed, failed, rest of a 30-character bar
    assert "failed records (1 of 1 shown)" in shown.stdout and "цена не распознана:" in shown.stdout
    as_json = json_of(run_cli("status", batch_id, "--json", cwd=tmp_path))
    assert as_json["batch"]["id"] == batch_id and as_json["batch"]["total"] == 4
    assert as_json["progress"] == {
        "total": 4,
        "pending": 1,
        "processing": 1,
        "completed": 1,
        "failed": 1,
        "done": 2,
        "fraction": 0.5,
    }
    assert [(r["key"], r["status"], r["attempt"]) for r in as_json["failed"]] == [("b", "failed", 0)]
    assert as_json["failed"][0]["error"] == "цена не распознана:\n'договорная'"
    none_shown = json_of(run_cli("status", batch_id, "--json", "--failed", "0", cwd=tmp_path))
    assert none_shown["failed"] == []


def test_retry_moves_failed_records_back_to_pending(tmp_path: Path) -> None:
    batch_id = create(tmp_path, "keys.txt", "a\nb\nc\n")
    with default_store(tmp_path) as store:
        store.update(batch_id, "a", "failed", error="x")
        store.update(batch_id, "b", "failed", error="y")
    assert json_of(run_cli("retry", batch_id, "--json", cwd=tmp_path)) == {"batch": batch_id, "retried": 2}
    again = run_cli("retry", batch_id, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.startswith("0 failed records of batch")
    with default_store(tmp_path) as store:
        assert store.progress(batch_id).pending == 3
        assert store.get_record(batch_id, "a").attempt == 1  # type: ignore[union-attr]


DOCUMENTS = [
    {"id": "m1", "text": "Цемент М500, мешок 50 кг", "vector": [0.9, 0.1], "metadata": {"price": 420}},
    {"id": "m2", "text": "Цемент М400", "vector": [0.8, 0.3], "metadata": {"price": 380}},
    {"id": "m3", "text": "Песок речной", "vector": [0.1, 0.9], "metadata": {"price": 90}},
    {"id": "m4", "text": "Цемент белый", "metadata": {"price": 900}},
]


def write_documents(path: Path, documents: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(document, ensure_ascii=False) + "\n" for document in documents))


def test_load_then_search_shows_the_hits_and_the_store_that_served_them(tmp_path: Path) -> None:
    write_documents(tmp_path / "materials.jsonl", DOCUMENTS)
    loaded = json_of(run_cli("load", "materials", "materials.jsonl", "--chunk-size", "3", "--json", cwd=tmp_path))
    assert loaded == {"collection": "materials", "documents": 4, "read": 4}
    found = json_of(
        run_cli(
            "search", "materials", "--text", "цемент", "--vector", "[1, 0]", "--filter", '{"price": {"lt": 500}}',
            "--json", cwd=tmp_path,
        )
    )  # fmt: skip
    assert found["backend"] == "sqlite" and found["degraded"] is False and found["collection"] == "materials"
    assert [hit["id"] for hit in found["hits"]] == ["m1", "m2"]
    assert found["hits"][0]["metadata"] == {"price": 420} and found["hits"][0]["text"] == "Цемент М500, мешок 50 кг"
    table = run_cli("search", "materials", "--text", "цемент", "--limit", "2", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "2 hits in materials" in table.stdout and "served by sqlite" in table.stdout
    assert table.stdout.count("Цемент") == 2 and "Песок" not in table.stdout


def test_load_counts_an_id_repeated_across_chunks_once(tmp_path: Path) -> None:
    lines = [{"id": "x", "text": "first"}, {"id": "y"}, {"id": "x", "text": "last"}]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    loaded = json_of(run_cli("load", "docs", "docs.jsonl", "--chunk-size", "2", "--json", cwd=tmp_path))
    assert loaded == {"collection": "docs", "documents": 2, "read": 3}
    with fallthrough.connect(f"sqlite:///{tmp_path / 'fallthrough.db'}") as store:
        assert store.count("docs") == 2
        (x,) = store.get_documents("docs", ["x"])
        assert x.text == "last"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"id": "x", "txt": "a"}', "docs.jsonl:2: unknown fields ['txt']"),
        ('{"text": "a"}', "docs.jsonl:2: no field 'id'"),
        ('{"id": "x", "vector": [1, 2, 3]}', "docs.jsonl:2: vector of dimension 3, earlier ones have 2"),
        ('{"id": "x", "metadata": {"a": {"b": [[1]]}}}', "docs.jsonl:2: "),
        ('{"id": "x", "metadata": {"a.b": 1}}', "docs.jsonl:2: "),
        ('{"id": "x"', "docs.jsonl:2: not JSON"),
    ],
)
def test_a_malformed_document_file_names_its_line_and_loads_nothing(tmp_path: Path, line: str, expected: str) -> None:
    (tmp_path / "docs.jsonl").write_text('{"id": "ok", "vector": [1, 0]}\n' + line + "\n")
    completed = run_cli("load", "materials", "docs.jsonl", "--chunk-size", "1", cwd=tmp_path)
    message = one_line_error(completed, ExitCode.INVALID_INPUT)
    assert expected in message
    assert not (tmp_path / "fallthrough.db").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--filter", "{price"], "--filter is not JSON"),
        (["--filter", '{"price": {"about": 1}}'], "unknown operator 'about'"),
        (["--vector", "[1, 'a']"], "--vector is not JSON"),
        (["--vector", '["a"]'], "vector"),
        (["--text", "!!!"], "has no letters or digits"),
    ],
)
def test_a_bad_search_is_invalid_input(tmp_path: Path, args: list[str], expected: str) -> None:
    write_documents(tmp_path / "materials.jsonl", DOCUMENTS[:1])
    assert run_cli("load", "materials", "materials.jsonl", cwd=tmp_path).returncode == 0
    assert expected in one_line_error(run_cli("search", "materials", *args, cwd=tmp_path), ExitCode.INVALID_INPUT)


@pytest.mark.parametrize(
    ("url", "code", "expected"),
    [
        ("nosuch://somewhere", ExitCode.INVALID_INPUT, "no backend plugin serves 'nosuch'://"),
        ("not a url", ExitCode.INVALID_INPUT, "cannot parse the backend URL"),
        ("postgresql://app:pa55word@127.0.0.1:{port}/app", ExitCode.UNAVAILABLE, "failed on every backend"),
    ],
)
def test_bad_urls_are_one_line_and_never_show_a_password(tmp_path: Path, url: str, code: int, expected: str) -> None:
    url = url.format(port=free_port())
    for args in (["status", str(uuid.uuid4()), "--url", url], ["search", "materials", "--text", "a", "--url", url]):
        completed = run_cli(*args, cwd=tmp_path)
        assert expected in one_line_error(completed, code)
        assert "pa55word" not in completed.stderr
    from_environment = run_cli("status", str(uuid.uuid4()), cwd=tmp_path, FALLTHROUGH_URL=url)
    assert expected in one_line_error(from_environment, code)


def test_several_urls_in_the_environment_are_separated_by_spaces(tmp_path: Path) -> None:
    urls = f"sqlite:///{tmp_path / 'one.db'} sqlite:///{tmp_path / 'two.db'}"
    report = json_of(run_cli("health", "--json", cwd=tmp_path, FALLTHROUGH_URL=urls))
    assert [store["name"] for store in report["stores"]] == ["sqlite", "sqlite-2"]
    assert [store["url"] for store in report["stores"]] == urls.split()
    first = report["stores"][0]
    assert first["state"] == "closed" and first["serves_reads"] is True and first["pending_hints"] == 0
    assert first["capabilities"]["records"] is True and first["lag"] is None and first["needs_repair"] is False
    table = run_cli("health", cwd=tmp_path, FALLTHROUGH_URL=urls)
    assert table.returncode == 0 and "sqlite-2" in table.stdout and "closed" in table.stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FALLTHROUGH_URL", ""), ("FALLTHROUGH_URL", "  "), ("FALLTHROUGH_JOURNAL", ""), ("FALLTHROUGH_JOURNAL", "  ")],
)
def test_a_store_variable_set_to_nothing_is_refused_rather_than_replaced_by_the_default(
    tmp_path: Path, variable: str, value: str
) -> None:
    completed = run_cli("batches", cwd=tmp_path, **{variable: value})
    assert f"${variable} is set but holds no URL" in one_line_error(completed, ExitCode.USAGE)
    assert not (tmp_path / "fallthrough.db").exists()
    given = f"sqlite:///{tmp_path / 'given.db'}"
    option = "--url" if variable == "FALLTHROUGH_URL" else "--journal"
    # The option stands in for the variable, as it would for one holding a URL.
    assert run_cli("batches", option, given, cwd=tmp_path, **{variable: value}).returncode == 0


def test_a_store_variable_set_to_nothing_is_refused_before_the_command_reads_its_input(tmp_path: Path) -> None:
    """Not after a pass over a large file, nor after importing the handler (whose import may do anything)."""
    malformed = tmp_path / "keys.jsonl"
    malformed.write_text('{"key": "a"}\nnot json\n')  # read first, an input error (exit 3) for both commands
    created = run_cli("create", str(malformed), cwd=tmp_path, FALLTHROUGH_URL="")
    assert "$FALLTHROUGH_URL is set but holds no URL" in one_line_error(created, ExitCode.USAGE)
    loaded = run_cli("load", "materials", str(malformed), cwd=tmp_path, FALLTHROUGH_JOURNAL=" ")
    assert "$FALLTHROUGH_JOURNAL is set but holds no URL" in one_line_error(loaded, ExitCode.USAGE)
    (tmp_path / "handlers.py").write_text(
        "import pathlib\npathlib.Path('imported').touch()\n\ndef handle(record):\n    return None\n"
    )
    ran = run_cli("run", str(uuid.uuid4()), "handlers:handle", cwd=tmp_path, FALLTHROUGH_URL="")
    assert "$FALLTHROUGH_URL is set but holds no URL" in one_line_error(ran, ExitCode.USAGE)
    assert not (tmp_path / "imported").exists()


def test_backends_lists_the_installed_plugins(tmp_path: Path) -> None:
    listed = json_of(run_cli("backends", "--json", cwd=tmp_path))["backends"]
    sqlite = next((info for info in listed if info["name"] == "sqlite"), None)
    assert sqlite is not None, listed
    assert sqlite["target"] == "fallthrough_sqlite:SqliteBackend" and sqlite["error"] is None, sqlite
    assert set(sqlite) == {"name", "target", "distribution", "version", "error"}
    table = run_cli("backends", cwd=tmp_path)
    assert table.returncode == 0 and "fallthrough_sqlite:SqliteBackend" in table.stdout, table.stdout + table.stderr


def test_help_names_every_command_the_url_separator_and_the_exit_codes(tmp_path: Path) -> None:
    shown = run_cli("--help", cwd=tmp_path)
    assert shown.returncode == 0
    for name in ("batches", "status", "create", "run", "retry", "load", "search", "health", "repair", "backends"):
        assert f"  {name} " in shown.stdout, name
    assert "separated by spaces" in shown.stdout and "4 batch not found" in shown.stdout
    status_help = run_cli("status", "--help", cwd=tmp_path)
    assert "FALLTHROUGH_URL" in status_help.stdout and "--json" in status_help.stdout


def test_the_console_script_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"fallthrough": "fallthrough.cli:main"}
    assert any(requirement.startswith("click") for requirement in project["dependencies"])
    assert any(requirement.startswith("rich") for requirement in project["dependencies"])
