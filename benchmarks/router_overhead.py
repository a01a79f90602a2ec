"""What the router costs: Store calls against the same calls made on the SQLite plugin directly.

    python -m benchmarks.router_overhead      # from the repository root

Both sides do the work a caller must do for that call: the direct side
builds and validates the same values (a ``RecordUpdate``, a timestamp, a
parsed ``SearchQuery``) and calls the plugin's hook method itself. The
difference is the router: argument checks, stamping, the breaker, the
subset hook caller and the result check. Goal: 1.15× or better.
"""

from __future__ import annotations

import random

import fallthrough
from benchmarks.harness import Comparison, compare, print_table
from fallthrough.clock import Stamper
from fallthrough.filters import parse_filter
from fallthrough.types import SearchQuery
from fallthrough.validation import check_vector

GOAL = 1.15
WORDS = ["цемент", "песок", "щебень", "М500", "М400", "мешок", "ПВХ", "труба", "2.5мм", "кабель", "PVC", "клей"]


def main() -> None:
    rows: list[Comparison] = []
    with fallthrough.connect("sqlite://") as store:
        plugin = store.plugin_manager.get_plugin("sqlite")
        stamper = Stamper()

        batch = store.create_batch([f"sku-{i}" for i in range(1000)])
        statuses = ["processing", "completed"]
        state = {"i": 0}

        def through_store() -> None:
            state["i"] += 1
            store.update(batch.id, "sku-1", statuses[state["i"] % 2], result={"n": state["i"]})

        def direct() -> None:
            state["i"] += 1
            update = fallthrough.RecordUpdate(batch.id, "sku-2", statuses[state["i"] % 2], result={"n": state["i"]})
            plugin.fallthrough_update_records(updates=[update], updated_at=stamper.now())

        rows.append(compare("update one record", "SqliteBackend hook, direct", direct, through_store, goal=GOAL))

        # An add takes its batch's turn (fallthrough.turns), which an update does not.
        added = {"store": 0, "direct": 0}

        def add_through_store() -> None:
            added["store"] += 1
            store.add_records(batch.id, [f"store-{added['store']}"])

        def add_direct() -> None:
            added["direct"] += 1
            plugin.fallthrough_add_records(
                batch_id=batch.id,
                keys=(f"direct-{added['direct']}",),
                first_seq=stamper.reserve_seq(1),
                created_at=stamper.now(),
            )

        rows.append(compare("add one record", "SqliteBackend hook, direct", add_direct, add_through_store, goal=GOAL))

        rng = random.Random(7)
        documents = [
            fallthrough.Document(
                f"m{i}",
                " ".join(rng.sample(WORDS, 4)),
                vector=[rng.uniform(-1, 1) for _ in range(32)],
                metadata={"price": rng.randint(10, 1000)},
            )
            for i in range(2000)
        ]
        store.upsert_documents("materials", documents)
        vector = [rng.uniform(-1, 1) for _ in range(32)]
        filter_spec = {"price": {"lt": 500}}

        def search_store() -> None:
            store.search("materials", text="цемент", vector=vector, filter=filter_spec, limit=10)

        def search_direct() -> None:
            query = SearchQuery(check_vector(vector), "цемент", parse_filter(filter_spec), 10)
            plugin.fallthrough_search(collection="materials", query=query)

        rows.append(
            compare(
                "search text+vector+filter, 2k docs",
                "SqliteBackend hook, direct",
                search_direct,
                search_store,
                number=20,
                goal=GOAL,
            )
        )
    print_table("Router overhead (SQLite in memory)", rows)


if __name__ == "__main__":
    main()
