"""The analytic float64 reference gradients of ncut and bilinear pooling (NumPy, written
apart from the torch layers), held to central differences and to torch's autograd in
float64; and plan's time estimate."""

from __future__ import annotations

import json

import pytest
import torch

from bench_cli import references as ref
from bench_cli.layers import ncut, pooling


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("affinity", ["gaussian", "cosine"])
def test_the_ncut_reference_gradient_matches_differences_and_autograd(affinity):
    generator = torch.Generator().manual_seed(4)
    X = torch.randn(2, 14, 3, generator=generator, dtype=torch.float64)
    G = torch.randn(2, 14, 14, generator=generator, dtype=torch.float64)
    options = {"k": 3, "affinity": affinity, "sigma": 1.3}
    analytic = ref.ncut_grad(options, {"X": X}, G)["X"]
    differences = ref.fd_reference_grad(ref.ncut, options, {"X": X}, G)["X"]
    leaf = X.clone().requires_grad_(True)
    P = ncut.normalized_cuts(leaf, 3, affinity_kind=affinity, sigma=1.3, method="autograd")
    (autograd,) = torch.autograd.grad(P, leaf, G)
    # Central differences with h = 1e-6 rms(x): truncation h^2 and rounding 1e-16/h give
    # about 1e-10 relative (measured 2-3e-9 here, amplified by the eigengap 1/(λ3 − λ4));
    # autograd in float64 through the same eigenpairs agrees to rounding (measured 2e-15).
    assert _relative(analytic, differences) < 1e-7
    assert _relative(analytic, autograd) < 1e-10


def test_a_wrong_ncut_reference_fails_the_same_check():
    """The check above can fail: keep every eigenpair pair (not kept x discarded only)."""
    generator = torch.Generator().manual_seed(4)
    X = torch.randn(2, 14, 3, generator=generator, dtype=torch.float64)
    G = torch.randn(2, 14, 14, generator=generator, dtype=torch.float64)
    options = {"k": 3, "affinity": "gaussian", "sigma": 1.3}
    right = ref.ncut_grad(options, {"X": X}, G)["X"]
    wrong = ref.ncut_grad(options, {"X": X}, G.mT.contiguous() * 0.9)["X"]
    assert _relative(wrong, right) > 1e-3


def test_the_bilinear_reference_gradient_matches_differences_and_autograd():
    generator = torch.Generator().manual_seed(5)
    X = torch.randn(2, 10, 4, generator=generator, dtype=torch.float64)
    g = torch.randn(2, 16, generator=generator, dtype=torch.float64)
    options = {"eps": 1e-12}
    analytic = ref.bilinear_grad(options, {"X": X}, g)["X"]
    differences = ref.fd_reference_grad(ref.bilinear, options, {"X": X}, g)["X"]
    leaf = X.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad(pooling.bilinear(leaf, eps=1e-12), leaf, g)
    assert _relative(analytic, differences) < 1e-7  # measured 7e-10
    assert _relative(analytic, autograd) < 1e-12  # measured 4e-16


def test_bilinear_grad_error_runs_past_the_old_finite_difference_limit(cli, write_suite, tmp_path):
    """96 samples x 96 channels is 9216 elements per item, over the 8192 that central
    differences allowed; the analytic reference has no limit."""
    suite = write_suite(
        """\
        name: big-bilinear
        dtype: [float64]
        inputs: {kind: features, batch: [2], samples: [96], channels: [96]}
        methods:
          bil: {layer: bilinear}
        metrics: [grad_error]
        """
    )
    assert cli("run", suite, "--out", "run").exit_code == 0
    (record,) = [json.loads(x) for x in (tmp_path / "run" / "records.jsonl").open()]
    assert record["status"] == "ok" and record["value"] < 1e-10  # float64 both sides: 6e-12


ESTIMATED = """\
name: estimated
dtype: [float64]
inputs: {kind: spd, batch: [2], dim: [4, 6]}
methods:
  exact: {layer: matrix_function, func: sqrt, method: autograd}
  ns: {layer: matrix_function, func: sqrt, method: newton_schulz}
metrics:
  - forward_error
  - time: {budget_s: 0.5, modes: [fwd, fwd_bwd]}
"""


def _history(case, metric, elapsed, layer="matrix_function", impl="autograd"):
    return {
        "case": case,
        "metric": metric,
        "status": "ok",
        "elapsed_s": elapsed,
        "params": {"layer": layer, "impl": impl},
    }


def test_plan_estimates_from_the_same_case_then_the_same_method_then_the_model(tmp_path):
    from bench_cli import api, spec

    suite = spec.loads(ESTIMATED)
    cases = suite.cases()
    exact = [c for c in cases if c.config.label == "exact"]
    history = [
        _history(exact[0].key, "forward_error", 2.0),  # this very case
        _history("elsewhere", "forward_error", 3.0),  # the same method elsewhere
        _history("elsewhere2", "forward_error", 5.0),
    ]
    by_metric = {e.metric: e for e in api.estimate(suite, cases, set(), history)}
    error = by_metric["forward_error"]
    # exact: 2 s (its own record) + 3 s (the median of its method's: 2, 3, 5); ns: unknown.
    assert (error.seconds, error.measured, error.similar, error.unknown) == (5.0, 1, 1, 2)
    time = by_metric["time"]
    assert time.modelled == 4 and time.seconds == pytest.approx(4 * 1.5 * 0.5 * 2)
    done = {(exact[0].key, "forward_error")}
    assert api.estimate(suite, cases, done, history)[0].cases == 3


def test_plan_prints_the_estimate(cli, write_suite):
    result = cli("plan", write_suite(ESTIMATED))
    assert result.exit_code == 0
    assert "estimated time for the cases to do" in result.output
    assert "time budget x modes x 1.5" in result.output
