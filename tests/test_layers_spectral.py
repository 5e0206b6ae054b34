"""eigh and svd with the paper's backward (Propositions 1 and 2), and the gap treatments."""

import numpy as np
import pytest
import torch

from bench_cli.layers import eigh, gap_matrix, svd
from tests.layer_helpers import F64, spd


def _weights(n, seed=3):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("gap", ["exact", "clamp", "mask"])
def test_eigh_gradcheck_float64_batched(gap):
    # Distinct eigenvalues (gaps >> gap_eps): clamp and mask equal the exact formula here.
    A = spd(3, 5).requires_grad_(True)
    w = _weights(5)

    def gauge_invariant(A):  # depends on U only through U diag(w) Uᵀ
        eigvals, eigvecs = eigh(A, gap=gap, gap_eps=1e-12)
        return (eigvecs * w) @ eigvecs.mT, eigvals

    assert torch.autograd.gradcheck(gauge_invariant, (A,))


def test_eigh_forward_matches_numpy():
    A = spd(2, 6)
    eigvals, eigvecs = eigh(A)
    w, V = np.linalg.eigh(A.numpy())
    torch.testing.assert_close(eigvals, torch.from_numpy(w), rtol=1e-13, atol=1e-13)
    # Eigenvectors up to sign: compare projectors u uᵀ.
    torch.testing.assert_close(eigvecs.abs(), torch.from_numpy(np.abs(V)), rtol=1e-10, atol=1e-10)


def test_gap_matrix_definitions():
    eigvals = torch.tensor([1.0, 1.0, 3.0], dtype=F64)
    exact = gap_matrix(eigvals, "exact")
    assert torch.isinf(exact[0, 1]) and exact[0, 2] == 0.5 and exact[2, 0] == -0.5
    assert torch.all(torch.diagonal(exact) == 0)
    clamp = gap_matrix(eigvals, "clamp", gap_eps=1e-3)
    assert clamp[0, 1] == 1e3 and clamp[0, 2] == 0.5
    mask = gap_matrix(eigvals, "mask", gap_eps=1e-3)
    assert mask[0, 1] == 0 and mask[1, 0] == 0 and mask[0, 2] == 0.5
    taylor = gap_matrix(eigvals, "taylor", degree=4)
    assert taylor[0, 1] == pytest.approx(5.0)  # (degree + 1)/λ at a tie
    assert torch.isfinite(taylor).all()


def test_taylor_gap_converges_with_its_truncation_bound():
    eigvals = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=F64)
    exact = gap_matrix(eigvals, "exact")
    for degree in (5, 20, 60):
        taylor = gap_matrix(eigvals, "taylor", degree=degree)
        small, big = (
            torch.minimum(eigvals[:, None], eigvals[None]),
            torch.maximum(eigvals[:, None], eigvals[None]),
        )
        ratio = small / big
        # The dropped tail of the geometric series: r^(n+1) / (big (1 − r)).
        bound = ratio ** (degree + 1) / (big * (1 - ratio))
        off = ~torch.eye(4, dtype=torch.bool)
        assert torch.all((taylor - exact).abs()[off] <= bound[off] * (1 + 1e-12))


@pytest.mark.parametrize("shape", [(2, 7, 4), (2, 4, 7), (2, 5, 5)], ids=["tall", "wide", "square"])
def test_svd_gradcheck_float64_batched(shape):
    X = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    k = min(shape[1:])
    w1, w2 = _weights(k, 4), _weights(k, 5)

    def gauge_invariant(X):
        U, S, V = svd(X)
        s = S.unsqueeze(-2)
        return (U * w1) @ U.mT, (V * w2) @ V.mT, S**2, (U * s.sqrt()) @ V.mT

    assert torch.autograd.gradcheck(gauge_invariant, (X.requires_grad_(True),))


def test_svd_forward_reconstructs_and_matches_numpy():
    X = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(2), dtype=F64)
    U, S, V = svd(X)
    torch.testing.assert_close((U * S.unsqueeze(-2)) @ V.mT, X, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        S, torch.from_numpy(np.linalg.svd(X.numpy(), compute_uv=False)), rtol=1e-13, atol=1e-13
    )
    U, S, V = svd(X.mT)
    assert U.shape == (3, 4, 4) and V.shape == (3, 6, 4)


@pytest.mark.parametrize(
    ("fn", "bad", "match"),
    [
        (eigh, torch.ones(3, 4), "square"),
        (eigh, torch.ones(3), "rank 1"),
        (eigh, torch.full((1, 2, 2), float("inf")), "non-finite"),
        (svd, torch.ones(3), "shape"),
        (svd, torch.full((2, 3), float("nan")), "non-finite"),
    ],
)
def test_bad_input(fn, bad, match):
    with pytest.raises(ValueError, match=match):
        fn(bad)


def test_unknown_gap():
    with pytest.raises(ValueError, match="unknown gap"):
        eigh(spd(1, 2), gap="soft")
