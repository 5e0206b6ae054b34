"""What the submitting side knows of each array task: the job, its shard folder, its
time limit, and why it failed, named by its own exception."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_cli.scaleout.settings import SCHEDULER_ENDS


@dataclass
class Task:
    """One array task: its shard folder, its job and when it left the queue."""

    name: str
    folder: Path
    job: Any
    limit_s: float
    running_since: float | None = None
    gave_up: str | None = None


@dataclass
class Outcome:
    """What came back: why each failed task failed, stopped and missing cases."""

    failed: dict[str, str] = field(default_factory=dict)  # task name: reason
    retry: int = 0  # records of cases the scheduler stopped
    missing: int = 0  # cases submitted that still lack a record

    def message(self, folder: Path) -> str:
        """The one line that ends an incomplete run, or ''."""
        parts = []
        if self.failed:
            named = "; ".join(f"{name}: {why}" for name, why in sorted(self.failed.items()))
            parts.append(f"{len(self.failed)} array task(s) failed ({named})")
        if self.missing and not self.failed:
            parts.append(f"{self.missing} case(s) came back without a record")
        if self.retry:
            parts.append(
                f"{self.retry} record(s) were stopped by the scheduler's time limit "
                "(raise --time-min)"
            )
        if not parts:
            return ""
        return (
            "; ".join(parts) + f"; every finished record is saved: run again with --out "
            f"{folder} to measure the rest (logs under {folder / 'submitit'})"
        )


def task_exception(text: str) -> str:
    """The task's own exception line from a submitit failure message: the last line of
    the trace between its "----" rules (after it come only log paths), else the last
    line that names an error, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    rules = [i for i, line in enumerate(lines) if set(line) == {"-"}]
    if len(rules) >= 2 and rules[1] > rules[0] + 1:
        return lines[rules[1] - 1]
    named = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", line)]
    return (named or lines or [""])[-1]


def _task_failure(task: Task) -> str | None:
    """Why a finished task failed, in one line, or None if it returned its folder."""
    if task.gave_up:
        return task.gave_up
    try:
        task.job.result()
    except Exception as exc:  # noqa: BLE001 -- any failure of the task is reported, not raised
        state = ""
        with contextlib.suppress(Exception):  # no accounting: no state to name
            state = (str(task.job.state).split() or [""])[0].upper()
        why = task_exception(str(exc)) or type(exc).__name__
        if state in SCHEDULER_ENDS:
            why = f"{state.lower()} by the scheduler ({why})"
        return f"job {task.job.job_id}: {why}"[:400]
    return None
