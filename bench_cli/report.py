"""`matbench report`: a self-contained static HTML page (no scripts, no external
files, plots inlined) of one or more runs, and of each compared with the first."""

from __future__ import annotations

import base64
import html as escape_html
from collections.abc import Sequence

from bench_cli import plots, spec, tables
from bench_cli import reproduce as reproduce_mod
from bench_cli.compare import Comparison, comparison_frame
from bench_cli.store import RunFolder

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0 1.6em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; }
"""
ENV_KEYS = (
    "machine_key",
    "cpu_model",
    "cpu_count",
    "torch_threads",
    "gpus",
    "torch",
    "cuda",
    "blas_lapack",
    "matmul_peak_gflops",
    "matbench",
    "git",
)


def _table(frame, index: bool = True) -> str:
    return frame.to_html(index=index, escape=True, border=0, na_rep="—")


def _image(fig) -> str:
    data = base64.b64encode(plots.png_bytes(fig)).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _run_section(folder: RunFolder) -> str:
    suite = spec.outline(folder.suite_text, str(folder.path / "suite.yaml"))
    records = folder.records()
    env = folder.env
    parts = [
        f"<h2>{escape_html.escape(suite.name)}: {escape_html.escape(str(folder.path))}</h2>",
        f"<p>{escape_html.escape(suite.description)}</p>",
        "<table>"
        + "".join(
            f"<tr><th>{escape_html.escape(k)}</th>"
            f"<td>{escape_html.escape(str(env.get(k)))}</td></tr>"
            for k in ENV_KEYS
            if k in env
        )
        + "</table>",
        f'<p class="note">{escape_html.escape(tables.status_summary(records))}</p>',
    ]
    for table in tables.tables_for(records, suite.tables, list(suite.metric_names)):
        parts.append(f"<h3>{escape_html.escape(table.title)}</h3>")
        parts.append(f'<p class="note">{escape_html.escape(table.metric)}</p>')
        parts.append(_table(table.formatted()))
    for _, fig in plots.all_figures(records):
        parts.append(_image(fig))
    if suite.reference is not None:
        frame = reproduce_mod.verdicts(records, suite.reference)
        parts.append(f"<h3>Published: {escape_html.escape(suite.reference.citation)}</h3>")
        parts.append(
            f'<p class="note">{escape_html.escape(suite.reference.source)}. '
            f"{escape_html.escape(reproduce_mod.summary(frame))}.</p>"
        )
        parts.append(_table(frame.astype(str), index=False))
    return "\n".join(parts)


def page(folders: Sequence[RunFolder], comparisons: Sequence[Comparison] = ()) -> str:
    """The whole page: comparisons first (if any), then every run's env, tables, plots."""
    body = [f"<h1>matbench report: {len(folders)} run{'s' * (len(folders) > 1)}</h1>"]
    if comparisons:
        body.append("<h2>Comparison with the first run</h2>")
        geomeans = {}
        for result in comparisons:
            body.append(
                f'<p class="note">B = {escape_html.escape(result.b)}<br>'
                f"A = {escape_html.escape(result.a)}</p>"
            )
            body.append(_table(comparison_frame(result), index=False))
            geomeans[result.b] = result.geomean
        if any(geomeans.values()):
            body.append(_image(plots.speedup_bars(geomeans)))
    body += [_run_section(folder) for folder in folders]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>matbench report</title>"
        f"<style>{STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )


def write_report(
    folders: Sequence[RunFolder], target, comparisons: Sequence[Comparison] = ()
) -> None:
    """Write :func:`page` to ``target``; a UserError if it cannot be written."""
    from pathlib import Path

    from bench_cli.errors import UserError

    target = Path(target)
    text = page(folders, comparisons)  # reading: its own errors name the file they read
    if target.is_symlink():
        raise UserError(f"{target}: is a symbolic link; matbench never writes through one")
    try:
        target.write_text(text)
    except OSError as exc:
        raise UserError(f"{target}: cannot write the report: {exc.strerror or exc}") from exc
