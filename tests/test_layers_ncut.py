"""Normalized cuts and the projector loss."""

import numpy as np
import pytest
import torch

from bench_cli.layers import (
    NormalizedCuts,
    normalized_cuts,
    projector_loss,
    segment_projector,
    top_projector,
)
from tests.layer_helpers import F64


def _points(seed=0, batch=2, n=10, c=3):
    return torch.randn(batch, n, c, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _numpy_projector(X, k, sigma):
    X = X.numpy()
    out = []
    for item in X:
        W = np.exp(-((item[:, None] - item[None]) ** 2).sum(-1) / (2 * sigma**2))
        d = W.sum(1)
        lam, V = np.linalg.eigh(W / np.sqrt(np.outer(d, d)))
        out.append(V[:, -k:] @ V[:, -k:].T)
    return torch.tensor(np.array(out))


@pytest.mark.parametrize("method", ["eig", "autograd"])
def test_projector_matches_numpy_and_is_a_projector(method):
    X = _points()
    P = normalized_cuts(X, 3, method=method, sigma=1.5)
    torch.testing.assert_close(P, _numpy_projector(X, 3, 1.5), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(P @ P, P)
    torch.testing.assert_close(
        torch.diagonal(P, dim1=-2, dim2=-1).sum(-1), torch.full((2,), 3.0, dtype=F64)
    )


@pytest.mark.parametrize("affinity", ["gaussian", "cosine"])
@pytest.mark.parametrize("method", ["eig", "autograd"])
def test_gradient_through_projector_loss_matches_finite_differences(method, affinity):
    X = _points().requires_grad_(True)
    labels = torch.randint(0, 3, (2, 10), generator=torch.Generator().manual_seed(4))
    assert torch.autograd.gradcheck(
        lambda X: projector_loss(NormalizedCuts(3, affinity, 1.5, method)(X, True), labels), (X,)
    )


def test_methods_agree_on_gradients():
    X = _points(seed=2)
    labels = torch.randint(0, 2, (2, 10), generator=torch.Generator().manual_seed(1))
    grads = []
    for method in ("eig", "autograd"):
        Xg = X.clone().requires_grad_(True)
        projector_loss(
            normalized_cuts(Xg, 2, sigma=1.0, method=method, return_degrees=True), labels
        ).backward()
        grads.append(Xg.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-10)


def test_ties_inside_the_kept_block_do_not_matter_for_eig():
    # Two far-apart clusters: a disconnected graph, so eigenvalue 1 is double and both
    # copies are kept (k = 2). Only kept-vs-discarded gaps enter P's gradient.
    g = torch.Generator().manual_seed(0)
    X = torch.cat(
        [
            torch.randn(1, 5, 2, generator=g, dtype=F64) * 0.1,
            torch.randn(1, 5, 2, generator=g, dtype=F64) * 0.1 + 100,
        ],
        dim=1,
    )
    assert torch.autograd.gradcheck(
        lambda X: normalized_cuts(X, 2, method="eig", sigma=0.5), (X.clone().requires_grad_(True),)
    )
    # torch's own backward divides by the tied pair's gap too; whether that gives NaN or a
    # finite value depends on whether rounding splits the tie, so it is not asserted here.


def test_projector_loss_is_zero_at_the_ground_truth_and_counts_segments():
    labels = torch.tensor([[0, 0, 1, 1, 1, 3]])  # segment 2 is empty
    target = segment_projector(labels, dtype=F64)
    torch.testing.assert_close(target @ target, target)
    assert float(torch.diagonal(target, dim1=-2, dim2=-1).sum()) == pytest.approx(
        3.0
    )  # three non-empty segments
    ones = torch.ones(labels.shape, dtype=F64)  # equal degrees: the target is span(E)
    assert float(projector_loss(target, labels, degrees=ones)) == 0.0
    assert float(projector_loss(torch.zeros_like(target), labels, ones)) == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: normalized_cuts(torch.ones(4, 3), 1), "features"),
        (lambda: normalized_cuts(torch.randn(1, 4, 3), 4), "k must be"),
        (lambda: normalized_cuts(torch.randn(1, 4, 3), 1, method="lanczos"), "unknown method"),
        (lambda: normalized_cuts(torch.randn(1, 4, 3), 1, affinity_kind="knn"), "unknown affinity"),
        (lambda: normalized_cuts(torch.randn(1, 4, 3), 1), "gaussian affinity needs sigma"),
        (
            lambda: projector_loss(
                torch.eye(3)[None], torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4)
            ),
            "match",
        ),
        (lambda: segment_projector(torch.zeros(1, 4)), "integer"),
        (lambda: segment_projector(torch.tensor([[0, -1]])), "non-negative"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _block_affinity(sizes=(3, 4, 5), seed=0):
    """A perfectly block-diagonal affinity with unequal degrees inside and across blocks."""
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    W = torch.zeros(1, n, n, dtype=F64)
    labels, start = [], 0
    for s, size in enumerate(sizes):
        block = torch.rand(size, size, generator=g, dtype=F64) + 0.2
        W[0, start : start + size, start : start + size] = 0.5 * (block + block.T)
        labels += [s] * size
        start += size
    return W, torch.tensor([labels])


def test_perfect_affinity_reaches_the_papers_target_with_zero_gradient():
    from bench_cli.layers.ncut import normalized_affinity

    W, labels = _block_affinity()
    W.requires_grad_(True)
    P = top_projector(normalized_affinity(W), 3)
    loss = projector_loss(P, labels, degrees=W.sum(-1))
    # P and Π agree to rounding (entries O(1), eps 2e-16): a loss of ~1e-30.
    assert float(loss.detach()) < 1e-12
    (grad,) = torch.autograd.grad(loss, W)
    assert float(grad.abs().max()) < 1e-12
    # The target onto span(E) is not reached by this perfect affinity: the test can fail.
    assert float(projector_loss(P.detach(), labels, torch.ones(labels.shape, dtype=F64))) > 1e-3


def test_the_papers_target_is_the_projector_onto_weighted_indicators():
    labels = torch.tensor([[0, 0, 1, 1, 1]])
    d = torch.tensor([[1.0, 3.0, 2.0, 2.0, 4.0]], dtype=F64)
    target = segment_projector(labels, dtype=F64, degrees=d)
    E = torch.nn.functional.one_hot(labels[0]).to(F64)
    V = d[0].sqrt().unsqueeze(-1) * E  # D^1/2 E
    torch.testing.assert_close(target[0], V @ torch.linalg.pinv(V), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels", [2, 8])
def test_lowrank_gradient_is_right_when_q_exceeds_the_rank(channels):
    # Cosine affinity on C channels has rank <= C + 1: with C = 2 or 8 and q = k + 8 = 12
    # the subspace exceeds the rank, where torch.svd_lowrank's backward was 61x off.
    X = _points(seed=3, batch=2, n=20, c=channels)
    labels = torch.tensor([[0] * 7 + [1] * 6 + [2] * 7] * 2)

    def loss(X):
        torch.manual_seed(0)  # the same random start at every evaluation
        return projector_loss(
            normalized_cuts(X, 3, affinity_kind="cosine", method="lowrank", return_degrees=True),
            labels,
        )

    def loss_eig(X):
        return projector_loss(
            normalized_cuts(X, 3, affinity_kind="cosine", method="eig", return_degrees=True),
            labels,
        )

    Xg = X.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(Xg), Xg)
    (grad_eig,) = torch.autograd.grad(loss_eig(Xg), Xg)
    torch.testing.assert_close(grad, grad_eig, rtol=1e-8, atol=1e-10)
    # Central differences of lowrank's own forward, along a random direction.
    E = torch.randn(X.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    h = 1e-6  # truncation O(h²) ~ 1e-12, rounding ~ 1e-16/h = 1e-10 relative
    fd = (float(loss(X + h * E)) - float(loss(X - h * E))) / (2 * h)
    assert abs(float((grad * E).sum()) - fd) <= 1e-6 * abs(fd)


def test_projector_loss_refuses_a_missing_or_mismatched_graph():
    """The paper's objective is the easy path (the cut carries its degrees); the two ways to
    get another target by accident are refused, each with one clear message."""
    from bench_cli.layers import graph_degrees

    X = _points(seed=6)
    labels = torch.randint(0, 3, (2, 10), generator=torch.Generator().manual_seed(2))
    cut = normalized_cuts(X, 3, affinity_kind="cosine", return_degrees=True)
    P, degrees = cut  # unpacks as (projector, degrees)
    assert degrees.affinity_kind == "cosine"
    # The same loss three ways: the cut, its parts, degrees rebuilt from the features.
    same = [
        projector_loss(cut, labels),
        projector_loss(P, labels, degrees=degrees),
        projector_loss(P, labels, degrees=graph_degrees(X, kind="cosine", sigma=1.0)),
    ]
    assert float(same[0]) == float(same[1]) == float(same[2])
    with pytest.raises(ValueError, match="needs the graph's degrees"):
        projector_loss(P, labels)
    gaussian = graph_degrees(X, kind="gaussian", sigma=1.0)
    with pytest.raises(
        ValueError, match="gaussian .sigma 1. graph for a projector cut from a cosine"
    ):
        projector_loss(cut, labels, degrees=gaussian)
    with pytest.raises(ValueError, match="carries the degrees"):
        projector_loss(cut, labels, degrees=gaussian.values)
    wide = normalized_cuts(X, 3, sigma=4.0, return_degrees=True)
    with pytest.raises(ValueError, match="sigma 1"):
        projector_loss(wide, labels, degrees=gaussian)
    with pytest.raises(TypeError):
        graph_degrees(X)  # kind and sigma have no defaults
    # The wrong graph's degrees would have given another loss: the refusal matters.
    assert abs(float(projector_loss(P, labels, degrees=gaussian)) - float(same[0])) > 1e-3
