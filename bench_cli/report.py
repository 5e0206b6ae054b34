"""`matbench report`: a self-contained static HTML page (no scripts, no external
files, plots inlined) of one or more runs, and of each compared with the first."""

from __future__ import annotations

import base64
import html as escape_html
import re
from collections.abc import Sequence

from bench_cli import plots, spec, tables
from bench_cli import reproduction as reproduce_mod
from bench_cli.compare import Comparison, comparison_frame
from bench_cli.records import completeness
from bench_cli.store import RunFolder

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
/* Every table fits the page: cells wrap at spaces (a word too long for its column breaks),
   so no column hides behind a scrollbar in a 1200 px window. */
table { border-collapse: collapse; margin: 0.8em 0 1.6em; font-size: 0.9em; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: normal;
         overflow-wrap: break-word; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
table.wrap { width: 100%; }
table.wrap td, table.wrap th { text-align: left; }
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


def _table(frame, index: bool = True, wrap: bool = False) -> str:
    """A table; ``wrap`` lets every cell wrap, so a wide answer fits the window."""
    classes = ["wrap"] if wrap else None
    return frame.to_html(index=index, escape=True, border=0, na_rep="—", classes=classes)


def _image(fig) -> str:
    data = base64.b64encode(plots.png_bytes(fig)).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


_LABEL = re.compile(r"^(?P<kind>[\w-]+)\((?P<inputs>.*)\)(?P<rest>.*)$")


def short_labels(labels: Sequence[str]) -> dict[str, str]:
    """Case labels like ``spd(batch=4, dim=16, condition=100.0) float32`` without the
    inputs every label shares, so a table shows what differs, e.g. ``spd(dim=16) float32``."""
    parsed = {label: _LABEL.match(label) for label in labels}
    pairs = {
        label: match["inputs"].split(", ") if match and match["inputs"] else []
        for label, match in parsed.items()
    }
    everywhere = set.intersection(*(set(p) for p in pairs.values())) if pairs else set()
    out = {}
    for label, match in parsed.items():
        if match is None:
            out[label] = label
            continue
        kept = ", ".join(p for p in pairs[label] if p not in everywhere)
        out[label] = f"{match['kind']}({kept}){match['rest']}"
    return out


def which_method_section(records) -> str:
    """ "Which method?" from the run itself: per input setting and function computed, the
    fastest method whose forward and gradient errors are both within each tolerance
    (bench_cli.pareto), and the Pareto front; empty without errors and times together."""
    import pandas as pd

    from bench_cli import pareto

    found = pareto.settings(records)
    if not found:
        return ""
    short = short_labels([setting.label for setting in found])
    rows = pareto.answer_rows(found, short)
    parts = [_table(pd.DataFrame(rows), index=False, wrap=True)]
    for setting in found[:MAX_PARETO_PLOTS]:
        parts.append(_image(plots.pareto(setting, short[setting.label])))
    others = pareto.alone(records, found)
    if others:
        parts.append(
            '<p class="note">Not compared as a route to another output: '
            + escape_html.escape("; ".join(others))
            + ". They compute another function or descriptor; a task suite compares "
            "descriptors by task accuracy (its paired tables).</p>"
        )
    return (
        "<h2>Which method?</h2>"
        '<p class="note">From this run\'s own records. Per setting and function computed, '
        "each tolerance names the fastest method whose forward <em>and</em> gradient errors "
        "are both within it, and only when its lead over the runner-up is established: "
        "neither timing flagged noisy (⚠), and the 95% interval of their time ratio (paired "
        "round by round where the suite has a <code>baseline:</code>) below 0.95. Otherwise "
        "it says inconclusive. The front holds the methods no other beats on both the worse "
        "error and speed: method (speed, worse error). <code>matbench advise</code> "
        "measures the candidates again, interleaved.</p>" + "\n".join(parts)
    )


MAX_PARETO_PLOTS = 6


def _run_section(folder: RunFolder) -> str:
    suite = spec.outline(folder.suite_text, str(folder.path / "suite.yaml"))
    records = folder.records()
    env = folder.env
    parts = [
        f"<h2>{escape_html.escape(suite.name)}: {escape_html.escape(str(folder.path))}</h2>",
        f"<p>{escape_html.escape(suite.description)}</p>",
        which_method_section(records),
        "<table>"
        + "".join(
            f"<tr><th>{escape_html.escape(k)}</th>"
            f"<td>{escape_html.escape(str(env.get(k)))}</td></tr>"
            for k in ENV_KEYS
            if k in env
        )
        + "</table>",
        f'<p class="note">{escape_html.escape(tables.status_summary(records))}</p>',
        *(
            [f'<p class="note"><b>{escape_html.escape(incomplete)}</b></p>']
            if (incomplete := completeness(folder.meta, records))
            else []
        ),
    ]
    for table in tables.tables_for(records, suite.tables, list(suite.metric_names)):
        parts.append(f"<h3>{escape_html.escape(table.title)}</h3>")
        caption = table.metric + (f"; {table.legend}" if table.legend else "")
        parts.append(f'<p class="note">{escape_html.escape(caption)}</p>')
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
            frame = comparison_frame(result)
            changed = frame[frame["verdict"] != "~"] if len(frame) else frame
            if len(changed):
                changed = changed.assign(case=changed["case"].map(short_labels(frame["case"])))
            body.append(
                f'<p class="note">B = {escape_html.escape(result.b)}<br>'
                f"A = {escape_html.escape(result.a)}<br>"
                f"{len(changed)} of {len(frame)} rows changed or inconclusive are shown; "
                f"{len(frame) - len(changed)} unchanged (~) are left out "
                "(<code>matbench compare A B</code> lists every row).</p>"
            )
            if len(changed):
                body.append(_table(changed, index=False, wrap=True))
            geomeans[result.b] = result.geomean
        if any(geomeans.values()):
            body.append(
                '<p class="note">Speed-ups over conclusive timing rows only: a row that is '
                "inconclusive (?), noisy or within the noise floor is left out.</p>"
            )
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
