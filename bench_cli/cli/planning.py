"""`matbench validate` and `matbench plan`: what a suite would run, and for how long."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from bench_cli import api, spec
from bench_cli.cli.console import (
    handles_errors,
    out_console,
    printable,
)
from bench_cli.cli.options import (
    DeviceOpt,
    FilterOpt,
    MaxCasesOpt,
    ResultsOpt,
    SuiteArg,
)


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
        for module, path in api.suite_plugins(suite).items():
            print(f"  imports plugin {module} from {path} (its code ran to check the suite)")


PLAN_TABLE_ROWS = 500  # beyond this, plan streams plain lines instead of one table


def print_plan(console: Console, suite: spec.Suite, cases, done) -> None:
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
    suite = api.load_suite(suite_file, max_cases=max_cases)
    found = api.plan(
        suite, out=out, results=results, devices=device, filter=filter,
        estimate_up_to=PLAN_TABLE_ROWS,
    )  # fmt: skip
    if found.against is not None:
        print(f"against run folder {found.against}")
    console = out_console()
    print_plan(console, suite, found.cases, found.done)
    if found.estimates is not None:
        _print_estimate(console, found.estimates)


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
