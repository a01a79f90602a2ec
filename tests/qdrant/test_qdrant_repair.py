"""The core's repair tests (tests/core/test_repair.py), run on Qdrant stores: one in memory, one on a directory.

Each store a test makes is another Qdrant backend, alternating between the
two local modes, so a repair copies between kinds of store that page in
the same point id order but hold different histories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

import pytest

from fallthrough_qdrant import QdrantBackend
from tests.core import test_repair

# The tests themselves, collected here with this module's make_store.
from tests.core.test_repair import (  # noqa: F401
    Counting,
    test_a_dimension_no_document_carries_any_more_reaches_the_store_that_lacks_it,
    test_a_document_that_carries_the_dimension_needs_no_separate_send,
    test_a_repaired_tombstone_keeps_blocking_a_late_upsert,
    test_a_store_that_took_other_vectors_meanwhile_refuses_the_dimension_and_the_repair_goes_on,
    test_a_store_without_the_dimension_hooks_is_left_out_of_carrying_dimensions,
    test_a_vector_on_a_store_listed_later_carries_the_dimension_in_a_full_repair,
    test_batch_id_repairs_that_batch_only,
    test_collection_repairs_that_collection_only,
    test_documents_holding_datetimes_have_a_digest_that_tells_them_from_strings_and_numbers,
    test_reads_are_one_page_at_a_time,
    test_repair_brings_both_stores_to_the_merge_and_a_second_repair_sends_nothing,
    test_stores_that_disagree_on_a_dimension_keep_theirs_and_the_repair_says_so,
    test_targets_need_distinct_names_and_a_positive_page_size,
    test_three_stores_one_empty_all_reach_the_merge,
)


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[[str], Counting]]:
    opened: list[Counting] = []
    numbers = count()

    def make(name: str) -> Counting:
        number = next(numbers)
        url = "qdrant+memory://" if number % 2 == 0 else f"qdrant+local:///{tmp_path}/store{number}"
        driver = Counting(QdrantBackend(url), name)
        driver.open()
        opened.append(driver)
        return driver

    yield make
    for driver in opened:
        driver.close()


def test_every_repair_test_of_the_core_runs_here() -> None:
    """A test added to the core's file must be added above too."""
    core_tests = {name for name in vars(test_repair) if name.startswith("test_")}
    assert core_tests <= set(globals())
