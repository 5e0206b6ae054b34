"""Paired designs: every method sees the same data; differences come with t intervals."""

import json
import math

import pytest

from bench_cli import paired, spec, tables

SUITE = """\
name: pairs
inputs: {kind: spd, batch: [2], dim: [3], data_seed: [0, 1]}
methods:
  a: {layer: matrix_function, func: sqrt, method: eig}
  b: {layer: matrix_function, func: sqrt, method: newton_schulz, iters: [3, 5]}
dtype: [float32, float64]
metrics: [forward_error]
"""


def test_the_data_seed_depends_on_the_inputs_only():
    cases = spec.loads(SUITE).cases()
    by_data = {}
    for case in cases:
        by_data.setdefault(case.inputs["data_seed"], set()).add(case.seed)
    # One seed per data draw, whatever the method, its options or the dtype ...
    assert all(len(seeds) == 1 for seeds in by_data.values())
    # ... and different draws differ.
    assert by_data[0] != by_data[1]
    assert len({c.key for c in cases}) == len(cases)  # cases themselves stay distinct


def test_t_interval_matches_the_textbook_formula():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    interval = paired.t_interval(values)
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) s / √n
    assert interval.mean == 3.0 and interval.n == 5
    assert interval.low == pytest.approx(3 - half, rel=1e-12)
    assert interval.high == pytest.approx(3 + half, rel=1e-12)
    assert paired.t_interval([1.0]).low == -math.inf  # one value: no interval, no claim


def test_a_difference_is_claimed_only_when_its_interval_excludes_zero():
    base = {s: 0.5 + 0.01 * s for s in range(6)}
    # Shifted by +0.05 on every data set: a consistent paired difference.
    better = {s: v + 0.05 for s, v in base.items()}
    # Spread around the baseline: the mean differs but the interval straddles zero.
    noisy = {s: v + (0.2 if s % 2 else -0.15) for s, v in base.items()}
    rows = {
        r.method: r
        for r in paired.paired_rows({"base": base, "up": better, "noisy": noisy}, "base", "higher")
    }
    assert rows["base"].verdict == paired.BASELINE
    assert rows["up"].verdict == paired.BETTER
    assert rows["up"].difference.low == pytest.approx(0.05)  # zero spread: a point interval
    assert rows["noisy"].verdict == paired.NO_DIFFERENCE
    assert rows["noisy"].difference.low < 0 < rows["noisy"].difference.high
    lower = paired.paired_rows({"base": base, "up": better}, "base", "lower")
    assert lower[1].verdict == paired.WORSE  # with lower-is-better the same shift is worse


def _task_records(values: dict[str, list[float]]) -> list[dict]:
    out = []
    for method, accuracies in values.items():
        for seed, accuracy in enumerate(accuracies):
            out.append(
                {
                    "case": f"{method}-{seed}",
                    "metric": "task",
                    "status": "ok",
                    "value": {"accuracy": {"samples": [accuracy]}},
                    "axes": {"method": method, "data_seed": seed},
                    "params": {
                        "inputs": {"kind": "mosaic", "data_seed": seed},
                        "device": "cpu",
                        "dtype": "float32",
                    },
                }
            )
    return out


def test_paired_table_pairs_by_data_draw_and_reports_intervals():
    table_spec = spec.TableSpec(
        title="t",
        metric="task.accuracy.mean",
        paired=spec.PairedSpec(baseline="avg", better="higher"),
    )
    records = _task_records(
        {"avg": [0.30, 0.40, 0.50, 0.60], "o2p": [0.35, 0.46, 0.55, 0.66], "same": [0.3] * 4}
    )
    table = tables.build(records, table_spec)
    frame = table.frame
    assert list(frame.index) == ["avg", "o2p", "same"]
    assert frame.loc["o2p", "verdict"] == "better"
    assert frame.loc["o2p", "minus avg [95% CI]"].startswith("5.5 % [")
    # "same" averages 15 points below avg, but its paired differences (0, -10, -20, -30)
    # vary too much over 4 data sets: t(0.975, 3) s/√n = 20.5 points, so no claim.
    assert frame.loc["same", "verdict"] == "no difference shown"
    # A wrong measurement that breaks the pairing shows: drop o2p's best data set.
    partial = [
        r for r in records if not (r["axes"]["method"] == "o2p" and r["axes"]["data_seed"] == 3)
    ]
    assert tables.build(partial, table_spec).frame.loc["o2p", "n"] == 3
    md = tables.render(table, "md")
    assert "paired by data draw (higher is better)" in md


def test_a_paired_table_needs_a_baseline_the_suite_has(write_suite, cli):
    from tests.test_bad_input import _check_one_line

    text = SUITE + "tables:\n  - {title: t, metric: forward_error, paired: {baseline: c}}\n"
    _check_one_line(cli("validate", write_suite(text)), ["unknown method 'c'", "methods: a"])


def test_task_records_carry_identical_fingerprints_per_data_draw(cli, tmp_path):
    result = cli("reproduce", "ionescu2015-deepo2p", "--quick", "--out", "run")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").open()]
    prints: dict[int, set] = {}
    for record in records:
        fingerprint = record["value"]["data_fingerprint"]
        prints.setdefault(record["axes"]["data_seed"], set()).add(
            (fingerprint["train"], fingerprint["test"])
        )
    assert sorted(prints) == [0, 1]
    assert all(len(p) == 1 for p in prints.values())  # every method, the same data
    assert prints[0] != prints[1]  # another draw, other data
    (train0, test0), (train1, test1) = prints[0].pop(), prints[1].pop()
    assert len({train0, test0, train1, test1}) == 4


def test_the_claims_sentence_names_only_differences_whose_interval_excludes_zero():
    table_spec = spec.TableSpec(
        title="t", metric="task.accuracy.mean", paired=spec.PairedSpec(baseline="avg")
    )
    records = _task_records(
        {
            "avg": [0.30, 0.40, 0.50, 0.60],
            "o2p": [0.35, 0.46, 0.55, 0.66],  # +5..6 points on every data set
            "flip": [0.50, 0.20, 0.70, 0.40],  # +20, -20, +20, -20: mean 0, CI wide
        }
    )
    claims = tables.paired_claims(tables.build(records, table_spec))
    better, _, rest = claims.partition(";")
    assert "Better than `avg`" in better and "`o2p`" in better and "`flip`" not in better
    assert "no difference from `avg` shown" in rest and "`flip`" in rest
    # The same o2p numbers shifted onto the wrong data sets lose the pairing, and the claim.
    shuffled = _task_records({"avg": [0.30, 0.40, 0.50, 0.60], "o2p": [0.66, 0.35, 0.55, 0.46]})
    assert "Better" not in tables.paired_claims(tables.build(shuffled, table_spec))


def test_a_method_without_values_is_not_called_equal():
    base = {s: 0.5 for s in range(4)}
    rows = paired.paired_rows({"base": base, "broken": {}}, "base", "lower")
    assert rows[1].verdict == paired.NO_VALUES and rows[1].value.n == 0
