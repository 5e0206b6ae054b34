"""The report's "which method" answer: the Pareto front of error against time and the
fastest method within a tolerance, from a run's own records."""

from __future__ import annotations

from bench_cli import pareto
from bench_cli.report import short_labels, which_method_section


def _records(method, case, error, seconds, dim=8, noisy=False, status="ok"):
    params = {"inputs": {"kind": "spd", "batch": 2, "dim": dim}}
    axes = {"method": method, "dtype": "float32", "device": "cpu", "dim": dim}
    noise = {"noisy": noisy}
    return [
        {"case": case, "metric": "forward_error", "status": status, "value": error,
         "axes": axes, "params": params},
        {"case": case, "metric": "time", "status": "ok", "axes": axes, "params": params,
         "value": {"fwd_bwd": {"samples": [seconds * f for f in (0.9, 1.0, 1.1)],
                               "noise": noise}}},
    ]  # fmt: skip


MEASURED = [
    *_records("exact", "c1", 1e-7, 4e-3),
    *_records("ns5", "c2", 3e-3, 1e-3),
    *_records("ns10", "c3", 2e-5, 2e-3),
    *_records("slow_bad", "c4", 1e-2, 5e-3),  # beaten on both: never on the front
]


def test_the_front_and_the_fastest_within_each_tolerance():
    (setting,) = pareto.settings(MEASURED, "forward_error")
    assert [p.method for p in setting.front] == ["ns5", "ns10", "exact"]
    assert setting.fastest_within(1e-2).method == "ns5"
    assert setting.fastest_within(1e-4).method == "ns10"
    assert setting.fastest_within(1e-6).method == "exact"
    assert setting.fastest_within(1e-9) is None


def test_a_wrong_measurement_changes_the_answer():
    """The verdicts can fail: make the dominated method the fastest and it must lead."""
    wrong = [r for r in MEASURED if r["case"] != "c4"] + _records("slow_bad", "c4", 1e-2, 5e-4)
    (setting,) = pareto.settings(wrong, "forward_error")
    assert setting.front[0].method == "slow_bad"
    assert setting.fastest_within(1e-2).method == "slow_bad"


def test_failed_and_untimed_methods_are_left_out_and_settings_kept_apart():
    records = [
        *MEASURED,
        *_records("broken", "c5", 1e-9, 1e-4, status="failed"),
        *_records("exact", "d1", 1e-7, 3e-2, dim=64),
        *_records("ns5", "d2", 5e-3, 1e-2, dim=64, noisy=True),
    ]
    first, second = pareto.settings(records, "forward_error")
    assert "broken" not in {p.method for p in first.points}
    assert [p.method for p in second.points] == ["exact", "ns5"]
    assert second.points[1].noisy
    page = which_method_section(records)
    assert "<h2>Which method?</h2>" in page and "spd(dim=64) float32 cpu" in page
    assert "ns5 (10 ms ⚠, 5.0e-03)" in page.replace("10.0 ms", "10 ms")


def test_short_labels_drop_what_every_label_shares():
    labels = ["spd(batch=2, dim=8) float32", "spd(batch=2, dim=64) float64"]
    assert short_labels(labels) == {
        labels[0]: "spd(dim=8) float32",
        labels[1]: "spd(dim=64) float64",
    }
