"""The generated parts of the documentation, rewritten from the committed runs by one
command (``make docs-pages``, i.e. ``python -m bench_cli.docs_pages``):

- ``docs/reproducing.md``: every paper suite's latest run, its tables and verdicts;
- ``docs/tasks.md``: the task suites' conclusions, across their paired tables;
- ``docs/which-method.md``: "Which method?" from the latest run of every suite under
  ``results/`` that measured errors and times together;
- ``docs/hardware.md``: every machine on record (throughput, song2022), what compile
  buys and costs, cold starts, and the autocast verdicts, from the latest runs;
- ``docs/index.md``: the README, whole, with its links into docs/ made relative.

Each lives between its page's ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers;
the rest of a page is written by hand. ``--check`` rewrites nothing and exits 1 naming
every page that regenerating would change (a test runs it). No torch.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from bench_cli import claims, pareto, spec, store, tables
from bench_cli import reproduction as reproduce_mod
from bench_cli.errors import UserError
from bench_cli.spec.catalog import paper_suites

WHICH_START, WHICH_END = "<!-- which-method:start -->", "<!-- which-method:end -->"
PAGES = ("reproducing.md", "tasks.md", "which-method.md", "hardware.md")
HARDWARE_START, HARDWARE_END = "<!-- hardware:start -->", "<!-- hardware:end -->"
ACROSS_MACHINES = ("throughput", "song2022-fast-matsqrt")  # suites run on several machines
INDEX = "index.md"  # the README, its links into docs/ made relative: derived, never edited


def which_method_markdown(results: str | Path) -> str:
    """ "Which method?" for the latest run of every suite under ``results`` whose records
    hold forward and gradient errors and times (bench_cli.pareto), as markdown."""
    from tabulate import tabulate

    from bench_cli.report import short_labels

    results = Path(results)
    parts = []
    names = sorted(p.name for p in results.iterdir() if p.is_dir()) if results.is_dir() else []
    for name in names:
        runs = store.runs_of(results, name)
        if not runs:
            continue
        folder = runs[-1]
        records = folder.records()
        found = pareto.settings(records)
        if not found:
            continue
        short = short_labels([setting.label for setting in found])
        rows = pareto.answer_rows(found, short)
        table = tabulate(
            [[cell.replace("|", "\\|") for cell in row.values()] for row in rows],
            headers=list(rows[0]),
            tablefmt="github",
        )
        parts.append(f"### {name}\n\nRun `{shown_path(results, folder)}`.\n\n{table}\n")
    if not parts:
        return f"No committed run under {results} measured errors and times together.\n"
    return "\n".join(parts)


def regenerate(docs: str | Path, results: str | Path) -> dict[Path, str]:
    """The new text of every generated page under ``docs`` (unchanged pages included)."""

    docs = Path(docs)
    paths = [docs / name for name in PAGES]
    for path in paths:
        if not path.is_file():
            raise UserError(f"{path}: not found (a generated page's hand-written part)")
    texts = {path: path.read_text() for path in paths}
    texts.update(generated_sections(texts, results))
    readme = docs.parent / "README.md"
    if readme.is_file():
        texts[docs / INDEX] = re.sub(r"\(docs/([\w-]+\.md)\)", r"(\1)", readme.read_text())
    which = docs / "which-method.md"
    texts[which] = between(texts[which], WHICH_START, WHICH_END, which_method_markdown(results))
    page = docs / "hardware.md"
    texts[page] = between(texts[page], HARDWARE_START, HARDWARE_END, hardware_markdown(results))
    return texts


def hardware_markdown(results: str | Path) -> str:
    """The generated part of docs/hardware.md: the suites run on several machines, a
    column per machine; the latest compile, cold-start and autocast runs, with compile's
    break-even and the autocast verdicts (bench_cli.compile_amp)."""
    from tabulate import tabulate

    from bench_cli import hardware

    results = Path(results)

    def md(rows: list[list[Any]], headers: list[str]) -> str:
        cells = [[str(c).replace("|", "\\|") for c in row] for row in rows]
        return tabulate(cells, headers=headers, tablefmt="github", disable_numparse=True)

    parts = []
    for name in ACROSS_MACHINES:
        runs = [store.RunFolder(f.path, cache=True) for f in store.runs_of(results, name)]
        if len(runs) < 2:
            continue
        table = hardware.across_machines(runs)
        frame = table.frame.reset_index()
        parts.append(
            f"### {name} across {len(runs)} machines\n\n`matbench hardware {name}`; "
            f"{table.legend}.\n\n{md(frame.values.tolist(), list(frame.columns))}\n"
        )
    for name in ("compile", "cold-start", "autocast"):
        runs = store.runs_of(results, name)
        if not runs:
            continue
        folder = runs[-1]
        body, _, _ = reproduction_markdown(folder)
        machine = hardware.machine_name(folder.env)
        parts.append(f"### {name}\n\nRun `{shown_path(results, folder)}` on {machine}.\n")
        if name == "compile":
            parts.append(_break_even_markdown(folder.records(), md))
        if name == "autocast":
            parts.append(_autocast_markdown(folder.records(), md))
        parts.append(body)  # its tables at level 4, under this run's heading
    parts.append(_targets_markdown(results, md))
    return "\n".join(parts) or f"No committed run under {results} for this page.\n"


def _targets_markdown(results: Path, md) -> str:
    """The latest performance-targets benchmark (bench_cli.benchmarks.performance_targets):
    each target's ratio with its interval and verdict, and the profile where not met."""
    import json

    base = results / "benchmarks" / "performance_targets"
    runs = (
        sorted(p for p in base.iterdir() if (p / "result.json").is_file()) if base.is_dir() else []
    )
    if not runs:
        return ""
    found = json.loads((runs[-1] / "result.json").read_text())
    rows = [
        [t["name"], t["ratio"], f"{t['median']:.3f} [{t['low']:.3f}, {t['high']:.3f}]",
         ("≤ " if t["below"] else "≥ ") + f"{t['bound']:g}", t["verdict"], t["note"]]
        for t in found["targets"]
    ]  # fmt: skip
    headers = ["target", "ratio", "median [95% CI]", "bound", "verdict", "note"]
    profiles = [
        f"Where `{t['name']}` took its time (torch.profiler, 5 calls, self CPU):\n\n"
        f"```\n{t['profile'].rstrip()}\n```\n"
        for t in found["targets"] if t["profile"]
    ]  # fmt: skip
    from bench_cli import hardware

    machine = hardware.machine_name(found["env"])
    return (
        f"### Performance targets\n\n`make bench-targets PEER=…` on {machine}, run "
        f"`{shown_path(results, runs[-1])}`.\n\n{md(rows, headers)}\n\n" + "\n".join(profiles)
    )


def _break_even_markdown(records, md) -> str:
    from bench_cli import compile_amp

    rows = [
        [b.method, b.inputs, b.mode, f"{b.ratio:.2f} [{b.low:.2f}, {b.high:.2f}]",
         f"{b.first_call_s:.2f} s", f"{b.eager_s * 1e3:.3g} ms", b.verdict]
        for b in compile_amp.break_even(records)
    ]  # fmt: skip
    headers = ["method", "inputs", "compile", "compiled/eager fwd+bwd [95% CI]",
               "first compiled call", "eager per call", "break-even"]  # fmt: skip
    return "#### When compiling pays\n\n" + md(rows, headers) + "\n"


def _autocast_markdown(records, md) -> str:
    from bench_cli import compile_amp

    found = compile_amp.autocast_verdicts(records)
    rows = [
        [v.method, v.autocast, v.verdict, _err(v.forward), _err(v.grad), v.products,
         v.decompositions, v.why]
        for v in found
    ]  # fmt: skip
    headers = ["method", "autocast", "verdict", "forward error (none → autocast)",
               "gradient error", "products ran in", "decompositions ran in", "why"]  # fmt: skip
    summary = compile_amp.autocast_summary(found)
    return f"#### Inside mixed-precision training\n\n{summary}\n{md(rows, headers)}\n"


def _err(pair: tuple[Any, Any]) -> str:
    return " → ".join(f"{v:.2e}" if isinstance(v, float) else str(v) for v in pair)


README_START, README_END = "<!-- reproduced:start -->", "<!-- reproduced:end -->"


# Optional: the conclusions of the paper suites with paired tables, where the docs
# discusses them (the end-to-end tasks), generated from the same runs.
CONCLUSIONS_START, CONCLUSIONS_END = "<!-- conclusions:start -->", "<!-- conclusions:end -->"


def reproduction_markdown(
    folder: store.RunFolder, conclusions_here: bool = True
) -> tuple[str, str | None, str]:
    """(a run's tables and, where its suite cites a source, published beside measured, as
    markdown, with the conclusions across its paired tables unless ``conclusions_here`` is
    False; the verdict sentence, or None without a reference; those conclusions, or ""),
    reading the run once."""
    outline = spec.outline(folder.suite_text, str(folder.path / "suite.yaml"))
    records = folder.records()
    parts = []
    made = tables.tables_for(records, outline.tables, list(outline.metric_names))
    for table in made:
        parts.append(tables.render(table, "md").replace("### ", "#### ", 1))  # one level down
        sentence = tables.paired_claims(table)
        if sentence:
            parts.append(sentence + "\n")
    across = claims.conclusions(made)
    if across and conclusions_here:
        parts.append("#### Conclusions, across every paired metric\n\n" + across)
    verdict = None
    if outline.reference is not None:
        frame = reproduce_mod.verdicts(records, outline.reference)
        parts.append(reproduce_mod.render(frame, outline.reference))
        verdict = reproduce_mod.summary(frame)
    return "\n".join(parts), verdict, across


def write_readme_section(readme: str | Path, results: str | Path = "results") -> int:
    """Rewrite the reproduced-tables section of one markdown file (and its task
    conclusions, where it has their markers) from the latest run of every paper suite
    under ``results``; returns the number of suites."""
    readme = Path(readme)
    if not readme.exists():
        raise UserError(f"{readme}: not found")
    texts = generated_sections({readme: readme.read_text()}, results)
    readme.write_text(texts[readme])
    return len(paper_suites())


def generated_sections(texts: Mapping[Path, str], results: str | Path) -> dict[Path, str]:
    """``texts`` (page -> its text) with the reproduced tables written between the
    ``reproduced`` markers of the page that has them, and the task suites' conclusions
    between the ``conclusions`` markers wherever those are (then once, not in each
    suite's section). Every section comes from the latest run of each paper suite."""
    results = Path(results)
    home = [path for path, text in texts.items() if README_START in text and README_END in text]
    if not home:
        names = ", ".join(str(path) for path in texts)
        raise UserError(f"{names}: no '{README_START}' ... '{README_END}' markers")
    aside = [p for p, t in texts.items() if CONCLUSIONS_START in t and CONCLUSIONS_END in t]
    sections, verdicts, concluded = [], [], []
    for name in paper_suites():
        runs = store.runs_of(results, name)
        if not runs:
            sections.append(f"### {name}\n\nNo committed run under {results / name}.\n")
            continue
        folder = runs[-1]
        shown = shown_path(results, folder)
        markdown, verdict, across = reproduction_markdown(folder, conclusions_here=not aside)
        sections.append(f"### {name}\n\nRun `{shown}`.\n\n" + markdown)
        if verdict is not None:
            verdicts.append(f"- **{name}**: {verdict}.")
        if across:
            concluded.append(f"**{name}** (run `{shown}`).\n\n{across}")
    overview = "Verdicts, counted from the tables below:\n\n" + "\n".join(verdicts) + "\n"
    body = "\n".join([overview, *sections] if verdicts else sections)
    out = dict(texts)
    out[home[0]] = between(out[home[0]], README_START, README_END, body)
    for path in aside:
        out[path] = between(out[path], CONCLUSIONS_START, CONCLUSIONS_END, "\n".join(concluded))
    return out


def shown_path(results: Path, folder: store.RunFolder | Path) -> str:
    """A run (or benchmark result) folder as a generated page names it: from the results
    folder's own name on, so a page reads the same wherever the results folder lies."""
    path = folder.path if isinstance(folder, store.RunFolder) else folder
    return PurePosixPath(results.name, *path.relative_to(results).parts).as_posix()


def between(text: str, start_marker: str, end_marker: str, body: str) -> str:
    """``text`` with what lies between the two markers replaced by ``body``."""
    start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    return text[:start] + "\n" + body + "\n" + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench_cli.docs_pages",
        description="Rewrite the generated parts of docs/ from the committed runs.",
    )
    parser.add_argument("--docs", default="docs", help="the documentation folder (docs)")
    parser.add_argument("--results", default="results", help="the committed runs (results)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming each stale page"
    )
    args = parser.parse_args(argv)
    try:
        texts = regenerate(args.docs, args.results)
    except UserError as exc:
        print(f"docs-pages: error: {exc}", file=sys.stderr)
        return 2
    stale = [path for path, text in texts.items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"docs-pages: {path} is stale: run `make docs-pages` and commit it")
        if not stale:
            print(f"docs-pages: {len(texts)} generated pages are current")
        return 1 if stale else 0
    for path in stale:
        path.write_text(texts[path])
        print(f"docs-pages: rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
