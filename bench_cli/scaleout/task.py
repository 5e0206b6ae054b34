"""Inside an array task: run one shard into its own folder, and at the scheduler's
SIGTERM record the case in flight as failed (marked retry), keeping every record the
task finished."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench_cli import spec, store


class SchedulerStop(BaseException):
    """The scheduler's warning (time limit near) or SIGTERM (cancelled) arrived: the
    task must end now.

    A BaseException, so the runner's per-metric ``except Exception`` cannot
    record it as the case's own failure."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _InFlight:
    """A runner Reporter that remembers the case being measured and since when."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.case: spec.Case | None = None
        self.started = 0.0
        self.warned: float | None = None  # when the scheduler's warning came

    def start(self, total: int) -> None: ...

    def case_started(self, case) -> None:
        self.case, self.started = case, self.clock()

    def case_finished(self, case, records) -> None:
        self.case = None

    def finish(self) -> None: ...


def scheduler_killed_records(case, suite, seconds: float) -> list[dict[str, Any]]:
    """The records of a case the scheduler stopped: failed, reason ``timeout: killed by
    the scheduler after N s``, marked ``retry`` so that a re-run measures it again."""
    from bench_cli import runner

    why = f"timeout: killed by the scheduler after {seconds:.0f} s"
    records = runner.failed_records(case, suite, [m.name for m in suite.metrics], why)
    for record in records:
        record["retry"] = True
    return records


def run_shard(
    suite_text: str,
    source: str,
    keys: Sequence[str],
    devices,
    folder: str,
    timeout: float | None,
    stop_signal: int | None = None,
) -> str:
    """One array task: run the cases with these keys into their own run folder.

    ``stop_signal`` is the scheduler's warning that the limit is near (SIGUSR2 under
    submitit). Slurm may send it up to a minute early, so the task notes it and goes
    on; the SIGTERM that follows at the limit ends the task cleanly, the case in
    flight recorded as a retryable timeout. A SIGTERM with no warning before it
    means the task was cancelled (submitit would ignore it): the task ends with no
    record for the case in flight, and fails. Every finished case stays saved."""
    suite = spec.loads(suite_text, source)
    wanted = set(keys)
    cases = [case for case in suite.cases(devices) if case.key in wanted]
    shard = store.RunFolder(folder)
    tracker = _InFlight()
    previous = {}
    if stop_signal is not None:

        def on_signal(signum, frame):
            if signum == stop_signal:  # the limit is near: note it, use the time left
                tracker.warned = tracker.clock()
                return
            raise SchedulerStop(signum)

        for signum in (stop_signal, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        cancelled = _run_shard_cases(suite, cases, shard, suite_text, timeout, tracker)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if cancelled is not None:
        raise RuntimeError(
            f"stopped by SIGTERM (cancelled) with {cancelled} record(s) of "
            f"{len(cases) * len(suite.metrics)} saved"
        )
    return folder


def _run_shard_cases(suite, cases, shard, suite_text, timeout, tracker) -> int | None:
    """Run the shard's cases; the number of records saved if SIGTERM stopped it."""
    from bench_cli import env as env_mod
    from bench_cli import runner

    cancelled = None
    with shard.open_for_run(
        suite_name=suite.name,
        fingerprint=suite.fingerprint,
        suite_text=suite_text,
        env=env_mod.collect(),
        provenance=env_mod.provenance(),
    ) as writer:
        try:
            runner.run(suite, cases, writer, shard.done(), timeout=timeout, reporter=tracker)
        except SchedulerStop:
            if tracker.warned is None:  # SIGTERM with no warning first: cancelled
                cancelled = len(shard.done())
            elif tracker.case is not None:  # SIGTERM after the warning: the time limit
                elapsed = tracker.clock() - tracker.started
                writer.append(scheduler_killed_records(tracker.case, suite, elapsed))
    return cancelled
