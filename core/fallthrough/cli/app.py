"""The ``fallthrough`` commands: each one a thin layer over the public :class:`~fallthrough.Store` API.

Every command opens its own Store from ``--url`` (or ``FALLTHROUGH_URL``, or
the SQLite file ``fallthrough.db`` in the current directory), does one
thing, prints it (a table for a person, one JSON object with ``--json``)
and closes the Store. Results go to stdout; progress bars and notes go to
stderr, and only when stderr is a terminal. Errors become one line on
stderr and an exit code (:mod:`fallthrough.cli.exits`); ``docs/cli.md``
documents both.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
import json
import logging
import math
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar, cast

import click
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from .. import __version__
from ..errors import BackendUnavailable, FallthroughError, InvalidInput
from ..registry import available_backends
from ..runner import MIN_LEASE, process, stops_a_run
from ..store import DEFAULT_CLOSE_TIMEOUT, Store, connect
from ..types import Batch, Record
from ..types import Progress as BatchCounts
from ..urls import parse_url, secrets_of
from ..validation import MAX_LEASE, MAX_PAGE_SIZE, KeyDigests
from . import render, shapes
from .exits import ExitCode, Failure, failure_from, one_line, printable
from .inputs import (
    KEY_FORMATS,
    KeyFormat,
    chunks,
    describe_json_error,
    document_chunks,
    key_format,
    read_documents,
    read_keys,
)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_URL = "sqlite:///fallthrough.db"
URL_VARIABLE = "FALLTHROUGH_URL"
JOURNAL_VARIABLE = "FALLTHROUGH_JOURNAL"
PIPE_WIDTH = 160
SHOWN_ON_CONSOLE = "fallthrough_shown_on_console"
"""Set on a log record ``run`` printed above its bar, so that ``FALLTHROUGH_DEBUG``'s log does not print it again."""


# -- shared options and the Store -------------------------------------------


def store_options(command: F) -> F:
    """``--url`` (repeatable) and ``--journal``: which stores a command opens.

    A variable set to nothing is refused before the command does anything
    else (reads its input file, imports its handler), not once it opens the
    store (see :func:`_refuse_empty_variables`).
    """

    body = command

    @functools.wraps(body)
    def refusing_empty_variables(*args: Any, **kwargs: Any) -> Any:
        _refuse_empty_variables(kwargs["urls"], kwargs["journal"])
        return body(*args, **kwargs)

    command = cast(F, refusing_empty_variables)
    command = click.option(
        "--journal",
        envvar=JOURNAL_VARIABLE,
        metavar="URL",
        help=(
            f"Where writes a down store missed wait for replay (e.g. sqlite:///hints.db; one process at a time). "
            f"Default: ${JOURNAL_VARIABLE}, else memory."
        ),
    )(command)
    return click.option(
        "--url",
        "urls",
        multiple=True,
        envvar=URL_VARIABLE,
        metavar="URL",
        help=(
            f"A store URL; repeat it for several, in priority order. Default: ${URL_VARIABLE} "
            f"(several URLs separated by spaces), else {DEFAULT_URL} in the current directory."
        ),
    )(command)


def _refuse_empty_variables(urls: tuple[str, ...], journal: str | None) -> None:
    """Refuse ``FALLTHROUGH_URL`` or ``FALLTHROUGH_JOURNAL`` set to nothing, where no option stands in for it.

    click reads an empty variable as an unset one, so ``FALLTHROUGH_URL=""``
    (a value lost on its way through a deployment's configuration, say)
    would open ``fallthrough.db`` in the current directory, and an empty
    journal would keep missed writes in memory, both without a word.
    """
    # click passes a blank journal variable on as the value, and splits a blank URL list to nothing.
    journal_given = journal is not None and bool(journal.strip())
    for variable, given in ((URL_VARIABLE, bool(urls)), (JOURNAL_VARIABLE, journal_given)):
        value = os.environ.get(variable)
        if not given and value is not None and not value.strip():
            raise Failure(
                ExitCode.USAGE,
                f"${variable} is set but holds no URL: give one, or unset it for the default",
            )


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the shape is in docs/cli.md).")(
        command
    )


@contextlib.contextmanager
def opened(urls: tuple[str, ...], journal: str | None) -> Iterator[Store]:
    """The Store over ``urls``, closed on the way out; every error becomes a redacted :class:`Failure`."""
    chosen = urls or (DEFAULT_URL,)
    secrets: list[str] = []
    for url in (*chosen, *([journal] if journal else [])):
        with contextlib.suppress(InvalidInput):
            secrets.extend(secrets_of(parse_url(url)))
    try:
        store = connect(*chosen, journal=journal)
    except Exception as error:
        raise failure_from(error, secrets) from None
    try:
        yield store
    except Exception as error:
        raise failure_from(error, secrets) from None
    finally:
        in_memory = journal is None or parse_url(journal).drivername == "memory"
        try:
            if in_memory:
                _tell_of_writes_lost_at_exit(store)  # replays first, as closing would
        finally:
            store.close(timeout=0 if in_memory else DEFAULT_CLOSE_TIMEOUT)


def _tell_of_writes_lost_at_exit(store: Store) -> None:
    """Replay what a down store missed; what a memory journal still holds for it dies now: say so, and what mends it.

    Held: hints not replayed, or a repair mark (the journal gave up on a store down too long). The core
    logs it, but a command's log is silent unless FALLTHROUGH_DEBUG is set, and the store left behind
    would serve the next command's reads without those writes.
    """
    try:
        store.drain(timeout=DEFAULT_CLOSE_TIMEOUT)
    except Exception:  # what is left is told below; closing logs why
        pass
    finally:  # also when a second Ctrl-C cuts the replay short
        behind = [entry.name for entry in store.health() if entry.pending_hints or entry.needs_repair]
        if behind:
            click.echo(
                f"fallthrough: warning: {', '.join(behind)} missed writes that nothing replays once this command "
                f"exits (the journal is in memory): run `fallthrough repair` when "
                f"{'it is' if len(behind) == 1 else 'they are'} back; --journal sqlite:///hints.db keeps such "
                "writes for the next command",
                err=True,
            )


def bar_progress(console: Console, *, hidden: bool) -> Progress:
    """A rich progress display on stderr, hidden for ``--json`` and when stderr is not a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[items]}"),
        TimeElapsedColumn(),
        console=console,
        disable=hidden or not console.is_terminal,
        transient=True,
    )


def stdout_console() -> Console:
    """The console for results: the terminal's width, or a wide one when stdout is a pipe, so ids stay whole."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=PIPE_WIDTH)
    return console


def echo_json(shape: shapes.Shape) -> None:
    click.echo(shapes.dumps(shape))


def parse_json_option(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise Failure(ExitCode.INVALID_INPUT, f"{option} is not JSON: {error.msg} at column {error.colno}") from None
    except (ValueError, RecursionError) as error:
        raise Failure(
            ExitCode.INVALID_INPUT, f"{option}: JSON this reader cannot take ({describe_json_error(error)})"
        ) from None


def regular_file(file: Path) -> Path:
    """``file``, which the command reads twice (a check, then the write): a pipe would be empty the second time."""
    if not stat.S_ISREG(file.stat().st_mode):
        raise Failure(
            ExitCode.USAGE, f"{file} is not a regular file: it is read twice (checked, then written); save it to a file"
        )
    return file


def finite(_context: click.Context, parameter: click.Parameter, value: float | None) -> float | None:
    """A click callback: NaN and infinity pass ``FloatRange`` (they compare false), so they are refused here."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number of seconds, got {value}", param=parameter)
    return value


def require_batch(store: Store, batch_id: str) -> Batch:
    found = store.get_batch(batch_id)
    if found is None:
        raise Failure(ExitCode.NOT_FOUND, f"no batch {batch_id} in {', '.join(store.backend_names)}")
    return found


# -- the group ----------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fallthrough")
def cli() -> None:
    """Batch records and document search over stores that stand in for each other.

    Every command opens the stores given by --url (repeatable, in priority
    order) or $FALLTHROUGH_URL (several URLs separated by spaces), else the
    SQLite file fallthrough.db in the current directory, so state persists
    between commands. Every command takes --json.

    Exit codes: 0 ok, 1 internal error, 2 usage, 3 invalid input (bad URL,
    malformed file, bad filter), 4 batch not found, 5 no store available,
    130 interrupted (Ctrl-C, SIGTERM). See docs/cli.md.
    """


# -- batches and records --------------------------------------------------------


@cli.command()
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many batches to show.")
@store_options
@json_option
def batches(limit: int, urls: tuple[str, ...], journal: str | None, as_json: bool) -> None:
    """The batches, newest first, each with a progress bar."""
    with opened(urls, journal) as store:
        listed = [(item.batch, item.progress) for item in store.batches(limit=limit)]
    if as_json:
        shown = [{**shapes.batch_shape(batch), "progress": shapes.progress_shape(counts)} for batch, counts in listed]
        echo_json({"batches": shown})
    elif listed:
        stdout_console().print(render.batches_table(listed))
    else:
        click.echo("no batches yet: fallthrough create FILE makes one")


@cli.command()
@click.argument("batch")
@click.option("--watch", is_flag=True, help="Refresh until every record is completed or failed.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05, max=86_400),
    callback=finite,
    default=1.0,
    show_default=True,
    help="Seconds between refreshes (at most a day).",
)
@click.option(
    "--failed",
    "failed_limit",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many failed records to show with their errors.",
)
@store_options
@json_option
def status(
    batch: str,
    watch: bool,
    interval: float,
    failed_limit: int,
    urls: tuple[str, ...],
    journal: str | None,
    as_json: bool,
) -> None:
    """A batch's counts, a bar, and its failed records with their errors.

    With --watch it refreshes every --interval seconds until the batch is
    done (with --json: one JSON line per change).
    """
    out = stdout_console()
    with opened(urls, journal) as store:
        found = require_batch(store, batch)

        def snapshot() -> tuple[BatchCounts, list[Record]]:
            counts = store.progress(found.id)
            failed: list[Record] = []
            if failed_limit and counts.failed:
                pages = store.records(found.id, status="failed", page_size=min(failed_limit, MAX_PAGE_SIZE))
                failed = list(itertools.islice(pages, failed_limit))
            return counts, failed

        def shape(counts: BatchCounts, failed: list[Record]) -> shapes.Shape:
            return {
                "batch": shapes.batch_shape(found),
                "progress": shapes.progress_shape(counts),
                "failed": [shapes.record_shape(record) for record in failed],
            }

        counts, failed = snapshot()
        if not watch:
            if as_json:
                echo_json(shape(counts, failed))
            else:
                out.print(render.status_view(found, counts, failed))
            return
        if as_json or not out.is_terminal:
            last: BatchCounts | None = None
            while True:
                if counts != last:
                    echo_json(shape(counts, failed)) if as_json else click.echo(render.counts(counts))
                    last = counts
                if counts.done == counts.total:
                    break
                time.sleep(interval)
                counts, failed = snapshot()
            if not as_json:
                out.print(render.status_view(found, counts, failed))
            return
        with Live(render.status_view(found, counts, failed), console=out, auto_refresh=False) as live:
            while counts.done < counts.total:
                time.sleep(interval)
                counts, failed = snapshot()
                live.update(render.status_view(found, counts, failed), refresh=True)


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(KEY_FORMATS), help="Default: by --column/--field, else the suffix.")
@click.option("--column", help="CSV: the column (by header name) holding the keys.")
@click.option("--field", help="JSON Lines: the field holding the keys.")
@click.option("--batch-id", help="Use this id; an existing batch gets only the keys it lacks (a re-run resumes).")
@click.option(
    "--chunk-size", type=click.IntRange(1, 100_000), default=1000, show_default=True, help="Keys written per call."
)
@store_options
@json_option
def create(
    file: Path,
    fmt: KeyFormat | None,
    column: str | None,
    field: str | None,
    batch_id: str | None,
    chunk_size: int,
    urls: tuple[str, ...],
    journal: str | None,
    as_json: bool,
) -> None:
    """Create a batch from the keys of FILE and print its id.

    FILE holds one key a line, or a CSV column (--column), or a JSON Lines
    field (--field). It is checked whole first, so a malformed file writes
    nothing; then it is written in chunks, streaming. A key repeated in the
    file is taken once.
    """
    regular_file(file)
    chosen = key_format(file, fmt, column, field)
    err = Console(stderr=True)
    size = file.stat().st_size
    with bar_progress(err, hidden=as_json) as bars:
        task = bars.add_task("checking", total=size, items="")
        read = sum(1 for _ in read_keys(file, chosen, column=column, field=field, on_bytes=_advance(bars, task)))
        with opened(urls, journal) as store:
            before = 0
            if batch_id is not None:
                existing = store.get_batch(batch_id)
                before = existing.total if existing is not None else 0
            task = bars.add_task("creating", total=size, items="0 keys")
            keys = read_keys(file, chosen, column=column, field=field, on_bytes=_advance(bars, task))
            metadata = {"source": file.name}
            batch: Batch | None = None
            written = 0
            try:
                for chunk in chunks(keys, chunk_size):
                    if batch is None:
                        batch = store.create_batch(chunk, batch_id=batch_id, metadata=metadata)
                    else:
                        store.add_records(batch.id, chunk)
                    written += len(chunk)
                    bars.update(task, items=f"{written} keys")
            except KeyboardInterrupt:
                # Cut in its first chunk, a create given --batch-id may have made that batch, or added to it.
                target = batch.id if batch is not None else batch_id
                if target is None:
                    raise
                # The chunks written stay: the same command with this id adds the rest.
                raise Failure(
                    ExitCode.INTERRUPTED,
                    f"interrupted: batch {target} holds the keys written so far; "
                    f"run the same command with --batch-id {target} to add the rest",
                ) from None
            if batch is None:
                batch = store.create_batch([], batch_id=batch_id, metadata=metadata)
            final = require_batch(store, str(batch.id))
    added = final.total - before
    if as_json:
        echo_json({"batch": str(final.id), "total": final.total, "added": added, "read": read})
        return
    if err.is_terminal:
        err.print(
            f"batch {final.id}: {added} records added from {printable(file.name)} ({read} keys read), "
            f"{final.total} in all",
            soft_wrap=True,
            markup=False,  # the file's name is shown as it is
            highlight=False,
        )
    click.echo(str(final.id))


@cli.command(name="run")
@click.argument("batch")
@click.argument("handler", metavar="MODULE:FUNCTION")
@click.option(
    "--workers", type=click.IntRange(1, 1024), default=4, show_default=True, help="Threads calling the handler."
)
@click.option(
    "--lease",
    type=click.FloatRange(min=MIN_LEASE, max=MAX_LEASE),
    callback=finite,
    default=60.0,
    show_default=True,
    help="Seconds a claim holds a record before another runner may take it.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Calls per record at most; a failure before the last is retried (with backoff).",
)
@click.option(
    "--app-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory put first on the import path to find MODULE.",
)
@store_options
@json_option
def run_batch(
    batch: str,
    handler: str,
    workers: int,
    lease: float,
    max_attempts: int,
    app_dir: Path,
    urls: tuple[str, ...],
    journal: str | None,
    as_json: bool,
) -> None:
    """Process BATCH: call MODULE:FUNCTION on each pending record, in --workers threads.

    What the function returns is the record's result (JSON); what it raises,
    the record's error. Ctrl-C (or SIGTERM) stops cleanly: records not
    started are released, calls under way finish; a second Ctrl-C (or
    SIGTERM) stops waiting for them. Running it again resumes; several runners (processes,
    machines) may share one batch on a shared store.
    """
    function = import_handler(handler, app_dir)
    err = Console(stderr=True)
    stop = threading.Event()
    interrupted = False
    store_failure: FallthroughError | None = None
    with opened(urls, journal) as store, bar_progress(err, hidden=as_json) as bars:
        found = require_batch(store, batch)
        task = bars.add_task("running", total=found.total or 1, items="")

        def show(counts: BatchCounts) -> None:
            items = f"{counts.completed} completed, {counts.failed} failed, {counts.processing} processing"
            bars.update(task, total=counts.total or 1, completed=counts.done, items=items)

        # SIGTERM stops a runner as cleanly as a first Ctrl-C: it asks it to stop. The next one is a second Ctrl-C.
        with on_sigterm(functools.partial(_stop_or_interrupt, stop)), _runner_warnings(err, hidden=as_json):
            final: BatchCounts | None
            try:
                final = process(
                    store,
                    found.id,
                    function,
                    workers=workers,
                    lease=lease,
                    max_attempts=max_attempts,
                    on_progress=show,
                    stop=stop,
                )
            except BackendUnavailable as error:
                if not stop.is_set():
                    raise
                # SIGTERM asked it to stop, and every store failed while it let go: still a stop, exit 130.
                interrupted, store_failure = True, error
                final, _ = _counts_after_a_stop(store, found.id)
            except (KeyboardInterrupt, SystemExit, BaseExceptionGroup) as stopped:
                # A task group in the handler (trio's, anyio's) wraps an exit or a Ctrl-C: the same stop.
                if not stops_a_run(stopped):
                    raise
                exiting = _exit_in(stopped)
                final, unread = _counts_after_a_stop(store, found.id)
                # The runner keeps a store error met while it let go as its interrupt's cause.
                store_failure = stopped.__cause__ if isinstance(stopped.__cause__, BackendUnavailable) else unread
                if exiting is None:
                    interrupted = True
                elif final is None:
                    raise Failure(
                        ExitCode.INTERNAL,
                        f"the handler {handler} raised SystemExit({exiting.code!r}); the run stopped, and "
                        f"no store can read the counts now ({unread}): records whose release no store took "
                        "stay processing until their lease ends",
                    ) from None
                else:
                    # The handler called sys.exit(): the runner stopped and released what it held, as far as a
                    # store took the release (one that failed is a warning above; the counts show what stays).
                    raise Failure(
                        ExitCode.INTERNAL,
                        f"the handler {handler} raised SystemExit({exiting.code!r}); the run stopped and gave "
                        f"back the records it held, as far as a store took them: {render.counts(final)}",
                    ) from None
        interrupted = interrupted or stop.is_set()
    if as_json:
        shape = None if final is None else shapes.progress_shape(final)
        echo_json({"batch": str(found.id), "progress": shape, "interrupted": interrupted})
    else:
        click.echo(f"batch {found.id}: {'counts unknown' if final is None else render.counts(final)}")
    if interrupted and store_failure is not None:
        raise Failure(
            ExitCode.INTERRUPTED,
            f"interrupted while a store failed ({store_failure}): records whose release no store took "
            "stay processing until their lease ends; run again to resume",
        )
    if interrupted:
        raise Failure(
            ExitCode.INTERRUPTED,
            "interrupted: the records it held and had not finished were released; run again to resume",
        )


def _counts_after_a_stop(store: Store, batch_id: object) -> tuple[BatchCounts | None, FallthroughError | None]:
    """The batch's counts once a run was stopped, or None and why no store can read them now.

    An operator often stops a run because a store is down: the stop's own
    outcome (exit 130, or the handler's exit named) must not be lost to the
    error of this last read.
    """
    try:
        return store.progress(str(batch_id)), None
    except FallthroughError as error:
        return None, error


def _stop_or_interrupt(stop: threading.Event, signum: int, frame: FrameType | None) -> None:
    if stop.is_set():
        raise KeyboardInterrupt
    stop.set()


def import_handler(spec: str, app_dir: Path) -> Callable[[Record], Any]:
    """The function named ``module:function`` (dots allowed in both), importing from ``app_dir`` first."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise Failure(ExitCode.INVALID_INPUT, f"the handler must look like module:function, got {spec!r}")
    directory = str(app_dir.resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        found: object = importlib.import_module(module_name)
    except (Exception, SystemExit) as error:  # a module that exits on import (sys.exit, argparse) ran nothing
        raise Failure(
            ExitCode.INVALID_INPUT, f"cannot import the handler module {module_name!r}: {type(error).__name__}: {error}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise Failure(ExitCode.INVALID_INPUT, f"the handler module {module_name!r} has no {attribute!r}")
        found = getattr(found, part)
    if not callable(found):
        raise Failure(ExitCode.INVALID_INPUT, f"the handler {spec!r} is not callable")
    return cast(Callable[[Record], Any], found)


def _exit_in(stopped: BaseException) -> SystemExit | None:
    """The ``SystemExit`` that stopped a run, itself or the first in its exception group; None for a Ctrl-C."""
    if isinstance(stopped, BaseExceptionGroup):
        group = stopped.subgroup(SystemExit)
        if group is None:
            return None
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        return first if isinstance(first, SystemExit) else None
    return stopped if isinstance(stopped, SystemExit) else None


class _ConsoleWarnings(logging.Handler):
    """The runner's warnings (expired leases, a store down or slow) as one line each above the bar."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        line = f"fallthrough: warning: {one_line(record.getMessage())}"
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        setattr(record, SHOWN_ON_CONSOLE, True)


@contextlib.contextmanager
def _runner_warnings(console: Console, *, hidden: bool) -> Iterator[None]:
    """While ``run`` lasts, show what ``fallthrough.runner`` warns about on stderr (not with ``--json``)."""
    if hidden:
        yield
        return
    logger = logging.getLogger("fallthrough.runner")
    handler = _ConsoleWarnings(console)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def on_sigterm(handler: Callable[[int, FrameType | None], Any]) -> Iterator[None]:
    """``handler`` takes SIGTERM for the block, then the one before it is back; only the main thread can set it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _advance(bars: Progress, task: Any) -> Callable[[int], None]:
    return functools.partial(lambda count: bars.advance(task, count))


@cli.command()
@click.argument("batch")
@store_options
@json_option
def retry(batch: str, urls: tuple[str, ...], journal: str | None, as_json: bool) -> None:
    """Move BATCH's failed records back to pending, at their next attempt."""
    with opened(urls, journal) as store:
        found = require_batch(store, batch)
        moved = store.retry(found.id)
    if as_json:
        echo_json({"batch": str(found.id), "retried": moved})
    else:
        click.echo(f"{moved} failed records of batch {found.id} are pending again")


# -- documents ------------------------------------------------------------------


@cli.command()
@click.argument("collection")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--chunk-size", type=click.IntRange(1, 10_000), default=500, show_default=True, help="Documents written per call."
)
@store_options
@json_option
def load(
    collection: str, file: Path, chunk_size: int, urls: tuple[str, ...], journal: str | None, as_json: bool
) -> None:
    """Upsert the documents of a JSON Lines FILE into COLLECTION, in chunks.

    Each line is {"id": ..., "text": ..., "vector": [...], "metadata": {...}};
    only "id" is required. The file is checked whole first, so a malformed
    one writes nothing. An id repeated in the file keeps its last line.
    """
    err = Console(stderr=True)
    size = regular_file(file).stat().st_size
    with bar_progress(err, hidden=as_json) as bars:
        task = bars.add_task("checking", total=size, items="")
        read = sum(1 for _ in read_documents(file, on_bytes=_advance(bars, task)))
        with opened(urls, journal) as store:
            task = bars.add_task("loading", total=size, items="0 documents")
            # An id repeated across chunks is one document written twice: told apart by digest, not held.
            seen, written = KeyDigests(), 0
            for chunk in document_chunks(read_documents(file, on_bytes=_advance(bars, task)), chunk_size):
                store.upsert_documents(collection, chunk)
                written += len(chunk) - len(seen.suspects([document.id for document in chunk]))
                bars.update(task, items=f"{written} documents")
    if as_json:
        echo_json({"collection": collection, "documents": written, "read": read})
    else:
        click.echo(f"{written} documents loaded into {collection} from {printable(file.name)}")


@cli.command()
@click.argument("collection")
@click.option("--text", help="Every token must be present.")
@click.option("--vector", "vector_json", metavar="JSON", help="A JSON list of numbers, ranked by cosine.")
@click.option("--filter", "filter_json", metavar="JSON", help='A JSON filter, e.g. \'{"price": {"lt": 500}}\'.')
@click.option("--limit", type=click.IntRange(1, 10_000), default=10, show_default=True, help="How many hits.")
@store_options
@json_option
def search(
    collection: str,
    text: str | None,
    vector_json: str | None,
    filter_json: str | None,
    limit: int,
    urls: tuple[str, ...],
    journal: str | None,
    as_json: bool,
) -> None:
    """Search COLLECTION; print the hits and which store served them."""
    vector = parse_json_option(vector_json, "--vector")
    query_filter = parse_json_option(filter_json, "--filter")
    with opened(urls, journal) as store:
        result = store.search(collection, text=text, vector=vector, filter=query_filter, limit=limit)
    if as_json:
        echo_json(shapes.search_shape(collection, result))
    else:
        stdout_console().print(render.hits_table(collection, result))


# -- the stores -----------------------------------------------------------------


@cli.command()
@click.option("--batch", "batch_id", metavar="BATCH", help="Repair this batch only (its marks stay).")
@click.option("--collection", help="Repair this collection only (its marks stay).")
@click.option(
    "--page-size", type=click.IntRange(1, MAX_PAGE_SIZE), default=1000, show_default=True, help="Entries read per call."
)
@store_options
@json_option
def repair(
    batch_id: str | None,
    collection: str | None,
    page_size: int,
    urls: tuple[str, ...],
    journal: str | None,
    as_json: bool,
) -> None:
    """Compare the stores and bring each to the merge of all of them; show what was sent where.

    A store that is down, or cannot take its journaled writes now, is left
    out and keeps its repair mark: the exit code is then 5. Only a repair of
    everything (no --batch, no --collection) clears the marks.
    """
    with opened(urls, journal) as store:
        report = store.repair(batch_id, collection=collection, page_size=page_size)
        after = store.health()
    left_out = [entry.name for entry in after if entry.name not in report.sent]
    if as_json:
        echo_json(shapes.repair_shape(report, after))
    else:
        stdout_console().print(render.repair_table(report))
    if left_out:
        raise Failure(
            ExitCode.UNAVAILABLE,
            f"the repair left out {', '.join(left_out)} (down, or behind its journaled writes); "
            "run it again when they are back",
        )


@cli.command()
@store_options
@json_option
def health(urls: tuple[str, ...], journal: str | None, as_json: bool) -> None:
    """Ping each store; show its breaker state, lag, pending hints, and whether it needs a repair."""
    with opened(urls, journal) as store:
        report = store.health(ping=True)
    if as_json:
        echo_json({"stores": [shapes.health_shape(entry) for entry in report]})
    else:
        stdout_console().print(render.health_table(report))


@cli.command()
@json_option
def backends(as_json: bool) -> None:
    """The installed backend plugins, with distribution, version, and any import error."""
    infos = available_backends()
    if as_json:
        echo_json({"backends": [shapes.backend_info_shape(info) for info in infos]})
    else:
        stdout_console().print(render.backends_table(infos))


__all__ = ["DEFAULT_URL", "JOURNAL_VARIABLE", "SHOWN_ON_CONSOLE", "URL_VARIABLE", "cli", "on_sigterm", "opened"]
