"""A first run of fallthrough on the embedded default store (SQLite in memory)."""

from __future__ import annotations

import fallthrough
from fallthrough import Document


def main() -> None:
    with fallthrough.connect() as store:
        batch = store.create_batch(["sku-1", "sku-2", "sku-3"], metadata={"source": "import.csv"})
        store.update(batch.id, "sku-1", "processing")
        store.update(batch.id, "sku-1", "completed", result={"rows": 3})
        store.update(batch.id, "sku-2", "failed", error="timeout")
        progress = store.progress(batch.id)
        print(
            f"batch {batch.id}: {progress.done}/{progress.total} done ({progress.fraction:.0%}), "
            f"{progress.completed} completed, {progress.failed} failed, {progress.pending} pending"
        )

        store.upsert_documents(
            "materials",
            [
                Document("m1", "Цемент М500, мешок 50 кг", vector=[0.9, 0.1, 0.0], metadata={"price": 420}),
                Document("m2", "Цемент М400", vector=[0.8, 0.3, 0.1], metadata={"price": 380}),
                Document("m3", "Песок речной", vector=[0.1, 0.2, 0.9], metadata={"price": 90}),
            ],
        )
        result = store.search("materials", text="цемент", vector=[1.0, 0.0, 0.0], filter={"price": {"lt": 500}})
        best = result[0]
        print(
            f"best hit for 'цемент' under 500: {best.id} {best.text!r} score={best.score:.3f} (from {result.backend})"
        )


if __name__ == "__main__":
    main()
