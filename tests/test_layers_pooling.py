"""O2P and the unstructured baselines, against loop-based NumPy references."""

import math

import numpy as np
import pytest
import torch

from bench_cli.layers import FC, O2P, avg_pool, bilinear, max_pool, o2p, upper_triangle
from tests.layer_helpers import F64

METHODS = ["autograd", "eig", "svd", "eig_dk"]
FUNCS = [("log", None), ("sqrt", None), ("invsqrt", None), ("pow", 0.7), ("identity", None)]


def _features(batch=2, n=12, c=4, seed=0):
    return torch.randn(batch, n, c, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _masks(batch=2, regions=3, n=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    masks = (torch.rand(batch, regions, n, generator=g, dtype=F64) > 0.3).to(F64)
    masks[:, :, :4] = 1.0  # every region holds at least 4 samples: covariances stay well posed
    return masks


def _numpy_o2p(X, weights, func, p, center, eps):
    """Per item and region, with explicit loops: independent of the batched code."""
    f = {
        "log": np.log,
        "sqrt": np.sqrt,
        "invsqrt": lambda w: w**-0.5,
        "pow": lambda w: w**p,
        "identity": lambda w: w,
    }[func]
    X = X.numpy()
    out = []
    for b in range(X.shape[0]):
        rows = []
        for w in weights[b].numpy():
            w = w / w.sum()
            mean = (w[:, None] * X[b]).sum(0) if center else 0.0
            Xc = X[b] - mean
            C = (w[:, None, None] * np.einsum("ni,nj->nij", Xc, Xc)).sum(0) + eps * np.eye(
                len(Xc[0])
            )
            lam, V = np.linalg.eigh(C)
            M = V @ np.diag(f(lam)) @ V.T
            iu = np.triu_indices(len(M))
            rows.append(M[iu] * np.where(iu[0] == iu[1], 1.0, math.sqrt(2)))
        out.append(rows)
    return torch.tensor(np.array(out))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("func", "p"), FUNCS, ids=[f for f, _ in FUNCS])
def test_o2p_matches_numpy_with_and_without_masks(method, func, p):
    X, masks = _features(), _masks()
    with_masks = o2p(X, masks, func=func, method=method, p=p)
    assert with_masks.shape == (2, 3, 4 * 5 // 2)
    torch.testing.assert_close(
        with_masks, _numpy_o2p(X, masks, func, p, True, 1e-3), rtol=1e-11, atol=1e-11
    )
    whole = o2p(X, func=func, method=method, p=p, center=False, eps=0.1)
    assert whole.shape == (2, 10)
    torch.testing.assert_close(
        whole,
        _numpy_o2p(X, torch.ones(2, 1, 12, dtype=F64), func, p, False, 0.1)[:, 0],
        rtol=1e-11,
        atol=1e-11,
    )


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("func", "p"), FUNCS, ids=[f for f, _ in FUNCS])
def test_o2p_gradcheck_float64_batched(method, func, p):
    X, masks = _features(n=8, c=3).requires_grad_(True), _masks(n=8)
    assert torch.autograd.gradcheck(lambda X: o2p(X, masks, func=func, method=method, p=p), (X,))


def test_o2p_methods_agree_forward_and_backward():
    X, masks = _features(n=20, c=6), _masks(n=20)
    G = torch.randn(2, 3, 21, generator=torch.Generator().manual_seed(2), dtype=F64)
    results = {}
    for method in METHODS:
        Xg = X.clone().requires_grad_(True)
        out = o2p(Xg, masks, func="log", method=method)
        out.backward(G)
        results[method] = (out.detach(), Xg.grad)
    for method in METHODS:
        # Covariance eigenvalue gaps here exceed 1e-3; every route rounds far below 1e-10.
        torch.testing.assert_close(results[method][0], results["eig_dk"][0], rtol=0, atol=1e-10)
        torch.testing.assert_close(results[method][1], results["eig_dk"][1], rtol=0, atol=1e-10)


def test_o2p_takes_feature_maps_and_image_masks():
    maps = torch.randn(2, 3, 4, 5, dtype=F64)  # (B, C, H, W)
    masks = torch.ones(2, 2, 4, 5, dtype=F64)
    out = O2P(func="sqrt", method="eig")(maps, masks)
    sets = maps.flatten(2).mT
    torch.testing.assert_close(out[:, 0], o2p(sets, func="sqrt", method="eig"))


def test_o2p_empty_region_pools_to_f_of_eps():
    X = _features()
    masks = _masks()
    masks[0, 1] = 0.0
    out = o2p(X, masks, func="log", eps=1e-3)
    expected = upper_triangle(math.log(1e-3) * torch.eye(4, dtype=F64))
    torch.testing.assert_close(out[0, 1], expected)


def test_rank_deficient_covariance_eig_dk_and_svd_stay_exact():
    # 3 samples, 5 channels: the centred covariance has rank 2, so f(C + εI) has a triple ε.
    X = _features(batch=1, n=3, c=5)
    masks = torch.ones(1, 2, 3, dtype=F64)
    masks[0, 1, 0] = 0.0  # a region of 2 samples: rank 1, a quadruple ε
    for method, center in (("eig_dk", True), ("svd", True), ("svd", False)):
        assert torch.autograd.gradcheck(
            lambda X, m=method, c=center: o2p(X, masks, func="log", method=m, center=c),
            (X.clone().requires_grad_(True),),
        ), (method, center)


def test_identical_samples_eig_dk_gives_zero_gradient_svd_is_undefined():
    # Two identical samples, centred: Y = 0 and C = 0, a quadratic minimum, so the true
    # gradient is 0. Every σ is 0, a full tie where Proposition 1 (distinct σ) is undefined.
    X = torch.ones(1, 2, 3, dtype=F64)
    for method in ("eig_dk", "svd"):
        Xg = X.clone().requires_grad_(True)
        out = o2p(Xg, func="log", method=method)
        torch.testing.assert_close(
            out, upper_triangle(math.log(1e-3) * torch.eye(3, dtype=F64))[None]
        )
        out.sum().backward()
        if method == "eig_dk":
            torch.testing.assert_close(Xg.grad, torch.zeros_like(X))
        else:  # recorded as it is
            assert not torch.isfinite(Xg.grad).all()


def test_upper_triangle_preserves_the_frobenius_norm():
    M = torch.randn(3, 5, 5, dtype=F64)
    M = M + M.mT
    torch.testing.assert_close(upper_triangle(M).norm(dim=-1), torch.linalg.matrix_norm(M))


def test_baselines_match_numpy():
    X, masks = _features(), _masks()
    Xn, wn = X.numpy(), masks.numpy()
    torch.testing.assert_close(avg_pool(X), torch.from_numpy(Xn.mean(1)))
    torch.testing.assert_close(max_pool(X), torch.from_numpy(Xn.max(1)))
    weighted = np.einsum("brn,bnc->brc", wn / wn.sum(-1, keepdims=True), Xn)
    torch.testing.assert_close(avg_pool(X, masks), torch.from_numpy(weighted))
    region_max = np.array([[Xn[b][wn[b, r] > 0].max(0) for r in range(3)] for b in range(2)])
    torch.testing.assert_close(max_pool(X, masks), torch.from_numpy(region_max))
    M = np.einsum("bni,bnj->bij", Xn, Xn).reshape(2, -1) / 12
    signed = np.sign(M) * np.sqrt(np.abs(M) + 1e-12)
    torch.testing.assert_close(
        bilinear(X), torch.from_numpy(signed / np.linalg.norm(signed, axis=-1, keepdims=True))
    )


def test_baselines_gradcheck():
    X, masks = _features(n=6, c=3).requires_grad_(True), _masks(n=6)
    assert torch.autograd.gradcheck(
        lambda X: (avg_pool(X, masks), bilinear(X, masks), max_pool(X, masks)), (X,)
    )
    head = FC(6, 2).double()
    assert torch.autograd.gradcheck(
        lambda Z: head(Z), (bilinear(X, masks)[..., :6].detach().requires_grad_(True),)
    )


@pytest.mark.parametrize(
    ("features", "masks", "match"),
    [
        (torch.ones(3, 4), None, "features must be"),
        (torch.ones(2, 5, 3, dtype=torch.int64), None, "floating"),
        (torch.ones(2, 5, 3), torch.ones(2, 2, 4), "masks must be"),
    ],
)
def test_bad_input(features, masks, match):
    with pytest.raises(ValueError, match=match):
        o2p(features, masks)
