"""`matbench reproduce`: every paper suite in quick mode, verdicts, bad names, the README."""

import pytest

from bench_cli import reproduction as reproduce
from bench_cli import spec
from bench_cli.api import paper_suites
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


@pytest.mark.slow
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


def _rows(text: str) -> dict[tuple[str, str], str]:
    return {
        tuple(cell.strip() for cell in line.split("|")[1:3]): line
        for line in text.splitlines()
        if line.startswith("| t") or line.startswith("| p")
    }


def test_published_tables_2_and_3_reproduce_and_check_exits_0(cli, tmp_path):
    result = cli("reproduce", "song2021-truncation", "--check", "--out", "a")
    assert result.exit_code == 0, result.output
    rows = _rows((tmp_path / "a" / "tables" / "reproduction.md").read_text())
    for x in ("0.9", "0.99", "0.999"):  # Taylor at the published precision
        assert "| matches" in rows[("taylor", x)] and "| reproduces" in rows[("taylor", x)]
    for x in ("0.1", "0.5"):
        assert "rounding-dominated" in rows[("taylor", x)]
    assert "exact by construction" in rows[("pade", "0.999")]
    assert "| not evidence" in rows[("pade", "0.999")]
    text = (tmp_path / "a" / "tables" / "reproduction.md").read_text()
    assert "Verdict: 3 of 3 tested rows reproduce; 11 more are not evidence" in text


def test_a_changed_degree_given_as_a_file_fails_check_naming_the_rows(cli, tmp_path):
    # Degree 104 instead of 100: the errors at x = 0.99 and 0.999 move by 3% and 0.4%,
    # past half a unit of the published 36 and 904.
    original = paper_suites()["song2021-truncation"].read_text()
    changed = tmp_path / "deg104.yaml"
    changed.write_text(original.replace("degree: 100", "degree: 104"))
    result = cli("reproduce", str(changed), "--check", "--out", "b")
    assert result.exit_code == 1, result.output
    assert "does not reproduce: method=taylor, x=0.99: differs" in result.stderr
    assert "does not reproduce: method=taylor, x=0.999: differs" in result.stderr
    assert "2 row(s) do not reproduce" in result.stderr
    # Without --check the same run is reported, not judged: exit 0.
    assert cli("reproduce", str(changed), "--out", "c").exit_code == 0


def test_reproduce_bad_paths_and_suites_without_reference(cli, tmp_path):
    _check_one_line(cli("reproduce", "missing.yaml", "--check"), ["missing.yaml", "not found"])
    bare = tmp_path / "bare.yaml"
    bare.write_text(
        "name: bare\ninputs: {kind: spd, dim: [2], batch: [1]}\n"
        "methods: {e: {layer: matrix_function, func: sqrt, method: eig}}\n"
        "metrics: [forward_error]\n"
    )
    _check_one_line(cli("reproduce", str(bare), "--check"), ["no reference"])


@pytest.mark.slow
def test_power_iteration_counts_are_measured_from_svd_pi(cli, tmp_path):
    result = cli("reproduce", "wang2019-power-iteration", "--check", "--out", "w")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "w" / "tables" / "reproduction.md").read_text()
    assert "Verdict: 5 of 5 tested rows reproduce." in text
    # A truncation one term longer than svd_pi's (iters - 1 = degree) is measured, not
    # recomputed: every count moves and --check fails.
    original = paper_suites()["wang2019-power-iteration"].read_text()
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        original.replace("method: svd_pi}", "method: svd_taylor}").replace(
            "option: iters", "option: degree"
        )
    )
    result = cli("reproduce", str(wrong), "--check", "--out", "x")
    assert result.exit_code == 1
    assert result.stderr.count("differs by -1") == 5


def _ref(**fields):
    base = {"citation": "c", "source": "s", "metric": "m", "entries": [{"value": "1"}]}
    return spec.ReferenceSpec(**{**base, **fields})


def _records(values: dict[str, float], metric: str = "m") -> list[dict]:
    return [
        {"metric": metric, "status": "ok", "value": v, "axes": {"method": k}}
        for k, v in values.items()
    ]


def test_value_verdicts_fail_on_wrong_measurements():
    ref = _ref(tolerance=0.0, rounding_floor=1e-9)
    assert reproduce.half_unit("2e-4") == pytest.approx(5e-5)
    assert reproduce.half_unit("36") == 0.5
    ok, fail, none = reproduce.REPRODUCES, reproduce.FAILS, reproduce.NOT_EVIDENCE
    assert reproduce.value_verdict(2.39e-4, "2e-4", ref) == ("matches", ok)
    assert reproduce.value_verdict(36.24, "36", ref) == ("matches", ok)
    assert reproduce.value_verdict(34.8, "36", ref)[1] == fail  # degree 104 at x = 0.99
    assert reproduce.value_verdict(5e-12, "3e-10", ref) == ("rounding-dominated", none)
    # Under the floor still means a valid magnitude under it.
    assert reproduce.value_verdict(-1e6, "9e-19", ref)[1] == fail
    assert reproduce.value_verdict(2e-9, "9e-19", ref)[1] == fail
    assert reproduce.value_verdict(float("nan"), "9e-19", ref)[1] == fail
    assert reproduce.value_verdict("failed", "3e-10", ref) == ("failed", fail)
    why = "exact"
    assert reproduce.value_verdict(5e-12, "3e-10", ref, why) == ("exact by construction", none)
    assert reproduce.value_verdict(1e-3, "3e-10", ref, why)[1] == fail
    assert reproduce.value_verdict(-1e-20, "3e-10", ref, why)[1] == fail
    loose = _ref(tolerance=0.1)
    assert reproduce.value_verdict(34.8, "36", loose)[1] == ok


def test_speedup_verdicts_compare_magnitudes_not_only_directions():
    ok, fail = reproduce.REPRODUCES, reproduce.FAILS
    assert reproduce.speedup_verdict(20.0, 25.7, 2.0)[1] == ok
    verdict, outcome = reproduce.speedup_verdict(1.02, 25.7, 2.0)  # the audit's example
    assert outcome == fail and verdict.startswith("direction holds, magnitude does not (0.04")
    assert reproduce.speedup_verdict(0.9, 1.5, 2.0)[0].startswith("reversed")
    assert reproduce.speedup_verdict(0.99, 1.02, 2.0)[1] == fail  # within the factor, other side
    entries = [{"method": "base", "value": "10"}, {"method": "fast", "value": "1"}]
    ref = _ref(compare="speedup", baseline="base", speedup_factor=2.0, entries=entries)
    frame = reproduce.verdicts(_records({"base": 10.0, "fast": 2.0}), ref)  # 5x, published 10x
    assert list(frame["outcome"]) == [reproduce.NOT_EVIDENCE, ok]
    frame = reproduce.verdicts(_records({"base": 10.0, "fast": 9.0}), ref)  # 1.1x
    assert frame["outcome"][1] == fail and reproduce.failing_rows(frame) == [
        "method=fast: direction holds, magnitude does not (0.11x of published)"
    ]


def test_a_noisy_timing_makes_a_speedup_inconclusive():
    def timed(seconds, reasons=()):
        noise = {"noisy": bool(reasons), "reasons": list(reasons)}
        return {"fwd_bwd": {"samples": [seconds] * 10, "noise": noise}}

    entries = [{"method": "base", "value": "10"}, {"method": "fast", "value": "1"}]
    ref = _ref(compare="speedup", baseline="base", metric="time.fwd_bwd.median", entries=entries)
    quiet = _records({"base": timed(10.0), "fast": timed(1.0)}, "time")
    assert reproduce.verdicts(quiet, ref)["outcome"][1] == reproduce.REPRODUCES
    load = "load: other processes used 1.9 of 2 cores"
    for noisy in ("base", "fast"):  # either side noisy: neither holds nor reversed
        values = {"base": timed(10.0), "fast": timed(1.0)}
        values[noisy] = timed(values[noisy]["fwd_bwd"]["samples"][0], [load])
        frame = reproduce.verdicts(_records(values, "time"), ref)
        assert frame["verdict"][1] == f"inconclusive (noisy: {load})"
        assert frame["outcome"][1] == reproduce.NOT_EVIDENCE


def test_bound_and_count_verdicts_fail_on_wrong_measurements():
    bound = _ref(compare="bound", entries=[{"method": "a", "max": 1e-6}])
    assert reproduce.verdicts(_records({"a": 1e-8}), bound)["verdict"][0] == "within bound"
    assert reproduce.verdicts(_records({"a": 1e6}), bound)["outcome"][0] == reproduce.FAILS
    assert reproduce.verdicts(_records({"a": float("nan")}), bound)["outcome"][0] == "fails"
    count = _ref(compare="count", metric="m.count", entries=[{"method": "a", "value": "19"}])
    right = _records({"a": {"count": 19}})
    wrong = _records({"a": {"count": 1e6}})
    assert reproduce.verdicts(right, count)["outcome"][0] == reproduce.REPRODUCES
    assert reproduce.verdicts(wrong, count)["outcome"][0] == reproduce.FAILS
    assert reproduce.verdicts([], count)["verdict"][0] == "missing"


def test_summary_counts_come_from_the_rows():
    import pandas as pd

    frame = pd.DataFrame(
        {
            "verdict": ["matches", "reversed (0.5x)", "baseline", "matches"],
            "outcome": ["reproduces", "fails", "not evidence", "reproduces"],
        }
    )
    assert reproduce.summary(frame) == (
        "2 of 3 tested rows reproduce; 1 more are not evidence (baseline)"
    )


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
    assert "### song2021-truncation" in text and "Verdict: 3 of 3 tested rows" in text
    assert "No committed run" in text  # the other suites have none under res/
    bare = tmp_path / "bare.md"
    bare.write_text("no markers")
    _check_one_line(cli("reproduce", "--readme", str(bare)), ["markers"])


def test_list_suites_names_sources(cli):
    result = cli("list", "suites")
    assert "ICLR 2022" in result.stdout and "NeurIPS 2019" in result.stdout


# ---------------------------------------------------------------- --check's exit codes

SONG2022_RUN = "results/song2022-fast-matsqrt/20261130T124910Z_intel-xeon-05fb84"


def _song2022_copy(tmp_path, *, divide: str | None = None, noisy: bool = False):
    """(suite file, run folder): a copy of the committed quiet song2022 run and a copy of the
    suite whose published times are the run's own medians (so every speed-up holds), with
    ``divide``'s 64x48 time divided by 10, and every timing marked noisy if ``noisy``."""
    import json
    import shutil
    import statistics
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    run = tmp_path / ("noisy-run" if noisy else "run")
    if not run.exists():
        shutil.copytree(root / SONG2022_RUN, run)
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    if noisy:
        for record in records:
            mode = record["value"]["fwd_bwd"]
            mode["noise"] = {"noisy": True, "reasons": ["load: other processes used 2 of 2 cores"]}
        (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    suite = yaml.safe_load(paper_suites()["song2022-fast-matsqrt"].read_text())
    for entry in suite["reference"]["entries"]:
        (record,) = [
            r for r in records
            if r["axes"]["method"] == entry["method"]
            and r["axes"]["batch"] == entry["batch"] and r["axes"]["dim"] == entry["dim"]
        ]  # fmt: skip
        ms = 1000 * statistics.median(record["value"]["fwd_bwd"]["samples"])
        if divide == entry["method"] and entry["batch"] == 64:
            ms /= 10
        entry["value"] = f"{ms:.4g}"
    path = tmp_path / f"song2022-{divide or 'same'}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path, run


def test_check_exits_0_only_when_rows_were_tested_and_reproduce(cli, tmp_path):
    suite, run = _song2022_copy(tmp_path)
    result = cli("reproduce", suite, "--check", "--from", run)
    assert result.exit_code == 0, result.output
    assert "Verdict: 10 of 10 tested rows reproduce" in result.stdout
    # One published time divided by 10, on the same quiet records: that row fails.
    suite, run = _song2022_copy(tmp_path, divide="mpa_lya")
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    result = cli("reproduce", suite, "--check", "--from", run)
    assert result.exit_code == 1, result.output
    assert "does not reproduce: batch=64, dim=48, method=mpa_lya: reversed" in result.stderr
    assert "1 row(s) do not reproduce" in result.stderr
    # --from judges without writing into the run folder.
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize("divide", [None, "mpa_lya"])
def test_check_exits_3_when_every_timing_is_noisy(cli, tmp_path, divide):
    """Right or ÷10, nothing can be tested on noisy records: exit 3, never 0."""
    suite, run = _song2022_copy(tmp_path, divide=divide, noisy=True)
    result = cli("reproduce", suite, "--check", "--from", run)
    assert result.exit_code == 3, result.output
    assert "Verdict: nothing could be tested (2 baseline, 10 inconclusive (noisy) of 12" in (
        result.stdout
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "matbench: nothing could be tested, so --check has shown nothing: "
        "2 baseline, 10 inconclusive (noisy) of 12 rows"
    ]


def test_overall_needs_a_tested_row():
    import pandas as pd

    def frame(*outcomes):
        return pd.DataFrame({"verdict": ["v"] * len(outcomes), "outcome": list(outcomes)})

    ok, fail, none = reproduce.REPRODUCES, reproduce.FAILS, reproduce.NOT_EVIDENCE
    assert reproduce.overall(frame(ok, none)) == reproduce.REPRODUCED
    assert reproduce.overall(frame(ok, fail, none)) == reproduce.NOT_REPRODUCED
    assert reproduce.overall(frame(none, none)) == reproduce.UNTESTED
    assert reproduce.overall(frame()) == reproduce.UNTESTED
    assert reproduce.summary(frame(none)) == "nothing could be tested (1 v of 1 rows)"


def test_a_value_reference_without_tolerance_is_refused_at_its_line(cli, tmp_path):
    text = paper_suites()["song2021-truncation"].read_text()
    assert "tolerance: 0" in text
    lines = text.splitlines()
    without = [line for line in lines if not line.strip().startswith("tolerance:")]
    path = tmp_path / "no-tolerance.yaml"
    path.write_text("\n".join(without) + "\n")
    line = 1 + next(i for i, t in enumerate(without) if t.startswith("reference:"))
    for command in (("validate", path), ("reproduce", path, "--check")):
        _check_one_line(
            cli(*command), [f"no-tolerance.yaml:{line}", "reference", "explicit tolerance"]
        )


def test_from_refuses_a_run_of_another_suite(cli, tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    _check_one_line(
        cli("reproduce", "song2021-truncation", "--check", "--from", root / SONG2022_RUN),
        ["holds a run of suite 'song2022-fast-matsqrt', not 'song2021-truncation'"],
    )
    _check_one_line(
        cli("reproduce", "song2021-truncation", "--from", tmp_path / "nothing"),
        ["run folder not found"],
    )


def test_readme_conclusions_are_generated_from_the_task_runs(cli, tmp_path):
    """The README's task conclusions come from the runs, between their own markers; a run
    whose numbers change changes the sentences."""
    out = tmp_path / "res" / "ionescu2015-deepnc" / "run"
    assert cli("reproduce", "ionescu2015-deepnc", "--quick", "--out", out).exit_code == 0
    readme = tmp_path / "README.md"
    readme.write_text(
        "a\n<!-- conclusions:start -->\nold\n<!-- conclusions:end -->\nb\n"
        "<!-- reproduced:start -->\n<!-- reproduced:end -->\n"
    )
    result = cli("reproduce", "--readme", readme, "--results", tmp_path / "res")
    assert result.exit_code == 0, result.output
    text = readme.read_text()
    block = text.split("<!-- conclusions:start -->")[1].split("<!-- conclusions:end -->")[0]
    assert "old" not in block and "**ionescu2015-deepnc**" in block
    assert "Against `projector+spectral`" in block and "Against `nc-raw (Shi-Malik)`" in block
    # Written once: the suite's own section leaves them to the block.
    assert "#### Conclusions, across every paired metric" not in text
    assert text.count("Against `projector+spectral`") == 1
