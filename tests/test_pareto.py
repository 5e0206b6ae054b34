"""The report's "which method" answer: per setting and function computed, the fastest
method whose forward and gradient errors are both within a tolerance, ranked by paired
ratios where measured, and "inconclusive" where noise or a tie leaves it open."""

from __future__ import annotations

import pytest

from bench_cli import pareto
from bench_cli.report import short_labels, which_method_section

N = 15


def _records(method, case, forward, seconds, *, grad=None, dim=8, noisy=False, status="ok",
             ratio=None, baseline="exact", layer="matrix_function", func="sqrt"):  # fmt: skip
    """A method's error and time records at one setting. ``ratio``: its per-round paired
    ratio to ``baseline`` (every round the same, times a tiny ripple), as a suite with a
    ``baseline:`` records them."""
    params = {"inputs": {"kind": "spd", "batch": 2, "dim": dim}, "layer": layer}
    axes = {"method": method, "layer": layer, "func": func, "dtype": "float32", "device": "cpu",
            "dim": dim}  # fmt: skip
    if func is None:
        del axes["func"]
    mode = {
        "samples": [seconds * (1 + 0.01 * ((i % 3) - 1)) for i in range(N)],
        "noise": {
            "noisy": noisy,
            "reasons": ["load: other processes used 1.8 of 2 cores"] if noisy else [],
        },  # fmt: skip
    }
    if ratio is not None:
        mode["paired"] = {
            "baseline": baseline,
            "ratios": [ratio * (1 + 0.001 * ((i % 3) - 1)) for i in range(N)],
        }
    records = [
        {"case": case, "metric": "forward_error", "status": status, "value": forward,
         "axes": axes, "params": params},
        {"case": case, "metric": "time", "status": "ok", "axes": axes, "params": params,
         "value": {"fwd_bwd": mode}},
    ]  # fmt: skip
    if grad is not None:
        records.append({"case": case, "metric": "grad_error", "status": "ok", "value": grad,
                        "axes": axes, "params": params})  # fmt: skip
    return records


MEASURED = [
    *_records("exact", "c1", 1e-7, 4e-3, grad=1e-7),
    *_records("ns5", "c2", 3e-3, 1e-3, grad=3e-3),
    *_records("ns10", "c3", 2e-5, 2e-3, grad=2e-5),
    *_records("slow_bad", "c4", 1e-2, 5e-3, grad=1e-2),  # beaten on both: never on the front
]


def test_the_front_and_the_fastest_within_each_tolerance():
    (setting,) = pareto.settings(MEASURED)
    assert setting.metrics == ("forward_error", "grad_error")
    assert [p.method for p in setting.front] == ["ns5", "ns10", "exact"]
    assert setting.answer(1e-2).method == "ns5"
    assert setting.answer(1e-4).method == "ns10"
    assert setting.answer(1e-6).method == "exact"
    assert setting.answer(1e-9).text == "none"


def test_a_method_needs_both_errors_within_the_tolerance():
    """svd_pi's forward error is tiny but its gradient error 0.15: it answers no tolerance."""
    records = [*MEASURED, *_records("svd_pi", "c5", 1e-8, 5e-4, grad=0.15)]
    (setting,) = pareto.settings(records)
    assert setting.answer(1e-2).method == "ns5"
    assert setting.answer(1e-6).method == "exact"
    # The same numbers with the gradient error forgotten: svd_pi would win everywhere.
    forward_only = [r for r in records if r["metric"] != "grad_error"]
    (setting,) = pareto.settings(forward_only)
    assert setting.metrics == ("forward_error",)
    assert setting.answer(1e-6).method == "svd_pi"


def test_a_wrong_measurement_changes_the_answer():
    """The verdicts can fail: make the dominated method the fastest and it must lead."""
    wrong = [r for r in MEASURED if r["case"] != "c4"]
    wrong += _records("slow_bad", "c4", 1e-2, 5e-4, grad=1e-2)
    (setting,) = pareto.settings(wrong)
    assert setting.front[0].method == "slow_bad"
    assert setting.answer(1e-2).method == "slow_bad"


def test_only_methods_of_one_function_compete():
    """Bilinear pooling is another descriptor, not a faster O2P: it has its own group."""
    o2p = [
        *_records("o2p-eig", "o1", 1e-6, 4e-3, grad=1e-6, layer="o2p", func="log"),
        *_records("o2p-svd", "o2", 1e-6, 6e-3, grad=1e-6, layer="o2p", func="log"),
        *_records("bilinear", "o3", 1e-7, 1e-4, grad=1e-7, layer="bilinear", func=None),
    ]
    (setting,) = pareto.settings(o2p)
    assert setting.computes == "o2p func=log"
    assert {p.method for p in setting.points} == {"o2p-eig", "o2p-svd"}
    assert setting.answer(1e-4).method == "o2p-eig"
    assert pareto.alone(o2p, [setting]) == ["bilinear (bilinear)"]
    page = which_method_section(o2p)
    assert "Not compared as a route to another output: bilinear (bilinear)" in page
    # Counted as one function (the mistake this guards against), bilinear would win.
    same = [{**r, "axes": {**r["axes"], "layer": "o2p", "func": "log"}} for r in o2p]
    (setting,) = pareto.settings(same)
    assert setting.answer(1e-4).method == "bilinear"


def test_paired_ratios_rank_where_the_suite_measured_them():
    """Raw medians say ns5 is faster; the paired per-round ratios (the same rounds, drift
    cancelled) say ns10 is: the ratios decide."""
    paired = [
        *_records("exact", "c1", 1e-7, 4e-3, grad=1e-7, ratio=1.0),
        *_records("ns5", "c2", 3e-3, 1e-3, grad=3e-3, ratio=0.6),
        *_records("ns10", "c3", 2e-5, 2e-3, grad=2e-5, ratio=0.3),
    ]
    (setting,) = pareto.settings(paired)
    assert setting.paired and setting.baseline == "exact"
    answer = setting.answer(1e-2)
    assert answer.method == "ns10" and answer.conclusive
    assert "0.50× ns5's time" in answer.text
    unpaired = [r for r in paired if True]
    for r in unpaired:
        if r["metric"] == "time":
            r["value"]["fwd_bwd"].pop("paired")
    (setting,) = pareto.settings(unpaired)
    assert not setting.paired and setting.answer(1e-2).method == "ns5"


@pytest.mark.parametrize("noisy", [False, True])
def test_noisy_timings_make_the_answer_inconclusive(noisy):
    records = [
        *_records("exact", "c1", 1e-7, 4e-3, grad=1e-7, noisy=noisy),
        *_records("ns10", "c3", 2e-5, 2e-3, grad=2e-5, noisy=noisy),
    ]
    (setting,) = pareto.settings(records)
    answer = setting.answer(1e-2)
    if noisy:
        assert answer.method is None and answer.text.startswith("inconclusive (noisy)")
    else:
        assert answer.method == "ns10" and answer.conclusive
    # A single method within the tolerance is the answer, noisy or not: no race to judge.
    assert setting.answer(1e-6).method == "exact"


def test_a_tie_is_inconclusive():
    records = [
        *_records("a", "c1", 1e-7, 1.00e-3, grad=1e-7, ratio=1.0, baseline="a"),
        *_records("b", "c2", 1e-7, 0.99e-3, grad=1e-7, ratio=0.99, baseline="a"),
    ]
    (setting,) = pareto.settings(records)
    answer = setting.answer(1e-2)
    assert answer.method is None and answer.text.startswith("inconclusive: b ≈ a")


def test_failed_and_untimed_methods_are_left_out_and_settings_kept_apart():
    records = [
        *MEASURED,
        *_records("broken", "c5", 1e-9, 1e-4, grad=1e-9, status="failed"),
        *_records("exact", "d1", 1e-7, 3e-2, grad=1e-7, dim=64),
        *_records("ns5", "d2", 5e-3, 1e-2, grad=5e-3, dim=64, noisy=True),
    ]
    first, second = pareto.settings(records)
    broken = next(p for p in first.points if p.method == "broken")
    assert broken.errors["forward_error"] == float("inf")  # never within a tolerance
    assert first.answer(1e-2).method == "ns5"
    assert [p.method for p in second.points] == ["exact", "ns5"]
    assert second.points[1].noisy
    page = which_method_section(records)
    assert "<h2>Which method?</h2>" in page and "spd(dim=64) float32 cpu" in page
    assert "ns5 (10 ms ⚠, 5.0e-03)" in page.replace("10.0 ms", "10 ms")
    assert "inconclusive (noisy): ns5 or exact" in page


def test_short_labels_drop_what_every_label_shares():
    labels = ["spd(batch=2, dim=8) float32", "spd(batch=2, dim=64) float64"]
    assert short_labels(labels) == {
        labels[0]: "spd(dim=8) float32",
        labels[1]: "spd(dim=64) float64",
    }


def _labelled_ticks(axis) -> list[str]:
    low, high = sorted(axis.get_view_interval())
    ticks = axis.get_majorticklocs()
    labels = axis.get_major_formatter().format_ticks(list(ticks))
    return [t for v, t in zip(ticks, labels, strict=True) if low <= v <= high and t]


def test_a_narrow_log_range_still_carries_two_labelled_ticks():
    """Errors within a factor of 3 and times within 1.5x: neither spans a decade."""
    from bench_cli import plots

    records = [
        *_records("a", "c1", 1.0e-7, 1.0e-3, grad=1.1e-7),
        *_records("b", "c2", 3.0e-7, 1.5e-3, grad=2.0e-7),
    ]
    (setting,) = pareto.settings(records)
    fig = plots.pareto(setting)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert len(_labelled_ticks(ax.xaxis)) >= 2, _labelled_ticks(ax.xaxis)
    assert len(_labelled_ticks(ax.yaxis)) >= 2, _labelled_ticks(ax.yaxis)


def test_a_long_chart_title_stays_inside_the_figure():
    """Three runs with long folder names: the legend takes the right, and the title must
    wrap rather than run off the figure's left edge ("ver the first run")."""
    from bench_cli import plots

    runs = {
        f"results/throughput/20261207T1{i}0000Z_some-long-machine-name-{i}": {"eig": 1.0 + i,
                                                                              "ns": 2.0}
        for i in range(3)
    }  # fmt: skip
    fig = plots.speedup_bars(runs)
    fig.canvas.draw()
    title = fig.axes[0].title.get_window_extent()
    assert title.x0 >= 0 and title.x1 <= fig.bbox.x1, (title, fig.bbox)
