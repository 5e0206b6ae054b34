"""A run from start to end: check the options, pick the backend (this process, spawned
workers, or a submitit job array), open the run folder, measure what is not done, and
make the tables from the records the run holds. ``execute`` returns them all, so the
command line prints without reading a file again; :func:`bench_cli.api.run_suite` is the
public face."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_cli import claims, plugins, spec, store, tables
from bench_cli.errors import IncompleteRun, UserError, unknown_name
from bench_cli.fsafe import output_folder, replace_file
from bench_cli.runner.plan import choose_folder, select_cases

if TYPE_CHECKING:
    from bench_cli.runner import Backend, Reporter

log = logging.getLogger("bench_cli")
Notify = Callable[[str], None]


@dataclass
class Finished:
    """A run's folder, every record it holds (read once) and the tables made from them."""

    folder: store.RunFolder
    records: list[dict[str, Any]]
    tables: list[tables.Table]


@dataclass
class Options:
    """How to run a suite: the keyword options of ``run_suite`` (see there)."""

    out: str | Path | None = None
    devices: Sequence[str] | None = None
    filter: Sequence[str] | None = None
    timeout: float | None = None
    results: str | Path = "results"
    resume: bool = False
    isolate: bool = False
    shard: str | None = None
    executor: str | None = None
    executor_options: dict[str, Any] = field(default_factory=dict)
    allow_mixed: bool = False
    retry: bool = True
    reporter: Reporter | None = None
    job_reporter: Any = None
    stop: Any = None


def code_under_test() -> dict[str, Any]:
    """The invocation's provenance: matbench's code (bench_cli.env.provenance) and the
    source digest of every plugin module imported, so a plugin edited between two runs
    into one folder is a change of code like an edit of matbench."""
    from bench_cli import env as env_mod

    return {**env_mod.provenance(), "plugins": plugins.plugin_digests()}


def check_timeout(timeout: float | None) -> None:
    """A per-case limit must be a finite number of seconds up to spec.MAX_TIMEOUT_S."""
    if timeout is not None and not 0 < timeout <= spec.MAX_TIMEOUT_S:  # NaN fails too
        raise UserError(
            f"--timeout must be seconds in (0, {spec.MAX_TIMEOUT_S:g}], got {timeout:g}"
        )


def require_devices(devices: Sequence[str]) -> None:
    """An explicit --device this machine lacks is a mistake (one line, exit 2), not a run
    of skipped records; a suite's own device list may still name one, and those cases
    are recorded as skipped with the reason."""
    from bench_cli import runner

    for device in devices:
        if device == "auto":
            continue
        reason = runner.device_unavailable(device)
        if reason:
            raise UserError(
                f"--device {device}: {reason}; leave --device out to run the suite's own "
                "devices (absent ones are recorded as skipped)"
            )


def measured_peaks(cases: Sequence[spec.Case]) -> dict[str, float]:
    """The batched-matmul rate of each (device, dtype) the run times, for "% of peak"."""
    from bench_cli import runner
    from bench_cli.metrics.timing import matmul_peak_gflops

    peaks = {}
    for device, dtype in sorted({(c.device, c.dtype) for c in cases}):
        if runner.device_unavailable(device) is None:
            try:
                peaks[f"{device}/{dtype}"] = round(matmul_peak_gflops(device, dtype), 3)
            except RuntimeError:  # no matmul kernel for this dtype here
                continue
    return peaks


def _backend(options: Options) -> Backend | None:
    """Spawned workers for ``isolate`` (the runner's own process otherwise)."""
    if not options.isolate:
        return None
    from bench_cli.runner import isolate

    isolate.grace_s()  # a bad MATBENCH_WORKER_GRACE_S, before any folder
    return isolate.Isolated()


def _scale_out(suite: spec.Suite, options: Options) -> Any:
    """The executor settings (the suite's, with the command line's overrides), or None."""
    if options.executor is None:
        return None
    from bench_cli.scaleout import settings

    if options.executor not in ("local", "slurm"):
        raise UserError(unknown_name("executor", options.executor, ("local", "slurm")))
    if options.isolate or options.shard:
        raise UserError("--executor runs its own shards: drop --isolate and --shard")
    settings.require_submitit()  # before any folder is made
    parsed = settings.parse_settings(suite.executor, suite.source)
    return parsed.model_copy(update=dict(options.executor_options))


def _cases(suite: spec.Suite, options: Options, scale_out: Any) -> list[spec.Case]:
    """The cases this invocation runs: selected, on devices this machine has (a job
    array's devices are its nodes'), and this shard's share."""
    from bench_cli.scaleout import shards, submit

    cases = select_cases(suite, options.devices, options.filter)
    if options.executor is None:
        require_devices(options.devices or ())
    if scale_out is not None and options.executor == "slurm":
        submit.preflight(scale_out, cases)  # sbatch's refusal, before any folder
    if options.shard is not None:
        index, count = shards.parse(options.shard)
        cases = shards.select(cases, index, count, suite.paired_timing)
    return cases


def _say_opening(folder: store.RunFolder, writer: store.RunWriter, say: Notify) -> None:
    say(f"run folder: {folder.path}")
    if writer.dropped:
        say(
            f"records.jsonl: dropped a torn last line ({len(writer.dropped)} bytes: "
            f"{writer.dropped[:60]!r}) left by an interrupted run; resuming from the last "
            "whole record"
        )
    if writer.mixed:
        say(f"mixed code: {writer.mixed}; new records carry their invocation")


def _run_array(suite, cases, folder, writer, scale_out, options: Options, say: Notify):
    """The executor path: adopt what earlier array tasks left, submit the rest, wait and
    append. (summary, outcome)."""
    from bench_cli import runner
    from bench_cli.scaleout import gather, submit

    order = {case.key: case.grid for case in cases}
    adopted = gather.adopt_earlier_shards(folder, writer, order)
    if adopted:
        say(f"appended {adopted} records that earlier array tasks left in shards/")
    todo = [case for case, _ in runner.pending(cases, suite, writer.done(options.retry))]
    say(
        f"{options.executor} executor: {len(todo)} cases as job arrays, logs under "
        f"{folder.path / 'submitit'}"
    )
    outcome = submit.submit_and_merge(
        suite, todo, folder, writer, str(options.executor), scale_out, options.devices or None,
        options.timeout, options.job_reporter,
    )  # fmt: skip
    return runner.Summary(planned=len(cases), already_done=len(cases) - len(todo)), outcome


def execute(suite: spec.Suite, options: Options, notify: Notify | None = None) -> Finished:
    """Run ``suite`` with ``options`` (see :func:`bench_cli.api.run_suite`)."""
    from bench_cli import env as env_mod
    from bench_cli import runner

    say = notify or log.info
    check_timeout(options.timeout)
    backend = _backend(options)
    scale_out = _scale_out(suite, options)
    cases = _cases(suite, options, scale_out)
    folder = choose_folder(
        suite, options.out, resume=options.resume, results=options.results, shard=options.shard
    )
    env = env_mod.collect()
    if "time" in {m.name for m in suite.metrics}:
        env["matmul_peak_gflops"] = measured_peaks(cases)
    outcome = None
    with folder.open_for_run(
        suite_name=suite.name, fingerprint=suite.fingerprint, suite_text=suite.text, env=env,
        provenance=code_under_test(), allow_mixed=options.allow_mixed,
        planned={"cases": len(cases), "metrics": [m.name for m in suite.metrics]},
    ) as writer:  # fmt: skip
        _say_opening(folder, writer, say)
        try:
            if scale_out is not None:
                summary, outcome = _run_array(suite, cases, folder, writer, scale_out, options, say)
            else:
                summary = runner.run(
                    suite, cases, writer, writer.done(options.retry), timeout=options.timeout,
                    reporter=options.reporter, backend=backend, stop=options.stop,
                )  # fmt: skip
        except KeyboardInterrupt:
            say(
                f"interrupted: {len(writer.done())} records are saved in {folder.path}; "
                f"run again with --out {folder.path} to finish"
            )
            raise
        records = list(writer.records)
    if summary.already_done:
        say(f"resumed: {summary.already_done} of {summary.planned} cases were already done")
    outline = spec.outline(suite.text, str(folder.path / "suite.yaml"))
    made = tables.tables_for(records, outline.tables, list(outline.metric_names))
    write_outputs(folder, records, made, say)
    finished = Finished(folder, records, made)
    if outcome is not None and outcome.message(folder.path):
        raise IncompleteRun(outcome.message(folder.path), finished)
    return finished


def write_outputs(
    folder: store.RunFolder,
    records: Sequence[dict[str, Any]],
    made: Sequence[tables.Table],
    say: Callable[[str], None] | None = None,
) -> None:
    """Write a run's tables and plots into its folder. Either failing costs one warning
    line, never a record: ``matbench show`` makes them again from the folder."""
    from bench_cli import plots

    for what, write in (
        ("tables", lambda: tables.write(made, folder.path / "tables")),
        ("conclusions", lambda: write_conclusions(made, folder.path / "tables")),
        ("plots", lambda: plots.write(records, folder.path / "plots", progress=say)),
    ):
        try:
            write()
        except Exception as exc:  # noqa: BLE001 -- every record is saved; say it in a line
            detail = (
                str(exc)
                if isinstance(exc, UserError | OSError)
                else (f"{type(exc).__name__}: {exc}")
            )
            log.warning(
                f"{what} not written: {detail}; every record is saved in {folder.path} "
                f"(`matbench show {folder.path}` makes them again)"
            )


def write_conclusions(made: Sequence[tables.Table], folder: Path) -> Path | None:
    """``conclusions.md``: the sentences the paired tables support across metrics
    (bench_cli.claims), when the suite has paired tables."""
    text = claims.conclusions(made)
    if not text:
        return None
    return replace_file(output_folder(folder) / "conclusions.md", text.encode())
