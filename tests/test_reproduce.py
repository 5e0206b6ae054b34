"""`matbench reproduce`: every paper suite in quick mode, verdicts, bad names, the README."""

import pytest

from bench_cli import reproduce, spec
from bench_cli.cli import paper_suites
from tests.test_bad_input import _check_one_line

NAMES = sorted(paper_suites())


def test_the_paper_suites_are_bundled():
    assert NAMES == [
        "gcp-cost",
        "ionescu2015-deepnc",
        "ionescu2015-deepo2p",
        "ionescu2015-gradient-check",
        "song2021-truncation",
        "song2022-fast-matsqrt",
        "wang2019-power-iteration",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_reproduce_quick(cli, tmp_path, name):
    result = cli("reproduce", name, "--quick", "--out", "run")
    assert result.exit_code == 0, result.output
    assert "ok" in result.stderr and "failed" not in result.stderr
    folder = tmp_path / "run"
    assert spec.loads((folder / "suite.yaml").read_text()).name == f"{name}-quick"
    if spec.load(paper_suites()[name]).reference is not None:
        text = (folder / "tables" / "reproduction.md").read_text()
        assert "Verdict:" in text and ("published" in text or "bound" in text)


def test_published_tables_2_and_3_reproduce(cli, tmp_path):
    result = cli("reproduce", "song2021-truncation", "--quick", "--out", "a")
    text = (tmp_path / "a" / "tables" / "reproduction.md").read_text()
    rows = {
        tuple(cell.strip() for cell in line.split("|")[1:3]): line
        for line in text.splitlines()
        if line.startswith("| t") or line.startswith("| p")
    }
    for x in ("0.9", "0.99", "0.999"):  # Taylor within 10% / the published precision
        assert rows[("taylor", x)].rstrip(" |").endswith("matches")
    assert "rounding-dominated" in rows[("pade", "0.999")]
    assert result.exit_code == 0
    cli("reproduce", "wang2019-power-iteration", "--quick", "--out", "b")
    text = (tmp_path / "b" / "tables" / "reproduction.md").read_text()
    assert "Verdict: 5 of 5 rows reproduce (matches)." in text


def test_verdict_rules():
    ref = spec.ReferenceSpec(
        citation="c",
        source="s",
        metric="abs_error",
        tolerance=0.1,
        rounding_floor=1e-9,
        entries=[{"value": "1"}],
    )
    assert reproduce.half_unit("2e-4") == pytest.approx(5e-5)
    assert reproduce.half_unit("36") == 0.5
    assert reproduce.value_verdict(2.39e-4, "2e-4", ref) == "matches"  # at 1 published digit
    assert reproduce.value_verdict(36.24, "36", ref) == "matches"
    assert reproduce.value_verdict(50.0, "36", ref).startswith("differs")
    assert reproduce.value_verdict(5e-12, "3e-10", ref) == "rounding-dominated"
    assert reproduce.value_verdict("failed", "3e-10", ref) == "failed"


def test_unknown_name_lists_the_available_ones(cli):
    result = cli("reproduce", "no-such-table")
    _check_one_line(
        result, ["unknown paper suite 'no-such-table'", "song2021-truncation", "gcp-cost"]
    )


def test_readme_section_is_generated_between_markers(cli, tmp_path):
    assert cli("reproduce", "song2021-truncation", "--results", "res").exit_code == 0
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- reproduced:start -->\nold\n<!-- reproduced:end -->\nend\n")
    result = cli("reproduce", "--readme", str(readme), "--results", "res")
    assert result.exit_code == 0, result.output
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro") and text.endswith("end\n")
    assert "### song2021-truncation" in text and "Verdict: 14 of 14" in text
    assert "No committed run" in text  # the other suites have none under res/
    bare = tmp_path / "bare.md"
    bare.write_text("no markers")
    _check_one_line(cli("reproduce", "--readme", str(bare)), ["markers"])


def test_list_suites_names_sources(cli):
    result = cli("list", "suites")
    assert "ICLR 2022" in result.stdout and "NeurIPS 2019" in result.stdout
