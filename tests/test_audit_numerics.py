"""Numerical defects an independent audit found, each pinned by a test that failed before its fix.

References here are computed without the code under test: closed-form matrix
polynomials, central differences, and scipy's Lyapunov solver.
"""

import numpy as np
import pytest
import scipy.linalg
import torch

from bench_cli.layers import gap_matrix, matrix_function
from bench_cli.layers.approx import mpa_lya, mtp_lya
from bench_cli.layers.matfun import method_flops
from bench_cli.registry import flop_model
from tests.layer_helpers import F64


def _rotated(eigvals, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(eigvals), len(eigvals), generator=g, dtype=F64))
    A = (Q * torch.tensor(eigvals, dtype=F64)) @ Q.mT
    return 0.5 * (A + A.mT)


@pytest.mark.parametrize("method", ["eig_dk", "eig", "autograd"])
@pytest.mark.parametrize("p", [0, 1, 2, 3, 5])
def test_integer_power_gradient_on_indefinite_and_singular_input(method, p):
    # d tr(G Aᵖ)/dA = Σₖ Aᵏ G Aᵖ⁻¹⁻ᵏ for symmetric A, G: a matrix polynomial, no eigensolver.
    # eig_dk's Loewner matrix used log1p/expm1, which assume λ > 0: NaN here before the fix.
    A = _rotated([-2.0, -0.5, 0.0, 1.0, 3.0])
    G = _rotated([0.3, -1.0, 2.0, 0.7, -0.2], seed=1)
    powers = [torch.linalg.matrix_power(A, k) for k in range(max(p, 1))]
    expected = sum((powers[k] @ G @ powers[p - 1 - k] for k in range(p)), torch.zeros_like(A))
    X = A.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((matrix_function(X, "pow", method, p=p) * G).sum(), X)
    # Eigenvalues up to 3 and p ≤ 5: entries up to ~1e3, rounding ~1e-13 relative.
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("gap", ["clamp", "clip"])
def test_floored_gap_stays_antisymmetric_at_exact_ties(gap):
    F = gap_matrix(torch.tensor([1.0, 1.0, 2.0], dtype=F64), gap, gap_eps=1e-6)
    torch.testing.assert_close(F, -F.mT, rtol=0, atol=0)


def test_clamp_gradient_at_exact_tie_is_bounded_and_exactly_what_flooring_implies():
    # sqrt at diag(1, 1, 2), eigenvectors the identity. Daleckii-Krein, exact at ties:
    # ∂L/∂A = L ∘ G with Lᵢⱼ the divided differences of sqrt, L₀₁ = f'(1) = ½. A floored K̃
    # meets f(λ₀) − f(λ₁) = 0 on the tied pair, so it gives L₀₁ = 0 there and the exact
    # value everywhere else. With both mirrored entries of the same sign (before the fix)
    # they added up to 1/gap_eps instead: a relative error near 1e6.
    eigvals = torch.tensor([1.0, 1.0, 2.0], dtype=F64)
    roots = eigvals.sqrt()
    L = 1.0 / (roots.unsqueeze(0) + roots.unsqueeze(1))  # (√λᵢ − √λⱼ)/(λᵢ − λⱼ)
    L[0, 1] = L[1, 0] = 0.0
    G = _rotated([0.5, -1.0, 2.0], seed=3)
    X = torch.diag(eigvals).requires_grad_(True)
    (grad,) = torch.autograd.grad(
        (matrix_function(X, "sqrt", "eig", gap="clamp", gap_eps=1e-6) * G).sum(), X
    )
    torch.testing.assert_close(grad, L * G, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", [mtp_lya, mpa_lya])
def test_lyapunov_backward_converges_by_default(method):
    # d = 32, condition 1e4: 8 fixed sign steps left 11-70 % gradient error.
    d = 32
    A = _rotated(list(np.logspace(0, -4, d)), seed=5)
    G = _rotated(list(np.linspace(-1, 1, d)), seed=6)
    X = A.clone().requires_grad_(True)
    S = method(X, "sqrt")
    (grad,) = torch.autograd.grad((S * G).sum(), X)
    # S X + X S = G for the S the forward returned, solved by Bartels-Stewart.
    reference = scipy.linalg.solve_continuous_lyapunov(S.detach().numpy(), G.numpy())
    assert np.abs(grad.numpy() - reference).max() < 1e-6
    # A short fixed count does not converge here: the test can tell the two apart. (With
    # the sign iteration scaled by ‖S⁴‖_F^¼ instead of ‖S‖_F, 8 steps come within 1e-3.)
    (short,) = torch.autograd.grad((method(X, "sqrt", lya_iters=4) * G).sum(), X)
    assert np.abs(short.numpy() - reference).max() > 1e-3


def test_mpa_flops_count_the_shared_powers():
    # Two polynomials of degree n sharing Z², ..., Zⁿ: n − 1 products of 2d³, plus the LU
    # solve; the backward: 2 products for the scale, 5 per sign step, less the first B².
    d, degree = 16, 5
    forward, backward = method_flops("mpa_lya", d, {"degree": degree, "lya_iters": 8})
    assert forward == (degree - 1) * 2 * d**3 + 8 * d**3 / 3
    assert backward == (8 * 5 + 1) * 2 * d**3


def test_adaptive_backward_has_no_flop_model_rather_than_a_guess():
    flops = flop_model(
        "matrix_function", "mtp_lya", {"degree": 11, "lya_iters": None}, {"batch": 2, "dim": 8}
    )
    assert flops["fwd"] == 2 * 11 * 2 * 8**3
    assert flops["bwd"] is None and flops["fwd_bwd"] is None


@pytest.mark.parametrize("method", ["eig", "autograd"])
def test_rank_deficient_covariance_gradients_are_finite_but_silently_wrong(method):
    # What the README's method table states: on XcᵀXc/N + εI with N < C the eigenvalue ε
    # repeats up to rounding; eig and autograd return *finite* gradients that are percent-level
    # wrong (not NaN), while eig_dk is exact. The reference is Daleckii-Krein in NumPy.
    g = torch.Generator().manual_seed(0)
    X = torch.randn(4, 16, generator=g, dtype=F64)
    X = X - X.mean(0)
    A = X.mT @ X / 4 + 1e-3 * torch.eye(16, dtype=F64)
    A = 0.5 * (A + A.mT)
    G = _rotated(list(np.linspace(-1, 1, 16)), seed=7)
    eigvals, eigvecs = np.linalg.eigh(A.numpy())
    diff = eigvals[:, None] - eigvals[None, :]
    same = np.abs(diff) < 1e-12 * eigvals.max()
    log_diff = np.log(eigvals)[:, None] - np.log(eigvals)[None, :]
    L = np.where(same, 1 / eigvals[:, None], log_diff / np.where(same, 1, diff))
    reference = eigvecs @ (L * (eigvecs.T @ G.numpy() @ eigvecs)) @ eigvecs.T

    def error(name):
        Xg = A.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad((matrix_function(Xg, "log", name) * G).sum(), Xg)
        return grad.numpy(), np.linalg.norm(grad.numpy() - reference) / np.linalg.norm(reference)

    grad, wrong = error(method)
    assert np.isfinite(grad).all() and wrong > 1e-2
    assert error("eig_dk")[1] < 1e-8  # the reference and eig_dk agree: the test can tell


def _dk_log_reference(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """∂⟨G, log A⟩/∂A by Daleckii–Krein in NumPy, ties (|Δλ| < 1e-12 λmax) as f′(λ)."""
    eigvals, eigvecs = np.linalg.eigh(A)
    diff = eigvals[:, None] - eigvals[None, :]
    same = np.abs(diff) < 1e-12 * eigvals.max()
    log_diff = np.log(eigvals)[:, None] - np.log(eigvals)[None, :]
    L = np.where(same, 1 / eigvals[:, None], log_diff / np.where(same, 1, diff))
    sym_G = 0.5 * (G + G.T)
    return eigvecs @ (L * (eigvecs.T @ sym_G @ eigvecs)) @ eigvecs.T


def test_svd_log_gradient_at_rank_deficiency_is_nan_or_wrong_never_right():
    """What the README states for svd on XcᵀXc/N + 1e-3 I with d = 64, N = 16 (48 copies of
    the eigenvalue 1e-3, up to rounding), in float64: its exact K̃ divides by σᵢ² − σⱼ²,
    which squaring makes exactly 0 for some tied pairs (NaN) and tiny for the rest (wrong).
    Over 5 seeds x 3 matrices each gradient is non-finite or more than 1% off; how many are
    NaN depends on LAPACK's rounding (4 of 15 on the AMD EPYC VM), so only "never right"
    is asserted, with eig_dk right on the same inputs."""
    nonfinite = 0
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        X = torch.randn(3, 16, 64, generator=g, dtype=F64)
        Xc = X - X.mean(-2, keepdim=True)
        A = Xc.mT @ Xc / 16 + 1e-3 * torch.eye(64, dtype=F64)
        A = 0.5 * (A + A.mT)
        G = torch.randn(3, 64, 64, generator=g, dtype=F64)
        grads = {}
        for method in ("svd", "eig_dk"):
            Ag = A.clone().requires_grad_(True)
            (grads[method],) = torch.autograd.grad(matrix_function(Ag, "log", method), Ag, G)
        for b in range(3):
            reference = _dk_log_reference(A[b].numpy(), G[b].numpy())
            scale = np.linalg.norm(reference)
            assert np.linalg.norm(grads["eig_dk"][b].numpy() - reference) / scale < 1e-8
            svd_grad = grads["svd"][b].numpy()
            if not np.isfinite(svd_grad).all():
                nonfinite += 1
                continue
            assert np.linalg.norm(svd_grad - reference) / scale > 1e-2
    assert nonfinite < 15  # some are finite (and wrong): not NaN everywhere either
