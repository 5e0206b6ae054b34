"""Suites with a baseline: groups of methods on the same inputs, timed interleaved, with
per-round ratios to the baseline; validation, grouping, sharding and the table view."""

import pytest

from bench_cli import runner, spec, tables
from bench_cli.errors import UserError
from bench_cli.scaleout import shards
from bench_cli.spec import TableSpec

SUITE = """
name: paired
device: [cpu]
dtype: [float64]
baseline: autograd
inputs: {kind: spd, batch: [2], dim: [4, 6]}
methods:
  autograd: {layer: matrix_function, func: sqrt, method: autograd}
  eig_dk: {layer: matrix_function, func: sqrt, method: eig_dk}
metrics:
  - time: {budget_s: 0.001, modes: [fwd_bwd], min_repeats: 10, max_repeats: 10}
  - forward_error
"""


def load(text=SUITE):
    return spec.loads(text, "paired.yaml")


class Sink(list):
    def append(self, records):  # a RecordSink: records arrive per call
        self.extend(records)


def test_a_baseline_must_be_a_method_and_needs_the_time_metric():
    with pytest.raises(UserError, match=r"unknown method 'autograt'.*did you mean 'autograd'"):
        load(SUITE.replace("baseline: autograd", "baseline: autograt"))
    without_time = SUITE.replace(
        "  - time: {budget_s: 0.001, modes: [fwd_bwd], min_repeats: 10, max_repeats: 10}\n", ""
    )
    with pytest.raises(UserError, match="a baseline pairs timings: add the time metric"):
        load(without_time)


def test_a_baseline_changes_the_fingerprint_and_no_baseline_keeps_it():
    plain = load(SUITE.replace("baseline: autograd\n", ""))
    assert plain.fingerprint != load().fingerprint


def test_groups_are_the_methods_of_one_input_setting():
    suite = load()
    work = runner.pending(suite.cases(), suite, set())
    groups = runner.units(work, suite)
    assert [[c.config.label for c, _ in g] for g in groups] == [["autograd", "eig_dk"]] * 2
    assert {c.inputs["dim"] for c, _ in groups[0]} == {4}
    plain = load(SUITE.replace("baseline: autograd\n", ""))
    assert len(runner.units(runner.pending(plain.cases(), plain, set()), plain)) == 4


def test_shards_keep_a_group_together():
    cases = load().cases()
    one, two = shards.select(cases, 1, 2, True), shards.select(cases, 2, 2, True)
    assert len(one) == len(two) == 2
    assert len({c.group_key for c in one}) == len({c.group_key for c in two}) == 1
    # Without together, case keys decide: a group may be split (the old behaviour).
    assert sorted(c.key for c in one + two) == sorted(c.key for c in cases)


def test_every_method_gets_per_round_ratios_to_the_baseline():
    suite = load()
    sink = Sink()
    runner.run(suite, suite.cases(), sink, set())
    timed = [r for r in sink if r["metric"] == "time"]
    assert len(timed) == 4 and all(r["status"] == "ok" for r in timed)
    assert len([r for r in sink if r["metric"] == "forward_error"]) == 4
    for dim in (4, 6):
        base, other = (
            next(r for r in timed if r["axes"]["method"] == m and r["axes"]["dim"] == dim)
            for m in ("autograd", "eig_dk")
        )
        b, o = base["value"]["fwd_bwd"], other["value"]["fwd_bwd"]
        assert len(b["samples"]) == len(o["samples"]) == 10  # one per round
        assert o["paired"]["baseline"] == "autograd"
        expected = [x / y for x, y in zip(o["samples"], b["samples"], strict=True)]
        assert o["paired"]["ratios"] == pytest.approx(expected, rel=1e-6)
        assert b["paired"]["ratios"] == pytest.approx([1.0] * 10)
        assert other["value"]["interleaved"]["methods"] == ["autograd", "eig_dk"]
        assert "noise" in o and isinstance(o["noise"]["noisy"], bool)
    table = tables.build(timed, TableSpec(title="r", metric="time.fwd_bwd.ratio_to_baseline"))
    ratios = dict(zip(table.frame.index.get_level_values(0), table.frame.iloc[:, 0], strict=True))
    assert ratios["autograd"] == 1.0 and ratios["eig_dk"] > 0


def test_a_group_whose_baseline_fails_is_timed_without_ratios(monkeypatch):
    suite = load()
    from bench_cli.runner import case as runner_case

    prepare = runner_case._prepare

    def broken_baseline(case, **kwargs):
        if case.config.label == "autograd":
            raise RuntimeError("baseline broke")
        return prepare(case, **kwargs)

    monkeypatch.setattr(runner_case, "_prepare", broken_baseline)
    group = [c for c in suite.cases() if c.inputs["dim"] == 4]
    records = runner.run_time_group(group, suite, 60.0)
    base, other = (records[c.key] for c in group)
    assert base["status"] == "failed" and "baseline broke" in base["reason"]
    assert other["status"] == "ok" and "paired" not in other["value"]["fwd_bwd"]
    assert other["value"]["interleaved"]["baseline"] is None


def test_a_group_that_breaks_while_interleaved_is_timed_case_by_case(monkeypatch):
    from bench_cli.metrics import timing

    def broken(*args, **kwargs):
        raise RuntimeError("interleaving broke")

    monkeypatch.setattr(timing, "measure_time_group", broken)
    suite = load()
    group = [c for c in suite.cases() if c.inputs["dim"] == 4]
    records = runner.run_time_group(group, suite, 60.0)
    assert all(r["status"] == "ok" for r in records.values())
    assert all("paired" not in r["value"]["fwd_bwd"] for r in records.values())


class _LateClock:
    """time.monotonic for the timing module only: the group's deadline has passed as
    soon as the first round is done (a loaded machine, without waiting for one)."""

    @staticmethod
    def monotonic() -> float:
        return float("inf")

    def __getattr__(self, name):
        import time

        return getattr(time, name)


def test_a_group_past_its_deadline_keeps_its_rounds_and_fails_no_method(monkeypatch):
    from bench_cli.metrics import timing
    from bench_cli.runner import case as runner_case

    monkeypatch.setattr(timing, "time", _LateClock())
    suite = load()
    group = [c for c in suite.cases() if c.inputs["dim"] == 4]
    records = runner_case.run_time_group(group, suite, timeout=60)
    for record in records.values():
        assert record["status"] == "ok", record["reason"]
        mode = record["value"]["fwd_bwd"]
        assert mode["rounds_cut"] == {"done": 1, "planned": 10}
        assert len(mode["samples"]) == 1  # every method cut alike: still paired by round
    eig = next(r for r in records.values() if r["axes"]["method"] == "eig_dk")
    assert len(eig["value"]["fwd_bwd"]["paired"]["ratios"]) == 1
