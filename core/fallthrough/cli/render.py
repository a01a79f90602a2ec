"""What the commands show a person: rich tables and bars, built from the public value types.

The same facts as the ``--json`` shapes (:mod:`fallthrough.cli.shapes`),
laid out for reading. Ids are never cut, so they can be copied into the
next command. Everything that comes from the stores or the user (keys,
errors, text, metadata, URLs) goes in as :class:`~rich.text.Text`, which rich
never reads as markup: a key ``[bold]sku-1`` is shown as it is; its control
and format characters are shown as escapes (:func:`~.exits.printable`), so
stored text cannot drive the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import attrs
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..types import BackendHealth, BackendInfo, Batch, Progress, Record, RepairCounts, RepairReport, SearchResult
from .exits import printable

BAR_WIDTH = 30
REPAIRED_KINDS = tuple(field.name for field in attrs.fields(RepairCounts))


def shown(text: str, style: str = "") -> Text:
    """Text from a store or a user, as stored but for its control and format characters (:func:`~.exits.printable`)."""
    return Text(printable(text), style=style)


def counts(progress: Progress) -> str:
    """``7/10 done (70%)`` and the count of each status: the line a script or a person greps."""
    return (
        f"{progress.done}/{progress.total} done ({progress.fraction:.0%}): "
        f"{progress.pending} pending, {progress.processing} processing, "
        f"{progress.completed} completed, {progress.failed} failed"
    )


def bar(progress: Progress, width: int = BAR_WIDTH) -> Text:
    """A bar of block characters: finished records in green (failed ones in red at the end), the rest dim.

    Plain characters rather than rich's drawn bar, so the bar reads the same
    in a terminal, in a pipe and in a log.
    """
    total = max(progress.total, 1)
    completed = round(width * progress.completed / total)
    failed = round(width * progress.done / total) - completed if progress.total else 0
    filled = completed + failed if progress.total else width
    return Text.assemble(
        ("█" * (completed if progress.total else width), "green"),
        ("█" * failed, "red"),
        ("░" * (width - filled), "bright_black"),
    )


def progress_line(progress: Progress) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_row(bar(progress), Text(counts(progress)))
    return grid


def status_view(batch: Batch, progress: Progress, failed: Sequence[Record]) -> RenderableType:
    """A batch's header, its bar and counts, and the failed records shown (the first ``--failed`` of them)."""
    header = Text.assemble(
        ("batch ", "bold"), (str(batch.id), "bold cyan"), f"  created {batch.created_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    parts: list[RenderableType] = [header]
    if batch.metadata:
        parts.append(shown(f"metadata {json.dumps(batch.metadata, ensure_ascii=False)}"))
    parts.append(progress_line(progress))
    if failed:
        table = Table(title=f"failed records ({len(failed)} of {progress.failed} shown)", title_justify="left")
        table.add_column("key", no_wrap=True)
        table.add_column("attempt", justify="right")
        table.add_column("error", overflow="fold")
        for record in failed:
            table.add_row(shown(record.key), str(record.attempt), shown(record.error or ""))
        parts.append(table)
    return Group(*parts)


def batches_table(items: Sequence[tuple[Batch, Progress]]) -> Table:
    table = Table()
    table.add_column("batch", no_wrap=True, min_width=36)
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("progress", no_wrap=True)
    table.add_column("done", justify="right", no_wrap=True)
    table.add_column("failed", justify="right")
    table.add_column("metadata", overflow="fold")
    for batch, progress in items:
        table.add_row(
            str(batch.id),
            f"{batch.created_at:%Y-%m-%d %H:%M:%S}",
            bar(progress, 20),
            f"{progress.done}/{progress.total}",
            str(progress.failed),
            shown(json.dumps(batch.metadata, ensure_ascii=False) if batch.metadata else ""),
        )
    return table


def hits_table(collection: str, result: SearchResult) -> Table:
    caption = f"served by {result.backend}" + (" (degraded: without the vector)" if result.degraded else "")
    table = Table(title=shown(f"{len(result)} hits in {collection}"), caption=shown(caption), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("id", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column("text", overflow="fold")
    table.add_column("metadata", overflow="fold")
    for rank, hit in enumerate(result, start=1):
        metadata = json.dumps(hit.metadata, ensure_ascii=False, default=str)
        table.add_row(str(rank), shown(hit.id), f"{hit.score:.4f}", shown(hit.text), shown(metadata))
    return table


def repair_table(report: RepairReport) -> Table:
    table = Table()
    table.add_column("store", no_wrap=True)
    for kind in REPAIRED_KINDS:
        table.add_column(kind, justify="right")
    for name, counts in report.sent.items():
        table.add_row(shown(name), *(str(getattr(counts, kind)) for kind in REPAIRED_KINDS))
    return table


def health_table(report: Sequence[BackendHealth]) -> Table:
    table = Table()
    table.add_column("store", no_wrap=True)
    table.add_column("url", overflow="fold")
    table.add_column("breaker", no_wrap=True)
    table.add_column("serves reads")
    table.add_column("pending hints", justify="right")
    table.add_column("lag (s)", justify="right")
    table.add_column("needs repair")
    table.add_column("last error", overflow="fold")
    for health in report:
        state_style = {"closed": "green", "open": "red"}.get(health.state, "yellow")
        table.add_row(
            shown(health.name),
            shown(health.url),
            shown(health.state, style=state_style),
            "yes" if health.serves_reads else "no",
            str(health.pending_hints),
            "" if health.lag is None else f"{health.lag:.1f}",
            "yes" if health.needs_repair else "no",
            shown(health.last_error or ""),
        )
    return table


def backends_table(infos: Sequence[BackendInfo]) -> Table:
    table = Table()
    table.add_column("backend", no_wrap=True)
    table.add_column("plugin", overflow="fold")
    table.add_column("distribution")
    table.add_column("version")
    table.add_column("status", overflow="fold")
    for info in infos:
        status = Text("ok", style="green") if info.error is None else shown(info.error, style="red")
        table.add_row(
            shown(info.name), shown(info.target), shown(info.distribution or ""), shown(info.version or ""), status
        )
    return table


__all__ = [
    "backends_table",
    "bar",
    "batches_table",
    "counts",
    "health_table",
    "hits_table",
    "progress_line",
    "shown",
    "status_view",
]
