"""Eigendecomposition and SVD with the matrix-backpropagation backward passes.

Ionescu, Vantzos & Sminchisescu, "Matrix Backpropagation for Deep Networks
with Structured Layers" (ICCV 2015; arXiv 1509.07838):

- Proposition 2 (symmetric eigendecomposition A = U diag(λ) Uᵀ):

      ∂L/∂A = U ( sym(K̃ᵀ ∘ (Uᵀ ∂L/∂U)) + diag(∂L/∂λ) ) Uᵀ,   K̃ᵢⱼ = 1/(λᵢ − λⱼ), K̃ᵢᵢ = 0.

- Proposition 1 (SVD X = U Σ Vᵀ, X of size m × n, m ≥ n), with
  D = (∂L/∂U) Σ⁻¹ for the thin factors (∂L/∂U₂ = 0 when only the thin U is used):

      ∂L/∂X = D Vᵀ + U (∂L/∂Σ − Uᵀ D)_diag Vᵀ
              + 2 U Σ sym(K̃ᵀ ∘ (Vᵀ (∂L/∂V − V Dᵀ U Σ))) Vᵀ,   K̃ᵢⱼ = 1/(σᵢ² − σⱼ²).

Both assume distinct eigen/singular values; Proposition 1 also assumes
σᵢ > 0. Where they are not, ``gap`` chooses how K̃ is formed:

- ``exact``  the formula as is: inf/NaN at ties;
- ``clamp``  |λᵢ − λⱼ| floored at ``gap_eps`` (sign kept);
- ``mask``   pairs with |λᵢ − λⱼ| < ``gap_eps`` contribute zero;
- ``taylor`` 1/(λᵢ − λⱼ) = (1/λᵢ) · 1/(1 − λⱼ/λᵢ) for λᵢ > λⱼ, the geometric
  series cut after ``degree`` + 1 terms (Song et al., ICCV 2021). Needs λ > 0;
  finite at ties, where it gives (degree + 1)/λᵢ. With ``degree`` = K − 1 this
  is also the power-iteration gradient with K iterations (Wang et al.,
  NeurIPS 2019): (1 − rᴷ)/(λᵢ − λⱼ) = (1/λᵢ) Σₖ₌₀..K₋₁ rᵏ.
- ``pade``   the [n/n] Padé approximant (n = ``degree``) of that series,
  P(r)/Q(r) (Song, Sebe & Wang, ICCV 2021). For the series of 1/(1 − r) the
  Padé system is degenerate; its minimum-norm solution is
  qⱼ = −1/n (j ≥ 1), pₖ = 1 − k/n, and P/Q = 1/(1 − r) up to rounding, the
  pole at r = 1 included.
- ``clip``   the exact K̃ with every entry clipped to [−``gap_eps``⁻¹, ``gap_eps``⁻¹].

All functions keep the batch dimensions implicit (``...``).
"""

from __future__ import annotations

import torch

from bench_cli.layers import cpu_batch
from bench_cli.layers._checks import check_finite_entries, check_square_batch, sym
from bench_cli.layers.declare import Gap

GAPS = ("exact", "clamp", "mask", "taylor", "pade", "clip")
NEEDS_EPS = ("clamp", "mask", "clip")  # treatments with a threshold in eigenvalue units


def missing_gap_eps(gap: str) -> str:
    """The one line for a thresholded gap treatment given no threshold."""
    return (
        f"gap '{gap}' needs gap_eps, the smallest eigenvalue gap |λi − λj| kept, in the "
        "eigenvalues' units (e.g. 1e-6 times the largest eigenvalue); it has no default"
    )


def gap_matrix(
    eigvals: torch.Tensor, gap: Gap = "exact", gap_eps: float | None = None, degree: int = 9
) -> torch.Tensor:
    """F = K̃ᵀ: Fᵢⱼ = 1/(λⱼ − λᵢ) off the diagonal, 0 on it, treated per ``gap``.

    ``clamp``, ``mask`` and ``clip`` need ``gap_eps``, in the eigenvalues' own units:
    there is no default, because no fixed number is a gap at every scale (1e-12, the
    old default, clamped nothing on a rank-deficient covariance, whose K̃ reached 1.4e9
    with and without it)."""
    if gap in NEEDS_EPS and gap_eps is None:
        raise ValueError(missing_gap_eps(gap))
    eps = 0.0 if gap_eps is None else float(gap_eps)
    diff = eigvals.unsqueeze(-2) - eigvals.unsqueeze(-1)  # diffᵢⱼ = λⱼ − λᵢ
    n = eigvals.shape[-1]
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=eigvals.device)
    if gap == "exact":
        inverse = 1.0 / diff
    elif gap == "clamp":
        floor = eps * _antisymmetric_sign(diff)
        inverse = 1.0 / torch.where(diff.abs() < eps, floor, diff)
    elif gap == "mask":
        small = diff.abs() < eps
        inverse = torch.where(small, torch.zeros_like(diff), 1.0 / torch.where(small, 1.0, diff))
    elif gap in ("taylor", "pade"):
        inverse = _series_inverse_gap(eigvals, diff, degree, gap)
    elif gap == "clip":
        bound = 1.0 / eps
        signed = torch.where(diff != 0, diff, 0.0 * _antisymmetric_sign(diff))  # ±0 by order
        inverse = (1.0 / signed).clamp(-bound, bound)
    else:
        raise ValueError(f"unknown gap treatment '{gap}'; known: {', '.join(GAPS)}")
    return torch.where(off_diagonal, inverse, torch.zeros_like(inverse))


def _series_inverse_gap(
    eigvals: torch.Tensor, diff: torch.Tensor, degree: int, kind: str
) -> torch.Tensor:
    """1/(λⱼ − λᵢ) ≈ ±(1/λ_big) s(λ_small/λ_big), s a truncated series or Padé of 1/(1 − r)."""
    if degree < (0 if kind == "taylor" else 1):
        raise ValueError(f"degree must be >= {0 if kind == 'taylor' else 1}, got {degree}")
    lam_i, lam_j = eigvals.unsqueeze(-1), eigvals.unsqueeze(-2)
    big, small = torch.maximum(lam_i, lam_j), torch.minimum(lam_i, lam_j)
    ratio = small / big
    if kind == "taylor":
        # Σ rᵏ = expm1((n+1) log r)/expm1(log r): no cancellation as r -> 1; exactly n+1 at r = 1.
        log_ratio = torch.log(ratio)
        series = torch.where(
            ratio < 1,
            torch.expm1((degree + 1) * log_ratio)
            / torch.expm1(torch.where(ratio < 1, log_ratio, -1.0)),
            torch.full_like(ratio, degree + 1.0),
        )
    else:
        k = torch.arange(degree + 1, dtype=eigvals.dtype, device=eigvals.device)
        powers = ratio.unsqueeze(-1) ** k
        numerator = (powers * (1 - k / degree)).sum(-1)
        denominator = 1 - powers[..., 1:].sum(-1) / degree
        series = numerator / denominator
    return _antisymmetric_sign(diff) * series / big


def _antisymmetric_sign(diff: torch.Tensor) -> torch.Tensor:
    """sign(λⱼ − λᵢ), and at an exact tie that of j − i (the ascending order eigh returns).

    K̃ must stay antisymmetric at ties: sign(+0) alone would give both (i, j) and
    (j, i) the same sign, so a floored or clipped entry would not cancel its mirror.
    """
    n = diff.shape[-1]
    index = torch.arange(n, device=diff.device)
    order = torch.sign(index.unsqueeze(0) - index.unsqueeze(1)).to(diff.dtype)
    return torch.where(diff != 0, torch.sign(diff), order)


def eigh_backward(
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    grad_eigvals: torch.Tensor | None,
    grad_eigvecs: torch.Tensor | None,
    *,
    gap: Gap = "exact",
    gap_eps: float | None = None,
    degree: int = 9,
    pair_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Proposition 2. ``pair_mask`` (n × n, bool) keeps only the K̃ entries a caller needs."""
    U = eigvecs
    inner = torch.zeros(U.shape, dtype=U.dtype, device=U.device)
    if grad_eigvecs is not None:
        F = gap_matrix(eigvals, gap, gap_eps, degree)
        if pair_mask is not None:
            F = torch.where(pair_mask, F, torch.zeros_like(F))
        inner = F * (U.mT @ grad_eigvecs)
    if grad_eigvals is not None:
        inner = inner + torch.diag_embed(grad_eigvals)
    return U @ sym(inner) @ U.mT


class _Eigh(torch.autograd.Function):
    @staticmethod
    def forward(A, gap, gap_eps, degree, pair_mask):
        return cpu_batch.eigh(A)  # a CPU batch of small matrices: over every core

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, ctx.gap, ctx.gap_eps, ctx.degree, ctx.pair_mask = inputs
        ctx.save_for_backward(*output)

    @staticmethod
    def backward(ctx, grad_eigvals, grad_eigvecs):
        eigvals, eigvecs = ctx.saved_tensors
        grad_A = eigh_backward(
            eigvals,
            eigvecs,
            grad_eigvals,
            grad_eigvecs,
            gap=ctx.gap,
            gap_eps=ctx.gap_eps,
            degree=ctx.degree,
            pair_mask=ctx.pair_mask,
        )
        return grad_A, None, None, None, None


def eigh(
    A: torch.Tensor,
    *,
    gap: Gap = "exact",
    gap_eps: float | None = None,
    degree: int = 9,
    pair_mask: torch.Tensor | None = None,
    check_finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and eigenvectors of sym(A), with the paper's backward.

    Non-symmetric input is symmetrized, (A + Aᵀ)/2, so the gradient is that of
    a function defined on all square matrices, and it is symmetric.
    ``pair_mask`` (n × n, bool) keeps only those K̃ entries: for a loss that
    depends on a subspace only, pairs inside it (and inside its complement)
    cancel exactly, and masking them keeps ties there harmless.
    """
    check_square_batch(A, check_finite=check_finite)
    if gap not in GAPS:
        raise ValueError(f"unknown gap treatment '{gap}'; known: {', '.join(GAPS)}")
    return _Eigh.apply(sym(A), gap, gap_eps, degree, pair_mask)


def svd_backward(
    U: torch.Tensor,
    S: torch.Tensor,
    V: torch.Tensor,
    grad_U: torch.Tensor | None,
    grad_S: torch.Tensor | None,
    grad_V: torch.Tensor | None,
    *,
    gap: Gap = "exact",
    gap_eps: float | None = None,
    degree: int = 9,
) -> torch.Tensor:
    """Proposition 1 for a tall X (m ≥ n) and its thin factors U (m×n), S (n), V (n×n)."""
    grad_X = torch.zeros(U.shape[:-1] + V.shape[-2:-1], dtype=U.dtype, device=U.device)
    if grad_U is None:
        D = torch.zeros_like(U)
    else:
        # A column of ∂L/∂U that is exactly zero contributes nothing, also where σ = 0
        # (0/0 would otherwise turn a well-defined gradient into NaN).
        D = torch.where(grad_U == 0, torch.zeros_like(grad_U), grad_U / S.unsqueeze(-2))
    if grad_U is not None:
        grad_X = grad_X + D @ V.mT
    diag_part = -torch.diagonal(U.mT @ D, dim1=-2, dim2=-1)
    if grad_S is not None:
        diag_part = diag_part + grad_S
    grad_X = grad_X + (U * diag_part.unsqueeze(-2)) @ V.mT
    # Vᵀ(∂L/∂V − V Dᵀ U Σ) = Vᵀ ∂L/∂V − Dᵀ U Σ, since VᵀV = I for the n × n V.
    inner = -(D.mT @ U) * S.unsqueeze(-2)
    if grad_V is not None:
        inner = inner + V.mT @ grad_V
    F = gap_matrix(S * S, gap, gap_eps, degree)
    grad_X = grad_X + 2 * (U * S.unsqueeze(-2)) @ sym(F * inner) @ V.mT
    return grad_X


class _Svd(torch.autograd.Function):
    @staticmethod
    def forward(X, gap, gap_eps, degree):
        U, S, Vh = torch.linalg.svd(X, full_matrices=False)
        return U, S, Vh.mT

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, ctx.gap, ctx.gap_eps, ctx.degree = inputs
        ctx.save_for_backward(*output)

    @staticmethod
    def backward(ctx, grad_U, grad_S, grad_V):
        U, S, V = ctx.saved_tensors
        grad_X = svd_backward(
            U, S, V, grad_U, grad_S, grad_V, gap=ctx.gap, gap_eps=ctx.gap_eps, degree=ctx.degree
        )
        return grad_X, None, None, None


def svd(
    X: torch.Tensor,
    *,
    gap: Gap = "exact",
    gap_eps: float | None = None,
    degree: int = 9,
    check_finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD X = U diag(S) Vᵀ of (..., m, n) matrices, with the paper's backward.

    Returns (U, S, V) with V, not Vᵀ, as in the paper. A wide X (m < n) is
    handled through Xᵀ = V Σ Uᵀ, so Proposition 1's m ≥ n holds. Singular
    values must be positive for the backward (Σ⁻¹ appears in D).
    """
    if not isinstance(X, torch.Tensor) or X.ndim < 2:
        shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(f"X must be a tensor of shape (..., m, n), got {shape}")
    if not X.is_floating_point():
        raise ValueError(f"X must be a floating tensor, got {X.dtype}")
    if check_finite:
        check_finite_entries(X, "X")
    if gap not in GAPS:
        raise ValueError(f"unknown gap treatment '{gap}'; known: {', '.join(GAPS)}")
    if X.shape[-2] >= X.shape[-1]:
        return _Svd.apply(X, gap, gap_eps, degree)
    V, S, U = _Svd.apply(X.mT, gap, gap_eps, degree)
    return U, S, V
