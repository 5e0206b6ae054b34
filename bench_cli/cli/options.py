"""The options several commands share, each with its help text."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from bench_cli import spec

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

# ------------------------------------------------ options of one command each

RunIsolateOpt = Annotated[
    bool,
    typer.Option(
        "--isolate",
        help="Run cases in a spawned worker process: a crash or hang costs only its case.",
    ),
]

RunShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="Run shard i/N of the cases (balanced, by case key); merge the shards "
        "with `matbench merge`.",
    ),
]

RunExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor", help="local or slurm: run shards as a submitit job array, wait, merge."
    ),
]

RunShardsCountOpt = Annotated[
    int | None,
    typer.Option(
        "--shards", min=1, help="Array tasks for --executor (default: the suite's, or 2)."
    ),
]

RunPartitionOpt = Annotated[str | None, typer.Option("--partition", help="Slurm partition.")]

RunGpusOpt = Annotated[int | None, typer.Option("--gpus", min=0, help="GPUs per task.")]

RunTimeMinOpt = Annotated[int | None, typer.Option("--time-min", min=1, help="Minutes per task.")]

RunArrayParallelismOpt = Annotated[
    int | None, typer.Option("--array-parallelism", min=1, help="Slurm tasks running at once.")
]

RunSetupOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--setup",
        help="A shell line each array task runs first, e.g. 'module load cuda' or "
        "'source /shared/venv/bin/activate' (repeatable; replaces the suite's).",
    ),
]

RunNoRetryFailedOpt = Annotated[
    bool,
    typer.Option(
        "--no-retry-failed",
        help="Keep cases a scheduler stopped at its time limit as timeouts instead "
        "of measuring them again.",
    ),
]

RunQuickOpt = Annotated[
    bool,
    typer.Option("--quick", help="The suite's reduced size (its quick: block): <name>-quick."),
]

ReproduceNameOpt = Annotated[
    str | None,
    typer.Argument(
        help="A suite under suites/paper, e.g. song2021-truncation (see `matbench list "
        "suites`), or the path of a suite file with a reference: block."
    ),
]

ReproduceCheckOpt = Annotated[
    bool,
    typer.Option(
        "--check",
        help="Exit 0 only when at least one row was tested and every tested row "
        "reproduces; 1 when a row does not reproduce (naming the rows); 3 when nothing "
        "could be tested (every row inconclusive or not evidence).",
    ),
]

ReproduceQuickOpt = Annotated[
    bool,
    typer.Option("--quick", help="The suite's reduced size (for CI): runs as <name>-quick."),
]

ReproduceReadmeOpt = Annotated[
    Path | None,
    typer.Option(
        "--readme",
        help="Run nothing: rewrite the reproduced tables between this markdown page's "
        "'<!-- reproduced:start -->' and '<!-- reproduced:end -->' markers from the "
        "latest full run of every paper suite under --results (make docs-pages does "
        "it for docs/).",
    ),
]

ReproduceFromRunOpt = Annotated[
    Path | None,
    typer.Option(
        "--from",
        help="Run nothing: judge the records of this finished run folder (of the same "
        "suite) against NAME's reference, e.g. after editing the reference. Writes "
        "nothing into the folder.",
    ),
]

CompareRunsOpt = Annotated[
    list[Path], typer.Argument(help="Run folders; each is compared with the first.")
]

CompareBaselineOpt = Annotated[
    str | None,
    typer.Option(
        "--baseline",
        help="Divide each run's times by this method's time on its own machine "
        "first: compare speed-ups, not raw times.",
    ),
]

CompareMinEffectOpt = Annotated[
    float,
    typer.Option(
        "--min-effect",
        min=0.0,
        help="Smallest relative change called faster/slower (a change must also exceed "
        "the noise floor the two records measured; within it the verdict is ?).",
    ),
]

CompareModeOpt = Annotated[str, typer.Option("--mode", help="Timing mode: fwd, bwd or fwd_bwd.")]

CompareDeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        "-d",
        help="Compare only the records measured on this device (cpu, cuda, cuda:1); "
        "default: every device, each case with its own.",
    ),
]

CompareChangedOpt = Annotated[
    bool,
    typer.Option(
        "--changed",
        help="List only rows that changed or are inconclusive, not the unchanged (~).",
    ),
]

ReportRunsOpt = Annotated[
    list[Path],
    typer.Argument(
        help="Run folders; with two or more, the page also compares each with the first."
    ),
]

ReportOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="The HTML file (default: report.html in the first run folder)."
    ),
]

ReportBaselineOpt = Annotated[
    str | None,
    typer.Option("--baseline", help="Compare speed-ups over this method instead of raw times."),
]

AdviseFuncOpt = Annotated[str, typer.Option("--func", help="sqrt, invsqrt or log.")]

AdviseBatchOpt = Annotated[int, typer.Option("--batch", help="Matrices per call.")]

AdviseDimOpt = Annotated[list[int], typer.Option("--dim", help="Matrix size (repeatable).")]

AdviseDtypeOpt = Annotated[str, typer.Option("--dtype", help="float32 or float64.")]

AdviseDeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")]

AdviseToleranceOpt = Annotated[
    float,
    typer.Option(
        "--tolerance", help="Largest acceptable relative forward and gradient error, in (0, 1]."
    ),
]

AdviseNeedGradOpt = Annotated[
    bool,
    typer.Option(
        "--need-grad/--no-grad",
        help="Rank by forward+backward (default) or forward time; check gradients or not.",
    ),
]

AdviseBudgetOpt = Annotated[float, typer.Option("--budget", help="Seconds for the whole advice.")]

AdviseConditionOpt = Annotated[
    float, typer.Option("--condition", help="Condition number of the spd probe.")
]

AdviseSamplesOpt = Annotated[
    int | None,
    typer.Option("--samples", help="Samples N of the covariance probe (default 2·dim)."),
]

AdviseRankOpt = Annotated[
    int | None,
    typer.Option("--rank", help="Also consider truncated and low-rank methods of this rank."),
]

AdviseSaveOpt = Annotated[
    bool,
    typer.Option("--save", help="Write the advice runs as ordinary run folders under --results."),
]

AdviseSuiteOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--suite-out",
        help="Write the generated suites: FILE (timing) and FILE's siblings "
        "<stem>-spd/-covariance/-stability.yaml.",
    ),
]


# ------------------------------------------------ the options of every command that runs

# (parameter, option type, default): declared once for run and reproduce alike.
RUN_OPTIONS = (
    ("out", OutOpt, None),
    ("resume", ResumeOpt, False),
    ("device", DeviceOpt, None),
    ("filter", FilterOpt, None),
    ("timeout", TimeoutOpt, None),
    ("dry_run", DryRunOpt, False),
    ("results", ResultsOpt, Path("results")),
    ("allow_mixed", AllowMixedOpt, False),
)


def with_run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with the options of RUN_OPTIONS in place of its ``run`` parameter:
    Typer shows and parses them there, and the command receives them as one dict
    ``run`` in api.run_suite's names (``devices`` for ``--device``)."""
    signature = inspect.signature(command, eval_str=True)
    names = [name for name, _, _ in RUN_OPTIONS]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, kind, default in RUN_OPTIONS
    ]
    params = []
    for param in signature.parameters.values():
        if param.name == "run":
            params += shared
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        run = {name: kwargs.pop(name) for name in names}
        run["devices"] = run.pop("device")
        return command(run=run, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper
