"""The generated parts of the documentation, rewritten from the committed runs by one
command (``make docs-pages``, i.e. ``python -m bench_cli.docs_pages``):

- ``docs/reproducing.md``: every paper suite's latest run, its tables and verdicts;
- ``docs/tasks.md``: the task suites' conclusions, across their paired tables;
- ``docs/which-method.md``: "Which method?" from the latest run of every suite under
  ``results/`` that measured errors and times together.

Each lives between its page's ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers;
the rest of a page is written by hand. ``--check`` rewrites nothing and exits 1 naming
every page that regenerating would change (a test runs it). No torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench_cli import pareto, store
from bench_cli.errors import UserError

WHICH_START, WHICH_END = "<!-- which-method:start -->", "<!-- which-method:end -->"
PAGES = ("reproducing.md", "tasks.md", "which-method.md")


def which_method_markdown(results: str | Path) -> str:
    """ "Which method?" for the latest run of every suite under ``results`` whose records
    hold forward and gradient errors and times (bench_cli.pareto), as markdown."""
    from tabulate import tabulate

    from bench_cli import api
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
        parts.append(f"### {name}\n\nRun `{api.shown_path(results, folder)}`.\n\n{table}\n")
    if not parts:
        return f"No committed run under {results} measured errors and times together.\n"
    return "\n".join(parts)


def regenerate(docs: str | Path, results: str | Path) -> dict[Path, str]:
    """The new text of every generated page under ``docs`` (unchanged pages included)."""
    from bench_cli import api

    docs = Path(docs)
    paths = [docs / name for name in PAGES]
    for path in paths:
        if not path.is_file():
            raise UserError(f"{path}: not found (a generated page's hand-written part)")
    texts = {path: path.read_text() for path in paths}
    texts.update(api.generated_sections(texts, results))
    which = docs / "which-method.md"
    texts[which] = api.between(texts[which], WHICH_START, WHICH_END, which_method_markdown(results))
    return texts


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
