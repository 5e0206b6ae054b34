"""matbench advise: the decision rule, exclusions, budget, outputs, bad input."""

import time

import pytest

from bench_cli import advise, spec
from bench_cli.layers import matfun
from tests.test_bad_input import _check_one_line


@pytest.fixture
def fakes(register_method):
    """Two methods registered only here: an accurate but slow one, and a fast wrong one."""

    def slowpoke(A, func, p=None):
        """eig_dk plus 30 ms (test only)."""
        time.sleep(0.03)
        return matfun.eig_dk_matrix_function(A, func, p)

    def sloppy(A, func, p=None):
        """Returns A itself, whatever f is (test only)."""
        return A * 1.0

    for fn in (slowpoke, sloppy):
        register_method(fn)


def _question(**kw):
    base = dict(func="sqrt", batch=4, dims=[8], tolerance=1e-3, budget_s=10.0, device="cpu")
    return advise.Question(**{**base, **kw})


def test_slow_accurate_method_is_not_recommended_and_wrong_one_is_excluded(fakes):
    result = advise.advise(_question())
    labels = [row["method"] for row in result.ranking]
    assert "slowpoke" in labels and labels[0] != "slowpoke"
    # 30 ms of sleep against well under 1 ms for the exact methods at 4 x 8 x 8.
    assert labels.index("slowpoke") == len(labels) - 1
    assert "sloppy" not in labels
    assert (
        result.excluded["sloppy"].startswith("forward error")
        and "> tolerance" in result.excluded["sloppy"]
    )
    best = result.ranking[0]  # whichever is fastest, it meets the tolerance
    assert best["forward_error"] <= 1e-3 and best["grad_error"] <= 1e-3


def test_ranking_follows_the_measured_times_not_a_list():
    result = advise.advise(_question(tolerance=0.5, dims=[16]))
    times = [row["time_s"] for row in result.ranking]
    assert times == sorted(times)
    # Each rank's time is the median of that method's own timing record.
    for row in result.ranking:
        (record,) = [r for r in result.records["time"] if r["axes"]["method"] == row["method"]]
        samples = sorted(record["value"]["fwd_bwd"]["samples"])
        assert row["time_s"] == pytest.approx(samples[len(samples) // 2], rel=1e-12)
    # At 0.5 some approximations qualify and compete on time.
    assert any(not row["exact"] for row in result.ranking)


def test_short_budget_uses_fewer_settings_and_says_so():
    result = advise.advise(_question(budget_s=5.0))
    assert any("one iteration/degree setting" in note for note in result.notes)
    ns = [label for label in result.suites["spd"]["methods"] if label == "newton_schulz"]
    assert result.suites["spd"]["methods"][ns[0]]["iters"] == [10]


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
