"""Truncated and low-rank matrix functions: f on the leading k-dimensional eigenspace
(``topk``, exact eigh) or on a randomized range (``lowrank``), the mean discarded
eigenvalue elsewhere."""

from __future__ import annotations

import torch

from bench_cli.layers._checks import sym
from bench_cli.layers.declare import (
    EIGH,
    EXACT_K,
    MATMUL,
    MATRIX_METHODS,
    QR,
    SVD,
    declare,
)
from bench_cli.layers.scalar import domain, rebuild, scalar_function
from bench_cli.layers.spectral import eigh

METHODS = MATRIX_METHODS  # declared into matfun's table


def _leading_subspace_function(eigvals_k, eigvecs_k, trace, d, func, p):
    """U_k f(Λ_k) U_kᵀ + f(λ̄)(I − U_k U_kᵀ), λ̄ the mean of the d − k discarded eigenvalues."""
    f = scalar_function(func, p)
    k = eigvals_k.shape[-1]
    eye = torch.eye(d, dtype=eigvecs_k.dtype, device=eigvecs_k.device)
    if k == d:
        return rebuild(eigvecs_k, f(eigvals_k))
    rest = ((trace - eigvals_k.sum(-1)) / (d - k)).unsqueeze(-1)
    rest = domain(rest, func, p, "error", 0.0)
    return rebuild(eigvecs_k, f(eigvals_k) - f(rest)) + f(rest).unsqueeze(-1) * eye


def _topk_flops(d, options):
    """eigh and a rebuild from k columns; backward the rebuild's adjoint (2 products with
    d x k blocks) and Proposition 2's 3 products."""
    k = min(options["k"], d)
    return EIGH * d**3 + MATMUL * d * d * k, 3 * MATMUL * d**3 + 2 * MATMUL * d * d * k


@declare(METHODS, "topk", exact=False, flops=_topk_flops, k_tilde=EXACT_K, rank_option="k")
def topk(A, func, p=None, *, k: int = 16):
    """f on the leading k-dimensional eigenspace (exact eigh), the mean discarded λ elsewhere."""
    d = A.shape[-1]
    k = min(k, d)
    discarded = torch.arange(d, device=A.device) < d - k
    # Rotations inside the discarded block leave the output unchanged: drop those K̃ pairs.
    pair_mask = ~(discarded.unsqueeze(-1) & discarded.unsqueeze(-2))
    eigvals, eigvecs = eigh(A, pair_mask=pair_mask, check_finite=False)
    eigvals_k = domain(eigvals[..., d - k :], func, p, "error", 0.0)
    trace = torch.diagonal(A, dim1=-2, dim2=-1).sum(-1)
    return _leading_subspace_function(eigvals_k, eigvecs[..., d - k :], trace, d, func, p)


def _lowrank_flops(d, options):
    """torch.svd_lowrank forward: (2·iters + 2) products with d x q blocks, 2·iters + 1
    Householder QRs of d x q blocks, a thin SVD of the q x d projection and Q times its
    left vectors; then the rebuild from k columns. No backward model: it is autograd
    through torch's own QR and SVD adjoints, whose products this project does not count."""
    k, iters = min(options["k"], d), options["iters"]
    q = min(k + options["oversample"], d)
    products = (2 * iters + 2) * MATMUL * d * d * q + MATMUL * d * q * q + MATMUL * d * d * k
    factorizations = (2 * iters + 1) * QR * d * q * q + SVD * d * q * q
    return products + factorizations, None


@declare(METHODS, "lowrank", exact=False, flops=_lowrank_flops, k_tilde=None, rank_option="k")
def lowrank(A, func, p=None, *, k: int = 16, iters: int = 2, oversample: int = 8):
    """The leading k eigenpairs from randomized subspace iteration (torch.svd_lowrank).

    For symmetric positive semi-definite A the singular pairs are eigenpairs.
    Random starts come from torch's global generator (the runner seeds it per case).
    """
    d = A.shape[-1]
    k = min(k, d)
    S = sym(A)
    U, singular, _ = torch.svd_lowrank(S, q=min(k + oversample, d), niter=iters)
    eigvals_k = domain(singular[..., :k].flip(-1), func, p, "error", 0.0)
    trace = torch.diagonal(S, dim1=-2, dim2=-1).sum(-1)
    return _leading_subspace_function(eigvals_k, U[..., :k].flip(-1), trace, d, func, p)
