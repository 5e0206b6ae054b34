"""One rule for noise, applied everywhere: a noisy record is ``?`` in compare and left
out of its geometric mean, a change beyond --min-effect whose interval includes 1 is
``?``, an accuracy change at rounding level is ``~``, and every table cell drawn from a
noisy timing carries ⚠. Each rule is shown on a quiet and on a noisy (or wrong)
fixture, so each test fails if the rule is broken."""

from __future__ import annotations

import pytest

from bench_cli import compare, store, tables, verdicts
from bench_cli.spec import TableSpec
from tests.test_bad_input import _check_one_line
from tests.test_compare import SUITE, _change, _copy_run, _steady, _time_verdicts, victim  # noqa: F401

LOAD = ("load: other processes used 1.8 of 2 cores",)


@pytest.fixture
def real(cli, write_suite, tmp_path, victim):  # noqa: F811
    assert cli("run", write_suite(SUITE), "--out", "real").exit_code == 0
    return tmp_path / "real"


def _pair(real, tmp_path, a_change, b_change):
    _copy_run(real, tmp_path / "a", a_change)
    _copy_run(real, tmp_path / "b", b_change)
    return store.RunFolder(tmp_path / "a"), store.RunFolder(tmp_path / "b")


@pytest.mark.parametrize("noisy", [False, True])
def test_a_noisy_row_is_open_and_left_out_of_the_geomean(real, tmp_path, noisy):
    """The victim 14x slower (the issue's ns[iters=5] 14.298), its B record flagged or
    not; dk unchanged but flagged too: a noisy row is ? whatever its ratio."""
    reasons = LOAD if noisy else ()
    a, b = _pair(real, tmp_path, _change({}), _change({
        "victim": _steady(14.0, reasons=reasons), "dk": _steady(1.0, reasons=reasons),
    }))  # fmt: skip
    result = compare.compare_runs(a, b)
    verdicts = _time_verdicts(result)
    if noisy:
        assert verdicts == {"dk": "?", "ag": "~", "victim": "?"}
        assert set(result.geomean) == {"ag"}  # no noisy row reads as a speed-up
    else:
        assert verdicts == {"dk": "~", "ag": "~", "victim": "slower"}
        assert result.geomean["victim"] == pytest.approx(14.0)


def _bimodal(high_share: int):
    """Samples half at 1 ms and half at 2 ms (``high_share`` of 15 at 2 ms): the median
    lands on either, so its bootstrap interval spans both."""

    def change(mode):
        mode["samples"] = [2e-3] * high_share + [1e-3] * (15 - high_share)
        mode["noise"] = {"noisy": False, "reasons": []}

    return change


@pytest.mark.parametrize("split", [False, True])
def test_a_large_change_whose_interval_includes_one_is_open(real, tmp_path, split):
    """A 2x change, beyond min_effect and beyond the samples' spread (IQR/median 50%):
    with 8 of 15 samples at 2 ms the interval of the median ratio reaches 1, and the
    change is ? (it read ~, "no change", before); with all 15 at 2 ms it is slower."""
    b_victim = _bimodal(8) if split else _steady(2.0)
    a, b = _pair(real, tmp_path, _change({}), _change({"victim": b_victim}))
    result = compare.compare_runs(a, b)
    row = next(r for r in result.rows if r.method == "victim" and r.metric == "time.fwd_bwd")
    assert row.ratio == pytest.approx(2.0)
    if split:
        assert row.low <= 1 <= row.high
        assert row.verdict == "?" and "interval includes 1" in row.note
        assert "victim" not in result.geomean
    else:
        assert row.verdict == "slower"


def _errors(dtype: str, value_of):
    def change(record):
        record["axes"]["dtype"] = record["params"]["dtype"] = dtype
        if record["metric"] == "forward_error":
            record["value"] = value_of(record["axes"]["method"])
        return record

    return change


@pytest.mark.parametrize(
    ("dtype", "a", "b", "verdict"),
    [
        ("float64", 1.0e-15, 1.3e-15, "~"),  # 3e-16 apart: two builds' rounding
        ("float64", 1.7e-14, 2.0e-14, "~"),  # svd_taylor on two CPUs: 3e-15 < 100 eps
        ("float64", 1.0e-15, 1.0e-12, "worse"),  # 1e-12: far beyond rounding
        ("float32", 1.0e-6, 1.0e-5, "~"),  # 9e-6 < 100 eps(float32) = 1.2e-5
        ("float32", 1.0e-6, 1.0e-4, "worse"),
        ("float32", 1.0e-4, 1.0e-6, "better"),
    ],
)
def test_accuracy_changes_are_judged_against_the_dtype(real, tmp_path, dtype, a, b, verdict):
    run_a, run_b = _pair(
        real, tmp_path,
        _errors(dtype, lambda m: a), _errors(dtype, lambda m: b if m == "victim" else a),
    )  # fmt: skip
    result = compare.compare_runs(run_a, run_b)
    rows = {r.method: r.verdict for r in result.rows if r.metric == "forward_error"}
    assert rows["victim"] == verdict and rows["dk"] == "~"


def test_compare_picks_the_device_when_one_run_measured_on_one(real, tmp_path, cli):
    """The committed smoke run holds cpu cases and skipped cuda ones; a user's run holds
    cpu only: compare reads both on cpu without --device."""
    _copy_run(real, tmp_path / "cpu_only", _change({}))
    both = tmp_path / "both"
    _copy_run(real, both, _change({}))
    records = store.RunFolder(both).records()
    import json

    extra = [
        {**r, "case": r["case"] + "-cuda", "status": "skipped", "value": None,
         "reason": "no GPU", "axes": {**r["axes"], "device": "cuda"}}
        for r in records
    ]  # fmt: skip
    with (both / "records.jsonl").open("a") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in extra)
    result = compare.compare_runs(store.RunFolder(tmp_path / "cpu_only"), store.RunFolder(both))
    assert len(result.rows) == 12 and set(_time_verdicts(result).values()) == {"~"}
    assert cli("compare", "cpu_only", "both").exit_code == 0
    # Two runs each measured on two devices: which to read is the user's choice.
    measured = [
        {**r, "status": "ok", "value": s["value"]} for r, s in zip(extra, records, strict=True)
    ]
    _copy_run(real, tmp_path / "two", _change({}))
    with (tmp_path / "two" / "records.jsonl").open("a") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in measured)
    _check_one_line(cli("compare", "two", "two"), ["compare with --device to pick one"])
    assert cli("compare", "two", "two", "--device", "cpu").exit_code == 0


def _table_records(noisy: bool, paired: bool = True):
    """Timing records of two methods at two sizes; the second method's flagged or not."""
    out = []
    for i, method in enumerate(("base", "ns")):
        for dim in (8, 16):
            mode = {
                "samples": [1e-3 * dim * (i + 1)] * 12,
                "flops": 1e6 * dim,
                "noise": {"noisy": noisy and method == "ns",
                          "reasons": list(LOAD) if noisy and method == "ns" else []},
            }  # fmt: skip
            if paired:
                mode["paired"] = {"baseline": "base", "ratios": [float(i + 1)] * 12}
            out.append({
                "case": f"{method}{dim}", "metric": "time", "status": "ok",
                "value": {"fwd_bwd": mode},
                "axes": {"method": method, "dim": dim, "device": "cpu", "dtype": "float32"},
                "params": {"inputs": {"kind": "spd", "dim": dim}, "device": "cpu",
                           "dtype": "float32"},
            })  # fmt: skip
    return out


@pytest.mark.parametrize("noisy", [False, True])
@pytest.mark.parametrize(
    ("metric", "scaling"),
    [
        ("time.fwd_bwd.median", None),
        ("time.fwd_bwd.ratio_to_baseline", None),  # the legend printed, no cell marked
        ("time.fwd_bwd.flops_per_s", None),
        ("time.fwd_bwd.median", "dim"),  # a scaling exponent fitted through noisy points
    ],
)
def test_every_table_marks_cells_from_noisy_timings(noisy, metric, scaling):
    spec = TableSpec(title="t", metric=metric, rows=["method"],
                     cols=[] if scaling else ["dim"], scaling=scaling)  # fmt: skip
    table = tables.build(_table_records(noisy), spec)
    shown = table.formatted()
    marked = {
        str(k) for k, row in shown.iterrows() if any(tables.NOISY_MARK in str(v) for v in row)
    }
    assert marked == ({"ns"} if noisy else set()), shown
    assert (tables.NOISY_MARK in table.legend) is noisy
    assert (tables.NOISY_MARK in tables.render(table, "md")) is noisy


def test_rounding_levels_are_the_stated_multiples():
    assert verdicts.rounding_level("forward_error", "float64") == pytest.approx(100 * 2.0**-52)
    assert verdicts.rounding_level("grad_error", "float32") == pytest.approx(100 * 2.0**-23)
    assert verdicts.rounding_level("fd_check", "float64") == pytest.approx(
        100 * 2.0 ** (-52 * 2 / 3)
    )
    assert verdicts.rounding_level("abs_error", "float64") is None  # no reference scale
    assert verdicts._accuracy_verdict("fd_check", 9.7e-10, 1.4e-10, "float64", 0.05) == "~"
    assert verdicts._accuracy_verdict("fd_check", 6.9e-3, 2.5e-2, "float32", 0.05) == "worse"
