"""A limit is its value: an int subclass is taken as the plain int it holds.

A plugin may put a limit into its SQL as a literal (the PostgreSQL plugin's
kNN query does, so the server plans it once); a subclass printing itself as
SQL, or comparing as it likes, would reach the statement or slip past the
range check.
"""

from __future__ import annotations

import pytest

import fallthrough
from fallthrough import Document
from fallthrough.errors import InvalidInput
from fallthrough.types import check_search_count
from fallthrough.validation import MAX_SEARCH_LIMIT, check_limit
from tests.core.helpers import PrintsAsSql


class ComparesAsInRange(int):
    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False


def test_a_limit_comes_back_as_an_exact_int() -> None:
    checked = check_limit(PrintsAsSql(3))
    assert type(checked) is int and checked == 3 and f"{checked:d}" == "3"


@pytest.mark.parametrize("value", [ComparesAsInRange(0), ComparesAsInRange(MAX_SEARCH_LIMIT + 1)], ids=["0", "above"])
def test_a_limit_out_of_range_is_refused_however_it_compares(value: int) -> None:
    with pytest.raises(InvalidInput, match="limit must be an int from 1 to"):
        check_limit(value)


def test_a_search_takes_an_int_subclass_as_its_value() -> None:
    with fallthrough.connect("sqlite://") as store:
        store.upsert_documents("c", [Document(f"d{index}", "труба") for index in range(3)])
        hits = store.search("c", text="труба", limit=PrintsAsSql(2))
    assert [hit.id for hit in hits] == ["d0", "d1"]


def test_an_integrations_count_comes_back_as_an_exact_int_and_is_refused_by_its_own_name() -> None:
    checked = check_search_count(PrintsAsSql(3), "top_k")
    assert type(checked) is int and checked == 3
    assert check_search_count(0, "k") == 0 and check_search_count(MAX_SEARCH_LIMIT, "k") == MAX_SEARCH_LIMIT
    for value, least in [(ComparesAsInRange(0), 1), (ComparesAsInRange(MAX_SEARCH_LIMIT + 1), 0), (True, 0), (2.0, 0)]:
        with pytest.raises(InvalidInput, match=rf"^fetch_k must be an int from {least} to {MAX_SEARCH_LIMIT} "):
            check_search_count(value, "fetch_k", least=least)
