"""What every command shares: the consoles, one-line errors and warnings, progress
reporters and the tables printed at the terminal."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table as RichTable

from bench_cli import claims, spec, tables
from bench_cli.errors import UserError, unknown_name


def out_console() -> Console:
    """stdout: at the terminal's width (or COLUMNS, where set), or, piped into a file,
    wide enough for any table."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit():
        return Console()  # rich reads COLUMNS: long cells wrap within it
    return Console(width=400)


def err_console() -> Console:
    """stderr: at the terminal's width, or, into a file or a pipe, never wrapped, so a
    path stays whole on its line (``records.jsonl``, not ``records.`` and ``jsonl``)."""
    if sys.stderr.isatty():
        return Console(stderr=True)
    return Console(stderr=True, width=400, soft_wrap=True)


printable = tables.plain  # control characters escaped: an error stays one line

STATE = {"debug": False, "debug_in_argv": False}


def fail(message: str, code: int = 2) -> typer.Exit:
    print(f"matbench: error: {printable(message)}", file=sys.stderr)
    return typer.Exit(code)


class _WarningLines(logging.Handler):
    """The library's warnings (a damaged record skipped, a duplicate dropped) as one
    line each on stderr, each said once per process."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.said: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = printable(record.getMessage())
        if message in self.said:
            return
        if len(self.said) > 10_000:
            self.said.clear()
        self.said.add(message)
        print(f"matbench: warning: {message}", file=sys.stderr)


def install_warnings() -> None:
    logger = logging.getLogger("bench_cli")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        logger.addHandler(_WarningLines())


def handles_errors(fn):
    """One line and exit 2 for a user's mistake; the traceback only with --debug."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            if STATE["debug"]:
                raise
            raise fail(str(exc)) from None

    return wrapper


def progress_bar(console: Console, eta: bool) -> Progress:
    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    if eta:
        columns += [TextColumn("eta"), TimeRemainingColumn()]
    return Progress(*columns, console=console)


class JobReporter:
    """Progress of submitted array tasks."""

    def __init__(self, console: Console):
        self.progress = progress_bar(console, eta=False)

    def start(self, total: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("array tasks", total=total)

    def progress_job(self, job) -> None:
        self.progress.update(self.task, description=f"task {job.job_id} done")
        self.progress.advance(self.task)

    def finish(self) -> None:
        self.progress.stop()


class RichReporter:
    """A rich progress bar: cases done, ETA, and the case in flight."""

    def __init__(self, console: Console):
        self.progress = progress_bar(console, eta=True)
        self.task: Any = None  # a rich TaskID once started

    def start(self, total: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("starting", total=total)

    def case_started(self, case: spec.Case) -> None:
        self.progress.update(self.task, description=escape(printable(case.label)))

    def case_finished(self, case: spec.Case, records) -> None:
        bad = [r for r in records if r["status"] in ("failed", "nonfinite")]
        for record in bad:
            detail = escape(printable(f"{case.label} {record['metric']}: {record['reason']}"))
            self.progress.console.print(f"[yellow]{record['status']}[/]: {detail}")
        self.progress.advance(self.task)

    def finish(self) -> None:
        self.progress.update(self.task, description="done")
        self.progress.stop()


def add_row(table: RichTable, *cells: str) -> None:
    """Add a row of plain text: names and summaries are never rich markup."""
    table.add_row(*(escape(printable(cell)) for cell in cells))


def print_tables(made: Sequence[tables.Table], console: Console) -> None:
    """Print a run's tables at the terminal, and the conclusions of its paired tables."""
    for table in made:
        console.print(tables.to_rich(table))
    across = claims.conclusions(made)
    if across:
        console.print("Conclusions, across every paired metric\n\n" + escape(across))


def check_format(format: str | None) -> None:
    if format is not None and format not in tables.FORMATS:
        raise UserError(unknown_name("format", format, tables.FORMATS))


def err_notify(err: Console):
    return lambda message: err.print(escape(printable(message)))
