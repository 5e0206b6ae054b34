"""Spectral matrix functions: every method against independent references."""

import pytest
import torch

from bench_cli.layers import matrix_function
from bench_cli.layers.matfun import loewner
from tests.layer_helpers import (
    F64,
    analytic_directional,
    numpy_matrix_function,
    richardson_directional,
    spd,
    sym_direction,
)

# The exact methods; the approximations are tested in test_layers_approx.py.
METHODS = ("autograd", "eig", "svd", "eig_dk")
FUNCS = [("log", None), ("sqrt", None), ("invsqrt", None), ("pow", 1.5), ("identity", None)]
FUNC_IDS = [f for f, _ in FUNCS]


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize(("func", "p"), FUNCS, ids=FUNC_IDS)
def test_forward_matches_numpy(method, func, p):
    A = spd(3, 6)
    # Backward-stable eigensolvers on eigenvalues in [0.5, 4]: agreement to ~100 ulp.
    torch.testing.assert_close(
        matrix_function(A, func, method, p=p),
        numpy_matrix_function(A, func, p),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize(("func", "p"), FUNCS, ids=FUNC_IDS)
def test_gradcheck_float64_batched(method, func, p):
    A = spd(2, 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda X: matrix_function(X, func, method, p=p), (A,))


@pytest.mark.parametrize(("func", "p"), FUNCS, ids=FUNC_IDS)
def test_all_methods_agree_forward_and_backward(func, p):
    A, G = spd(4, 8), torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(9), dtype=F64)
    outputs, grads = {}, {}
    for method in METHODS:
        X = A.clone().requires_grad_(True)
        out = matrix_function(X, func, method, p=p)
        out.backward(G)
        outputs[method], grads[method] = out.detach(), X.grad
    for method in METHODS:
        # Eigenvalue gaps here are > 1e-2, so each route's rounding stays far below 1e-10.
        torch.testing.assert_close(outputs[method], outputs["autograd"], rtol=0, atol=1e-10)
        torch.testing.assert_close(grads[method], grads["autograd"], rtol=0, atol=1e-10)


def _tie_cases():
    X = torch.randn(1, 3, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    X = X - X.mean(-2, keepdim=True)
    return {
        "identity": (torch.eye(3, dtype=F64).unsqueeze(0), 1e-4),
        "diag(1,1,2)": (torch.diag(torch.tensor([1.0, 1.0, 2.0], dtype=F64)).unsqueeze(0), 1e-4),
        # 3 samples in 5 channels, centred: rank 2, so ε = 1e-3 is a triple eigenvalue.
        "rank-deficient covariance + 1e-3 I": (X.mT @ X / 3 + 1e-3 * torch.eye(5, dtype=F64), 1e-6),
    }


TIES = _tie_cases()


@pytest.mark.parametrize("func", ["log", "sqrt", "invsqrt"])
@pytest.mark.parametrize("case", sorted(TIES))
def test_eig_dk_is_finite_and_exact_at_repeated_eigenvalues(case, func):
    A, h = TIES[case]
    G = torch.randn(A.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    E = sym_direction(A.shape)

    def loss(X):
        return (matrix_function(X, func, "eig_dk") * G).sum()

    analytic, grad = analytic_directional(loss, A, E)
    assert torch.isfinite(grad).all()
    reference = richardson_directional(loss, A, E, h)
    # h is 1e-4 of the smallest eigenvalue: O(h⁴) truncation ~1e-16 and rounding
    # ~1e-16·|loss|/h ~1e-11 relative; measured errors are at most 3e-9.
    assert abs(analytic - reference) <= 1e-7 * abs(reference)


@pytest.mark.parametrize("case", sorted(TIES))
def test_eig_dk_gradcheck_at_repeated_eigenvalues(case):
    A, _ = TIES[case]
    assert torch.autograd.gradcheck(
        lambda X: matrix_function(X, "log", "eig_dk"), (A.clone().requires_grad_(True),)
    )


@pytest.mark.parametrize("method", ["autograd", "eig", "svd"])
def test_other_methods_at_repeated_eigenvalues_as_they_are(method):
    """Recorded behaviour, not a goal: exact ties give NaN, a near-tie gives wrong gradients."""
    G = torch.randn(1, 5, 5, generator=torch.Generator().manual_seed(5), dtype=F64)
    for case in ("identity", "diag(1,1,2)"):
        A, _ = TIES[case]
        X = A.clone().requires_grad_(True)
        (matrix_function(X, "log", method) * G[..., :3, :3]).sum().backward()
        assert not torch.isfinite(X.grad).all(), case
    # The rank-deficient covariance: eigenvalues differ by rounding only, so 1/(λᵢ − λⱼ) is
    # huge but finite. Measured relative errors 3e-3 to 2.4e-2 (vs 3e-11 for eig_dk).
    A, h = TIES["rank-deficient covariance + 1e-3 I"]
    E = sym_direction(A.shape)

    def loss(X, method=method):
        return (matrix_function(X, "log", method) * G).sum()

    def exact(X):
        return (matrix_function(X, "log", "eig_dk") * G).sum()

    analytic, grad = analytic_directional(loss, A, E)
    reference = richardson_directional(exact, A, E, h)
    assert not torch.isfinite(grad).all() or abs(analytic - reference) > 1e-4 * abs(reference)


@pytest.mark.parametrize(("func", "p"), FUNCS, ids=FUNC_IDS)
def test_loewner_matches_divided_differences_and_derivative(func, p):
    eigvals = torch.tensor([0.3, 0.3, 1.0, 1.0 + 1e-9, 5.0], dtype=F64)
    L = loewner(eigvals, func, p)
    f = numpy_matrix_function(torch.diag(eigvals).unsqueeze(0), func, p)[0].diagonal()
    # Far-apart pairs: plain divided differences are accurate there.
    for i, j in [(0, 2), (2, 4), (0, 4)]:
        expected = (f[i] - f[j]) / (eigvals[i] - eigvals[j])
        torch.testing.assert_close(L[i, j], expected, rtol=1e-13, atol=0)
    # Ties and a 1e-9 near-tie: the derivative f′(λ), where plain divided differences lose
    # about 7 digits to cancellation.
    h = 1e-6
    derivative = (
        numpy_matrix_function(torch.diag(eigvals + h).unsqueeze(0), func, p)[0].diagonal()
        - numpy_matrix_function(torch.diag(eigvals - h).unsqueeze(0), func, p)[0].diagonal()
    ) / (2 * h)
    torch.testing.assert_close(L[0, 1], derivative[0], rtol=1e-8, atol=0)
    torch.testing.assert_close(L[2, 3], derivative[2], rtol=1e-8, atol=0)
    torch.testing.assert_close(L, L.mT, rtol=1e-15, atol=0)


def _indefinite():
    Q, _ = torch.linalg.qr(
        torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(4), dtype=F64)
    )
    return (Q * torch.tensor([-0.5, 0.2, 1.0, 2.0], dtype=F64)) @ Q.mT


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("func", ["log", "sqrt", "invsqrt"])
def test_non_positive_definite_error_or_floor(method, func):
    A = _indefinite()
    with pytest.raises(ValueError, match="not positive definite"):
        matrix_function(A, func, method)
    floored = matrix_function(A, func, method, nonpositive="floor", floor_eps=1e-3)
    w, V = torch.linalg.eigh(A)
    expected = numpy_matrix_function((V * w.clamp_min(1e-3).unsqueeze(-2)) @ V.mT, func)
    torch.testing.assert_close(floored, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_floored_gradients_agree_and_pass_gradcheck(method):
    # The floored eigenvalue (-0.5 -> 1e-3) is far from 1e-3 on both sides of the
    # perturbation, so g = f ∘ max(·, eps) is smooth there and gradcheck applies.
    A = _indefinite().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda X: matrix_function(X, "log", method, nonpositive="floor", floor_eps=1e-3), (A,)
    )


def test_integer_powers_need_no_positive_definiteness():
    A = _indefinite()
    torch.testing.assert_close(matrix_function(A, "pow", "eig_dk", p=2.0), A @ A)


def test_non_symmetric_input_is_symmetrized():
    A = spd(1, 4)
    skew = torch.randn(1, 4, 4, dtype=F64)
    skew = skew - skew.mT
    for method in METHODS:
        torch.testing.assert_close(
            matrix_function(A + skew, "log", method), matrix_function(A, "log", method)
        )
        X = (A + skew).requires_grad_(True)
        matrix_function(X, "log", method).sum().backward()
        torch.testing.assert_close(X.grad, X.grad.mT)


def test_float32_runs_on_every_method():
    A = spd(2, 5).float()
    for method in METHODS:
        out = matrix_function(A, "sqrt", method)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out @ out, A, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("A", "match"),
    [
        (torch.ones(3), "rank 1"),
        (torch.ones(2, 3, 4), "square"),
        (torch.ones(2, 3, 3, dtype=torch.int64), "floating"),
        (torch.full((2, 3, 3), float("nan")), "non-finite"),
    ],
)
def test_bad_input_raises_value_error_with_shape(A, match):
    with pytest.raises(ValueError, match=match):
        matrix_function(A, "log")


def test_unknown_func_and_method():
    with pytest.raises(ValueError, match="unknown func"):
        matrix_function(spd(1, 2), "exp")
    with pytest.raises(ValueError, match="unknown method"):
        matrix_function(spd(1, 2), "log", "magic")
    with pytest.raises(ValueError, match="needs the exponent p"):
        matrix_function(spd(1, 2), "pow")
