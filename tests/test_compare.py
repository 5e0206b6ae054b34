"""matbench compare, plots, the HTML report and load_results."""

import os
import shutil
import subprocess
import time

import numpy as np
import pytest
import torch

import bench_cli
from bench_cli import compare, plots, store, verdicts
from bench_cli.layers import matfun
from tests.test_bad_input import _check_one_line

SUITE = """\
name: cmp
inputs: {kind: spd, batch: 4, dim: [6, 8]}
methods:
  dk: {layer: matrix_function, func: log, method: eig_dk}
  ag: {layer: matrix_function, func: log, method: autograd}
  victim: {layer: matrix_function, func: log, method: victim}
metrics:
  - time: {budget_s: 0.02, min_repeats: 15}
  - forward_error
"""


@pytest.fixture
def victim(register_method):
    """A method registered only here; `slow(True)` makes it sleep 20 ms per call."""
    state = {"sleep": 0.0}

    def victim(A, func, p=None):
        """eig_dk, optionally made slow (test only)."""
        if state["sleep"]:
            time.sleep(state["sleep"])
        return matfun.eig_dk_matrix_function(A, func, p)

    register_method(victim)
    return lambda on: state.update(sleep=0.02 if on else 0.0)


def _verdicts(result):
    return {(row.label, row.method, row.metric): row.verdict for row in result.rows}


def test_a_run_compared_with_itself_is_all_tilde(cli, write_suite, tmp_path, victim):
    assert cli("run", write_suite(SUITE), "--out", "a").exit_code == 0
    # Quiet copies: a record this busy machine flagged noisy is "?" even against itself.
    _copy_run(tmp_path / "a", tmp_path / "quiet", _change({}))
    folder = store.RunFolder(tmp_path / "quiet")
    result = compare.compare_runs(folder, folder)
    assert len(result.rows) == 12 and set(_verdicts(result).values()) == {"~"}
    assert all(row.ratio == 1.0 for row in result.rows)
    cli_result = cli("compare", "a", "a")
    assert cli_result.exit_code == 0 and "slower" not in cli_result.stdout


def _copy_run(source, target, change):
    """A copy of a run folder whose records pass through ``change`` (a deliberately wrong
    measurement): comparisons tested on known numbers, not on two timed runs."""
    import json

    target.mkdir()
    for name in ("run.json", "env.json", "suite.yaml"):
        shutil.copy(source / name, target / name)
    records = [change(r) for r in store.RunFolder(source).records()]
    (target / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _steady(factor=1.0, spread=0.0, reasons=(), ratios=None, n=15):
    """A record change: n fixed samples (1 ms x factor, spread evenly over ±spread, so
    IQR/median = spread) and a noise block flagged by ``reasons``, so no verdict below
    depends on this machine's load; ``ratios``: per-round paired ratios to "ag"."""

    def mode_value(mode):
        mode["samples"] = [1e-3 * factor * (1 + spread * (2 * i / (n - 1) - 1)) for i in range(n)]
        mode["noise"] = {"noisy": bool(reasons), "reasons": list(reasons)}
        if ratios is not None:
            mode["paired"] = {"baseline": "ag", "ratios": [ratios] * 15}

    return mode_value


def _change(per_method):
    """Pass every timing mode of a method through per_method[method] (default: steady)."""

    def change(record):
        if record["metric"] == "time":
            fix = per_method.get(record["axes"]["method"], _steady())
            for mode in record["value"].values():
                if isinstance(mode, dict) and "samples" in mode:
                    fix(mode)
        return record

    return change


def test_the_slowed_method_and_only_it_is_flagged_slower(cli, write_suite, tmp_path, victim):
    assert cli("run", write_suite(SUITE), "--out", "real").exit_code == 0
    real = tmp_path / "real"
    _copy_run(real, tmp_path / "fast", _change({}))
    _copy_run(real, tmp_path / "slow", _change({"victim": _steady(3.0)}))
    fast, slow = store.RunFolder(tmp_path / "fast"), store.RunFolder(tmp_path / "slow")
    result = compare.compare_runs(fast, slow)
    flagged = {key[1] for key, verdict in _verdicts(result).items() if verdict == "slower"}
    assert flagged == {"victim"}
    assert result.geomean["victim"] == pytest.approx(3.0)
    assert result.geomean["dk"] == result.geomean["ag"] == 1.0
    assert all(v == "~" for k, v in _verdicts(result).items() if k[2] == "forward_error")
    text = cli("compare", "fast", "slow", "--format", "md").stdout
    assert "victim" in text and "slower" in text
    # A 3% change is below the 5% minimum effect: no verdict, however tight its interval.
    _copy_run(real, tmp_path / "slight", _change({"victim": _steady(1.03)}))
    result = compare.compare_runs(fast, store.RunFolder(tmp_path / "slight"))
    assert set(_verdicts(result).values()) == {"~"}


def _time_verdicts(result):
    return {k[1]: v for k, v in _verdicts(result).items() if k[2] == "time.fwd_bwd"}


def test_a_noisy_record_makes_a_time_change_inconclusive(cli, write_suite, tmp_path, victim):
    assert cli("run", write_suite(SUITE), "--out", "real").exit_code == 0
    real, load = tmp_path / "real", ("load: other processes used 1.8 of 2 cores",)
    _copy_run(real, tmp_path / "quiet", _change({}))
    # Under load every method is 2x slower and the victim 6x: raw times cannot tell which.
    _copy_run(real, tmp_path / "loaded", _change({
        "dk": _steady(2.0, reasons=load), "ag": _steady(2.0, reasons=load),
        "victim": _steady(6.0, reasons=load),
    }))  # fmt: skip
    quiet, loaded = store.RunFolder(tmp_path / "quiet"), store.RunFolder(tmp_path / "loaded")
    result = compare.compare_runs(quiet, loaded)
    assert set(_time_verdicts(result).values()) == {"?"}
    assert all("B noisy (load:" in r.note for r in result.rows if r.verdict == "?")
    # The same numbers without the flag: every method "slower", which is what load did.
    _copy_run(real, tmp_path / "unflagged", _change({
        "dk": _steady(2.0), "ag": _steady(2.0), "victim": _steady(6.0),
    }))  # fmt: skip
    result = compare.compare_runs(quiet, store.RunFolder(tmp_path / "unflagged"))
    assert set(_time_verdicts(result).values()) == {"slower"}


def test_interleaved_and_solo_timings_are_not_compared(cli, write_suite, tmp_path, victim):
    assert cli("run", write_suite(SUITE), "--out", "real").exit_code == 0
    real = tmp_path / "real"

    def interleaved(record):
        record = _change({"victim": _steady(2.0)})(record)
        if record["metric"] == "time":
            record["value"]["interleaved"] = {"methods": ["dk", "ag", "victim"]}
        return record

    _copy_run(real, tmp_path / "alone", _change({}))
    _copy_run(real, tmp_path / "together", interleaved)
    result = compare.compare_runs(
        store.RunFolder(tmp_path / "alone"), store.RunFolder(tmp_path / "together")
    )
    # The victim 2x slower, but measured differently: no claim, and the note says why.
    assert _time_verdicts(result)["victim"] == "?"
    assert "A timed alone, B interleaved" in next(
        r.note for r in result.rows if r.method == "victim" and r.metric == "time.fwd_bwd"
    )


def test_a_change_within_the_noise_floor_is_inconclusive(cli, write_suite, tmp_path, victim):
    assert cli("run", write_suite(SUITE), "--out", "real").exit_code == 0
    real = tmp_path / "real"
    # 301 samples with IQR/median 40%: the median is known to a few %, so a 20% change
    # has an interval excluding 1, but it sits inside the samples' own spread.
    _copy_run(real, tmp_path / "a", _change({"victim": _steady(1.0, spread=0.4, n=301)}))
    _copy_run(real, tmp_path / "b", _change({"victim": _steady(1.2, spread=0.4, n=301)}))
    _copy_run(real, tmp_path / "c", _change({"victim": _steady(3.0, spread=0.4, n=301)}))
    a = store.RunFolder(tmp_path / "a")
    within = compare.compare_runs(a, store.RunFolder(tmp_path / "b"))
    assert _time_verdicts(within)["victim"] == "?"
    assert "within the noise floor" in next(r.note for r in within.rows if r.verdict == "?")
    beyond = compare.compare_runs(a, store.RunFolder(tmp_path / "c"))
    assert _time_verdicts(beyond)["victim"] == "slower"


def test_paired_ratios_claim_only_between_load_free_runs(cli, write_suite, tmp_path, victim):
    assert cli("run", write_suite(SUITE), "--out", "real").exit_code == 0
    real, load = tmp_path / "real", ("load: other processes used 1.8 of 2 cores",)
    _copy_run(real, tmp_path / "quiet", _change({
        "dk": _steady(1.0, ratios=1.0), "ag": _steady(1.0, ratios=1.0),
        "victim": _steady(1.0, ratios=1.0),
    }))  # fmt: skip
    # Quiet again, the victim 3x slower: its ratio to ag triples, and it alone is flagged.
    _copy_run(real, tmp_path / "slowed", _change({
        "dk": _steady(1.0, ratios=1.0), "ag": _steady(1.0, ratios=1.0),
        "victim": _steady(3.0, ratios=3.0),
    }))  # fmt: skip
    quiet = store.RunFolder(tmp_path / "quiet")
    result = compare.compare_runs(quiet, store.RunFolder(tmp_path / "slowed"))
    paired = {k[1]: v for k, v in _verdicts(result).items() if k[2].endswith("ratio_to_ag")}
    assert paired == {"victim": "slower", "dk": "~"}
    # Loaded: load moves ratios too (a 2.9x shift was measured), so neither the victim's
    # 3x nor dk's 1.2x is claimed; raw times are inconclusive as well.
    _copy_run(real, tmp_path / "loaded", _change({
        "dk": _steady(2.4, reasons=load, ratios=1.2), "ag": _steady(2.0, reasons=load,
        ratios=1.0), "victim": _steady(6.0, reasons=load, ratios=3.0),
    }))  # fmt: skip
    result = compare.compare_runs(quiet, store.RunFolder(tmp_path / "loaded"))
    assert set(_time_verdicts(result).values()) == {"?"}
    paired = {k[1]: v for k, v in _verdicts(result).items() if k[2].endswith("ratio_to_ag")}
    assert paired == {"victim": "?", "dk": "?"}
    assert all("B noisy (load:" in r.note for r in result.rows if r.metric.startswith("time"))


def test_speedup_view_divides_by_the_baseline_on_each_machine(cli, write_suite, tmp_path, victim):
    assert cli("run", write_suite(SUITE), "--out", "a").exit_code == 0
    folder = store.RunFolder(tmp_path / "a")
    result = compare.compare_runs(folder, folder, baseline="dk")
    rows = [r for r in result.rows if r.metric.startswith("time")]
    assert all(r.note.startswith("relative to dk") for r in rows)
    assert all(r.a == pytest.approx(1.0) for r in rows if r.method == "dk")
    _check_one_line(cli("compare", "a", "a", "--baseline", "nope"), ["no timings of method"])


def test_a_run_measured_on_two_machines_keeps_them_apart(cli, write_suite, tmp_path, victim):
    assert cli("run", write_suite(SUITE), "--out", "a").exit_code == 0

    def on(machine_of):
        return lambda record: {**record, "machine_key": machine_of(record)}

    # The same records, as if dim 6 was measured on node m1 and dim 8 on node m2.
    _copy_run(tmp_path / "a", tmp_path / "b", on(lambda r: "m1" if r["axes"]["dim"] == 6 else "m2"))
    a, b = store.RunFolder(tmp_path / "a"), store.RunFolder(tmp_path / "b")
    result = compare.compare_runs(a, b)
    assert result.machines_b == {"m1": 6, "m2": 6} and len(result.machines_a) == 1
    timed = [r for r in result.rows if r.metric.startswith("time")]
    assert timed and all("B on m1" in r.note or "B on m2" in r.note for r in timed)
    frame = bench_cli.load_results(tmp_path / "b")
    assert set(frame["machine_key"]) == {"m1", "m2"}
    text = cli("compare", "a", "b").stdout
    assert "B was measured on 2 machines: m1 (6 records), m2 (6 records)" in text
    # Divided by a baseline from the same machine only: with dk measured on m1 alone,
    # the methods measured on m2 have no baseline to divide by, and are left out.
    by_method = on(lambda r: "m1" if r["axes"]["method"] == "dk" else "m2")
    _copy_run(tmp_path / "a", tmp_path / "c", by_method)
    c = store.RunFolder(tmp_path / "c")
    result = compare.compare_runs(c, c, baseline="dk")
    assert {r.method for r in result.rows if r.metric.startswith("time")} == {"dk"}


def test_bad_comparisons_exit_2(cli, write_suite, tmp_path, victim):
    suite = write_suite(SUITE)
    assert cli("run", suite, "--out", "six", "--filter", "dim=6").exit_code == 0
    assert cli("run", suite, "--out", "eight", "--filter", "dim=8").exit_code == 0
    _check_one_line(cli("compare", "six", "eight"), ["share no cases"])
    other = write_suite(SUITE.replace("name: cmp", "name: other"), name="other.yaml")
    assert cli("run", other, "--out", "other", "--filter", "dim=6").exit_code == 0
    _check_one_line(cli("compare", "six", "other"), ["different suites"])
    _check_one_line(cli("compare", "six"), ["at least two"])
    _check_one_line(cli("compare", "six", "nowhere"), ["not found"])
    _check_one_line(cli("compare", "six", "six", "--format", "html"), ["unknown format"])


def test_changed_status_is_called_out_first(tmp_path):
    def make(path, status, value):
        folder = store.RunFolder(path)
        env = {"machine_key": "m"}
        with folder.open_for_run(
            suite_name="s", fingerprint="f", suite_text="name: s\n", env=env
        ) as writer:
            for dim, st, val in ((4, "ok", 1e-6), (8, status, value)):
                params = {
                    "suite": "s",
                    "method": "m",
                    "inputs": {"kind": "spd", "dim": dim},
                    "device": "cpu",
                    "dtype": "float32",
                }
                writer.append(
                    [
                        {
                            "case": str(dim),
                            "metric": "forward_error",
                            "status": st,
                            "value": val,
                            "reason": None,
                            "params": params,
                            "axes": {
                                "method": "m",
                                "dim": dim,
                                "device": "cpu",
                                "dtype": "float32",
                            },
                        }
                    ]
                )
        return folder

    a, b = make(tmp_path / "a", "ok", 2e-6), make(tmp_path / "b", "nonfinite", None)
    result = compare.compare_runs(a, b)
    assert result.rows[0].verdict == "ok -> nonfinite"
    assert result.rows[1].verdict == "~" and result.rows[1].note.startswith("B - A")


def test_bootstrap_interval_covers_the_ratio_and_excludes_one_for_a_real_shift():
    rng = torch.Generator().manual_seed(0)
    a = (1.0 + 0.05 * torch.rand(200, generator=rng)).numpy()
    low, high = verdicts.bootstrap_median_ratio(a, a * 1.5)
    assert low <= 1.5 <= high and low > 1.2
    low, high = verdicts.bootstrap_median_ratio(a, a)
    assert low <= 1.0 <= high


def test_plots_label_axes_and_keep_eight_methods_apart():
    records = []
    for i in range(8):
        for dim in (16, 32, 64):
            records.append(
                {
                    "metric": "time",
                    "status": "ok",
                    "value": {"fwd_bwd": {"samples": [1e-6 * (i + 1) * dim**2] * 5}},
                    "axes": {"method": f"m{i}", "dim": dim, "dtype": "float32", "device": "cpu"},
                }
            )
    ((name, fig),) = plots.time_vs_size(records)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "dim" and ax.get_ylabel() == "time per call (ms)"
    styles = {(tuple(line.get_color()), line.get_marker()) for line in ax.lines}
    assert len(ax.get_legend().get_texts()) == 8 and len(styles) == 8
    assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "32", "64"]


def test_load_results_is_tidy(cli, write_suite, tmp_path, victim):
    assert cli("run", write_suite(SUITE), "--out", "a").exit_code == 0
    frame = bench_cli.load_results(tmp_path / "a")
    assert len(frame) == 12
    assert {"case", "metric", "status", "value", "method", "dim", "machine_key"} <= set(frame)
    assert (frame.groupby(["case", "metric"]).size() == 1).all()


# Appended to a copy of the report in the browser test: which tables are wider than
# their box (a scrollbar hides columns), and whether the page scrolls sideways.
LAYOUT_PROBE = """<script>
const tables = [...document.querySelectorAll("table")];
const scrolling = tables.filter(t => t.scrollWidth > t.clientWidth + 1)
  .map(t => (t.querySelector("th") || {}).textContent);
const pre = document.createElement("pre");
pre.id = "layout";
pre.textContent = "tables=" + tables.length + " scrolling=" + JSON.stringify(scrolling)
  + " page_scrolls=" + (document.documentElement.scrollWidth > window.innerWidth + 1);
document.body.appendChild(pre);
</script>"""


@pytest.mark.browser
def test_html_report_renders_in_headless_chromium(cli, write_suite, tmp_path, victim):
    assert cli("run", write_suite(SUITE), "--out", "a").exit_code == 0
    assert cli("report", "a", "a", "--out", "report.html").exit_code == 0
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "<script" not in page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("MATBENCH_REQUIRE_CHROMIUM") == "1":  # .ci/run installs it
            pytest.fail("MATBENCH_REQUIRE_CHROMIUM=1 but chromium is not installed")
        pytest.skip(
            "chromium is not installed (Debian: apt-get install chromium); "
            "the page was checked for inline plots only"
        )
    browser = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--window-size=1200,2000",
    ]  # fmt: skip
    # The page as the browser built it: the "which method" section, with its table and
    # a plot, and the comparison table collapsed to the rows that changed.
    dom = subprocess.run(
        [*browser, "--dump-dom", (tmp_path / "report.html").as_uri()],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    which = dom.split("<h2>Which method?</h2>", 1)
    assert len(which) == 2, "no 'Which method?' section in the rendered page"
    section = which[1].split("<h2>", 1)[0]
    assert "Pareto front, fastest first" in section and "≤ 1e-02" in section
    # One row per setting (which method wins depends on the machine's timing: not asserted).
    assert "spd(dim=6) float32 cpu" in section and "spd(dim=8) float32 cpu" in section
    assert 'src="data:image/png;base64,' in section
    assert "unchanged (~) are left out" in dom
    # Layout at 1200 px: no table scrolls sideways and the page does not either. A copy of
    # the page with a measuring script (the report itself never carries one) says so.
    probe = tmp_path / "measured.html"
    probe.write_text(page.replace("</body>", LAYOUT_PROBE + "</body>"))
    measured = subprocess.run(
        [*browser, "--dump-dom", probe.as_uri()],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    layout = measured.split('<pre id="layout">', 1)[1].split("</pre>", 1)[0]
    assert layout.startswith("tables=") and "scrolling=[]" in layout, layout
    assert "page_scrolls=false" in layout, layout
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*browser, f"--screenshot={shot}", (tmp_path / "report.html").as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    dark = (pixels.mean(-1) < 0.5).mean()
    assert pixels.std() > 0.05 and dark > 0.005  # text and plots, not a blank page


def test_compare_changed_leaves_out_the_unchanged_rows(cli, write_suite, tmp_path, victim):
    suite = write_suite(SUITE)
    assert cli("run", suite, "--out", "a").exit_code == 0
    assert cli("run", suite, "--out", "b").exit_code == 0
    every = cli("compare", "a", "b", "--format", "csv")
    only = cli("compare", "a", "b", "--format", "csv", "--changed")
    assert every.exit_code == only.exit_code == 0
    verdicts = [line.rsplit(",", 2)[-2] for line in every.output.splitlines()[1:] if "," in line]
    assert "~" in verdicts  # forward_error is identical in both runs
    kept = [line for line in only.output.splitlines()[1:] if ",forward_error" in line]
    assert kept == []  # and is not listed with --changed
    shown = cli("compare", "a", "b", "--changed")
    assert "unchanged row(s) (~) not listed" in shown.output.replace("\n", " ")


def test_compare_device_help_is_its_own():
    from typer.testing import CliRunner

    from bench_cli.cli import app

    text = CliRunner().invoke(app, ["compare", "--help"], env={"COLUMNS": "200"}).output
    assert "Compare only the records measured on this device" in text
    assert "Run on these devices instead of the suite's" not in text


def test_the_rank_bootstrap_agrees_with_resampling_the_values_and_batches_alike():
    """The bootstrap by ranks (bench_cli.verdicts) against one that resamples the values
    themselves, written here independently: the interval ends agree to Monte Carlo error
    (20,000 resamples here, 2,000 there: a few tenths of a percent of the ratio); many
    rows at once give each row what one call gives; a deliberately wrong ratio fails."""
    rng = np.random.default_rng(3)
    a = rng.lognormal(0.0, 0.2, 40)
    b = 1.3 * rng.lognormal(0.0, 0.2, 37)
    low, high = verdicts.bootstrap_median_ratio(a, b)
    draws = np.random.default_rng(11)
    ma = np.median(a[draws.integers(0, 40, (20_000, 40))], axis=1)
    mb = np.median(b[draws.integers(0, 37, (20_000, 37))], axis=1)
    ref_low, ref_high = np.percentile(mb / ma, [2.5, 97.5])
    assert low == pytest.approx(ref_low, rel=0.02) and high == pytest.approx(ref_high, rel=0.02)
    assert high != pytest.approx(verdicts.bootstrap_median_ratio(a, 1.1 * b)[1], rel=0.02)
    pairs = [(a, b), (b[:30], a[:30]), (a, b * 2)]
    assert verdicts.bootstrap_median_ratios(pairs) == [
        verdicts.bootstrap_median_ratio(x, y) for x, y in pairs
    ]
