"""docs/backends/postgresql.md agrees with the code: the DDL, the options and their defaults."""

from __future__ import annotations

import re
from pathlib import Path

from fallthrough_postgresql.connection import OPTION_DEFAULTS
from fallthrough_postgresql.schema import DDL, VECTOR_COLUMN_DDL

DOC = Path(__file__).resolve().parents[2] / "docs" / "backends" / "postgresql.md"


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_the_documented_ddl_is_the_ddl_the_backend_runs() -> None:
    blocks = _squeezed(" ".join(re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)))
    statements = (*DDL, VECTOR_COLUMN_DDL)
    missing = [statement.strip()[:60] for statement in statements if _squeezed(statement) + ";" not in blocks]
    assert missing == []


def test_every_option_is_documented_with_its_default() -> None:
    text = DOC.read_text()
    undocumented = [name for name, default in OPTION_DEFAULTS.items() if f"| `{name}` | `{default:g}` |" not in text]
    assert undocumented == []
