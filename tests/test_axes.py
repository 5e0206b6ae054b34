"""Input parameters and method options never overwrite each other in a record's axes;
every reader (tables, plots, filters, show, report) uses the same names, old runs too."""

from __future__ import annotations

import json
import logging

from bench_cli import plots
from bench_cli.records import read_records

OPTION_SWEEP = """\
name: gap-option
description: eig's gap option swept on covariance inputs
seed: 1
dtype: [float64]
inputs:
  kind: covariance
  batch: [2]
  samples: [20]
  channels: [4, 8]
methods:
  eig: {layer: matrix_function, func: sqrt, method: eig, gap: [exact, clamp], gap_eps: 1.0e-12}
  ns: {layer: matrix_function, func: sqrt, method: newton_schulz}
metrics: [forward_error, grad_error]
tables:
  - title: forward error
    metric: forward_error
    rows: [method]
    cols: [gap, channels]
"""

BOTH_SIDES = """\
name: both-sides
description: gap is an input parameter of spd and an option of eig
seed: 1
dtype: [float64]
inputs:
  kind: spd
  batch: [2]
  dim: [4]
  gap: [0.1, 0.0001]
methods:
  eig: {layer: matrix_function, func: log, method: eig, gap: [exact, clamp], gap_eps: 0.001}
metrics: [forward_error]
tables:
  - title: forward error
    metric: forward_error
    rows: [options.gap]
    cols: [inputs.gap]
"""


def test_a_swept_method_option_on_covariance_inputs_runs_plots_and_reports(
    cli, write_suite, tmp_path
):
    result = cli("run", write_suite(OPTION_SWEEP), "--out", "run")
    assert result.exit_code == 0, result.output
    assert "not written" not in result.output
    drawn = sorted(p.name for p in (tmp_path / "run" / "plots").glob("*.png"))
    # channels is the numeric sweep; gap (exact, clamp) is text: in the line labels.
    assert drawn == ["forward_error-vs-channels.png", "grad_error-vs-channels.png"]
    assert cli("show", "run").exit_code == 0
    assert cli("report", "run", "--out", "r.html").exit_code == 0
    table = (tmp_path / "run" / "tables").glob("*.csv")
    text = next(iter(table)).read_text()
    assert "gap=exact" in text and "gap=clamp" in text


def test_the_same_name_on_both_sides_keeps_both_values(cli, write_suite, tmp_path):
    suite = write_suite(BOTH_SIDES)
    assert cli("run", suite, "--out", "run").exit_code == 0
    records = read_records(tmp_path / "run")
    seen = {(r["axes"]["inputs.gap"], r["axes"]["options.gap"]) for r in records}
    assert seen == {(0.1, "exact"), (0.1, "clamp"), (0.0001, "exact"), (0.0001, "clamp")}
    assert all(r["axes"]["gap"] == r["axes"]["inputs.gap"] for r in records)  # as before
    csv = (tmp_path / "run" / "tables").glob("*.csv")
    text = next(iter(csv)).read_text()
    assert text.splitlines()[0] == "options.gap,inputs.gap=0.1,inputs.gap=0.0001"
    assert {line.split(",")[0] for line in text.splitlines()[1:]} == {"exact", "clamp"}
    # A filter on one side selects that side's value.
    out = cli("plan", suite, "--filter", "options.gap=clamp", "--filter", "inputs.gap=0.1")
    assert out.exit_code == 0 and "1 cases" in out.output.replace("1 case ", "1 cases ")


def test_a_bare_name_that_is_both_is_refused_with_the_two_spellings(cli, write_suite):
    suite = write_suite(BOTH_SIDES.replace("cols: [inputs.gap]", "cols: [gap]"))
    result = cli("validate", suite)
    assert result.exit_code == 2
    assert "axis 'gap' is both an input parameter (spd) and an option of 'eig[gap=exact]'" in (
        result.output
    )
    assert "write inputs.gap or options.gap" in result.output
    result = cli("plan", write_suite(BOTH_SIDES), "--filter", "gap=0.1")
    assert result.exit_code == 2 and "write inputs.gap= or options.gap=" in result.output


def test_a_run_written_before_the_prefixes_reads_with_them(tmp_path):
    """An old record: the input's gap had overwritten eig's in the flat axes; the option's
    value survives in params, and reading restores it under options.gap."""
    old = {
        "case": "c1",
        "metric": "forward_error",
        "status": "ok",
        "value": 0.5,
        "axes": {"method": "eig", "layer": "matrix_function", "impl": "eig", "func": "log",
                 "kind": "spd", "dim": 4, "gap": 0.1, "device": "cpu", "dtype": "float64"},
        "params": {"options": {"func": "log", "gap": "clamp"},
                   "inputs": {"kind": "spd", "dim": 4, "gap": 0.1}},
    }  # fmt: skip
    (tmp_path / "records.jsonl").write_text(json.dumps(old) + "\n")
    (record,) = read_records(tmp_path)
    axes = record["axes"]
    assert axes["inputs.gap"] == 0.1 and axes["options.gap"] == "clamp"
    assert axes["inputs.dim"] == 4 and axes["options.func"] == "log" and axes["gap"] == 0.1
    assert "inputs.kind" not in axes and "options.method" not in axes


def _record(method, axes, value):
    return {
        "metric": "forward_error",
        "status": "ok",
        "value": value,
        "axes": {"method": method, "dtype": "float64", "device": "cpu", **axes},
    }


def test_plots_draw_every_numeric_axis_and_split_on_text_ones():
    records = [
        _record(
            m,
            {"inputs.samples": n, "inputs.spectrum": s, "inputs.gap": None, "options.gap": m},
            1e-3 * n,
        )
        for m in ("exact", "clamp")
        for n in (16, 32, 64)
        for s in ("geometric", "linear")
    ]
    names = [name for name, fig in plots.all_figures(records)]
    # samples is swept; spectrum (text) splits figures; gap (None, or text) is drawn never.
    assert names == [
        "forward_error-vs-samples-spectrum-geometric",
        "forward_error-vs-samples-spectrum-linear",
    ]


def test_an_option_swept_as_a_number_draws_one_line_per_base_method():
    records = [
        _record(f"ns[iters={k}]", {"inputs.dim": 8, "options.iters": k}, 10.0**-k)
        for k in (3, 5, 7)
    ]
    ((name, fig),) = plots.all_figures(records)
    assert name == "forward_error-vs-iters"
    (line,) = fig.axes[0].lines
    assert line.get_label() == "ns" and list(line.get_xdata()) == [3.0, 5.0, 7.0]


def test_a_plot_that_fails_costs_one_line_and_no_record(cli, write_suite, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("could not convert string to float: 'exact'")

    monkeypatch.setattr(plots, "write", broken)
    result = cli("run", write_suite(OPTION_SWEEP), "--out", "run")
    assert result.exit_code == 0
    assert "plots not written: ValueError: could not convert string to float" in result.output
    assert "matbench show" in result.output
    assert len(read_records(tmp_path / "run")) == 12
    for handler in logging.getLogger("bench_cli").handlers:  # each line is said once per
        getattr(handler, "said", set()).clear()  # process; show is a second process
    shown = cli("show", "run")
    assert shown.exit_code == 0 and "plots not written" in shown.output
    assert "forward error" in shown.output  # the tables still print


def test_an_option_that_differs_only_between_methods_draws_no_figure():
    """eig's degree 9 and svd_taylor's 100 are not a sweep: no line takes two values."""
    records = [
        _record(m, {"inputs.dim": d, "options.degree": k}, 1e-3 * d)
        for m, k in (("eig", 9), ("svd_taylor", 100))
        for d in (8, 16)
    ]
    assert [name for name, _ in plots.all_figures(records)] == ["forward_error-vs-dim"]
