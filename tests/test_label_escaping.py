"""Labels are data, never markup: a method label holding ``$ \\ _ { % & |`` and a
mathtext fragment (``$\\frac{1}{$``) reaches every writer (terminal, markdown, LaTeX,
CSV, HTML report, plots) as the text it is. Each writer's output is read back by a
parser independent of matbench's escaping (markdown-it for markdown, pandas for CSV,
the HTML parser of the standard library, a reverse map for LaTeX), and ``report`` ends
with rc 0."""

from __future__ import annotations

import html
import html.parser
import io
import re

import pandas as pd
from markdown_it import MarkdownIt

from bench_cli import plots, tables
from bench_cli.tables.format import latex_cell, md_cell
from tests.helpers import read_records

LABEL = r"a$\frac{1}{$ b_c {x} 5% & d|e"
SUITE = f"""
name: labels
dtype: [float64]
baseline: ns
inputs: {{kind: spd, batch: [2], dim: [4, 6]}}
methods:
  '{LABEL}': {{layer: matrix_function, func: sqrt, method: eig_dk}}
  ns: {{layer: matrix_function, func: sqrt, method: newton_schulz}}
metrics:
  - forward_error
  - grad_error
  - time: {{budget_s: 0.001, modes: [fwd], min_repeats: 10, max_repeats: 10}}
"""


def _cells_of_markdown(text: str) -> list[str]:
    rendered = MarkdownIt("commonmark").enable("table").render(text)
    return [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", rendered, re.S)]


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.texts: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"

    def handle_data(self, data):
        self.texts.append(data)


_LATEX_BACK = {
    r"\textbackslash{}": "\\", r"\textasciitilde{}": "~", r"\textasciicircum{}": "^",
    r"\textbar{}": "|", r"\textless{}": "<", r"\textgreater{}": ">",
}  # fmt: skip


def _latex_back(cell: str) -> str:
    """A LaTeX cell as the text it typesets; raises on a character LaTeX reads as markup."""
    out, i = [], 0
    while i < len(cell):
        word = next((w for w in _LATEX_BACK if cell.startswith(w, i)), None)
        if word:
            out.append(_LATEX_BACK[word])
            i += len(word)
        elif cell[i] == "\\" and i + 1 < len(cell) and cell[i + 1] in "&%$#_{}":
            out.append(cell[i + 1])
            i += 2
        else:
            assert cell[i] not in "&%$#_{}\\|^~", f"unescaped {cell[i]!r} in {cell!r}"
            out.append(cell[i])
            i += 1
    return "".join(out)


def test_every_writer_keeps_a_hostile_label_as_text(cli, write_suite, tmp_path):
    suite = write_suite(SUITE)
    done = cli("run", suite, "--out", "run")
    assert done.exit_code == 0, done.output
    assert "not made" not in done.output and "plots" not in done.output.split("warning")[-1]
    folder = tmp_path / "run"
    assert LABEL in {r["axes"]["method"] for r in read_records(folder)}

    # markdown: the label's cell reads back as the label, and the table keeps its columns
    for md in (folder / "tables").glob("*.md"):
        cells = _cells_of_markdown(md.read_text())
        assert LABEL in cells, (md.name, cells)
    # the markdown writer's own escaping (the same check, by hand)
    assert _cells_of_markdown(f"| m |\n|---|\n| {md_cell(LABEL)} |\n") == [LABEL]
    # LaTeX: every special character escaped, and the label is what it typesets
    for tex in (folder / "tables").glob("*.tex"):
        rows = [r for r in tex.read_text().splitlines() if r.startswith(latex_cell(LABEL))]
        assert rows, tex.name
        first = rows[0].removesuffix(r" \\").split(" & ")[0]
        assert _latex_back(first) == LABEL
    # CSV: pandas reads the label back whole
    for csv in (folder / "tables").glob("*.csv"):
        frame = pd.read_csv(csv)
        assert LABEL in set(frame.iloc[:, 0].astype(str)), csv.name
    # plots: written, each figure drawn with the label as literal text
    assert list((folder / "plots").glob("*.png"))
    records = read_records(folder)
    seen = 0
    for _, fig in plots.all_figures(records):
        texts = [t for t in fig.findobj(plots.matplotlib.text.Text) if t.get_text() == LABEL]
        assert all(not t.get_parse_math() for t in texts)
        seen += bool(texts)
        fig.savefig(io.BytesIO(), format="png")
        plots.plt.close(fig)
    assert seen >= 1

    # show, each format
    for fmt in ("md", "latex", "csv"):
        shown = cli("show", "run", "--format", fmt)
        assert shown.exit_code == 0, shown.output
    shown = cli("show", "run")
    assert shown.exit_code == 0 and LABEL in shown.output  # rich markup escaped

    # report: rc 0, the label as text, no script, the Pareto plot drawn
    report = cli("report", "run")
    assert report.exit_code == 0, report.output
    page = (folder / "report.html").read_text()
    parser = _Text()
    parser.feed(page)
    assert parser.scripts == 0
    assert any(LABEL in t for t in parser.texts)
    assert page.count("data:image/png;base64") >= 2


def test_the_escapes_are_needed(tmp_path):
    """The checks above can fail: unescaped, the label breaks markdown and LaTeX."""
    assert _cells_of_markdown(f"| m |\n|---|\n| {LABEL} |\n") != [LABEL]
    try:
        _latex_back(LABEL)
    except AssertionError:
        pass
    else:
        raise AssertionError("a raw label passed the LaTeX check")
    frame = pd.DataFrame({"v": [1.0]}, index=pd.Index([LABEL], name="method"))
    table = tables.Table("t", "forward_error", "", frame, "t")
    assert latex_cell(LABEL) in tables.render(table, "latex")
