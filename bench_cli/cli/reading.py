"""The commands that read run folders and never measure: show, compare, report,
merge; and env, the machine as a run records it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from bench_cli import api, tables
from bench_cli.cli.console import (
    check_format,
    err_console,
    err_notify,
    handles_errors,
    out_console,
)
from bench_cli.cli.options import (
    CompareBaselineOpt,
    CompareChangedOpt,
    CompareDeviceOpt,
    CompareMinEffectOpt,
    CompareModeOpt,
    CompareRunsOpt,
    FormatOpt,
    ReportBaselineOpt,
    ReportOutOpt,
    ReportRunsOpt,
)
from bench_cli.compare import comparison_frame
from bench_cli.provenance import describe_nodes
from bench_cli.records import completeness


@handles_errors
def hardware(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="A suite name (its runs under --results, oldest first), or run folders "
            "(the first is the reference)."
        ),
    ],
    results: Annotated[
        Path, typer.Option("--results", help="Where a suite's runs are found.")
    ] = Path("results"),
    baseline: CompareBaselineOpt = None,
    min_effect: CompareMinEffectOpt = 0.05,
    mode: CompareModeOpt = "fwd_bwd",
    format: FormatOpt = None,
) -> None:
    """One suite's timings across every machine on record, a column per machine."""
    check_format(format)
    table = api.across_machines(
        targets, results=results, baseline=baseline, mode=mode, min_effect=min_effect
    )
    frame = table.frame.reset_index()
    if format == "csv":
        print(frame.to_csv(index=False))
    elif format is not None:
        print(tables.text_table(list(frame.columns), frame.values.tolist(), format))
        print(f"\n{table.legend}")
    else:
        rich_table = RichTable(title=f"{len(table.machines)} machines", title_justify="left")
        for column in frame.columns:
            rich_table.add_column(escape(str(column)))
        for values in frame.values.tolist():
            rich_table.add_row(*(escape(str(v)) for v in values))
        out_console().print(rich_table)
        print(table.legend, file=sys.stderr)
    for note in table.notes:
        print(note, file=sys.stderr)


@handles_errors
def show(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    format: FormatOpt = None,
) -> None:
    """Re-make a run's tables from its records (never re-measures)."""

    check_format(format)
    folder = api.open_run(run_dir)
    records = folder.records()
    made = api.tables_of(folder, records)
    api.write_outputs(folder, records, made, err_notify(err_console()))
    if format is None:
        console = out_console()
        for table in made:
            console.print(tables.to_rich(table))
        print(tables.status_summary(records), file=sys.stderr)
        incomplete = completeness(folder.meta, records)
        if incomplete:
            print(incomplete, file=sys.stderr)
        noisy = tables.noise_summary(records)
        if noisy:
            print(noisy, file=sys.stderr)
    else:
        print("\n".join(tables.render(t, format) for t in made))
    for line in describe_nodes(folder.env):
        print(f"measured on {line}", file=sys.stderr)


@handles_errors
def compare(
    runs: CompareRunsOpt,
    baseline: CompareBaselineOpt = None,
    min_effect: CompareMinEffectOpt = 0.05,
    mode: CompareModeOpt = "fwd_bwd",
    device: CompareDeviceOpt = None,
    changed: CompareChangedOpt = False,
    format: FormatOpt = None,
) -> None:
    """Compare runs of one suite across machines or versions, case by case."""
    check_format(format)
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
            print(tables.text_table(list(frame.columns), frame.values.tolist(), format))
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


@handles_errors
def report_(
    runs: ReportRunsOpt,
    out: ReportOutOpt = None,
    baseline: ReportBaselineOpt = None,
) -> None:
    """Write a self-contained HTML page: environment, every table and plot, comparisons."""
    from bench_cli import report

    folders = [api.open_run(path) for path in runs]
    comparisons = api.compare_runs(folders, baseline=baseline) if len(folders) > 1 else []
    target = out or folders[0].path / "report.html"
    report.write_report(folders, target, comparisons)
    print(f"report: {target}")


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
    for target, count in api.merge_runs(runs, out):
        print(f"merged: {target} ({count} records)")


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
