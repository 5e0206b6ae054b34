"""Second-order pooling (O2P) and the unstructured baselines it is compared with.

Features are (B, C, H, W) maps or (B, N, C) sets. Optional free-form region
masks (B, R, H, W) or (B, R, N) hold non-negative weights; each region is
pooled on its own, as the paper pools inside regions, and outputs gain an R
axis. A region whose weights sum to zero pools nothing: its covariance is εI.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench_cli.layers.matfun import FUNCS, matrix_function, scalar_function
from bench_cli.layers.spectral import svd


def as_samples(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H·W, C); (B, N, C) unchanged."""
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        raise ValueError("features must be a floating torch.Tensor")
    if features.ndim == 4:
        return features.flatten(2).mT
    if features.ndim == 3:
        return features
    raise ValueError(f"features must be (B, C, H, W) or (B, N, C), got {tuple(features.shape)}")


def region_weights(masks: torch.Tensor | None, features: torch.Tensor) -> torch.Tensor | None:
    """Masks -> (B, R, N) weights that sum to one per region (zero for an empty region)."""
    if masks is None:
        return None
    n_batch, n_samples = features.shape[0], as_samples(features).shape[1]
    if masks.ndim == 4:
        masks = masks.flatten(2)
    if masks.ndim != 3 or masks.shape[0] != n_batch or masks.shape[2] != n_samples:
        raise ValueError(
            f"masks must be (B, R, H, W) or (B, R, N) matching features {tuple(features.shape)}, "
            f"got {tuple(masks.shape)}"
        )
    masks = masks.to(features.dtype)
    return masks / masks.sum(-1, keepdim=True).clamp_min(torch.finfo(features.dtype).tiny)


def weighted_samples(
    features: torch.Tensor, masks: torch.Tensor | None, center: bool
) -> torch.Tensor:
    """Y with YᵀY = the (weighted, optionally centred) covariance; (B[, R], N, C)."""
    X = as_samples(features)
    weights = region_weights(masks, features)
    if weights is None:
        weights = torch.full(X.shape[:2], 1.0 / X.shape[1], dtype=X.dtype, device=X.device)
    else:
        X = X.unsqueeze(1)  # (B, 1, N, C) against (B, R, N)
    if center:
        X = X - (weights.unsqueeze(-1) * X).sum(-2, keepdim=True)
    return weights.sqrt().unsqueeze(-1) * X


def upper_triangle(M: torch.Tensor) -> torch.Tensor:
    """The C(C+1)/2 upper-triangle entries, off-diagonals times √2 (preserves the norm)."""
    n = M.shape[-1]
    rows, cols = torch.triu_indices(n, n, device=M.device)
    # Built in M's dtype: a float32 √2 would cost float64 results 8 digits.
    scale = torch.full(rows.shape, math.sqrt(2.0), dtype=M.dtype, device=M.device)
    scale[rows == cols] = 1.0
    return M[..., rows, cols] * scale


def o2p(
    features: torch.Tensor,
    masks: torch.Tensor | None = None,
    *,
    func: str = "log",
    method: str = "eig_dk",
    p: float | None = None,
    center: bool = True,
    eps: float = 1e-3,
    **options,
) -> torch.Tensor:
    """f(C + εI) of each (region) covariance, as its scaled upper triangle.

    ``method='svd'`` is the paper's route through the SVD of the weighted
    features Y (C = YᵀY): C + εI = V diag(σ² + ε) Vᵀ + ε (I − V Vᵀ), so
    f(C + εI) = V diag(f(σ² + ε) − f(ε)) Vᵀ + f(ε) I, also when Y has fewer
    rows than columns. Every other method forms C + εI and calls
    matrix_function.
    """
    Y = weighted_samples(features, masks, center)
    n = Y.shape[-1]
    eye = torch.eye(n, dtype=Y.dtype, device=Y.device)
    if method == "svd":
        if func not in FUNCS:
            raise ValueError(f"unknown func '{func}'; known: {', '.join(FUNCS)}")
        svd_options = {k: options[k] for k in ("gap", "gap_eps", "degree") if k in options}
        _, S, V = svd(Y, check_finite=False, **svd_options)
        f = scalar_function(func, p)
        f_eps = f(torch.tensor(eps, dtype=Y.dtype, device=Y.device))
        # V diag(f(σ² + ε) − f(ε)) Vᵀ + f(ε) I: the same matrix, but a direction with σ = 0
        # gets an exactly zero weight, so its column of ∂L/∂V is exactly zero too.
        pooled = (V * (f(S * S + eps) - f_eps).unsqueeze(-2)) @ V.mT + f_eps * eye
    else:
        C = Y.mT @ Y + eps * eye
        pooled = matrix_function(C, func, method, p=p, check_finite=False, **options)
    return upper_triangle(pooled)


class O2P(nn.Module):
    """Second-order pooling: features (and region masks) -> f(covariance + εI), vectorised.

    Output shape (B, C(C+1)/2), or (B, R, C(C+1)/2) with masks.
    """

    def __init__(
        self,
        func: str = "log",
        method: str = "eig_dk",
        *,
        p: float | None = None,
        center: bool = True,
        eps: float = 1e-3,
        **options,
    ):
        super().__init__()
        self.func, self.method, self.p, self.center, self.eps = func, method, p, center, eps
        self.options = options

    def forward(self, features: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features of X (B, N, C)."""
        return o2p(
            features,
            masks,
            func=self.func,
            method=self.method,
            p=self.p,
            center=self.center,
            eps=self.eps,
            **self.options,
        )

    def extra_repr(self) -> str:
        """The options, for print(module)."""
        return f"func={self.func}, method={self.method}, eps={self.eps}, center={self.center}"


# ---------------------------------------------------------------- baselines


def avg_pool(features: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """First-order: the (region-weighted) mean feature, (B[, R], C)."""
    X = as_samples(features)
    weights = region_weights(masks, features)
    if weights is None:
        return X.mean(-2)
    return weights @ X


def max_pool(features: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """First-order: the largest value per channel inside each region (0 for an empty one)."""
    X = as_samples(features)
    weights = region_weights(masks, features)
    if weights is None:
        return X.amax(-2)
    inside = (weights > 0).unsqueeze(-1)  # (B, R, N, 1)
    masked = torch.where(inside, X.unsqueeze(1), torch.full_like(X.unsqueeze(1), -torch.inf))
    pooled = masked.amax(-2)
    return torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))


def bilinear(
    features: torch.Tensor, masks: torch.Tensor | None = None, *, eps: float = 1e-12
) -> torch.Tensor:
    """Bilinear pooling: mean outer product, signed sqrt, L2 normalisation; no matrix function.

    sign(m)·sqrt(|m| + eps) keeps the gradient finite where an entry is 0.
    Output (B[, R], C²).
    """
    Y = weighted_samples(features, masks, center=False)
    M = (Y.mT @ Y).flatten(-2)
    signed = torch.sign(M) * torch.sqrt(M.abs() + eps)
    return nn.functional.normalize(signed, dim=-1)


class FC(nn.Linear):
    """A fully connected head over the last dimension (the paper's FC counterpart)."""
