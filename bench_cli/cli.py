"""The ``matbench`` command: thin Typer wrappers over the library.

Every command turns a :class:`UserError` into one line on stderr and exit
code 2; ``--debug`` (anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

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
from tabulate import tabulate
from typer.core import TyperGroup

import bench_cli
from bench_cli import api, claims, spec, store, tables
from bench_cli.compare import comparison_frame
from bench_cli.errors import IncompleteRun, UserError, unknown_name

# Modules that import torch (registry, runner, env, executor, advise) are imported inside
# the commands that run something: show, compare, report and merge never load torch.


class _OneLineErrors(TyperGroup):
    """The command group, with a bad option or argument said in one line and exit 2
    (``matbench: error: run: invalid value for '--timeout': ... (got 'ten')``), as every
    other mistake is, instead of a boxed usage screen."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(
                args=argv, prog_name=prog_name, complete_var=complete_var,
                standalone_mode=False, **extra,
            )  # fmt: skip
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        except typer.TyperException as exc:  # click's usage errors
            if not standalone_mode:
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `matbench`: the help
                exc.show()
                sys.exit(getattr(exc, "exit_code", 2))
            sys.exit(_usage_line(exc, argv))
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


def _usage_line(exc: Exception, argv: list[str]) -> int:
    """Print a usage error as one line, with the value given; its exit code."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path.removeprefix("matbench").strip() if ctx is not None else ""
    where = f"{command}: " if command else ""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    param = getattr(exc, "param", None)
    for opt in getattr(param, "opts", []) or []:
        for i, token in enumerate(argv):
            if token == opt and i + 1 < len(argv):
                message += f" (got '{argv[i + 1]}')"
            elif token.startswith(opt + "="):
                message += f" (got '{token.split('=', 1)[1]}')"
    hint = f" (matbench {command} --help)" if command else " (matbench --help)"
    print(f"matbench: error: {where}{printable(message)}{hint}", file=sys.stderr)
    return int(getattr(exc, "exit_code", 2))


app = typer.Typer(
    cls=_OneLineErrors,
    name="matbench",
    help="Accuracy, stability and speed benchmarks for structured (matrix-backprop) layers.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_state = {"debug": False, "debug_in_argv": False}


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


def _fail(message: str, code: int = 2) -> typer.Exit:
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


def _install_warnings() -> None:
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
            if _state["debug"]:
                raise
            raise _fail(str(exc)) from None

    return wrapper


def _print_version(value: bool) -> None:
    if value:  # eager: answered before a command is required (or a plugin loaded)
        print(f"matbench {bench_cli.__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    _state["debug"] = debug or _state["debug_in_argv"]
    _install_warnings()


def main() -> None:
    """Console entry point; accepts --debug after the command name too."""
    argv = sys.argv[1:]
    if "--debug" in argv:
        argv = [a for a in argv if a != "--debug"]
        _state["debug_in_argv"] = True
    app(args=argv, prog_name="matbench")


# ---------------------------------------------------------------- helpers

SuiteArg = Annotated[str, typer.Argument(help="Suite YAML file, or the name of a bundled suite.")]
DeviceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--device", "-d", help="Run on these devices instead of the suite's (repeatable)."
    ),
]
FilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--filter",
        "-k",
        help="Only cases matching AXIS=GLOB (e.g. dim=16, method=ns*) "
        "or a GLOB on the case label; repeat to AND.",
    ),
]
ResultsOpt = Annotated[Path, typer.Option("--results", help="Results root for new run folders.")]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="The run folder itself (created, or resumed if it holds an unfinished run of "
        "this suite).",
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume", help="Continue the latest unfinished run of this suite on this machine."
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", help="Per-case time limit in seconds (default: the suite's)."),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="List what would run; measure and write nothing.")
]
AllowMixedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-mixed",
        help="Resume a run measured by other code (another commit, edit or torch); the new "
        "records then carry their invocation.",
    ),
]
MaxCasesOpt = Annotated[
    int | None,
    typer.Option(
        "--max-cases",
        help=f"Refuse a grid of more cases than this (default {spec.MAX_CASES:,}), before "
        "expanding it.",
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", "-f", help="Print as md, csv or latex instead of a terminal table."),
]


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


def _add_row(table: RichTable, *cells: str) -> None:
    """Add a row of plain text: names and summaries are never rich markup."""
    table.add_row(*(escape(printable(cell)) for cell in cells))


def print_tables(folder: store.RunFolder, console: Console) -> list[tables.Table]:
    """Print a run's tables at the terminal; return them."""
    made = api.tables_of(folder)
    for table in made:
        console.print(tables.to_rich(table))
    across = claims.conclusions(made)
    if across:
        console.print("Conclusions, across every paired metric\n\n" + escape(across))
    return made


def _check_format(format: str | None) -> None:
    if format is not None and format not in tables.FORMATS:
        raise UserError(unknown_name("format", format, tables.FORMATS))


def _err_notify(err: Console):
    return lambda message: err.print(escape(printable(message)))


def _run_and_print(suite: spec.Suite, dry_run: bool, **options) -> store.RunFolder | None:
    """What `run` and `reproduce` share: plan (--dry-run), or run and print the tables."""
    console, err = out_console(), err_console()
    if dry_run:
        cases = api.select_cases(suite, options.get("devices"), options.get("filter"))
        folder = api.choose_folder(
            suite, options.get("out"), resume=options.get("resume", False),
            results=options.get("results", "results"), reserve=False,
        )  # fmt: skip
        done = api.done_in(folder, suite, retry=options.get("retry", True))
        _print_plan(console, suite, cases, done)
        return None
    incomplete = None
    try:
        folder = api.run_suite(
            suite, reporter=RichReporter(err), job_reporter=JobReporter(err),
            notify=_err_notify(err), **options,
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


# ---------------------------------------------------------------- commands


@app.command()
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
    _run_and_print(
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


@app.command()
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
        folder = _run_and_print(
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


@app.command()
@handles_errors
def compare(
    runs: Annotated[
        list[Path], typer.Argument(help="Run folders; each is compared with the first.")
    ],
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="Divide each run's times by this method's time on its own machine "
            "first: compare speed-ups, not raw times.",
        ),
    ] = None,
    min_effect: Annotated[
        float,
        typer.Option(
            "--min-effect",
            min=0.0,
            help="Smallest relative change called faster/slower (a change must also exceed "
            "the noise floor the two records measured; within it the verdict is ?).",
        ),
    ] = 0.05,
    mode: Annotated[
        str, typer.Option("--mode", help="Timing mode: fwd, bwd or fwd_bwd.")
    ] = "fwd_bwd",
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            "-d",
            help="Compare only the records measured on this device (cpu, cuda, cuda:1); "
            "default: every device, each case with its own.",
        ),
    ] = None,
    changed: Annotated[
        bool,
        typer.Option(
            "--changed",
            help="List only rows that changed or are inconclusive, not the unchanged (~).",
        ),
    ] = False,
    format: FormatOpt = None,
) -> None:
    """Compare runs of one suite across machines or versions, case by case."""
    _check_format(format)
    results = api.compare_runs(
        runs,
        baseline=baseline,
        min_effect=min_effect,
        mode=mode,
        device=device,
    )
    console = out_console()
    for result in results:
        frame = comparison_frame(result)
        unchanged = int((frame["verdict"] == "~").sum()) if len(frame) else 0
        if changed and len(frame):
            frame = frame[frame["verdict"] != "~"]
        title = f"B = {result.b}\nA = {result.a}"
        if changed:
            title += f"\n{unchanged} unchanged row(s) (~) not listed"
        if format == "csv":
            print(frame.to_csv(index=False))
        elif format is not None:
            fmt = "github" if format == "md" else "latex_booktabs"
            print(
                tabulate(
                    frame.values.tolist(),
                    headers=list(frame.columns),
                    tablefmt=fmt,
                    disable_numparse=True,
                )
            )
        else:
            table = RichTable(title=escape(title), title_justify="left")
            for column in frame.columns:
                table.add_column(escape(column), no_wrap=column != "case")
            for values in frame.itertuples(index=False):
                style = {
                    "slower": "red", "worse": "red", "faster": "green", "better": "green",
                    "?": "yellow",
                }.get(values.verdict)  # fmt: skip
                table.add_row(*(escape(str(v)) for v in values), style=style)
            console.print(table)
        print("\n".join(result.summary_lines()))


@app.command("report")
@handles_errors
def report_(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders; with two or more, the page also compares each with the first."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="The HTML file (default: report.html in the first run folder)."
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Compare speed-ups over this method instead of raw times."),
    ] = None,
) -> None:
    """Write a self-contained HTML page: environment, every table and plot, comparisons."""
    from bench_cli import report

    folders = [api.open_run(path) for path in runs]
    comparisons = api.compare_runs(runs, baseline=baseline) if len(folders) > 1 else []
    target = out or folders[0].path / "report.html"
    report.write_report(folders, target, comparisons)
    print(f"report: {target}")


@app.command()
@handles_errors
def advise(
    func: Annotated[str, typer.Option("--func", help="sqrt, invsqrt or log.")],
    batch: Annotated[int, typer.Option("--batch", help="Matrices per call.")],
    dim: Annotated[list[int], typer.Option("--dim", help="Matrix size (repeatable).")],
    dtype: Annotated[str, typer.Option("--dtype", help="float32 or float64.")] = "float32",
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "auto",
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance", help="Largest acceptable relative forward and gradient error, in (0, 1]."
        ),
    ] = 1e-3,
    need_grad: Annotated[
        bool,
        typer.Option(
            "--need-grad/--no-grad",
            help="Rank by forward+backward (default) or forward time; check gradients or not.",
        ),
    ] = True,
    budget: Annotated[float, typer.Option("--budget", help="Seconds for the whole advice.")] = 60.0,
    condition: Annotated[
        float, typer.Option("--condition", help="Condition number of the spd probe.")
    ] = 1e2,
    samples: Annotated[
        int | None,
        typer.Option("--samples", help="Samples N of the covariance probe (default 2·dim)."),
    ] = None,
    rank: Annotated[
        int | None,
        typer.Option("--rank", help="Also consider truncated and low-rank methods of this rank."),
    ] = None,
    save: Annotated[
        bool,
        typer.Option(
            "--save", help="Write the advice runs as ordinary run folders under --results."
        ),
    ] = False,
    suite_out: Annotated[
        Path | None,
        typer.Option(
            "--suite-out",
            help="Write the generated suites: FILE (timing) and FILE's siblings "
            "<stem>-spd/-covariance/-stability.yaml.",
        ),
    ] = None,
    results: ResultsOpt = Path("results"),
) -> None:
    """Which method should I use for this function, at these sizes, on this hardware?"""
    from bench_cli import advise as advise_mod

    if dtype not in ("float32", "float64"):
        raise UserError(f"--dtype must be float32 or float64, got '{dtype}'")
    if not spec.DEVICE_PATTERN.match(device):
        raise UserError(f"--device '{device}': expected cpu, cuda, cuda:N, mps or auto")
    question = advise_mod.Question(
        func=func,
        batch=batch,
        dims=list(dim),
        dtype=dtype,
        device=device,
        tolerance=tolerance,
        need_grad=need_grad,
        budget_s=budget,
        condition=condition,
        samples=samples,
        rank=rank,
    )
    question.check()
    err = err_console()
    result = advise_mod.advise(
        question, reporter_factory=lambda: RichReporter(err), save_to=results if save else None
    )
    console = out_console()
    for part in advise_mod.render(result, question):
        console.print(part)
    if suite_out is not None:
        written = advise_mod.write_suites(result, suite_out)
        console.print(f"suites: {', '.join(str(p) for p in written)}")
    for path in result.saved:
        console.print(f"saved: {path}")


@app.command()
@handles_errors
def merge(
    runs: Annotated[list[Path], typer.Argument(help="Shard run folders of one suite.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="The merged run folder (one per machine key beneath it if the shards differ).",
        ),
    ],
) -> None:
    """Combine shard runs into one run folder; refuses overlapping shards."""
    from bench_cli import shards

    folders = [api.open_run(path) for path in runs]
    for target in shards.merge(folders, out):
        folder = store.RunFolder(target)
        print(f"merged: {target} ({len(folder.records())} records)")


@app.command()
@handles_errors
def validate(
    suite_files: Annotated[list[str], typer.Argument(help="Suite YAML files or bundled names.")],
    max_cases: MaxCasesOpt = None,
) -> None:
    """Check suite files without running them."""
    for name in suite_files:
        suite = api.load_suite(name, max_cases=max_cases)
        print(
            f"{suite.source}: ok — {suite.case_count} cases, "
            f"{len(suite.methods)} method configs, metrics: "
            f"{', '.join(m.name for m in suite.metrics)}"
        )


PLAN_TABLE_ROWS = 500  # beyond this, plan streams plain lines instead of one table


def _print_plan(console: Console, suite: spec.Suite, cases, done) -> None:
    names = [m.name for m in suite.metrics]
    total = len(cases) if isinstance(cases, list) else suite.case_count
    columns = ("key", "method", "inputs", "device", "dtype", "status")
    table = RichTable(title=escape(f"{suite.name}: {total} cases"), title_justify="left")
    for column in columns:
        table.add_column(column)
    streaming = total > PLAN_TABLE_ROWS
    if streaming:  # a large grid: a line per case as it is expanded, not one table at the end
        print(f"{suite.name}: {total:,} cases\n" + "\t".join(columns), flush=True)
    n_done = 0
    for count, case in enumerate(cases, start=1):
        have = sum((case.key, n) in done for n in names)
        status = (
            "done" if have == len(names) else (f"{have}/{len(names)} metrics" if have else "to do")
        )
        n_done += status == "done"
        inputs = ", ".join(f"{k}={v}" for k, v in case.inputs.items() if k != "kind")
        row = (case.key, case.config.label, inputs, case.device, case.dtype, status)
        if streaming:
            print("\t".join(printable(cell) for cell in row), flush=count % 1000 == 0)
        else:
            table.add_row(*(escape(cell) for cell in row))
    if not streaming:
        console.print(table)
    console.print(f"{n_done} done, {total - n_done} to do")


@app.command()
@handles_errors
def plan(
    suite_file: SuiteArg,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Mark cases done in this run "
            "folder (default: the latest run of this suite on this machine).",
        ),
    ] = None,
    device: DeviceOpt = None,
    filter: FilterOpt = None,
    results: ResultsOpt = Path("results"),
    max_cases: MaxCasesOpt = None,
) -> None:
    """List the expanded cases of a suite and which are already done."""
    from bench_cli import env as env_mod

    suite = api.load_suite(suite_file, max_cases=max_cases)
    cases = api.select_cases(suite, device, filter) if filter else suite.iter_cases(device)
    done: set = set()
    machine = env_mod.machine_key()
    history = api.history_of(results, suite, machine)
    if out is not None:
        done = api.done_in(store.RunFolder(out), suite)
        history += store.RunFolder(out).records() if (out / "run.json").is_file() else []
    else:
        runs = api.matching_runs(results, suite, machine)
        if runs:
            done = runs[-1].done()
            print(f"against run folder {runs[-1].path}")
    console = out_console()
    _print_plan(console, suite, cases, done)
    if suite.case_count <= PLAN_TABLE_ROWS:  # a grid this size is cheap to expand twice
        picked = api.select_cases(suite, device, filter) if filter else suite.cases(device)
        _print_estimate(console, api.estimate(suite, picked, done, history))


def _print_estimate(console: Console, estimates) -> None:
    """One line per metric: the estimated seconds for the cases to do, and from what."""
    table = RichTable(title="estimated time for the cases to do", title_justify="left")
    for column in ("metric", "cases", "estimate", "from"):
        table.add_column(column)
    for e in estimates:
        sources = [
            f"{n} {what}"
            for n, what in (
                (e.measured, "earlier runs of the same case"),
                (e.similar, "the same method on other cases"),
                (e.modelled, "time budget x modes x 1.5"),
                (e.unknown, "unknown: nothing to go by"),
            )
            if n
        ]
        shown = "-" if e.cases == e.unknown else f"{e.seconds:,.0f} s"
        if e.unknown and e.cases != e.unknown:
            shown += " + ?"
        if e.cases != e.measured and e.cases != e.unknown:
            shown += " (guess)"
        table.add_row(e.metric, str(e.cases), shown, escape("; ".join(sources) or "-"))
    console.print(table)
    cases = sum(e.cases for e in estimates)
    measured = sum(e.measured for e in estimates)
    total = sum(e.seconds for e in estimates)
    if cases and measured == cases:
        console.print(
            f"total: about {total:,.0f} s, from this machine's earlier records of these cases"
        )
    elif cases:
        unpriced = sum(e.unknown for e in estimates)
        head = "unknown" if unpriced == cases else f"at least {total:,.0f} s"
        console.print(
            f"total: {head}, a guess: {cases - measured} of {cases} "
            "(case, metric) pairs have no earlier record on this machine"
            + (f", {unpriced} of them priced at nothing" if unpriced else "")
            + "; the time model counts only budget_s per mode (a slow call takes longer). "
            "A run with --quick first prices the cases for the next plan."
        )


@app.command("list")
@handles_errors
def list_(
    what: Annotated[
        str, typer.Argument(help="layers, methods, inputs, metrics, suites or all")
    ] = "all",
) -> None:
    """List registered layers, methods, input families, metrics and bundled suites."""
    kinds = ("layers", "methods", "inputs", "metrics", "suites")
    if what != "all" and what not in kinds:
        raise UserError(unknown_name("list", what, (*kinds, "all")))
    console = out_console()
    for kind in kinds if what == "all" else (what,):
        console.print(_LISTS[kind]())


def _list_layers() -> RichTable:
    """The layers: their inputs, methods and what they compute."""
    from bench_cli import registry

    table = RichTable(title="layers", title_justify="left")
    for col in ("layer", "inputs", "methods", "summary"):
        table.add_column(col)
    for layer in registry.layers().values():
        _add_row(
            table,
            layer.name,
            ", ".join(layer.input_kinds),
            ", ".join(layer.methods),
            layer.summary,
        )
    return table


def _list_methods() -> RichTable:
    """Every method of every layer: exactness, FLOP model, K̃ and options."""
    from bench_cli import registry

    table = RichTable(title="methods", title_justify="left")
    for col in ("layer", "method", "kind", "FLOPs", "K̃", "options", "summary"):
        table.add_column(col)
    for layer in registry.layers().values():
        for method in layer.methods.values():
            model = registry.options_model(layer.name, method.name)
            options = ", ".join(
                name if f.is_required() else f"{name}={f.default}"
                for name, f in model.model_fields.items()
            )
            k_tilde = registry.k_tilde_summary(method)
            _add_row(
                table,
                layer.name,
                method.name,
                "exact" if method.exact else "approximate",
                "modelled" if registry.flops_modelled(layer.name, method.name) else "n/a",
                k_tilde,
                options,
                method.summary,
            )
    return table


def _list_inputs() -> RichTable:
    """The input families and their parameters."""
    from bench_cli import registry

    table = RichTable(title="input kinds", title_justify="left")
    for col in ("kind", "parameters", "summary"):
        table.add_column(col)
    for family in registry.input_families().values():
        params = ", ".join(
            name if f.is_required() else f"{name}={f.default}"
            for name, f in family.params.model_fields.items()
        )
        _add_row(table, family.name, params, family.summary)
    return table


def _list_metrics() -> RichTable:
    """The metrics: unit, options and table paths."""
    from bench_cli import metrics as metrics_catalog

    table = RichTable(title="metrics", title_justify="left")
    for col in ("metric", "unit", "options", "table paths", "summary"):
        table.add_column(col)
    for metric in metrics_catalog.METRICS.values():
        options = ", ".join(
            f"{n}={f.get_default(call_default_factory=True)}"
            for n, f in metric.options.model_fields.items()
        )
        paths = ", ".join(f"{metric.name}.{v}" if v else metric.name for v in metric.views)
        _add_row(table, metric.name, metric.unit or "—", options, paths, metric.summary)
    return table


def _list_suites() -> RichTable:
    """The bundled suites, each validated."""
    root = api.suites_dir()
    table = RichTable(title=f"bundled suites ({root})", title_justify="left")
    for col in ("suite", "file", "description"):
        table.add_column(col)
    for name, path in api.bundled_suites().items():
        try:
            loaded = spec.load(path)
            description = loaded.description
            if loaded.reference is not None:
                description += f" [source: {loaded.reference.citation}]"
        except UserError as exc:
            description = f"invalid: {exc}"
        _add_row(table, name, str(path.relative_to(root)), description)
    return table


_LISTS = {
    "layers": _list_layers,
    "methods": _list_methods,
    "inputs": _list_inputs,
    "metrics": _list_metrics,
    "suites": _list_suites,
}


@app.command()
@handles_errors
def show(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    format: FormatOpt = None,
) -> None:
    """Re-make a run's tables from its records (never re-measures)."""

    _check_format(format)
    folder = api.open_run(run_dir)
    records = folder.records()
    made = api.tables_of(folder, records)
    api.write_outputs(folder, records, made, _err_notify(err_console()))
    if format is None:
        console = out_console()
        for table in made:
            console.print(tables.to_rich(table))
        print(tables.status_summary(records), file=sys.stderr)
        noisy = tables.noise_summary(records)
        if noisy:
            print(noisy, file=sys.stderr)
    else:
        print("\n".join(tables.render(t, format) for t in made))
    for line in store.describe_nodes(folder.env):
        print(f"measured on {line}", file=sys.stderr)


@app.command()
@handles_errors
def env(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the hardware and software matbench records with every run."""
    from bench_cli import env as env_mod

    info = env_mod.collect()
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    table = RichTable(title="environment", title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in info.items():
        table.add_row(
            key, json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
        )
    out_console().print(table)
