"""matrix_function(method='autograd') against an independent float64 reference."""

import numpy as np
import pytest
import torch

from bench_cli.layers import matrix_function


def _spd(batch, dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(batch, dim, 2 * dim, generator=g, dtype=torch.float64)
    return X @ X.mT / (2 * dim) + 0.5 * torch.eye(dim, dtype=torch.float64)


def _numpy_reference(A, f):
    w, V = np.linalg.eigh(A.numpy())
    return torch.from_numpy((V * f(w)[..., None, :]) @ np.swapaxes(V, -1, -2))


@pytest.mark.parametrize(
    ("func", "f", "p"),
    [
        ("log", np.log, None),
        ("sqrt", np.sqrt, None),
        ("invsqrt", lambda w: 1 / np.sqrt(w), None),
        ("pow", lambda w: w**1.5, 1.5),
    ],
)
def test_forward_matches_numpy_float64(func, f, p):
    A = _spd(3, 6)
    out = matrix_function(A, func, "autograd", p=p)
    # Backward-stable eigh on well-conditioned input (cond < 10): agreement to ~100 ulp.
    torch.testing.assert_close(out, _numpy_reference(A, f), rtol=1e-12, atol=1e-12)


def test_sqrt_squares_back():
    A = _spd(2, 5)
    S = matrix_function(A, "sqrt")
    torch.testing.assert_close(S @ S, A, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("func", ["log", "sqrt", "invsqrt"])
def test_gradcheck_float64_batched(func):
    A = _spd(2, 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda X: matrix_function(X, func), (A,))


def test_non_symmetric_input_is_symmetrized():
    A = _spd(1, 4)
    skew = torch.randn(1, 4, 4, dtype=torch.float64)
    skew = skew - skew.mT
    torch.testing.assert_close(matrix_function(A + skew, "log"), matrix_function(A, "log"))


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
        matrix_function(_spd(1, 2), "exp")
    with pytest.raises(ValueError, match="unknown method"):
        matrix_function(_spd(1, 2), "log", "magic")
    with pytest.raises(ValueError, match="needs the exponent p"):
        matrix_function(_spd(1, 2), "pow")
