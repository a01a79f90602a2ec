"""AsyncStore.keep_open: a close waits for a block of several calls, whole, and for nothing it should not.

The calls a close must wait for are held in a fault gate, on SQLite and
PostgreSQL. What must not deadlock (a close that blocks the loop of a block)
runs in a child process with a timeout, so that a deadlock fails the test
instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest

import fallthrough
from fallthrough import AsyncStore, Document
from tests.aio.conftest import collection_name
from tests.core.helpers import gate

DEADLOCK_TIMEOUT = 60.0
"""Seconds a child process gets; the work in it takes well under one."""


async def _open(url: str, registry: fallthrough.Registry) -> tuple[AsyncStore, str]:
    store = await fallthrough.connect_async(url, registry=registry)
    collection = collection_name()
    await store.upsert_documents(collection, [Document(f"d{i}", f"word{i}") for i in range(3)])
    return store, collection


async def _counting_in_a_block(store: AsyncStore, collection: str) -> AsyncIterator[int]:
    """Yields the collection's count, then 0, inside one ``keep_open`` block: a caller that stops stepping holds it."""
    async with store.keep_open():
        yield await store.count(collection)
        yield 0


async def _refused(call: Awaitable[object]) -> None:
    with pytest.raises(fallthrough.FallthroughError, match="AsyncStore is closed"):
        await call


def test_close_waits_for_a_keep_open_block_and_takes_its_later_calls(
    gated_url: str, registry: fallthrough.Registry
) -> None:
    async def main() -> None:
        store, collection = await _open(gated_url, registry)
        flaky = gate(store.store, "flaky")
        flaky.hold("fallthrough_count_documents")

        async def operation() -> list[str]:
            async with store.keep_open():
                await store.count(collection)  # held while the close begins
                await store.upsert_documents(collection, [Document("late", "written after the close began")])
                return [found.id async for found in store.documents(collection)]

        running = asyncio.ensure_future(operation())
        assert await asyncio.to_thread(flaky.wait_held, 1)
        closing = asyncio.ensure_future(store.close())
        await asyncio.sleep(0)
        await _refused(store.get_documents(collection, ["d0"]))  # a call from outside the block
        with pytest.raises(fallthrough.FallthroughError, match="AsyncStore is closed"):
            async with store.keep_open():
                raise AssertionError("a block begun outside any block after close() was let in")
        flaky.release()
        assert await running == ["d0", "d1", "d2", "late"]
        await closing
        await _refused(store.count(collection))
        with fallthrough.connect(gated_url, registry=registry) as reopened:
            assert [found.id for found in reopened.get_documents(collection, ["late"])] == ["late"]

    asyncio.run(main())


def test_a_block_nested_in_one_under_way_is_let_in_after_close_began(
    gated_url: str, registry: fallthrough.Registry
) -> None:
    """The inner block is part of the operation already under way: refusing it would cut that in two."""

    async def main() -> None:
        store, collection = await _open(gated_url, registry)
        flaky = gate(store.store, "flaky")
        flaky.hold("fallthrough_count_documents")
        closing: asyncio.Future[None] | None = None

        async def operation() -> int:
            async with store.keep_open():
                await store.count(collection)  # held while the close begins
                assert closing is not None and not closing.done()
                async with store.keep_open():  # an integration's method, called inside the caller's block
                    await store.upsert_documents(collection, [Document("nested", "x")])
                    return await store.count(collection)

        running = asyncio.ensure_future(operation())
        assert await asyncio.to_thread(flaky.wait_held, 1)
        closing = asyncio.ensure_future(store.close())
        await asyncio.sleep(0)
        flaky.release()
        assert await running == 4
        await closing

    asyncio.run(main())


def test_a_task_started_in_a_block_is_refused_once_the_block_has_ended(
    gated_url: str, registry: fallthrough.Registry
) -> None:
    """The task's context is a copy of the block's, mark included; the mark dies with the block all the same.

    Another block keeps the close waiting, so the pool is still up: only the
    mark's liveness refuses the task's call.
    """

    async def main() -> None:
        store, collection = await _open(gated_url, registry)
        close_began = asyncio.Event()
        parent_ended = asyncio.Event()
        other_may_end = asyncio.Event()

        async def child() -> int:
            await close_began.wait()
            counted = await store.count(collection)  # inside the live block: accepted
            await parent_ended.wait()
            await _refused(store.count(collection))
            return counted

        async def parent() -> asyncio.Task[int]:
            async with store.keep_open():
                started = asyncio.create_task(child())
                await close_began.wait()
                await asyncio.sleep(0.05)  # the child's call, made while this block lasts, is accepted
            return started

        async def other() -> None:
            async with store.keep_open():
                await other_may_end.wait()

        holding = asyncio.ensure_future(other())
        parenting = asyncio.ensure_future(parent())
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(store.close())
        await asyncio.sleep(0)
        close_began.set()
        started = await parenting
        parent_ended.set()
        assert await started == 3
        assert not closing.done()  # still waiting for the other block: the pool was up for the refused call
        other_may_end.set()
        await holding
        await closing

    asyncio.run(main())


def test_an_async_generators_block_leaves_no_live_mark_in_the_task_that_entered_it(
    gated_url: str, registry: fallthrough.Registry
) -> None:
    """The generator entered its block in one task's context and left it in another's (it runs in its caller's)."""

    async def main() -> None:
        store, collection = await _open(gated_url, registry)

        stepped = _counting_in_a_block(store, collection)
        first_ready = asyncio.Event()
        may_call = asyncio.Event()

        async def first_stepper() -> None:
            assert await stepped.__anext__() == 3  # enters the block here, in this task's context
            first_ready.set()
            await may_call.wait()
            await _refused(store.count(collection))

        async def other() -> None:
            async with store.keep_open():
                await may_call.wait()

        stepping = asyncio.ensure_future(first_stepper())
        holding = asyncio.ensure_future(other())
        await first_ready.wait()
        closing = asyncio.ensure_future(store.close())
        await asyncio.sleep(0)
        assert [n async for n in stepped] == [0]  # this task ends the generator, and with it the block
        may_call.set()
        await stepping
        await holding
        await closing

    asyncio.run(main())


def test_a_close_inside_its_own_keep_open_block_is_refused_rather_than_waiting_for_ever(
    gated_url: str, registry: fallthrough.Registry
) -> None:
    async def main() -> None:
        store, collection = await _open(gated_url, registry)
        async with store.keep_open():
            with pytest.raises(fallthrough.FallthroughError, match="would wait for its own block"):
                await asyncio.wait_for(store.close(), DEADLOCK_TIMEOUT)
            with pytest.raises(fallthrough.FallthroughError, match="would wait for its own block"):
                store.close_sync()
            assert await store.count(collection) == 3  # the refused closes closed nothing
        await store.close()
        await _refused(store.count(collection))

    asyncio.run(main())


def _run_child(tmp_path: Path, script: str) -> str:
    """Run ``script`` in a fresh interpreter; a deadlock there ends in a timeout, not a hung test run."""
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(script), encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, str(path)], capture_output=True, text=True, timeout=DEADLOCK_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(f"the child process hung (a deadlock?): {expired.stderr!r}") from None
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_close_sync_on_the_loop_of_a_block_does_not_wait_for_that_block(tmp_path: Path) -> None:
    """The block needs the loop that close_sync blocks: waiting for it would deadlock, so it is cut."""
    out = _run_child(
        tmp_path,
        """
        import asyncio
        import fallthrough

        async def main():
            store = await fallthrough.connect_async("sqlite://")
            await store.upsert_documents("c", [fallthrough.Document("a", "x")])
            entered = asyncio.Event()
            go_on = asyncio.Event()

            async def operation():
                async with store.keep_open():
                    await store.count("c")
                    entered.set()
                    await go_on.wait()
                    await store.count("c")

            running = asyncio.ensure_future(operation())
            await entered.wait()
            store.close_sync()  # blocks this loop, on which the block waits
            go_on.set()
            try:
                await running
            except fallthrough.FallthroughError as error:
                print("refused:", error)
            else:
                print("accepted")

        asyncio.run(main())
        """,
    )
    assert out.strip() == "refused: this AsyncStore is closed"


def test_a_call_on_a_pool_shut_down_under_the_store_is_refused_as_closed(tmp_path: Path) -> None:
    """At the interpreter's exit the pools shut down before the atexit handlers run: a late call is refused."""
    out = _run_child(
        tmp_path,
        """
        import asyncio
        import atexit
        import fallthrough

        store = asyncio.run(fallthrough.connect_async("sqlite://"))

        def late_call():
            try:
                asyncio.run(store.count("c"))
            except fallthrough.FallthroughError as error:
                print("refused:", error)
            except BaseException as error:
                print("raised:", type(error).__name__, error)
            else:
                print("accepted")

        atexit.register(late_call)
        asyncio.run(store.count("c"))  # the pool has a thread, which the interpreter's exit stops
        """,
    )
    assert out.strip() == "refused: this AsyncStore is closed (its thread pool has shut down)"


def test_a_close_does_not_wait_for_a_block_whose_loop_has_stopped(tmp_path: Path) -> None:
    """A thread ran its loop with run_until_complete and went on: the block in it cannot end until that loop runs.

    The thread then closes: close_sync waited for that block for ever (the review's repro: Haystack's and
    LangChain's sync close() in such a thread never returned), and a program ending after it never exited.
    """
    out = _run_child(
        tmp_path,
        """
        import asyncio
        import fallthrough

        loop = asyncio.new_event_loop()
        store = loop.run_until_complete(fallthrough.connect_async("sqlite://"))
        loop.run_until_complete(store.upsert_documents("c", [fallthrough.Document("a", "x")]))
        entered = asyncio.Event()
        never = loop.create_future()

        async def operation():
            async with store.keep_open():
                await store.count("c")
                entered.set()
                await never  # suspended in its block: nothing runs this loop again until the close is done
                await store.count("c")

        running = loop.create_task(operation())
        loop.run_until_complete(entered.wait())  # the loop stops here, the task inside its block
        store.close_sync()
        never.set_result(None)
        try:
            loop.run_until_complete(running)
        except fallthrough.FallthroughError as error:
            print("refused:", error)
        else:
            print("accepted")
        """,
    )
    assert out.strip() == "refused: this AsyncStore is closed"


def test_close_sync_in_a_call_on_the_stores_own_pool_is_refused(tmp_path: Path) -> None:
    """The close shuts the pool down and waits for its calls, this one among them: it waited for ever."""
    out = _run_child(
        tmp_path,
        """
        import asyncio
        import fallthrough

        async def main():
            store = await fallthrough.connect_async("sqlite://")
            try:
                await store.run_sync(store.close_sync)
            except fallthrough.FallthroughError as error:
                print("refused:", error)
            assert await store.count("c") == 0  # nothing was closed
            other = await fallthrough.connect_async("sqlite://")
            await other.run_sync(store.close_sync)  # another AsyncStore's pool: it may close this one
            print("closed from another pool")
            await other.close()

        asyncio.run(main())
        """,
    )
    assert out.splitlines() == [
        "refused: close_sync() in a call of this AsyncStore would wait for that call: await close()",
        "closed from another pool",
    ]


def test_a_context_keeps_no_marks_of_blocks_ended_elsewhere(gated_url: str, registry: fallthrough.Registry) -> None:
    """A generator broken out of ends its block in the finalizer's context: the mark stayed in the caller's.

    They piled up, one per loop round, in a long-lived task, and every block entered copied them all.
    """
    from fallthrough.aio import _BLOCKS

    async def main() -> None:
        store, collection = await _open(gated_url, registry)

        for _ in range(20):
            async for _ in _counting_in_a_block(store, collection):
                break
            while any(block.live for block in _BLOCKS.get()):  # until the loop's finalizer has closed it
                await asyncio.sleep(0)
        async with store.keep_open():
            assert len(_BLOCKS.get()) == 1
        with pytest.raises(fallthrough.FallthroughError, match=r"generator suspended inside a block"):
            stepped = _counting_in_a_block(store, collection)
            await stepped.__anext__()
            await store.close()
        await stepped.aclose()
        await store.close()

    asyncio.run(main())
