"""The documentation: the generated pages match the committed runs (regenerating them
changes nothing), the check fails when a page is stale, and the README stays short."""

import shutil
from pathlib import Path

from bench_cli import docs_pages

ROOT = Path(__file__).resolve().parents[1]


def test_the_generated_pages_are_current(capsys):
    """Regenerating them from the committed runs would change nothing."""
    args = ["--check", "--docs", str(ROOT / "docs"), "--results", str(ROOT / "results")]
    assert docs_pages.main(args) == 0, capsys.readouterr().out


def test_a_stale_page_fails_the_check_and_is_named(tmp_path, capsys):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    page = docs / "reproducing.md"
    page.write_text(
        page.read_text()
        .replace("reproduce", "reprodcue", 1)
        .replace(
            "<!-- reproduced:end -->",
            "a hand edit inside the generated part\n<!-- reproduced:end -->",
        )
    )
    args = ["--check", "--docs", str(docs), "--results", str(ROOT / "results")]
    assert docs_pages.main(args) == 1
    out = capsys.readouterr().out
    assert "reproducing.md is stale" in out and "which-method.md" not in out
    # Regenerating repairs the generated part and keeps the hand-written one.
    assert docs_pages.main(args[1:]) == 0
    assert "a hand edit" not in page.read_text() and "reprodcue" in page.read_text()
    assert docs_pages.main(args) == 0


def test_a_changed_run_changes_the_which_method_page(tmp_path, capsys):
    """The which-method section comes from the records: one more committed run whose
    answer differs is a stale page."""
    docs, results = tmp_path / "docs", tmp_path / "results"
    shutil.copytree(ROOT / "docs", docs)
    shutil.copytree(ROOT / "results", results, ignore=shutil.ignore_patterns("*.png", "plots"))
    args = ["--check", "--docs", str(docs), "--results", str(results)]
    assert docs_pages.main(args) == 0
    shutil.rmtree(results / "approximations")
    assert docs_pages.main(args) == 1
    assert "which-method.md is stale" in capsys.readouterr().out


def test_a_page_without_its_hand_written_part_is_one_error(tmp_path, capsys):
    assert docs_pages.main(["--check", "--docs", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def test_the_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    import re

    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / target).is_file(), target
