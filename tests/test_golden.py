"""Golden outputs: what the reading commands print for the committed runs, byte for byte
(paths and times aside). Moving code around must not change a user's answers; changing
an answer on purpose means regenerating these files in the same commit:

    MATBENCH_GOLDEN_UPDATE=1 .venv/bin/python -m pytest tests/test_golden.py

(``make golden``), and reading the diff of ``tests/golden/``."""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench_cli.cli import app

pytestmark = pytest.mark.slow  # make test leaves it out; make test-all runs it

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("MATBENCH_GOLDEN_UPDATE") == "1"

SMOKE = "smoke/20261128T072436Z_amd-epyc-ac9bfb"
DEEPNC = "ionescu2015-deepnc/20261207T183018Z_amd-epyc-ac9bfb"
SONG_AMD = "song2021-truncation/20261128T081142Z_amd-epyc-ac9bfb"
GRADIENTS = (
    "gradients/20261128T080455Z_amd-epyc-ac9bfb",
    "gradients/20261130T125027Z_intel-xeon-05fb84",
)
THROUGHPUT = (
    "throughput/20261128T080510Z_amd-epyc-ac9bfb",
    "throughput/20261130T125037Z_intel-xeon-05fb84",
)
WHICH = (
    "which-method/20261207T200751Z_amd-epyc-ac9bfb",
    "which-method/20261207T200837Z_amd-epyc-ac9bfb",
)

# name: (the command, with {RUN} folders copied into a scratch results root first)
COMMANDS = {
    "show-smoke.md": ["show", "{smoke}", "--format", "md"],
    "show-deepnc.md": ["show", "{deepnc}", "--format", "md"],
    "show-which-method-loaded.txt": ["show", "{which_b}"],
    "compare-gradients.md": ["compare", "{gradients_a}", "{gradients_b}", "--format", "md"],
    "compare-throughput.txt": ["compare", "{throughput_a}", "{throughput_b}"],
    "compare-which-method.txt": ["compare", "{which_a}", "{which_b}"],
    "reproduce-song2021-from.txt": ["reproduce", "song2021-truncation", "--from", "{song}"],
    "reproduce-song2021-check.txt": [
        "reproduce",
        "song2021-truncation",
        "--check",
        "--from",
        "{song}",
    ],  # fmt: skip
    "reproduce-deepnc-check.txt": [
        "reproduce",
        "ionescu2015-deepnc",
        "--check",
        "--from",
        "{deepnc}",
    ],  # fmt: skip
    "report-which-method.txt": ["report", "{which_a}", "{which_b}", "--out", "{out}"],
    "list.txt": ["list"],
}
RUNS = {
    "smoke": SMOKE,
    "deepnc": DEEPNC,
    "song": SONG_AMD,
    "gradients_a": GRADIENTS[0],
    "gradients_b": GRADIENTS[1],
    "throughput_a": THROUGHPUT[0],
    "throughput_b": THROUGHPUT[1],
    "which_a": WHICH[0],
    "which_b": WHICH[1],
}


def _normalise(text: str, scratch: Path) -> str:
    """Paths to placeholders; nothing else: every number printed must be reproducible."""
    text = text.replace(str(scratch), "<scratch>").replace(str(ROOT), "<repo>")
    return re.sub(r"[ \t]+\n", "\n", text)  # trailing blanks of a terminal table


def _report_text(page: str) -> str:
    """The report as a reader sees it: tags and inlined images out, one line per block."""
    page = re.sub(r"<style>.*?</style>", "", page.replace("\n", " "), flags=re.S)
    page = re.sub(r"</(p|h1|h2|h3|tr|table)>", "\n", page)
    page = re.sub(r"</t[dh]>", " |", page)
    page = re.sub(r"<img [^>]*>", "[plot]\n", page)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip()) + "\n"


def _output(name: str, scratch: Path, monkeypatch) -> str:
    monkeypatch.chdir(scratch)
    monkeypatch.delenv("COLUMNS", raising=False)
    args = [
        part.format(
            out=str(scratch / "report.html"), **{k: str(scratch / v) for k, v in RUNS.items()}
        )
        for part in COMMANDS[name]
    ]
    result = CliRunner().invoke(app, args)
    text = f"$ matbench {' '.join(COMMANDS[name])}\nexit {result.exit_code}\n{result.stdout}"
    if result.stderr:
        text += f"--- stderr\n{result.stderr}"
    if name.startswith("report"):
        text += _report_text((scratch / "report.html").read_text())
    return _normalise(text, scratch)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """The committed runs the commands read, copied: `show` rewrites a run's tables."""
    root = tmp_path_factory.mktemp("golden")
    for run in RUNS.values():
        shutil.copytree(RESULTS / run, root / run, ignore=shutil.ignore_patterns("plots"))
    return root


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_reading_commands_print_what_they_printed(name, scratch, monkeypatch):
    got = _output(name, scratch, monkeypatch)
    target = GOLDEN / name
    if UPDATE:
        target.parent.mkdir(exist_ok=True)
        target.write_text(got)
    assert target.exists(), f"no golden output {target.name}: run `make golden`"
    expected = target.read_text()
    assert got == expected, f"{name} changed: run `make golden` and read the diff if meant"
