"""The run loop: the pending work of a suite, in the order it runs (one case, or one
paired-timing group, at a time), measured on a backend the caller passes in, with
progress and advise's budget (``stop``). Resume is the ``done`` set: what a run folder
already holds is never measured again."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from bench_cli.runner import case as case_mod
from bench_cli.runner.case import RecordSink, Reporter, SilentReporter, Summary
from bench_cli.spec import Case, Suite


def pending(cases: Sequence[Case], suite: Suite, done: set[tuple[str, str]]):
    """(case, metrics still to measure) for every case with work left."""
    names = [m.name for m in suite.metrics]
    out = []
    for case in cases:
        todo = [n for n in names if (case.key, n) not in done]
        if todo:
            out.append((case, todo))
    return out


Work = list[tuple[Case, list[str]]]


def units(work: Work, suite: Suite) -> list[Work]:
    """The pending work in the order it runs: one case at a time, or with a baseline each
    paired-timing group together (in the order its first case comes)."""
    if not suite.paired_timing:
        return [[item] for item in work]
    groups: dict[str, Work] = {}
    for item in work:
        groups.setdefault(item[0].group_key, []).append(item)
    return list(groups.values())


def run(
    suite: Suite,
    cases: Sequence[Case],
    writer: RecordSink,
    done: set[tuple[str, str]],
    *,
    timeout: float | None = None,
    reporter: Reporter | None = None,
    backend: Backend | None = None,
    stop: Callable[[], bool] | None = None,
) -> Summary:
    """Measure every pending (case, metric); each case's records go to ``writer`` as it ends.
    ``stop`` (advise's budget) is asked before each case or paired group: once it says
    so, nothing more starts, and ``Summary.cut`` counts the cases left."""
    reporter = reporter or SilentReporter()
    backend = backend or InProcess()
    work = pending(cases, suite, done)
    summary = Summary(planned=len(cases), already_done=len(cases) - len(work))
    reporter.start(len(work))
    try:
        all_units = units(work, suite)
        for index, unit in enumerate(all_units):
            if stop is not None and stop():
                summary.cut = sum(len(u) for u in all_units[index:])
                break
            limit = timeout or suite.timeout
            timed: dict[str, dict] = {}
            grouped = [case for case, todo in unit if "time" in todo] if suite.paired_timing else []
            if grouped:
                reporter.case_started(grouped[0])
                timed = backend.run_group(grouped, suite, limit)
                writer.append(list(timed.values()))
            for case, todo in unit:
                reporter.case_started(case)
                rest = [name for name in todo if case.key not in timed or name != "time"]
                records: list[dict] = backend.run(case, suite, rest, limit) if rest else []
                writer.append(records)
                records = [timed[case.key], *records] if case.key in timed else records
                summary.ran += 1
                for record in records:
                    summary.statuses[record["status"]] += 1
                reporter.case_finished(case, records)
    finally:
        backend.close()
        reporter.finish()
    return summary


class Backend(Protocol):
    """Where cases are measured: in this process (:class:`InProcess`), or in a spawned
    worker (:class:`bench_cli.runner.isolate.Isolated`), chosen by the caller, not the runner."""

    def run_group(self, cases: Sequence[Case], suite: Suite, limit: float) -> dict[str, dict]:
        """The time records of one paired-timing group, by case key."""
        ...

    def run(self, case: Case, suite: Suite, metrics: list[str], limit: float) -> list[dict]:
        """One case's records for these metrics."""
        ...

    def close(self) -> None: ...


class InProcess:
    """Measure in this process."""

    def run_group(self, cases: Sequence[Case], suite: Suite, limit: float) -> dict[str, dict]:
        return case_mod.run_time_group(cases, suite, limit)

    def run(self, case: Case, suite: Suite, metrics: list[str], limit: float) -> list[dict]:
        return case_mod.run_case(case, suite, metrics, limit)

    def close(self) -> None:
        pass
