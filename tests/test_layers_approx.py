"""Approximations: accuracy trends, exact scalar models, published numbers, gradients."""

import math

import numpy as np
import pytest
import torch

from bench_cli.layers import gap_matrix, matrix_function, normalized_cuts
from bench_cli.layers.approx import (
    lyapunov_sign,
    mpa_lya,
    mtp_lya,
    newton_schulz,
    power_iterations_needed,
    sqrt_pade_coefficients,
    sqrt_taylor_coefficients,
)
from tests.layer_helpers import F64

CONDITIONS = [1e1, 1e2, 1e4, 1e6]


def spd_with(eigvals: torch.Tensor, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, R = torch.linalg.qr(torch.randn(batch, len(eigvals), len(eigvals), generator=g, dtype=F64))
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)
    return (Q * eigvals) @ Q.mT


def geometric(condition: float, d: int = 8) -> torch.Tensor:
    return torch.logspace(0, -math.log10(condition), d, dtype=F64)


def relative(a, b):
    return float(torch.linalg.matrix_norm(a - b).max() / torch.linalg.matrix_norm(b).min())


def _errors(A, method, G, **options):
    exact_out = matrix_function(A, "sqrt", "eig_dk")
    X = A.clone().requires_grad_(True)
    (matrix_function(X, "sqrt", "eig_dk") * G).sum().backward()
    exact_grad = X.grad
    X = A.clone().requires_grad_(True)
    out = matrix_function(X, "sqrt", method, **options)
    (out * G).sum().backward()
    return relative(out.detach(), exact_out), relative(X.grad, exact_grad)


SWEEPS = {
    "newton_schulz": ("iters", [1, 2, 3, 5, 8, 12, 20]),
    "mtp_lya": ("degree", [1, 2, 4, 8, 16, 32]),
    "mpa_lya": ("degree", [1, 2, 4, 8, 16]),
    "svd_taylor": ("degree", [0, 2, 8, 32, 128]),
    "svd_pi": ("iters", [1, 3, 9, 27, 81]),
}


@pytest.mark.parametrize("condition", CONDITIONS)
@pytest.mark.parametrize("method", sorted(SWEEPS))
def test_errors_fall_as_iterations_or_degree_grow(method, condition):
    A = spd_with(geometric(condition))
    G = torch.randn(A.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    option, values = SWEEPS[method]
    extra = {"lya_iters": 30} if method.endswith("_lya") else {}
    errors = [_errors(A, method, G, **{option: v}, **extra) for v in values]
    for (fwd_a, grad_a), (fwd_b, grad_b) in zip(errors, errors[1:], strict=False):
        # Non-increasing, up to rounding once converged (1e-12 covers float64 noise at
        # condition 1e6: ~1e-16 x condition^(1/2) x d).
        assert fwd_b <= fwd_a * (1 + 1e-9) + 1e-12, errors
        # MTP/MPA gradients come from the Lyapunov solve at S, whose error follows S's.
        assert grad_b <= grad_a * (1 + 1e-9) + 1e-9, errors
    assert errors[-1][1] < errors[0][1] or errors[0][1] < 1e-9


def _scalar_model(eigvals, method, **options):
    """The iteration applied to each eigenvalue alone (valid since all iterates commute)."""
    lam = eigvals.numpy()
    if method == "newton_schulz":
        scale = lam.sum()  # trace normalisation
        y, z = lam / scale, np.ones_like(lam)
        for _ in range(options["iters"]):
            t = 0.5 * (3 - z * y)
            y, z = y * t, t * z
        return torch.from_numpy(y * np.sqrt(scale))
    norm = np.sqrt((lam**2).sum())  # Frobenius normalisation
    z = 1 - lam / norm
    if method == "mtp_lya":
        values = np.polyval(sqrt_taylor_coefficients(options["degree"])[::-1], z)
    else:
        p, q = sqrt_pade_coefficients(options["degree"], options["degree"])
        values = np.polyval(p[::-1], z) / np.polyval(q[::-1], z)
    return torch.from_numpy(values * np.sqrt(norm))


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("newton_schulz", {"iters": 5}),
        ("newton_schulz", {"iters": 9}),
        ("mtp_lya", {"degree": 11}),
        ("mpa_lya", {"degree": 5}),
    ],
)
@pytest.mark.parametrize("condition", [1e2, 1e4])
def test_forward_equals_the_scalar_model_on_each_eigenvalue(method, options, condition):
    eigvals = geometric(condition)
    A = spd_with(eigvals, batch=1)
    Q = torch.linalg.eigh(A)[1]
    predicted = (Q * _scalar_model(torch.linalg.eigvalsh(A)[0], method, **options)) @ Q.mT
    # The matrix iteration and the scalar one differ by rounding only: ~1e-13 relative.
    assert relative(matrix_function(A, "sqrt", method, **options), predicted) < 1e-11


def test_documented_bound_newton_schulz_5_iterations_condition_1e2():
    # d = 8, eigenvalues 1 .. 1e-2 geometric. The scalar model bounds the relative error by
    # its worst eigenvalue: the smallest normalized one, λ/tr A ≈ 3.3e-3, after 5 steps.
    eigvals = geometric(1e2)
    A = spd_with(eigvals)
    scalar = _scalar_model(eigvals, "newton_schulz", iters=5)
    worst = float(((scalar - eigvals.sqrt()) / eigvals.sqrt()).abs().max())
    assert 0.5 < worst < 0.9  # the smallest eigenvalue is far from converged after 5 steps
    error = relative(
        matrix_function(A, "sqrt", "newton_schulz", iters=5), matrix_function(A, "sqrt", "eig_dk")
    )
    assert error <= worst and error < 0.1  # measured 0.058: larger eigenvalues dominate ‖S‖


@pytest.mark.parametrize("func", ["sqrt", "invsqrt"])
@pytest.mark.parametrize("iters", [1, 2, 5])
def test_newton_schulz_adjoint_equals_autograd_and_passes_gradcheck(func, iters):
    A = spd_with(geometric(10.0, 5), batch=3)
    G = torch.randn(A.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    grads = []
    for backward in ("autograd", "adjoint"):
        X = A.clone().requires_grad_(True)
        (newton_schulz(X, func, iters=iters, backward=backward) * G).sum().backward()
        grads.append(X.grad)
    # Same products in another order: agreement to rounding.
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda X: newton_schulz(X, func, iters=iters, backward="adjoint"),
        (A.clone().requires_grad_(True),),
    )


def test_newton_schulz_frobenius_norm_and_invsqrt_converge():
    A = spd_with(geometric(10.0))
    for norm in ("trace", "fro"):
        out = newton_schulz(A, "invsqrt", iters=20, norm=norm)
        torch.testing.assert_close(
            out, matrix_function(A, "invsqrt", "eig_dk"), rtol=1e-10, atol=1e-10
        )


def test_lyapunov_sign_iteration_solves_the_sylvester_equation():
    S = spd_with(geometric(10.0, 6).sqrt())
    G = torch.randn(S.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    G = G + G.mT
    X = lyapunov_sign(S, G, iters=30)
    torch.testing.assert_close(S @ X + X @ S, G, rtol=1e-10, atol=1e-10)
    # Independent solution through the eigendecomposition: X = U (UᵀGU ./ (sᵢ + sⱼ)) Uᵀ.
    s, U = torch.linalg.eigh(S)
    reference = U @ ((U.mT @ G @ U) / (s.unsqueeze(-1) + s.unsqueeze(-2))) @ U.mT
    torch.testing.assert_close(X, reference, rtol=1e-10, atol=1e-10)


def test_mtp_mpa_normalise_each_matrix_by_its_own_norm():
    A = spd_with(geometric(10.0, 5), batch=3)
    A[1] *= 1e6  # a batch mate on another scale must not change the others
    for method in (mtp_lya, mpa_lya):
        together = method(A, "sqrt")
        alone = torch.stack([method(A[i : i + 1], "sqrt")[0] for i in range(3)])
        torch.testing.assert_close(together, alone, rtol=1e-13, atol=0)


# ---------------------------------------------------------------- published numbers


def _gap_error(x: float, gap: str, degree: int) -> float:
    """|approximate − exact| for 1/(λ₁ − λ₂) with λ₂/λ₁ = x, λ₁ = 1 (units of 1/λ₁)."""
    eigvals = torch.tensor([x, 1.0], dtype=F64)
    approx = gap_matrix(eigvals, gap, degree=degree)[0, 1]
    return abs(float(approx) - 1.0 / (1.0 - x))


def test_degree_100_taylor_truncation_error():
    # Song, Sebe & Wang (ICCV 2021): about 36 at x = 0.99 and about 904 at x = 0.999.
    assert _gap_error(0.99, "taylor", 100) == pytest.approx(0.99**101 / 0.01, rel=1e-10)
    assert round(_gap_error(0.99, "taylor", 100)) == 36
    assert round(_gap_error(0.999, "taylor", 100)) == 904


def test_pade_50_error_at_0_999():
    # Song et al. report about 3e-10; the bar is 1e-8. The exact gap term is 1000.
    assert _gap_error(0.999, "pade", 50) < 1e-8


@pytest.mark.parametrize(
    ("ratio", "needed"), [(0.85, 19), (0.9, 29), (0.95, 59), (0.99, 299), (0.999, 2995)]
)
def test_power_iterations_needed_match_wang_et_al(ratio, needed):
    assert power_iterations_needed(ratio) == needed
    # The implemented svd_pi gradient with K terms has relative error ratioᴷ in K̃.
    for iters, below in ((needed, True), (needed - 1, False)):
        relative_error = _gap_error(ratio, "taylor", iters - 1) * (1 - ratio)
        assert (relative_error < 0.05) is below


# ---------------------------------------------------------------- eig-forward approximations


@pytest.mark.parametrize("method", ["svd_taylor", "svd_pade", "svd_pi", "svd_trunc"])
def test_approximate_gradient_methods_keep_the_exact_forward(method):
    A = spd_with(geometric(1e3))
    torch.testing.assert_close(
        matrix_function(A, "log", method),
        matrix_function(A, "log", "eig_dk"),
        rtol=1e-12,
        atol=1e-12,
    )


def test_behaviour_at_exact_ties():
    A = torch.diag(torch.tensor([1.0, 1.0, 2.0], dtype=F64)).unsqueeze(0)
    G = torch.randn(1, 3, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    finite = {}
    for method in ("svd_taylor", "svd_pi", "svd_trunc", "svd_pade", "eig"):
        X = A.clone().requires_grad_(True)
        (matrix_function(X, "log", method) * G).sum().backward()
        finite[method] = bool(torch.isfinite(X.grad).all())
    # The series and the clip stay finite; the Padé form keeps the pole (see spectral.py).
    assert finite == {
        "svd_taylor": True,
        "svd_pi": True,
        "svd_trunc": True,
        "svd_pade": False,
        "eig": False,
    }


def test_svd_topn_replaces_the_smallest_eigenvalues_and_survives_their_ties():
    # Rank-deficient covariance + 1e-8 I: three tied eigenvalues at 1e-8, dropped by n = 3.
    X = torch.randn(1, 3, 6, generator=torch.Generator().manual_seed(1), dtype=F64)
    X = X - X.mean(-2, keepdim=True)
    A = X.mT @ X / 3 + 1e-8 * torch.eye(6, dtype=F64)
    eigvals, eigvecs = torch.linalg.eigh(A)
    replaced = torch.cat([torch.full((1, 4), 1e-5, dtype=F64), eigvals[:, 4:]], -1)
    torch.testing.assert_close(
        matrix_function(A, "log", "svd_topn", n=4),
        (eigvecs * replaced.log().unsqueeze(-2)) @ eigvecs.mT,
    )
    assert torch.autograd.gradcheck(
        lambda X: matrix_function(X, "log", "svd_topn", n=4), (A.clone().requires_grad_(True),)
    )


@pytest.mark.parametrize("method", ["topk", "lowrank"])
def test_truncated_forward_error_falls_with_rank(method):
    torch.manual_seed(0)
    A = spd_with(geometric(1e4, 12))
    exact = matrix_function(A, "sqrt", "eig_dk")
    options = {"iters": 4} if method == "lowrank" else {}
    errors = [
        relative(matrix_function(A, "sqrt", method, k=k, **options), exact) for k in (2, 4, 8, 12)
    ]
    pairs = zip(errors, errors[1:], strict=False)
    assert all(b <= a * (1 + 1e-9) + 1e-10 for a, b in pairs), errors
    assert errors[-1] < 1e-8  # k = d: no discarded eigenvalues (lowrank: q = d)


def test_topk_gradcheck():
    A = spd_with(geometric(1e2, 6)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda X: matrix_function(X, "sqrt", "topk", k=3), (A,))


def test_funcs_an_approximation_does_not_compute_are_refused():
    A = spd_with(geometric(10.0, 3))
    for method in ("newton_schulz", "mtp_lya", "mpa_lya"):
        with pytest.raises(ValueError, match="computes"):
            matrix_function(A, "log", method)


# ---------------------------------------------------------------- normalized cuts


@pytest.mark.parametrize(
    ("method", "options"),
    [("lowrank", {"iters": 6}), ("subspace", {"iters": 60}), ("lobpcg", {"iters": 50})],
)
def test_ncut_top_k_alternatives_match_the_exact_projector(method, options):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    # Three well-separated clusters: a clear gap after the third eigenvalue.
    centres = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]], dtype=F64)
    X = (centres.repeat_interleave(6, 0) + 0.5 * torch.randn(18, 2, generator=g, dtype=F64))[None]
    exact = normalized_cuts(X, 3, sigma=1.0)
    approx = normalized_cuts(X, 3, sigma=1.0, method=method, **options)
    # Subspace methods converge at rate (λ₄/λ₃)^iters; with a clear gap the projectors agree.
    assert relative(approx, exact) < 1e-6
    Xg = X.clone().requires_grad_(True)
    normalized_cuts(Xg, 3, sigma=1.0, method=method, **options).sum().backward()
    assert torch.isfinite(Xg.grad).all()


@pytest.mark.parametrize("method", ["mtp_lya", "mpa_lya", "newton_schulz"])
def test_extra_batch_dimensions_forward_and_backward(method):
    # (batch, regions, d, d), as O2P with region masks produces.
    A = spd_with(geometric(10.0, 4), batch=6).reshape(2, 3, 4, 4).requires_grad_(True)
    out = matrix_function(A, "sqrt", method)
    assert out.shape == A.shape
    out.sum().backward()
    flat = A.detach().reshape(6, 4, 4).requires_grad_(True)
    matrix_function(flat, "sqrt", method).sum().backward()
    torch.testing.assert_close(A.grad.reshape(6, 4, 4), flat.grad)


def test_pade_partial_fractions_equal_the_pade_quotient():
    """The partial fractions are the same rational function as the Padé quotient, both
    in 60-digit arithmetic (mpmath, apart from the code under test), at points across
    (0, 1); float64 rounding of the fractions is the tolerance (measured below 1e-14)."""
    import mpmath

    from bench_cli.layers.approx import sqrt_pade_partial_fractions

    with mpmath.workdps(60):
        for m in (3, 8, 16):
            taylor = [mpmath.binomial(mpmath.mpf(1) / 2, k) * (-1) ** k for k in range(2 * m + 1)]
            p, q = mpmath.pade(taylor, m, m)
            alpha, beta = sqrt_pade_partial_fractions(m)
            for z in (0.1, 0.5, 0.9, 0.999):
                quotient = float(mpmath.polyval(p[::-1], z) / mpmath.polyval(q[::-1], z))
                fractions = 1 + np.sum(alpha * -z / (1 - beta * z))
                assert fractions == pytest.approx(quotient, rel=1e-12), (m, z)


def _mpa_forward_error(A64: torch.Tensor, dtype: torch.dtype, degree: int, form=None) -> float:
    from bench_cli.layers import approx

    if form is None:
        root = mpa_lya(A64.to(dtype), "sqrt", degree=degree).detach()
    else:  # the monomial form at any degree: the deliberately unstable evaluation
        S, norm, Z = approx._normalised(A64.to(dtype))
        P, Q = approx._polynomial_pair(Z, *approx.sqrt_pade_coefficients(degree, degree))
        root = torch.linalg.solve(Q, P) * norm.sqrt()
    w, U = torch.linalg.eigh(A64)
    exact = U @ torch.diag_embed(w.sqrt()) @ U.mT
    diff = (root.double() - exact).flatten(1).norm(dim=1)
    return float((diff / exact.flatten(1).norm(dim=1)).max())


def test_mpa_lya_in_float32_is_as_accurate_as_float64_at_degrees_4_to_16():
    """Condition 1e3, d = 64: float32's forward error stays within 5% of float64's (the
    Padé approximation error itself, 0.19 at degree 4 down to 0.019 at 16) at every
    degree; float32 rounding alone is ~1e-6, so 5% is far above it and far below the
    monomial form's failure. The same check fails for the monomial form at degree 12
    (measured 31.6 against 0.034), so it can fail."""
    A64 = spd_with(torch.logspace(0.0, -3.0, 64, dtype=F64), batch=2, seed=3)
    errors64 = {}
    for degree in range(4, 17):
        errors64[degree] = _mpa_forward_error(A64, torch.float64, degree)
        error32 = _mpa_forward_error(A64, torch.float32, degree)
        assert error32 == pytest.approx(errors64[degree], rel=0.05), degree
    assert errors64[16] < errors64[8] < errors64[4]  # and the degree still pays
    monomial32 = _mpa_forward_error(A64, torch.float32, 12, form="monomial")
    assert monomial32 != pytest.approx(errors64[12], rel=0.05)


def _lyapunov_checking_every_step(S, G):
    """lyapunov_sign's tolerance loop as it was, reading the residual back every step."""
    import math

    from bench_cli.layers.approx import LYA_MAX_ITERS, _sign_step

    S2 = torch.bmm(S, S)
    scale = torch.linalg.matrix_norm(torch.bmm(S2, S2)).pow(0.25).unsqueeze(-1).unsqueeze(-1)
    B, C, B2 = S / scale, G / scale, S2 / scale.square()
    tolerance = math.sqrt(torch.finfo(S.dtype).eps)
    eye = torch.eye(S.shape[-1], dtype=S.dtype).unsqueeze(0)
    for step in range(LYA_MAX_ITERS):
        if step:
            B2 = torch.bmm(B, B)
        last = bool(torch.linalg.matrix_norm(B2 - eye).max() <= tolerance)
        B, C = _sign_step(B, C, B2)
        if last:
            return 0.5 * C, step + 1
    return 0.5 * C, LYA_MAX_ITERS


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("condition", [1.0, 1e2, 1e4, 1e6])
@pytest.mark.parametrize(("batch", "dim"), [(1, 8), (3, 48), (2, 64)])
def test_skipping_checks_that_cannot_pass_changes_no_bit(dtype, condition, batch, dim):
    """The residual bound only skips read-backs: the same steps run, so the solution is
    bit-for-bit the one of checking every step."""
    from bench_cli.inputs import SpdParams, generate_spd

    generator = torch.Generator().manual_seed(dim)
    A = generate_spd(SpdParams(batch=batch, dim=dim, condition=condition), generator)["A"]
    S = torch.linalg.cholesky(A.double()).to(dtype)
    S = (S @ S.mT).contiguous()  # an SPD S of about the same conditioning
    G = torch.randn(S.shape, generator=generator, dtype=dtype)
    G = G + G.mT
    expected, steps = _lyapunov_checking_every_step(S, G)
    assert steps < 100  # it converged, so the stopping step is a real test
    assert torch.equal(lyapunov_sign(S, G), expected)


def test_the_skip_bound_never_skips_a_check_that_could_pass():
    from bench_cli.layers.approx import _checks_that_cannot_pass

    tolerance = 3.45e-4
    assert _checks_that_cannot_pass(0.0, 64, tolerance) == 0
    assert _checks_that_cannot_pass(8.0, 64, tolerance) == 0  # e = 1: no bound
    # From e = r/√d the bound after j steps, g^j(e): skipped checks are those it keeps
    # above twice the tolerance.
    e, expected = 6.86 / 8, 0
    while (e := e * e * (3 + e) / 4) > 2 * tolerance:
        expected += 1
    assert _checks_that_cannot_pass(6.86, 64, tolerance) == expected == 4
