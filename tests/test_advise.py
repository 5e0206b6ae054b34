"""matbench advise: the decision rule, exclusions, budget, outputs, bad input."""

import functools

import pytest

from bench_cli import advise, spec
from bench_cli.layers import matfun
from tests.test_bad_input import _check_one_line


@pytest.fixture(autouse=True)
def frozen_budget_clock(monkeypatch):
    """advise keeps its budget by a clock; here a frozen one, so no test's answer depends
    on how fast this machine screens. The budget tests pass their own advancing clock."""
    real = advise.advise
    monkeypatch.setattr(advise, "advise", functools.partial(real, clock=lambda: 0.0))


@pytest.fixture
def fakes(register_method, fake_timing):
    """Two methods registered only here: an accurate but slow one (30 ms per call on the
    fake timer, 1 ms for the rest), and a fast wrong one."""

    def slowpoke(A, func, p=None):
        """eig_dk, timed at 30 ms (test only)."""
        return matfun.eig_dk_matrix_function(A, func, p)

    def sloppy(A, func, p=None):
        """Returns A itself, whatever f is (test only)."""
        return A * 1.0

    for fn in (slowpoke, sloppy):
        register_method(fn)
    fake_timing({"slowpoke": 0.03})
    return fake_timing


def _question(**kw):
    base = dict(func="sqrt", batch=4, dims=[8], tolerance=1e-3, budget_s=10.0, device="cpu")
    return advise.Question(**{**base, **kw})


def test_slow_accurate_method_is_not_recommended_and_wrong_one_is_excluded(fakes):
    result = advise.advise(_question())
    labels = [row["method"] for row in result.ranking]
    assert "slowpoke" in labels and labels[0] != "slowpoke"
    # 30 ms against 1 ms for every other method.
    assert labels.index("slowpoke") == len(labels) - 1
    assert "sloppy" not in labels
    assert (
        result.excluded["sloppy"].startswith("forward error")
        and "> tolerance" in result.excluded["sloppy"]
    )
    best = result.ranking[0]  # whichever is fastest, it meets the tolerance
    assert best["forward_error"] <= 1e-3 and best["grad_error"] <= 1e-3


def test_ranking_follows_the_measured_times_not_a_list(fake_timing):
    # Made-up times in an order no list of methods has: the ranking must follow them.
    times = {"newton_schulz": 0.5e-3, "eig_dk": 2e-3, "autograd": 4e-3, "mpa_lya": 1e-3}
    fake_timing(times)
    result = advise.advise(_question(tolerance=0.5, dims=[16]))
    ranked = [row["method"] for row in result.ranking]
    known = [m for m in ranked if m.split("[")[0] in times]
    assert known == sorted(known, key=lambda m: times[m.split("[")[0]])
    # Each rank's time is the median of that method's own timing record.
    for row in result.ranking:
        (record,) = [r for r in result.records["time"] if r["axes"]["method"] == row["method"]]
        samples = sorted(record["value"]["fwd_bwd"]["samples"])
        assert row["time_s"] == pytest.approx(samples[len(samples) // 2], rel=1e-12)
    # At 0.5 some approximations qualify and compete on time.
    assert any(not row["exact"] for row in result.ranking)
    # The timing suite is paired: every method against its baseline, round by round.
    assert result.suites["time"]["baseline"] in result.suites["time"]["methods"]
    assert all(row["ratio"] is not None for row in result.ranking)


def test_a_ranking_within_noise_says_so(fakes):
    # slowpoke 30 ms, the rest 1 ms: the first two tie, so the order between them is noise.
    result = advise.advise(_question())
    first, second = result.ranking[0]["method"], result.ranking[1]["method"]
    assert any(n.startswith(f"{first} before {second} is within noise") for n in result.notes)


def test_a_clear_ranking_is_not_called_noise(fakes):
    fakes({"eig_dk": 0.2e-3})  # 5x faster than the next method
    result = advise.advise(_question())
    assert result.ranking[0]["method"] == "eig_dk"
    assert not any("within noise" in note for note in result.notes)
    # The same times flagged noisy: the order is no longer claimed.
    fakes({}, {"eig_dk": ["load: other processes used 1.9 of 2 cores"]})
    result = advise.advise(_question())
    assert any("within noise (timings flagged noisy" in note for note in result.notes)


def test_short_budget_uses_fewer_settings_and_says_so():
    result = advise.advise(_question(budget_s=5.0))
    assert any("one iteration/degree setting" in note for note in result.notes)
    ns = [label for label in result.suites["spd"]["methods"] if label == "newton_schulz"]
    assert result.suites["spd"]["methods"][ns[0]]["iters"] == [10]


@pytest.mark.slow
def test_cli_advice_saves_runs_and_writes_suites(cli, tmp_path):
    result = cli(
        "advise",
        "--func",
        "sqrt",
        "--batch",
        "2",
        "--dim",
        "6",
        "--budget",
        "10",
        "--device",
        "cpu",
        "--save",
        "--suite-out",
        "advice.yaml",
    )
    assert result.exit_code == 0, result.output
    assert "recommended:" in result.stdout and "excluded" in result.stdout
    for name in (
        "advice.yaml",
        "advice-spd.yaml",
        "advice-covariance.yaml",
        "advice-stability.yaml",
    ):
        spec.load(tmp_path / name)  # valid, re-runnable suites
    saved = [
        line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("saved:")
    ]
    assert len(saved) == 4 and all((tmp_path / p / "records.jsonl").exists() for p in saved)
    assert cli("show", saved[-1]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--func", "exp", "--batch", "2", "--dim", "4"], "--func must be"),
        (["--func", "sqrt", "--batch", "0", "--dim", "4"], "must be positive"),
        (["--func", "sqrt", "--batch", "2", "--dim", "-4"], "must be positive"),
        (["--func", "sqrt", "--batch", "2", "--dim", "4", "--tolerance", "0"], "(0, 1]"),
        (["--func", "sqrt", "--batch", "2", "--dim", "4", "--tolerance", "1.5"], "(0, 1]"),
    ],
)
def test_bad_input(cli, args, fragment):
    _check_one_line(cli("advise", *args), [fragment])


class _Clock:
    """A fake clock that each finished case moves on by ``per_case`` seconds: the budget's
    arithmetic is tested on known costs, never on this machine's speed."""

    def __init__(self, per_case: float):
        self.now, self.per_case, self.cases = 1000.0, per_case, 0

    def __call__(self) -> float:
        return self.now

    def reporter(self):
        from bench_cli.runner import SilentReporter

        clock = self

        class Advancing(SilentReporter):
            def case_finished(self, case, records):
                clock.now += clock.per_case
                clock.cases += 1

        return Advancing()


@pytest.mark.parametrize("per_case", [0.01, 3.0])
def test_the_budget_holds_and_says_what_was_cut(fakes, per_case):
    """Cases cost 3 s each on the fake clock: screening starts none after half of the
    60 s budget, the rest are named as not screened, and the whole advice ends within
    one case of the budget. At 0.01 s a case nothing is cut."""
    clock = _Clock(per_case)
    result = advise.advise(_question(budget_s=60.0), reporter_factory=clock.reporter, clock=clock)
    spent = clock.now - 1000.0
    cut = {k: v for k, v in result.excluded.items() if v.startswith("not screened")}
    if per_case == 0.01:
        assert not cut and result.ranking and spent < 60.0
        assert not any(note.startswith("budget: screening stopped") for note in result.notes)
        return
    # 30 s of screening at 3 s a case: 10 cases started, the last at 27 s.
    assert clock.cases == 10 and spent == pytest.approx(30.0)
    assert cut and all("screening share ran out" in v for v in cut.values())
    (note,) = [n for n in result.notes if n.startswith("budget: screening stopped at 30 s")]
    assert all(label in note for label in cut)
    assert result.notes[-1] == "advice took 30.0 s of a 60 s budget"


def test_timing_stops_at_the_budget(fakes):
    """Screening is cheap, timing at two sizes costs 25 s a size: the second size is not
    started after the budget, and the ranking says it rests on the first."""
    clock = _Clock(0.0)
    base = clock.reporter

    def reporter():
        made = base()
        finished = made.case_finished

        def case_finished(case, records):
            if records and records[0]["metric"] == "time":
                clock.now += 25.0 / len(records)  # one paired group: its cases share it
            finished(case, records)

        made.case_finished = case_finished
        return made

    result = advise.advise(
        _question(budget_s=30.0, dims=[6, 8]), reporter_factory=reporter, clock=clock
    )
    assert any(n.startswith("budget: ran out before timing d = 8; ranked on d = 6")
               for n in result.notes)  # fmt: skip
    assert result.ranking and all(list(row["per_dim"]) == [6] for row in result.ranking)


def test_the_evidence_shows_what_it_ranks_by(cli, fakes, monkeypatch):
    """Medians and paired ratios disagree (drift moved the medians): the ranking follows
    the paired ratios, the table shows them, and the runner-up line quotes the table."""
    from bench_cli.metrics import timing

    fakes({"autograd": 4e-3})  # the slowest median of the exact methods...
    group = timing.measure_time_group

    def drifted(probes, options, names, baselines, **kwargs):
        values = group(probes, options, names, baselines, **kwargs)
        for name, value in zip(names, values, strict=True):
            if name == "autograd":  # ...but the fastest, round by round
                paired = value["fwd_bwd"]["paired"]
                paired["ratios"] = [0.25 * r for r in paired["ratios"]]
        return values

    monkeypatch.setattr(timing, "measure_time_group", drifted)
    result = cli("advise", "--func", "sqrt", "--batch", "2", "--dim", "8", "--budget", "10",
                 "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = [line.split("│") for line in lines if line.startswith("│")]
    header = next(line for line in lines if "time ratio to" in line)
    assert "(paired)" in header
    shown = [(cells[1].strip(), float(cells[2].split()[0])) for cells in rows]
    ratios = [ratio for _, ratio in shown]
    assert ratios == sorted(ratios) and shown[0][0] == "autograd", shown
    recommended = next(line for line in lines if line.startswith("recommended:"))
    runner_up = next(line for line in lines if line.startswith("runner-up:"))
    assert f"paired time ratio {shown[0][1]:.3f}" in recommended
    assert shown[1][0] in runner_up and f"paired time ratio {shown[1][1]:.3f}" in runner_up
