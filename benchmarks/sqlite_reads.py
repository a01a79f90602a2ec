"""Reading records on SQLite beside the raw cursor, interleaved in one process (issue 12 item 2).

    python benchmarks/sqlite_reads.py                 # 100,000 records, 9 rounds
    python benchmarks/sqlite_reads.py --records 20000 --rounds 5

``benchmarks/scale.py`` times each side in a child process of its own, one
after the other, which its peak-RSS figure needs; on a loaded machine that
lets the load of one moment land on one side only. This runs the two sides
alternately in one process, round after round (``benchmarks.harness``), on
the same file, so the ratio of their medians holds when absolute times do
not:

* **iterate**: every record of a batch in ``(seq, key)`` order. Raw is one
  ``sqlite3`` cursor over the plugin's own ``SELECT`` of those columns in
  that order; fallthrough is ``for record in store.records(batch)``, pages
  of 1000 records, each a ``Record``.
* **page**: one page of 1000 records from the middle of the batch: raw the
  same keyset ``SELECT`` with ``fetchall``; fallthrough the plugin's hook
  ``fallthrough_list_records`` (no router), so the figure is the plugin's
  decoding alone.
* **progress**: raw is ``GROUP BY status`` over the batch, what progress
  was before ``record_counts``; fallthrough ``store.progress``.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/sqlite_reads.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fallthrough
from benchmarks.harness import compare, print_table
from fallthrough_sqlite import SqliteBackend

_COLUMNS = "key, seq, status, attempt, result, error, updated_us, lease_owner, lease_us"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "reads.db"
        url = f"sqlite:///{path}"
        with fallthrough.connect(url) as store:
            batch = store.create_batch(f"sku-{i:08}" for i in range(arguments.records))
            batch_text = str(batch.id)
            raw = sqlite3.connect(path, isolation_level=None)
            middle = raw.execute(
                "SELECT seq, key FROM records WHERE batch_id = ? ORDER BY seq, key LIMIT 1 OFFSET ?",
                (batch_text, arguments.records // 2),
            ).fetchone()
            backend = SqliteBackend(url)
            backend.fallthrough_open()

            def raw_iterate() -> None:
                for _ in raw.execute(
                    f"SELECT {_COLUMNS} FROM records WHERE batch_id = ? ORDER BY seq, key", (batch_text,)
                ):
                    pass

            def iterate() -> None:
                for _ in store.records(batch.id):
                    pass

            def raw_page() -> None:
                raw.execute(
                    f"SELECT {_COLUMNS} FROM records WHERE batch_id = ? AND (seq, key) > (?, ?)"
                    " ORDER BY seq, key LIMIT 1000",
                    (batch_text, *middle),
                ).fetchall()

            def page() -> None:
                backend.fallthrough_list_records(batch_id=batch.id, status=None, after=tuple(middle), limit=1000)

            def raw_progress() -> None:
                raw.execute("SELECT status, count(*) FROM records WHERE batch_id = ? GROUP BY status", (batch_text,))

            def progress() -> None:
                store.progress(batch.id)

            rows = [
                compare(
                    f"iterate {arguments.records:,} records",
                    "sqlite3 cursor",
                    raw_iterate,
                    iterate,
                    rounds=arguments.rounds,
                    number=1,
                    goal=2.0,
                ),
                compare("one page of 1000 (the hook)", "sqlite3 fetchall", raw_page, page, rounds=arguments.rounds),
                compare(f"progress of {arguments.records:,}", "GROUP BY status", raw_progress, progress, number=20),
            ]
            backend.fallthrough_close()
            raw.close()
    print_table("SQLite reads beside the raw cursor (issue 12)", rows)


if __name__ == "__main__":
    main()
