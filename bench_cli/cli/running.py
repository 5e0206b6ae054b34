"""`matbench run` and `matbench reproduce`: run a suite, print its tables."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.markup import escape

from bench_cli import api, spec, tables
from bench_cli.cli.console import (
    JobReporter,
    RichReporter,
    err_console,
    err_notify,
    handles_errors,
    out_console,
    print_tables,
    printable,
)
from bench_cli.cli.options import (
    MaxCasesOpt,
    ReproduceCheckOpt,
    ReproduceFromRunOpt,
    ReproduceNameOpt,
    ReproduceQuickOpt,
    ReproduceReadmeOpt,
    RunArrayParallelismOpt,
    RunExecutorOpt,
    RunGpusOpt,
    RunIsolateOpt,
    RunNoRetryFailedOpt,
    RunPartitionOpt,
    RunQuickOpt,
    RunSetupOpt,
    RunShardOpt,
    RunShardsCountOpt,
    RunTimeMinOpt,
    SuiteArg,
    with_run_options,
)
from bench_cli.cli.planning import print_plan
from bench_cli.errors import IncompleteRun, UserError
from bench_cli.records import RECORDS


def run_and_print(suite: spec.Suite, dry_run: bool, **options) -> api.Finished | None:
    """What `run` and `reproduce` share: plan (--dry-run), or run and print the tables."""
    console, err = out_console(), err_console()
    if dry_run:
        found = api.dry_run(suite, **options)
        print_plan(console, suite, found.cases, found.done)
        return None
    incomplete = None
    try:
        finished = api.run(
            suite, reporter=RichReporter(err), job_reporter=JobReporter(err),
            notify=err_notify(err), **options,
        )  # fmt: skip
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except IncompleteRun as exc:
        finished, incomplete = exc.finished, str(exc)
    folder, records = finished.folder, finished.records
    print_tables(finished.tables, console)
    err.print(tables.status_summary(records))
    noisy = tables.noise_summary(records)
    if noisy:
        err.print(escape(noisy), style="yellow")
    err.print(f"records: {folder.path / RECORDS}\ntables:  {folder.path / 'tables'}")
    if incomplete:
        err.print(f"[red]incomplete:[/red] {escape(incomplete)}")
        raise typer.Exit(1)
    return finished


@handles_errors
@with_run_options
def run(
    suite_file: SuiteArg,
    run: dict[str, Any],
    isolate: RunIsolateOpt = False,
    shard: RunShardOpt = None,
    executor: RunExecutorOpt = None,
    shards_count: RunShardsCountOpt = None,
    partition: RunPartitionOpt = None,
    gpus: RunGpusOpt = None,
    time_min: RunTimeMinOpt = None,
    array_parallelism: RunArrayParallelismOpt = None,
    setup: RunSetupOpt = None,
    no_retry_failed: RunNoRetryFailedOpt = False,
    quick: RunQuickOpt = False,
    max_cases: MaxCasesOpt = None,
) -> None:
    """Run a suite and write records and tables to a run folder.

    With --executor slurm, every node needs matbench at the same venv path as this
    one, and --out must be on a file system the nodes share (docs/clusters.md)."""
    overrides = {
        k: v
        for k, v in {
            "shards": shards_count,
            "partition": partition,
            "gpus": gpus,
            "time_min": time_min,
            "array_parallelism": array_parallelism,
            "setup": tuple(setup) if setup else None,
        }.items()
        if v is not None
    }
    run_and_print(
        api.load_suite(suite_file, quick=quick, max_cases=max_cases),
        run.pop("dry_run"),
        **run,
        isolate=isolate,
        shard=shard,
        executor=executor,
        executor_options=overrides,
        retry=not no_retry_failed,
    )


@handles_errors
@with_run_options
def reproduce(
    name: ReproduceNameOpt = None,
    check: ReproduceCheckOpt = False,
    quick: ReproduceQuickOpt = False,
    run: dict[str, Any] | None = None,
    readme: ReproduceReadmeOpt = None,
    from_run: ReproduceFromRunOpt = None,
) -> None:
    """Re-run a published table on this machine and set our numbers beside the source's."""
    run = dict(run or {})
    if readme is not None:
        count = api.write_readme_section(readme, run["results"])
        print(f"{readme}: reproduced tables rewritten from {count} suites")
        return
    if name is None:
        raise UserError(f"name a paper suite: {', '.join(api.paper_suites())}")
    path = api.paper_suite(name)
    suite = spec.load(path, quick=quick)
    if suite.reference is None and check:
        raise UserError(f"{path}: no reference: block, so --check has nothing to check")
    if from_run is not None:
        if suite.reference is None:
            raise UserError(f"{path}: no reference: block, so --from has nothing to judge")
        outcome = api.judge_existing(from_run, suite)
    else:
        finished = run_and_print(suite, run.pop("dry_run"), **run)
        if finished is None or suite.reference is None:
            return
        outcome = api.judge_reproduction(finished.folder, suite, records=finished.records)
    out_console().print(escape(outcome.text))
    if not check:
        return
    if outcome.failing:
        failing = outcome.failing
        for row in failing:
            print(f"does not reproduce: {printable(row)}", file=sys.stderr)
        print(f"matbench: {len(failing)} row(s) do not reproduce", file=sys.stderr)
        raise typer.Exit(1)
    if not outcome.reproduces:
        print(
            "matbench: nothing could be tested, so --check has shown nothing: "
            f"{outcome.why_untested}",
            file=sys.stderr,
        )
        raise typer.Exit(3)
