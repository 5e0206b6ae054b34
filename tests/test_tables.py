import pandas as pd
import pytest

from bench_cli import tables
from bench_cli.records import metric_value
from bench_cli.spec import TableSpec


def _record(method, dim, dtype, status="ok", value=None, metric="time"):
    return {
        "case": f"{method}-{dim}-{dtype}",
        "metric": metric,
        "status": status,
        "value": value,
        "reason": None if status == "ok" else "why",
        "unit": "s",
        "axes": {"method": method, "dim": dim, "dtype": dtype, "device": "cpu", "batch": 2},
        "params": {"inputs": {"kind": "spd", "dim": dim}},
    }


def _time(*samples):
    return {"fwd_bwd": {"samples": list(samples)}}


def test_metric_value_derives_statistics_from_samples():
    record = _record("a", 4, "float32", value=_time(1.0, 2.0, 3.0, 4.0, 100.0))
    assert metric_value(record, ["fwd_bwd", "median"]) == 3.0
    assert metric_value(record, ["fwd_bwd", "min"]) == 1.0
    assert metric_value(record, ["fwd_bwd", "iqr"]) == 2.0  # 4 - 2
    with pytest.raises(KeyError):
        metric_value(record, ["fwd", "median"])


def test_status_shows_as_status_never_a_number():
    records = [
        _record("a", 4, "float32", value=_time(1e-3)),
        _record("a", 8, "float32", status="nonfinite"),
        _record("b", 4, "float32", status="failed"),
        _record("b", 8, "float32", status="skipped"),
    ]
    table = tables.build(records, TableSpec(title="t", metric="time.fwd_bwd.median", cols=["dim"]))
    shown = table.formatted()
    assert shown.loc["a", "dim=4"] == "1.00 ms"
    assert shown.loc["a", "dim=8"] == "nonfinite"
    assert shown.loc["b", "dim=4"] == "failed" and shown.loc["b", "dim=8"] == "skipped"


def test_axes_varying_outside_rows_and_cols_join_the_rows():
    records = [_record("a", 4, dtype, value=_time(1.0)) for dtype in ("float32", "float64")]
    table = tables.build(records, TableSpec(title="t", metric="time.fwd_bwd.median", cols=["dim"]))
    assert list(table.frame.index.names) == ["method", "dtype"]
    assert len(table.frame) == 2


def test_number_formatting_three_significant_figures():
    assert tables.format_number(0.000123456, "") == "1.23e-04"
    assert tables.format_number(1.23456, "ms") == "1.23"
    assert tables.format_number(123.456, "ms") == "123"
    assert tables.format_number(0, "ms") == "0"


def test_time_unit_chosen_per_table():
    records = [
        _record("a", 4, "float32", value=_time(2e-6)),
        _record("a", 8, "float32", value=_time(5e-6)),
    ]
    table = tables.build(records, TableSpec(title="t", metric="time.fwd_bwd.median", cols=["dim"]))
    assert table.display_scale[0] == "µs"
    assert table.formatted().loc["a", "dim=4"] == "2.00 µs"


def test_csv_keeps_raw_si_numbers_and_statuses():
    records = [
        _record("a", 4, "float32", value=_time(2e-6)),
        _record("a", 8, "float32", status="failed"),
    ]
    table = tables.build(records, TableSpec(title="t", metric="time.fwd_bwd.median", cols=["dim"]))
    csv = tables.render(table, "csv")
    assert "2e-06" in csv and "failed" in csv


def test_default_tables_when_a_suite_names_none():
    specs = tables.default_tables(["time", "forward_error"])
    assert [s.metric for s in specs] == ["time.fwd_bwd.median", "forward_error"]


def test_empty_records_make_an_empty_table():
    table = tables.build([], TableSpec(title="t", metric="forward_error"))
    assert isinstance(table.frame, pd.DataFrame) and table.frame.empty
    assert "t" in tables.render(table, "md")


def test_medians_show_half_the_iqr_at_the_digits_it_justifies():
    # Samples 1.00, 1.01, 1.02, 1.03 ms: median 1.015, IQR 0.015, half 0.0075 ms.
    quiet = [_record("a", 4, "float32", value=_time(1.00e-3, 1.01e-3, 1.02e-3, 1.03e-3))]
    table = tables.build(quiet, TableSpec(title="t", metric="time.fwd_bwd.median", cols=["dim"]))
    assert table.formatted().loc["a", "dim=4"] == "1.015 ± 0.007 ms"
    assert not table.noisy and "(!" not in tables.render(table, "md")
    assert "half the interquartile range" in tables.render(table, "md")
    assert tables.render(table, "csv").splitlines()[1].endswith("0.001015")  # raw median
    assert tables.format_with_spread(123.456, 4.0) == "123 ± 4"
    assert tables.format_with_spread(123.456, 0.4) == "123.5 ± 0.4"
    assert tables.format_with_spread(123.456, 0.004) == "123.5 ± 0.004"  # at most 4 figures
    assert tables.format_with_spread(2.5, 30.0) == "2 ± 30"  # spread above the value: 1 figure


def test_high_variance_is_flagged_and_low_variance_is_not():
    # IQR 0.5 of a median 1.0: 50% > 10%, flagged; a check that never flagged fails here.
    noisy = [_record("a", 4, "float32", value=_time(0.5, 0.75, 1.0, 1.25, 1.5))]
    table = tables.build(noisy, TableSpec(title="t", metric="time.fwd_bwd.median", cols=["dim"]))
    assert table.noisy
    assert table.formatted().loc["a", "dim=4"].endswith("s (!50%)")
    assert "the IQR is N% of the median, above 10%" in table.legend
    steady = [_record("a", 4, "float32", value=_time(0.99, 1.0, 1.0, 1.01))]
    table = tables.build(steady, TableSpec(title="t", metric="time.fwd_bwd.median", cols=["dim"]))
    assert not table.noisy and "(!" not in table.formatted().loc["a", "dim=4"]
    # Statistics other than the median carry no spread.
    table = tables.build(noisy, TableSpec(title="t", metric="time.fwd_bwd.min", cols=["dim"]))
    assert table.spread is None and table.legend == ""


def test_rows_and_columns_follow_the_grid_not_the_order_records_were_written():
    # Written as shards finished: dim 5 before dim 7, method b before a.
    grid = {("a", 7): 0, ("a", 5): 1, ("b", 7): 2, ("b", 5): 3}
    records = []
    for method, dim in [("b", 5), ("a", 5), ("b", 7), ("a", 7)]:
        record = _record(method, dim, "float32", value=_time(1.0))
        record["grid"] = grid[(method, dim)]
        records.append(record)
    table = tables.build(records, TableSpec(title="t", metric="time.fwd_bwd.median", cols=["dim"]))
    assert list(table.frame.columns) == ["dim=7", "dim=5"]
    assert list(table.frame.index) == ["a", "b"]
    # Records from before "grid" existed keep the order they were written in.
    for record in records:
        del record["grid"]
    table = tables.build(records, TableSpec(title="t", metric="time.fwd_bwd.median", cols=["dim"]))
    assert list(table.frame.columns) == ["dim=5", "dim=7"]


def _flagged(noisy, ratios=None, *samples):
    value = _time(*(samples or (1e-3, 1e-3, 1e-3)))
    reasons = ["load: other processes used 1.8 of 2 cores"] if noisy else []
    value["fwd_bwd"]["noise"] = {"noisy": noisy, "reasons": reasons}
    if ratios is not None:
        value["fwd_bwd"]["paired"] = {"baseline": "a", "ratios": ratios}
    return value


def test_a_noisy_timing_is_marked_and_summarised_and_a_quiet_one_is_not():
    records = [
        _record("a", 4, "float32", value=_flagged(False)),
        _record("b", 4, "float32", value=_flagged(True)),
    ]
    table = tables.build(records, TableSpec(title="t", metric="time.fwd_bwd.median", cols=["dim"]))
    shown = table.formatted()
    assert shown.loc["b", "dim=4"].endswith(tables.NOISY_MARK)
    assert not shown.loc["a", "dim=4"].endswith(tables.NOISY_MARK)
    assert table.flagged == 1 and tables.NOISY_MARK in table.legend
    summary = tables.noise_summary(records)
    assert summary.startswith("warning: 1 of 2 timing records") and "load: 1 mode(s)" in summary
    assert tables.noise_summary(records[:1]) == ""  # nothing flagged: nothing said


def test_ratio_to_baseline_is_the_median_paired_ratio_and_n_a_without_pairing():
    paired = _record("b", 4, "float32", value=_flagged(False, [2.0, 3.0, 100.0]))
    assert metric_value(paired, ["fwd_bwd", "ratio_to_baseline"]) == 3.0
    alone = _record("c", 4, "float32", value=_flagged(False))
    assert metric_value(alone, ["fwd_bwd", "ratio_to_baseline"]) == "n/a"
    # A ratio cell is marked by the ratios' own dispersion, not the raw samples'.
    spread = _record("d", 4, "float32", value=_flagged(False, [1.0, 2.0, 3.0] * 4))
    assert tables.noise_reasons(spread, ["fwd_bwd", "ratio_to_baseline"])[0].startswith(
        "dispersion: IQR of the paired ratios"
    )
    tight = _record("e", 4, "float32", value=_flagged(True, [2.0, 2.02, 1.98] * 4))
    assert tables.noise_reasons(tight, ["fwd_bwd", "ratio_to_baseline"]) == [
        "load: other processes used 1.8 of 2 cores"
    ]  # load still counts; the raw samples' dispersion does not
    quiet = _record("f", 4, "float32", value=_flagged(False, [2.0, 2.02, 1.98] * 4))
    assert tables.noise_reasons(quiet, ["fwd_bwd", "ratio_to_baseline"]) is None
