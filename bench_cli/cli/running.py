"""`matbench run` and `matbench reproduce`: run a suite, print its tables."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bench_cli import api, spec, store, tables
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
    AllowMixedOpt,
    DeviceOpt,
    DryRunOpt,
    FilterOpt,
    MaxCasesOpt,
    OutOpt,
    ResultsOpt,
    ResumeOpt,
    SuiteArg,
    TimeoutOpt,
)
from bench_cli.cli.planning import print_plan
from bench_cli.errors import IncompleteRun, UserError


def run_and_print(suite: spec.Suite, dry_run: bool, **options) -> store.RunFolder | None:
    """What `run` and `reproduce` share: plan (--dry-run), or run and print the tables."""
    console, err = out_console(), err_console()
    if dry_run:
        found = api.dry_run(suite, **options)
        print_plan(console, suite, found.cases, found.done)
        return None
    incomplete = None
    try:
        folder = api.run_suite(
            suite, reporter=RichReporter(err), job_reporter=JobReporter(err),
            notify=err_notify(err), **options,
        )  # fmt: skip
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except IncompleteRun as exc:
        folder, incomplete = exc.folder, str(exc)
    print_tables(folder, console)
    records = folder.records()
    err.print(tables.status_summary(records))
    noisy = tables.noise_summary(records)
    if noisy:
        err.print(escape(noisy), style="yellow")
    err.print(f"records: {folder.path / store.RECORDS}\ntables:  {folder.path / 'tables'}")
    if incomplete:
        err.print(f"[red]incomplete:[/red] {escape(incomplete)}")
        raise typer.Exit(1)
    return folder


@handles_errors
def run(
    suite_file: SuiteArg,
    out: OutOpt = None,
    resume: ResumeOpt = False,
    device: DeviceOpt = None,
    filter: FilterOpt = None,
    timeout: TimeoutOpt = None,
    dry_run: DryRunOpt = False,
    results: ResultsOpt = Path("results"),
    isolate: Annotated[
        bool,
        typer.Option(
            "--isolate",
            help="Run cases in a spawned worker process: a crash or hang costs only its case.",
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Run shard i/N of the cases (balanced, by case key); merge the shards "
            "with `matbench merge`.",
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor", help="local or slurm: run shards as a submitit job array, wait, merge."
        ),
    ] = None,
    shards_count: Annotated[
        int | None,
        typer.Option(
            "--shards", min=1, help="Array tasks for --executor (default: the suite's, or 2)."
        ),
    ] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="Slurm partition.")] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", min=0, help="GPUs per task.")] = None,
    time_min: Annotated[
        int | None, typer.Option("--time-min", min=1, help="Minutes per task.")
    ] = None,
    array_parallelism: Annotated[
        int | None, typer.Option("--array-parallelism", min=1, help="Slurm tasks running at once.")
    ] = None,
    setup: Annotated[
        list[str] | None,
        typer.Option(
            "--setup",
            help="A shell line each array task runs first, e.g. 'module load cuda' or "
            "'source /shared/venv/bin/activate' (repeatable; replaces the suite's).",
        ),
    ] = None,
    no_retry_failed: Annotated[
        bool,
        typer.Option(
            "--no-retry-failed",
            help="Keep cases a scheduler stopped at its time limit as timeouts instead "
            "of measuring them again.",
        ),
    ] = False,
    allow_mixed: AllowMixedOpt = False,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="The suite's reduced size (its quick: block): <name>-quick."),
    ] = False,
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
        dry_run,
        out=out,
        resume=resume,
        devices=device,
        filter=filter,
        timeout=timeout,
        results=results,
        isolate=isolate,
        shard=shard,
        executor=executor,
        executor_options=overrides,
        allow_mixed=allow_mixed,
        retry=not no_retry_failed,
    )


@handles_errors
def reproduce(
    name: Annotated[
        str | None,
        typer.Argument(
            help="A suite under suites/paper, e.g. song2021-truncation (see `matbench list "
            "suites`), or the path of a suite file with a reference: block."
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 0 only when at least one row was tested and every tested row "
            "reproduces; 1 when a row does not reproduce (naming the rows); 3 when nothing "
            "could be tested (every row inconclusive or not evidence).",
        ),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="The suite's reduced size (for CI): runs as <name>-quick."),
    ] = False,
    out: OutOpt = None,
    resume: ResumeOpt = False,
    device: DeviceOpt = None,
    filter: FilterOpt = None,
    timeout: TimeoutOpt = None,
    dry_run: DryRunOpt = False,
    results: ResultsOpt = Path("results"),
    readme: Annotated[
        Path | None,
        typer.Option(
            "--readme",
            help="Run nothing: rewrite the reproduced tables between this markdown page's "
            "'<!-- reproduced:start -->' and '<!-- reproduced:end -->' markers from the "
            "latest full run of every paper suite under --results (make docs-pages does "
            "it for docs/).",
        ),
    ] = None,
    allow_mixed: AllowMixedOpt = False,
    from_run: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Run nothing: judge the records of this finished run folder (of the same "
            "suite) against NAME's reference, e.g. after editing the reference. Writes "
            "nothing into the folder.",
        ),
    ] = None,
) -> None:
    """Re-run a published table on this machine and set our numbers beside the source's."""
    if readme is not None:
        count = api.write_readme_section(readme, results)
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
        folder = run_and_print(
            suite, dry_run, out=out, resume=resume, devices=device, filter=filter,
            timeout=timeout, results=results, allow_mixed=allow_mixed,
        )  # fmt: skip
        if folder is None or suite.reference is None:
            return
        outcome = api.judge_reproduction(folder, suite)
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
