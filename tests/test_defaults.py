"""Defaults that would change the answer silently are gone: a thresholded gap treatment
needs its gap_eps and the gaussian affinity its sigma, and every table names the options
its rows were measured with."""

from __future__ import annotations

import pytest
import torch

from bench_cli import spec, tables
from bench_cli.layers import matrix_function
from bench_cli.layers.spectral import gap_matrix
from bench_cli.spec import SuiteError, TableSpec

F64 = torch.float64


def _rank_deficient_covariance(channels: int = 16, samples: int = 6, seed: int = 0):
    """Σ = XᵀX/N of N < C samples: C − N eigenvalues at rounding level, tied at ~0."""
    X = torch.randn(samples, channels, generator=torch.Generator().manual_seed(seed), dtype=F64)
    X = X - X.mean(0)
    return X.mT @ X / samples


def test_clamp_with_a_scale_bounds_the_gap_on_a_rank_deficient_covariance():
    """The zero block's gaps are ~1e-16: 1e-12 (the old default) clamps nothing there,
    K̃ reaches 1e12 and beyond like the exact formula; 1e-6 of the largest eigenvalue
    bounds it by 1/gap_eps, as the treatment promises."""
    sigma = _rank_deficient_covariance()
    eigvals = torch.linalg.eigvalsh(sigma)
    exact = gap_matrix(eigvals, "exact").abs()
    exact = exact[torch.isfinite(exact)].max()
    old_default = gap_matrix(eigvals, "clamp", gap_eps=1e-12).abs().max()
    assert exact > 1e12 and old_default >= min(float(exact), 1e12)
    scale = 1e-6 * float(eigvals.max())
    clamped = gap_matrix(eigvals, "clamp", gap_eps=scale).abs().max()
    assert clamped == pytest.approx(1 / scale)
    # And through the layer: a finite gradient of sqrt at this covariance (+ a ridge that
    # keeps sqrt differentiable), bounded by the clamp.
    X = (sigma + 1e-3 * torch.eye(16, dtype=F64)).requires_grad_(True)
    (grad,) = torch.autograd.grad(
        matrix_function(X, "sqrt", "eig", gap="clamp", gap_eps=scale).sum(), X
    )
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("gap", ["clamp", "mask", "clip"])
def test_a_thresholded_gap_without_its_threshold_is_refused(gap):
    eigvals = torch.tensor([1.0, 1.0, 2.0], dtype=F64)
    with pytest.raises(ValueError, match=f"gap '{gap}' needs gap_eps"):
        gap_matrix(eigvals, gap)
    suite = f"""\
name: s
inputs: {{kind: spd, batch: 2, dim: 4}}
methods:
  bare: {{layer: matrix_function, func: sqrt, method: eig, gap: {gap}}}
  scaled: {{layer: matrix_function, func: sqrt, method: eig, gap: {gap}, gap_eps: 1.0e-6}}
metrics: [forward_error]
"""
    with pytest.raises(SuiteError) as caught:
        spec.loads(suite, "s.yaml")
    text = str(caught.value)
    assert f"gap '{gap}' needs gap_eps" in text and "methods.bare" in text
    assert "methods.scaled" not in text  # the one with its threshold is fine
    assert text.count("\n") == 0 or "inputs" not in text
    # exact, taylor and pade have no threshold to give
    spec.loads(suite.replace(f"gap: {gap}", "gap: exact").replace("gap_eps: 1.0e-6", ""), "s")


def test_the_gaussian_affinity_needs_its_sigma():
    suite = """\
name: s
inputs: {kind: features, batch: 2, samples: 12, channels: 4}
methods:
  bare: {layer: ncut, method: eig, k: 2}
  scaled: {layer: ncut, method: eig, k: 2, sigma: 4.0}
  cosine: {layer: ncut, method: eig, k: 2, affinity: cosine}
metrics: [forward_error]
"""
    with pytest.raises(SuiteError) as caught:
        spec.loads(suite, "s.yaml")
    text = str(caught.value)
    assert "the gaussian affinity needs sigma" in text and "methods.bare" in text
    assert "methods.scaled" not in text and "methods.cosine" not in text
    assert "inputs" not in text  # the sigma is the only thing wrong with it
    spec.loads(suite.replace("  bare: {layer: ncut, method: eig, k: 2}\n", ""), "s.yaml")


def _record(method, options, dim=8, value=1e-6):
    return {
        "case": f"{method}{dim}", "metric": "grad_error", "status": "ok", "value": value,
        "axes": {"method": method, "dim": dim, "device": "cpu", "dtype": "float32"},
        "params": {"options": {"affinity": "gaussian", **options},  # defaults filled in
                   "inputs": {"kind": "features", "dim": dim}, "device": "cpu",
                   "dtype": "float32"},
        "given_options": options,
    }  # fmt: skip


def test_each_table_names_the_options_its_rows_set():
    records = [
        _record("eig", {"k": 4, "sigma": 4.0}),
        _record("lowrank", {"k": 4, "sigma": 4.0, "oversample": 8}),
        _record("eig[gap=clamp]", {"k": 4, "sigma": 4.0, "gap": "clamp", "gap_eps": 1e-6}),
    ]
    table = tables.build(records, TableSpec(title="t", metric="grad_error", rows=["method"]))
    assert table.options == (
        "options set: k=4; sigma=4.0; oversample=8 (lowrank); gap_eps=1e-06 (eig[gap=clamp])"
    )
    assert "sigma=4.0" in tables.render(table, "md")
    # A table whose rows set nothing says nothing; one that shows the option as a column
    # does not repeat it.
    bare = [_record("eig", {}), _record("lowrank", {})]
    assert tables.build(bare, TableSpec(title="t", metric="grad_error")).options == ""
    # Records from before given_options: every recorded option, defaults included, and
    # the caption says "options", not "options set".
    older = [{k: v for k, v in r.items() if k != "given_options"} for r in records]
    caption = tables.build(older, TableSpec(title="t", metric="grad_error")).options
    assert caption.startswith("options: affinity=gaussian; k=4; sigma=4.0")
    swept = [_record("eig", {"sigma": s}, dim=int(s)) for s in (1.0, 4.0)]
    for r in swept:
        r["axes"]["sigma"] = r["params"]["options"]["sigma"]
    by_sigma = tables.build(swept, TableSpec(title="t", metric="grad_error", cols=["sigma"]))
    assert "sigma" not in by_sigma.options
