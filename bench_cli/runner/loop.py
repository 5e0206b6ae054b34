"""The run loop: the pending work of a suite, in the order it runs (one case, or one
paired-timing group, at a time), measured on a backend the caller passes in, with
progress and advise's budget (``stop``). Resume is the ``done`` set: what a run folder
already holds is never measured again."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from bench_cli.runner import case as case_mod
from bench_cli.runner.case import RecordSink, Reporter, SilentReporter, Summary
from bench_cli.spec import Case, Suite

log = logging.getLogger("bench_cli")


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
    groups = _groups(cases) if suite.paired_timing else {}
    try:
        all_units = units(work, suite)
        for index, unit in enumerate(all_units):
            if stop is not None and stop():
                summary.cut = sum(len(u) for u in all_units[index:])
                break
            limit = timeout or suite.timeout
            grouped = [case for case, todo in unit if "time" in todo] if suite.paired_timing else []
            # A paired group's other metrics first, each case's records kept as it ends: an
            # interrupt during the group's timing loses only that timing.
            finished: list[tuple[Case, list[dict]]] = []
            timing_later = {case.key for case in grouped}
            for case, todo in unit:
                reporter.case_started(case)
                rest = [name for name in todo if case.key not in timing_later or name != "time"]
                records: list[dict] = backend.run(case, suite, rest, limit) if rest else []
                writer.append(records)
                finished.append((case, records))
            timed: dict[str, dict] = {}
            if grouped:
                partners = _partners(grouped, groups[grouped[0].group_key], suite)
                if partners:
                    log.warning(split_message(grouped, partners))
                timed = backend.run_group([*grouped, *partners], suite, limit)
                timed = {case.key: timed[case.key] for case in grouped}  # partners' dropped
                writer.append(list(timed.values()))
                left_out = next(
                    (r["value"]["interleaved"].get("left_out") for r in timed.values()
                     if r["status"] == "ok" and "left_out" in r["value"].get("interleaved", {})),
                    None,
                )  # fmt: skip
                if left_out:
                    log.warning(left_out_message(grouped, left_out))
            for case, records in finished:
                records = [timed[case.key], *records] if case.key in timed else records
                summary.ran += 1
                for record in records:
                    summary.statuses[record["status"]] += 1
                reporter.case_finished(case, records)
    finally:
        backend.close()
        reporter.finish()
    return summary


def _groups(cases: Sequence[Case]) -> dict[str, list[Case]]:
    out: dict[str, list[Case]] = {}
    for case in cases:
        out.setdefault(case.group_key, []).append(case)
    return out


def _partners(grouped: Sequence[Case], group: Sequence[Case], suite: Suite) -> list[Case]:
    """The baselines the cases still to time are paired with, where an earlier session
    timed them already (a split group, resumed): timed again beside them for the pairing,
    their new records dropped, their first records kept."""
    pairs = case_mod._pairs(group, suite)
    wanted = {
        group[p].key for c, p in zip(group, pairs, strict=True) if p is not None and c in grouped
    }
    return [c for c in group if c.key in wanted and c not in grouped]


def split_message(grouped: Sequence[Case], partners: Sequence[Case]) -> str:
    """One line for a resumed paired group that an earlier session timed in part."""
    return (
        f"paired group of {grouped[0].label}: split by an earlier session; timing "
        f"{', '.join(c.config.label for c in grouped)} now, beside "
        f"{', '.join(c.config.label for c in partners)} timed again for the pairing only "
        "(their earlier records are kept)"
    )


def left_out_message(grouped: Sequence[Case], left_out: dict[str, str]) -> str:
    """One line for a paired group that timed without methods that failed on their own."""
    names = "; ".join(f"{name} ({reason})" for name, reason in left_out.items())
    return (
        f"paired group of {grouped[0].label}: {names}; the other methods were timed "
        "without it, paired among themselves"
    )


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
