"""The compile and autocast axes: how the runner calls a method, what each record keeps
of it, and what a failed compile costs (one line in that case's records).

The compiled cases use the ``aot_eager`` backend: dynamo and AOT autograd trace the
forward and the backward as inductor's would, with no code generated, so these tests
need no C++ compiler and take seconds (suites/compile.yaml measures inductor).
"""

from __future__ import annotations

import pytest
import torch

from bench_cli import runner, spec, tables
from bench_cli.errors import UserError
from bench_cli.runner import calls

SUITE = """
name: compiled
device: [cpu]
dtype: [float64]
compile: [eager, aot_eager]
inputs: {kind: spd, batch: [2], dim: [6]}
methods:
  ns: {layer: matrix_function, func: sqrt, method: newton_schulz}
  mpa: {layer: matrix_function, func: sqrt, method: mpa_lya}
metrics:
  - time: {budget_s: 0.001, modes: [fwd, fwd_bwd], min_repeats: 5, max_repeats: 5}
  - forward_error
"""


class Sink(list):
    def append(self, records):
        self.extend(records)


def load(text: str = SUITE):
    return spec.loads(text, "compiled.yaml")


def run(suite) -> list[dict]:
    sink = Sink()
    runner.run(suite, suite.cases(), sink, set(), timeout=120)
    return list(sink)


def test_the_axis_multiplies_the_grid_and_leaves_suites_without_it_unchanged():
    suite = load()
    cases = suite.cases()
    assert suite.case_count == len(cases) == 4
    assert [(c.config.label, c.compile) for c in cases] == [
        ("ns", "eager"), ("ns", "aot_eager"), ("mpa", "eager"), ("mpa", "aot_eager"),
    ]  # fmt: skip
    assert cases[1].axes["compile"] == "aot_eager" and "compile=aot_eager" in cases[1].label
    # Eager and compiled versions of every method share one paired-timing group.
    assert suite.paired_timing
    assert len({c.group_key for c in cases}) == 1
    plain = load(SUITE.replace("compile: [eager, aot_eager]\n", ""))
    assert [c.compile for c in plain.cases()] == [None, None]
    assert "compile" not in plain.cases()[0].key_params()  # old runs keep their keys
    assert "compile" not in plain.cases()[0].axes
    assert plain.fingerprint != suite.fingerprint


def test_bad_compile_and_autocast_values_are_one_clear_error():
    with pytest.raises(UserError, match="compile"):
        load(SUITE.replace("[eager, aot_eager]", "[eager, fastest]"))
    with pytest.raises(UserError, match="autocast"):
        load(SUITE + "autocast: [int8]\n")
    with pytest.raises(UserError, match="its own first mode"):
        load(SUITE + "baseline: ns\n")


def test_a_compiled_record_keeps_its_first_call_breaks_and_pairing():
    records = run(load())
    timed = {r["axes"]["method"] + "/" + r["axes"]["compile"]: r for r in records
             if r["metric"] == "time"}  # fmt: skip
    assert {r["status"] for r in records} == {"ok"}
    for method in ("ns", "mpa"):
        compiled, eager = timed[f"{method}/aot_eager"]["value"], timed[f"{method}/eager"]["value"]
        info = compiled["compile"]
        assert info["mode"] == "aot_eager" and info["backend"] == "aot_eager"
        assert info["graph_breaks"] == 0 and info["break_reasons"] == []
        assert info["graphs"] >= 1 and info["first_call_s"] > 0
        # The same steps as eager, traced: the difference is rounding (float64).
        assert info["vs_eager"]["output"] < 1e-12 and info["vs_eager"]["grad"] < 1e-12
        assert eager["compile"]["mode"] == "eager" and "graph_breaks" not in eager["compile"]
        # Each compiled method is paired with its own eager version, round by round.
        assert compiled["fwd_bwd"]["paired"]["baseline"] == f"{method} [eager]"
        assert len(compiled["fwd_bwd"]["paired"]["ratios"]) == 5
        assert eager["fwd_bwd"]["paired"]["ratios"] == [1.0] * 5
    errors = {r["axes"]["compile"]: r["value"] for r in records if r["metric"] == "forward_error"
              and r["axes"]["method"] == "ns"}  # fmt: skip
    assert errors["aot_eager"] == pytest.approx(errors["eager"], rel=1e-9)


def test_a_failed_compile_is_one_line_in_that_case_and_the_run_goes_on(monkeypatch):
    def no_compiler(graph, example_inputs):
        raise RuntimeError("no C++ compiler found\nsecond line of a long report")

    monkeypatch.setitem(calls.COMPILE_MODES, "aot_eager", (no_compiler, None))
    records = run(load())
    failed = [r for r in records if r["axes"]["compile"] == "aot_eager"]
    assert failed and all(r["status"] == "failed" for r in failed)
    assert all("no C++ compiler found" in r["reason"] for r in failed)
    assert all("\n" not in r["reason"] for r in failed)
    eager = [r for r in records if r["axes"]["compile"] == "eager"]
    assert eager and all(r["status"] == "ok" for r in eager)
    # Without their compiled partners, the eager cases are timed (ratios to themselves).
    assert all("fwd_bwd" in r["value"] for r in eager if r["metric"] == "time")


def test_the_ratio_table_shows_an_interval_and_counts_without_a_time_unit():
    suite = load()
    records = run(suite)
    ratio = tables.build(
        records,
        spec.TableSpec(title="r", metric="time.fwd_bwd.ratio_to_baseline", cols=["compile"]),
    )
    text = ratio.formatted().to_string()
    assert "[" in text and "]" in text  # median [low, high]
    assert "95% bootstrap interval" in ratio.legend
    breaks = tables.build(
        records, spec.TableSpec(title="b", metric="time.compile.graph_breaks", cols=["compile"])
    )
    assert breaks.unit == "" and "0" in breaks.formatted().to_string()


def test_autocast_runs_the_products_in_low_precision_and_says_so():
    text = """
name: amp
device: [cpu]
dtype: [float32]
autocast: [none, bfloat16]
inputs: {kind: spd, batch: [2], dim: [8]}
methods:
  ns: {layer: matrix_function, func: sqrt, method: newton_schulz}
  eig: {layer: matrix_function, func: sqrt, method: eig_dk}
metrics: [op_dtypes, forward_error]
"""
    records = run(spec.loads(text, "amp.yaml"))
    got = {(r["axes"]["method"], r["axes"]["autocast"], r["metric"]): r for r in records}
    assert got[("ns", "none", "op_dtypes")]["value"]["fwd"]["products"] == "float32"
    assert got[("ns", "bfloat16", "op_dtypes")]["value"]["fwd"]["products"] == "bfloat16"
    # eigh has no bfloat16 kernel: autocast leaves the decomposition in float32.
    assert got[("eig", "bfloat16", "op_dtypes")]["value"]["fwd"]["decompositions"] == "float32"
    assert got[("eig", "none", "op_dtypes")]["value"]["fwd"]["products"] in ("float32", "none")
    low, full = got[("ns", "bfloat16", "forward_error")], got[("ns", "none", "forward_error")]
    assert low["status"] == full["status"] == "ok"
    # A backward that raises under autocast is a finding in the value, not a lost record.
    bwd = got[("ns", "bfloat16", "op_dtypes")]["value"]["bwd"]
    assert bwd["products"] in ("bfloat16", "float32", "bfloat16+float32", "raised")
    if bwd["products"] == "raised":
        assert bwd["error"]


def test_op_dtypes_sees_what_ran_not_what_was_asked():
    """The dispatch mode reads the dtypes after autocast: a product that autocast would
    cast but that ran on float64 tensors outside it is float64."""
    from bench_cli.metrics.precision import OpDtypes

    a = torch.ones(2, 3, 3, dtype=torch.float64)
    with OpDtypes() as seen:
        torch.bmm(a, a)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.bmm(a.float(), a.float())
    assert seen.summary()["products"] == "bfloat16+float64"
    assert seen.summary()["decompositions"] == "none"


def test_first_call_starts_fresh_processes_and_keeps_each_step():
    text = """
name: cold
device: [cpu]
dtype: [float64]
inputs: {kind: spd, batch: [2], dim: [4]}
methods:
  ns: {layer: matrix_function, func: sqrt, method: newton_schulz}
metrics:
  - first_call: {repeats: 2}
"""
    (record,) = run(spec.loads(text, "cold.yaml"))
    assert record["status"] == "ok", record["reason"]
    value = record["value"]
    assert value["repeats"] == 2 and value["inductor_cache"] == "empty"
    for step in ("import_s", "init_s", "fwd_s", "bwd_s"):
        samples = value[step]["samples"]
        assert len(samples) == 2 and all(s >= 0 for s in samples)
    assert all(s > 0 for s in value["import_s"]["samples"])  # torch was imported afresh


def test_a_cold_start_that_fails_says_why_in_one_line():
    from bench_cli.metrics.options import FirstCallOptions
    from bench_cli.runner import cold

    suite = load()
    params = dict(suite.cases()[0].key_params(), impl="no_such_method")
    with pytest.raises(RuntimeError, match=r"the cold-start process failed: .*no_such_method"):
        cold._one_cold_start(params, FirstCallOptions(repeats=1), timeout=120)
