"""docs/backends/qdrant.md agrees with the code: its example runs, its URL table and defaults are the plugin's."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from fallthrough_qdrant import QdrantBackend
from fallthrough_qdrant.connection import API_KEY_VARIABLE, DEFAULT_PREFIX, DEFAULT_TIMEOUT
from fallthrough_qdrant.schema import DOCUMENT_INDEXES, RECORD_INDEXES

PAGE = Path(__file__).resolve().parents[2] / "docs" / "backends" / "qdrant.md"
MODES = {
    "REST over https": "https",  # before its prefix, "REST over http"
    "REST over http": "rest",
    "gRPC over TLS": "grpcs",  # before its prefix, "gRPC"
    "gRPC": "grpc",
    "persisted": "local",
    "in memory": "memory",
}


def test_the_example_runs_and_prints_what_it_says() -> None:
    text = PAGE.read_text()
    (example,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(example, str(PAGE), "exec"), {})
    promised = [comment.strip() for comment in re.findall(r"print\(.*\)\s*#(.*)", example)]
    assert output.getvalue().splitlines() == promised


def test_every_url_in_the_table_opens_what_the_table_says() -> None:
    rows = re.findall(r"^\| `(qdrant[^`]*)` \| (.*) \|$", PAGE.read_text(), flags=re.MULTILINE)
    assert len(rows) == 8
    for url, meaning in rows:
        if meaning.startswith("the same"):
            continue
        expected = next(mode for phrase, mode in MODES.items() if phrase in meaning)
        assert QdrantBackend(url).settings.mode == expected, url


def test_the_documented_defaults_and_indexes_are_the_code_s() -> None:
    text = PAGE.read_text()
    assert f"| `prefix` | `{DEFAULT_PREFIX}` |" in text
    assert f"| `timeout` | `{DEFAULT_TIMEOUT:g}` |" in text
    assert f"`{API_KEY_VARIABLE}`" in text
    for field in [*RECORD_INDEXES, *DOCUMENT_INDEXES]:
        assert f"`{field}`" in text, field
