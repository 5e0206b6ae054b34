"""The options several commands share, each with its help text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
