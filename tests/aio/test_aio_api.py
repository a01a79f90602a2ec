"""The asyncio API mirrors the Store: the same methods and parameters, the same answers and errors, fall-through."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fallthrough
from fallthrough import AsyncStore, Document, Store, hookimpl
from fallthrough.testing.hostile import HOSTILE_CALLS, HostileCall, Target, _raise_refused
from fallthrough.testing.model import ReferenceBackend
from tests.core.helpers import gate

# Names only an AsyncStore has: the Store it wraps, its bound, and what integrations run on it.
ASYNC_ONLY = {"store", "max_concurrency", "run_sync", "keep_open", "close_sync"}
# Store methods that return iterators; their twins return async iterators.
ITERATORS = {"records", "batches", "documents"}


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_every_public_store_name_has_an_async_twin_and_nothing_else() -> None:
    assert public_names(Store) - public_names(AsyncStore) == set(), "Store methods without an async twin"
    assert public_names(AsyncStore) - ASYNC_ONLY - public_names(Store) == set(), "twins of nothing"


@pytest.mark.parametrize("name", sorted(public_names(Store)))
def test_each_twin_takes_the_same_parameters(name: str) -> None:
    sync = inspect.getattr_static(Store, name)
    twin = inspect.getattr_static(AsyncStore, name, None)
    assert twin is not None, f"AsyncStore has no {name}"
    if isinstance(sync, property):
        assert isinstance(twin, property)
        return
    sync_parameters = list(inspect.signature(sync).parameters.values())
    twin_parameters = list(inspect.signature(twin).parameters.values())
    assert twin_parameters == sync_parameters  # names, kinds, defaults and annotations
    if name in ITERATORS:
        assert not inspect.iscoroutinefunction(twin)
        assert str(inspect.signature(twin).return_annotation).startswith("AsyncIterator[")
    else:
        assert inspect.iscoroutinefunction(twin), f"AsyncStore.{name} is not a coroutine function"


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "8", 1025])
def test_max_concurrency_out_of_range_is_invalid_input(bad: Any) -> None:
    with fallthrough.connect() as store, pytest.raises(fallthrough.InvalidInput, match="max_concurrency"):
        AsyncStore(store, max_concurrency=bad)
    with pytest.raises(fallthrough.InvalidInput, match="max_concurrency"):
        asyncio.run(fallthrough.connect_async(max_concurrency=bad))


def test_only_a_store_is_wrapped() -> None:
    with pytest.raises(fallthrough.InvalidInput, match=r"fallthrough\.Store"):
        AsyncStore(object())  # type: ignore[arg-type]


def test_calls_answer_as_the_store_does_pages_included() -> None:
    async def main() -> None:
        async with await fallthrough.connect_async(max_concurrency=2) as store:
            batch = await store.create_batch((f"k{i:04}" for i in range(2500)), metadata={"source": "aio"})
            assert await store.update(batch.id, "k0001", "completed", result={"rows": 3})
            assert await store.update_many([fallthrough.RecordUpdate(batch.id, "k0002", "failed", error="x")]) == 1
            assert await store.retry(batch.id) == 1
            assert (await store.progress(batch.id)).completed == 1
            keys = [record.key async for record in store.records(batch.id, page_size=1000)]
            assert keys == [f"k{i:04}" for i in range(2500)]  # three pages, the last short
            assert [r.key async for r in store.records(batch.id, status="completed")] == ["k0001"]
            listed = [item async for item in store.batches(limit=5)]
            assert [item.batch.id for item in listed] == [batch.id]
            claimed = await store.claim(batch.id, worker="w", limit=3)
            assert await store.extend_leases(batch.id, [r.key for r in claimed], worker="w") == 3
            await store.upsert_documents("c", [Document("a", "hello world", vector=[1.0, 0.0])])
            result = await store.search("c", text="hello", vector=[1.0, 0.0])
            assert [hit.id for hit in result] == ["a"]
            assert [d.id for d in await store.get_documents("c", ["a", "b"])] == ["a"]
            assert (await store.search("c", vector=[1.0, 0.0], with_vectors=True))[0].vector == (1.0, 0.0)
            await store.upsert_documents("c", [Document(f"p{i}", "page", metadata={"i": i}) for i in range(5)])
            assert await store.collections() == ["c"]
            assert await store.count("c", {"i": {"gte": 2}}) == 3
            assert [d.id async for d in store.documents("c", page_size=2)] == ["a", "p0", "p1", "p2", "p3", "p4"]
            assert await store.drop_collection("c")
            assert await store.count("c") == 0
            await store.upsert_documents("c", [Document("a", "hello world", vector=[1.0, 0.0])])
            assert await store.delete_documents("c", ["a"]) == 1
            assert await store.drain(1.0)
            assert isinstance(await store.repair(), fallthrough.RepairReport)
            assert [h.name for h in await store.health(ping=True)] == store.backend_names == ["sqlite"]
            assert await store.delete_batch(batch.id)
            assert await store.get_batch(batch.id) is None

    asyncio.run(main())


class _RecordingStore(Store):
    """A real Store that notes the arguments each public method is called with, bound to its parameters."""

    calls: list[tuple[str, dict[str, Any]]]

    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if name.startswith("_") or not callable(found):
            return found

        def record(*args: Any, **kwargs: Any) -> Any:
            bound = inspect.signature(found).bind(*args, **kwargs)
            super(_RecordingStore, self).__getattribute__("calls").append((name, dict(bound.arguments)))
            return found(*args, **kwargs)

        return record


@pytest.mark.parametrize(
    "name", sorted(public_names(Store) - {"plugin_manager", "backend_names", "capabilities", "chunk_writes_in_flight"})
)
def test_each_twin_passes_every_argument_on_unchanged(name: str) -> None:
    """Each parameter gets a value of its own; the Store's method must receive exactly those."""
    store = _RecordingStore([("sqlite", "sqlite://")])
    store.calls = []
    parameters = [p for p in inspect.signature(getattr(Store, name)).parameters.values() if p.name != "self"]
    # close checks its timeout itself (it must be valid to close the pool); the others only forward.
    sent: dict[str, Any] = {"timeout": 1.5} if name == "close" else {p.name: f"<{p.name}>" for p in parameters}
    args = [sent[p.name] for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    kwargs = {p.name: sent[p.name] for p in parameters if p.kind is p.KEYWORD_ONLY}

    async def main() -> None:
        twin = AsyncStore(store, close_store=True)
        try:
            call = getattr(twin, name)(*args, **kwargs)
            if name in ITERATORS:
                await call.__anext__()
            else:
                await call
        except Exception:
            pass  # the values are nonsense: only what reached the Store matters
        finally:
            await twin.close()

    asyncio.run(main())
    assert store.calls[0] == (name, sent)


def _target(store: Store) -> Target:
    """The same batch and documents in every store the differential test builds."""
    batch_id = uuid.UUID(int=7)
    keys = ("k1", "k2", "k3")
    store.create_batch(keys, batch_id=batch_id)
    store.upsert_documents("docs", [Document(f"d{i}", f"text {i}", vector=[1.0, float(i)]) for i in range(3)])
    return Target(batch_id, keys, "docs", ("d0", "d1", "d2"), 2)


def _outcome_sync(store: Store, call: HostileCall) -> str:
    try:
        _raise_refused_all(call)
        result = getattr(store, call.method)(*call.args, **call.kwargs)
        if call.method in ITERATORS:
            list(result)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return "ok"


async def _outcome_async(store: AsyncStore, call: HostileCall) -> str:
    try:
        _raise_refused_all(call)
        result = getattr(store, call.method)(*call.args, **call.kwargs)
        if call.method in ITERATORS:
            [item async for item in result]
        else:
            await result
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return "ok"


def _raise_refused_all(call: HostileCall) -> None:
    for value in (*call.args, *call.kwargs.values()):
        _raise_refused(value)


@pytest.mark.parametrize("method", sorted(HOSTILE_CALLS))
def test_hostile_calls_end_alike_on_the_store_and_its_twin(method: str) -> None:
    """Two stores built alike get the same hostile calls of ``method``, one directly, one through an AsyncStore."""
    with fallthrough.connect() as plain, fallthrough.connect() as wrapped:
        target = _target(plain)
        assert _target(wrapped) == target
        loop = asyncio.new_event_loop()
        twin = AsyncStore(wrapped, max_concurrency=2)
        try:

            @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(st.data())
            def run(data: st.DataObject) -> None:
                call = data.draw(HOSTILE_CALLS[method](target))
                if call.method == "create_batch" and call.kwargs.get("batch_id") is None:
                    return  # a random id each side: the two stores would part ways
                expected = _outcome_sync(plain, call)
                assert loop.run_until_complete(_outcome_async(twin, call)) == expected, call

            run()
        finally:
            loop.run_until_complete(twin.close())
            loop.close()


def test_fall_through_works_through_the_twin(registry: fallthrough.Registry) -> None:
    """A down first store: the second serves reads and writes, and the first is journaled, as with the Store."""

    async def main() -> None:
        store = await fallthrough.connect_async(
            primary="flaky://", secondary="flaky://", registry=registry, breaker=fallthrough.BreakerPolicy(cooldown=60)
        )
        async with store:
            gate(store.store, "primary").outage = True
            batch = await store.create_batch(["a", "b"])
            assert await store.update(batch.id, "a", "completed")
            assert (await store.progress(batch.id)).completed == 1
            await store.upsert_documents("c", [Document("x", "hello")])
            assert (await store.search("c", text="hello")).backend == "secondary"
            health = {entry.name: entry for entry in await store.health()}
            assert health["primary"].pending_hints > 0 and not health["primary"].serves_reads
            gate(store.store, "secondary").outage = True
            with pytest.raises(fallthrough.AllBackendsFailed):
                await store.progress(batch.id)
            gate(store.store, "secondary").outage = False
            with pytest.raises(fallthrough.NotFound):
                await store.progress(uuid.uuid4())

    asyncio.run(main())


def test_who_opens_a_store_closes_it() -> None:
    """connect_async's AsyncStore closes its Store; one wrapping a Store it was given leaves that open."""

    async def main(given: Store) -> Store:
        async with AsyncStore(given) as wrapper:
            await wrapper.create_batch(["a"])
        with pytest.raises(fallthrough.FallthroughError, match="AsyncStore is closed"):
            await wrapper.progress(uuid.uuid4())
        async with await fallthrough.connect_async() as owner:
            pass
        await owner.close()  # twice is harmless
        return owner.store

    with fallthrough.connect() as given:
        owned = asyncio.run(main(given))
        assert [b.batch.total for b in given.batches()] == [1]  # still open
    with pytest.raises(fallthrough.FallthroughError, match="Store is closed"):
        owned.progress(uuid.uuid4())
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("fallthrough-aio_")]


def test_the_readme_async_example_runs() -> None:
    from tests.test_docs import ROOT, python_blocks

    [example] = [block for block in python_blocks(ROOT / "README.md") if "connect_async" in block]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(example, "README.md", "exec"), {})
    assert output.getvalue().splitlines() == ["sku-1 completed", "sku-2 completed"]


class _KeysThatStopAtOnce:
    """A caller's iterable with a bug: its ``__iter__`` calls ``next()`` on an exhausted source."""

    def __iter__(self) -> Any:
        return iter([next(iter([]))])


@pytest.mark.parametrize("method", ["create_batch", "delete_documents"])
def test_a_call_that_raises_stop_iteration_ends_with_a_runtime_error_rather_than_hanging(method: str) -> None:
    """An asyncio future cannot hold StopIteration: the awaiting coroutine used to wait forever."""

    async def main() -> BaseException:
        async with await fallthrough.connect_async("sqlite://") as store:
            call = (
                store.create_batch(_KeysThatStopAtOnce())
                if method == "create_batch"
                else store.delete_documents("c", _KeysThatStopAtOnce())
            )
            with pytest.raises(RuntimeError) as raised:
                await asyncio.wait_for(call, timeout=10)
            return raised.value

    error = asyncio.run(main())
    assert isinstance(error.__cause__, StopIteration) or "StopIteration" in str(error)


def test_run_sync_runs_on_the_pool_under_the_bound_in_the_caller_s_context() -> None:
    import contextvars

    request = contextvars.ContextVar("request", default="none")

    def where(suffix: str) -> tuple[str, str]:
        return threading.current_thread().name, request.get() + suffix

    async def main() -> None:
        async with await fallthrough.connect_async("sqlite://", max_concurrency=1) as store:
            request.set("r1")
            thread, seen = await store.run_sync(where, "!")
            assert thread.startswith("fallthrough-aio") and seen == "r1!"
            gate_open = threading.Event()
            blocking = asyncio.ensure_future(store.run_sync(gate_open.wait, 10))
            waiting = asyncio.ensure_future(store.run_sync(where, "?"))
            await asyncio.sleep(0.2)
            assert not waiting.done(), "a second call ran past max_concurrency=1"
            gate_open.set()
            assert await blocking is True
            assert (await waiting)[1] == "r1?"
        with pytest.raises(fallthrough.FallthroughError, match="closed"):
            await store.run_sync(where, "")

    asyncio.run(main())


class _BuildsWhenReleasedAndNotesWhereItCloses(ReferenceBackend):
    """A reference backend that waits for the test before it exists, and records the thread that closes it."""

    release = threading.Event()
    closed_on: ClassVar[list[threading.Thread]] = []

    def __init__(self, url: object) -> None:
        assert self.release.wait(10)
        super().__init__(url)

    @hookimpl
    def fallthrough_close(self) -> None:
        self.closed_on.append(threading.current_thread())
        super().fallthrough_close()


def test_a_store_built_just_as_connect_async_is_cancelled_is_closed_off_the_loop_thread() -> None:
    """Its build ended before the cancelled task resumed: the close ran at once, on the loop's thread."""
    registry = fallthrough.Registry()
    registry.register("built", f"{__name__}:_BuildsWhenReleasedAndNotesWhereItCloses")
    built = _BuildsWhenReleasedAndNotesWhereItCloses

    async def main() -> threading.Thread:
        opening = asyncio.ensure_future(fallthrough.connect_async("built://", registry=registry))
        await asyncio.sleep(0.05)  # the task now waits for the build
        built.release.set()
        # Without yielding to the loop: the build ends, then the task is cancelled before it sees that.
        deadline = time.monotonic() + 10
        while any(thread.name == "fallthrough-aio-connect" for thread in threading.enumerate()):
            assert time.monotonic() < deadline, "the build did not end"
            time.sleep(0.005)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        for _ in range(200):
            if built.closed_on:
                break
            await asyncio.sleep(0.01)
        return threading.current_thread()

    loop_thread = asyncio.run(main())
    assert len(built.closed_on) == 1, "the Store built for a cancelled connect_async was not closed"
    assert built.closed_on[0] is not loop_thread, "the Store was closed on the event loop's thread"


class _BuildsSlowlyThenFails:
    """A backend factory that waits for the test, then refuses: a Store build that fails after its caller left."""

    release = threading.Event()

    def __init__(self, url: object) -> None:
        assert self.release.wait(10)
        raise fallthrough.PluginError("this backend cannot be built")


def test_a_cancelled_connect_async_whose_build_fails_logs_it_once(caplog: pytest.LogCaptureFixture) -> None:
    """Not asyncio's "Future exception was never retrieved", which the build's own future used to leave."""
    import gc

    registry = fallthrough.Registry()
    registry.register("slow", f"{__name__}:_BuildsSlowlyThenFails")
    unhandled: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unhandled.append(context))
        opening = asyncio.ensure_future(fallthrough.connect_async("slow://", registry=registry))
        await asyncio.sleep(0.05)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        _BuildsSlowlyThenFails.release.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if "failed to build its Store" in caplog.text:
                break
        gc.collect()
        await asyncio.sleep(0)

    with caplog.at_level("WARNING", "fallthrough"):
        asyncio.run(main())
    assert "a cancelled connect_async failed to build its Store: PluginError" in caplog.text
    assert unhandled == []


class _FailsOnceTheLoopIsGone:
    """A backend factory that refuses once the test lets it: after the caller's event loop has ended."""

    release = threading.Event()

    def __init__(self, url: object) -> None:
        assert self.release.wait(10)
        raise fallthrough.PluginError("this backend cannot be built either")


def test_a_cancelled_connect_async_whose_build_fails_after_its_loop_ended_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The warning hung on the loop's future, which a closed loop never settles: nothing was logged."""
    registry = fallthrough.Registry()
    registry.register("late", f"{__name__}:_FailsOnceTheLoopIsGone")

    async def main() -> None:
        opening = asyncio.ensure_future(fallthrough.connect_async("late://", registry=registry))
        await asyncio.sleep(0.05)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening

    with caplog.at_level("WARNING", "fallthrough"):
        asyncio.run(main())
        _FailsOnceTheLoopIsGone.release.set()
        deadline = time.monotonic() + 10
        while "failed to build its Store" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "a cancelled connect_async failed to build its Store: PluginError" in caplog.text


CANCELLED_CLOSE_AT_EXIT = """
import asyncio, pathlib, sys, time
import fallthrough
from fallthrough import hookimpl
from fallthrough.testing.model import ReferenceBackend

class SlowToClose(ReferenceBackend):
    @hookimpl
    def fallthrough_close(self):
        time.sleep(0.5)  # a close that replays journaled writes takes a while
        super().fallthrough_close()
        pathlib.Path(sys.argv[1]).write_text("closed")

registry = fallthrough.Registry()
registry.register("slow", "__main__:SlowToClose")

async def main():
    store = await fallthrough.connect_async("slow://", registry=registry)
    closing = asyncio.ensure_future(store.close())
    await asyncio.sleep(0.1)
    closing.cancel()  # the caller leaves; the close goes on in its thread
    try:
        await closing
    except asyncio.CancelledError:
        pass

asyncio.run(main())
"""


def test_a_close_whose_caller_was_cancelled_finishes_before_the_interpreter_exits(tmp_path: Path) -> None:
    """It ran on a daemon thread: the program ended right after the cancel, and the close was cut off."""
    marker = tmp_path / "closed"
    script = tmp_path / "cancel_close.py"
    script.write_text(CANCELLED_CLOSE_AT_EXIT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(marker)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert marker.read_text(encoding="utf-8") == "closed"
