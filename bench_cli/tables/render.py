"""Tables as text and files: markdown, CSV and LaTeX, the terminal (rich), and the
files under a run's tables/."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table as RichTable
from tabulate import tabulate

from bench_cli.fsafe import output_folder, replace_file
from bench_cli.tables.build import Table
from bench_cli.tables.format import latex_cell, md_cell, plain

FORMATS = ("md", "csv", "latex")


def render(table: Table, fmt: str) -> str:
    """One table as markdown, CSV (raw SI numbers) or LaTeX (booktabs)."""
    if fmt == "csv":
        return table.frame.to_csv()
    shown = table.formatted().reset_index()
    headers = [str(c) for c in shown.columns]
    if fmt == "md":
        body = tabulate(
            [[md_cell(v) for v in row] for row in shown.values.tolist()],
            headers=[md_cell(h) for h in headers],
            tablefmt="github",
            disable_numparse=True,
        )
        legend = f" ({table.legend})" if table.legend else ""
        return f"### {md_cell(table.title)}\n\n`{plain(table.metric)}`{legend}\n\n{body}\n"
    if fmt == "latex":
        return latex_table(headers, shown.values.tolist())
    raise ValueError(f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")


def latex_table(headers: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A booktabs tabular, every cell escaped (:func:`latex_cell`): labels are data."""
    line = " & ".join
    body = [line(latex_cell(v) for v in row) + r" \\" for row in rows]
    return "\n".join(
        [
            r"\begin{tabular}{" + "l" * len(headers) + "}",
            r"\toprule",
            line(latex_cell(h) for h in headers) + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            "",
        ]
    )


def text_table(headers: Sequence[Any], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """A table for --format md or latex: cells escaped for the format."""
    if fmt == "latex":
        return latex_table(headers, rows)
    return tabulate(
        [[md_cell(v) for v in row] for row in rows],
        headers=[md_cell(h) for h in headers],
        tablefmt="github",
        disable_numparse=True,
    )


def to_rich(table: Table) -> RichTable:
    """A table for the terminal (rich), every user-derived string escaped."""
    shown = table.formatted().reset_index()
    # Labels such as ns[iters=3] would read as rich markup: escape every user-derived string.
    caption = table.metric + (f"; {table.legend}" if table.legend else "")
    out = RichTable(
        title=escape(plain(table.title)), caption=escape(plain(caption)), title_justify="left"
    )
    n_index = table.frame.index.nlevels
    for i, column in enumerate(shown.columns):
        is_index = i < n_index
        # One line per axis in headers such as "condition=100.0, dtype=float32"; no cell is
        # cut or squeezed: a table wider than the terminal wraps whole instead.
        header = escape(plain(column)).replace(", ", "\n")
        width = max([*map(len, str(column).split(", ")), *(len(str(v)) for v in shown[column])])
        out.add_column(
            header,
            justify="left" if is_index else "right",
            style="bold" if is_index else None,
            no_wrap=True,
            min_width=width,
        )
    for row in shown.itertuples(index=False):
        out.add_row(*(escape(plain(v)) for v in row))
    return out


def write(tables: Sequence[Table], folder: Path) -> list[Path]:
    """Write every table as .md, .csv and .tex under ``folder`` (re-made each time)."""

    folder = output_folder(folder)
    written = []
    for table in tables:
        for fmt, suffix in (("md", ".md"), ("csv", ".csv"), ("latex", ".tex")):
            path = folder / f"{table.stem}{suffix}"
            written.append(replace_file(path, render(table, fmt).encode()))
    return written
