"""Matmul-only approximations of sqrt and invsqrt: Newton–Schulz, MTP/MPA with a Lyapunov backward.

- ``newton_schulz``: the coupled iteration of iSQRT-COV (Li, Xie, Wang & Gao,
  CVPR 2018). Pre-normalise A_n = A / c (c = tr A, or ‖A‖_F), start from
  Y₀ = A_n, Z₀ = I and iterate

      T = ½(3I − Z Y),   Y ← Y T,   Z ← T Z,

  so Y -> A_n^{1/2} and Z -> A_n^{-1/2}; post-compensate by √c. It converges
  when ‖I − A_n‖ < 1, which both normalisations ensure for SPD A. The
  backward is either autograd through the iterations or the hand-written
  adjoint of each step (``backward='adjoint'``), which uses that Y, Z and T
  are symmetric polynomials in A_n:

      T̄ = Y Ȳ′ + Z̄′ Z,   Ȳ = Ȳ′ T − ½ Z T̄,   Z̄ = T Z̄′ − ½ T̄ Y.

- ``mtp_lya`` / ``mpa_lya``: Song, Sebe & Wang, "Fast Differentiable Matrix
  Square Root" (ICLR 2022). With n = ‖A‖_F *per matrix* and Z = I − A/n,
  sqrt(A) = √n · sqrt(I − Z), and sqrt(1 − z) is replaced by its Taylor
  polynomial of degree ``degree`` (MTP) or its [degree/degree] Padé
  approximant P(Z) Q(Z)⁻¹ (MPA). The backward solves the Lyapunov equation
  S X + X S = ∂L/∂S for X = ∂L/∂A with the matrix-sign iteration on
  [[S, −∂L/∂S], [0, −S]] (``lya_iters`` steps). Normalising each matrix by its
  own norm keeps the samples of a batch independent.

Batch dimensions stay implicit; matmuls run as one batched call each.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import torch

from bench_cli.layers._checks import sym


def _flat(A: torch.Tensor) -> torch.Tensor:
    """(..., d, d) -> (b, d, d) for the batched-GEMM calls (baddbmm needs 3-D)."""
    return A.reshape(-1, *A.shape[-2:])


def _eye_like(A: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).unsqueeze(0)


# ---------------------------------------------------------------- Newton–Schulz


def ns_matmuls(iters: int, func: str) -> int:
    """Matmuls in the forward iteration: 1 for the first step, 3 per middle one, 2 for the last."""
    return 1 if iters == 1 else 3 * iters - 3 if func in ("sqrt", "invsqrt") else 0


def _ns_forward(A_n: torch.Tensor, iters: int, want: str, keep: bool):
    """The coupled iteration on (b, d, d); returns Y or Z, and the iterates if ``keep``."""
    three_halves = _eye_like(A_n, 1.5)
    T = three_halves - 0.5 * A_n
    Y, Z = torch.bmm(A_n, T), T
    history = [(A_n, None, T)] if keep else None  # (Y_{k-1}, Z_{k-1}, T_k); Z₀ = I
    for step in range(1, iters):
        T = torch.baddbmm(three_halves, Z, Y, alpha=-0.5)  # 1.5 I − ½ Z Y in one GEMM
        if keep:
            history.append((Y, Z, T))
        last = step == iters - 1
        Y_next = torch.bmm(Y, T) if not (last and want == "invsqrt") else None
        Z = torch.bmm(T, Z) if not (last and want == "sqrt") else None
        Y = Y_next
    return (Y if want == "sqrt" else Z), history


class _NewtonSchulzAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(A_n, iters, want):
        out, history = _ns_forward(A_n, iters, want, keep=True)
        return out, history

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, ctx.iters, ctx.want = inputs
        _, history = output
        flat = [t for step in history for t in step if t is not None]
        ctx.save_for_backward(*flat)
        ctx.layout = [tuple(t is not None for t in step) for step in history]

    @staticmethod
    def backward(ctx, grad_out, _):
        saved = iter(ctx.saved_tensors)
        history = [
            tuple(next(saved) if present else None for present in layout) for layout in ctx.layout
        ]
        grad_Y = grad_out if ctx.want == "sqrt" else None
        grad_Z = grad_out if ctx.want == "invsqrt" else None
        for Y, Z, T in reversed(history[1:]):
            # Y' = Y T, Z' = T Z, T = 1.5 I − ½ Z Y (all symmetric, so no transposes).
            grad_T = 0
            if grad_Y is not None:
                grad_T = grad_T + torch.bmm(Y, grad_Y)
            if grad_Z is not None:
                grad_T = grad_T + torch.bmm(grad_Z, Z)
            new_Y = -0.5 * torch.bmm(Z, grad_T)
            if grad_Y is not None:
                new_Y = new_Y + torch.bmm(grad_Y, T)
            new_Z = -0.5 * torch.bmm(grad_T, Y)
            if grad_Z is not None:
                new_Z = new_Z + torch.bmm(T, grad_Z)
            grad_Y, grad_Z = new_Y, new_Z
        A_n, _, T = history[0]
        # First step: Y₁ = A_n T₀, Z₁ = T₀, T₀ = 1.5 I − ½ A_n.
        grad_T = torch.bmm(A_n, grad_Y) if grad_Y is not None else 0
        if grad_Z is not None:
            grad_T = grad_T + grad_Z
        grad_A = -0.5 * grad_T
        if grad_Y is not None:
            grad_A = grad_A + torch.bmm(grad_Y, T)
        return grad_A, None, None


def newton_schulz(
    A: torch.Tensor,
    func: str,
    p: float | None = None,
    *,
    iters: int = 5,
    norm: Literal["trace", "fro"] = "trace",
    backward: Literal["autograd", "adjoint"] = "autograd",
) -> torch.Tensor:
    """Coupled Newton–Schulz iteration (iSQRT-COV) for sqrt and invsqrt."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    S = sym(A)
    if norm == "trace":
        scale = torch.diagonal(S, dim1=-2, dim2=-1).sum(-1)
    elif norm == "fro":
        scale = torch.linalg.matrix_norm(S)
    else:
        raise ValueError(f"norm must be 'trace' or 'fro', got '{norm}'")
    scale = scale.unsqueeze(-1).unsqueeze(-1)
    A_n = _flat(S / scale)
    if backward == "adjoint":
        root, _ = _NewtonSchulzAdjoint.apply(A_n, iters, func)
    elif backward == "autograd":
        root, _ = _ns_forward(A_n, iters, func, keep=False)
    else:
        raise ValueError(f"backward must be 'autograd' or 'adjoint', got '{backward}'")
    root = root.reshape(A.shape)
    return root * scale.sqrt() if func == "sqrt" else root / scale.sqrt()


newton_schulz.funcs = ("sqrt", "invsqrt")


# ---------------------------------------------------------------- MTP / MPA + Lyapunov


def sqrt_taylor_coefficients(degree: int) -> np.ndarray:
    """aₖ with sqrt(1 − z) = Σ aₖ zᵏ: aₖ = (−1)ᵏ binom(1/2, k)."""
    coefficients = [1.0]
    for k in range(1, degree + 1):
        coefficients.append(coefficients[-1] * (k - 1.5) / k)
    return np.array(coefficients)


@functools.lru_cache(maxsize=32)
def sqrt_pade_coefficients(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """[m/n] Padé approximant of sqrt(1 − z): numerator p, denominator q (q₀ = 1), ascending.

    Solved in 60-digit arithmetic: in float64 the Padé system is ill-conditioned
    (reciprocal condition ~1e-21 at degree 20) and the coefficients lose digits.
    """
    import mpmath

    with mpmath.workdps(60):
        taylor = [mpmath.binomial(mpmath.mpf(1) / 2, k) * (-1) ** k for k in range(m + n + 1)]
        p, q = mpmath.pade(taylor, m, n)
        return np.array([float(c) for c in p]), np.array([float(c) for c in q])


def _polynomial(Z: torch.Tensor, coefficients) -> torch.Tensor:
    """Σ cₖ Zᵏ by Horner's rule: one fused baddbmm per degree."""
    result = _eye_like(Z, float(coefficients[-1])).expand_as(Z)
    for c in reversed(coefficients[:-1]):
        result = torch.baddbmm(_eye_like(Z, float(c)), result, Z)
    return result


def lyapunov_sign(S: torch.Tensor, G: torch.Tensor, iters: int) -> torch.Tensor:
    """X with S X + X S = G (S symmetric positive definite), by the matrix-sign iteration.

    sign([[B, C], [0, −B]]) = [[I, 2X], [0, −I]] for B X + X B = C. Scaling B and C
    by ‖S‖_F leaves X unchanged and puts B's spectrum in (0, 1]; the
    Newton–Schulz sign step on the block matrix reads

        B ← ½ B (3I − B²),   C ← ½ (−B² C + B C B + 3C − C B²).
    """
    norm = torch.linalg.matrix_norm(S).unsqueeze(-1).unsqueeze(-1)
    B, C = S / norm, G / norm
    three = _eye_like(B, 3.0)
    for _ in range(iters):
        B2 = torch.bmm(B, B)
        BC = torch.bmm(B, C)
        C = 0.5 * (-torch.bmm(B2, C) + torch.bmm(BC, B) + 3 * C - torch.bmm(C, B2))
        B = 0.5 * torch.bmm(B, three - B2)
    return 0.5 * C


class _LyapunovSqrt(torch.autograd.Function):
    """Forward: a given approximation S of sqrt(A). Backward: S X + X S = sym(∂L/∂S)."""

    @staticmethod
    def forward(A, S, lya_iters):
        return S.view_as(S)  # a view: autograd may not save an input returned as-is

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.lya_iters = inputs[2]
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad_S):
        (S,) = ctx.saved_tensors
        return lyapunov_sign(S, sym(grad_S), ctx.lya_iters), None, None


def _normalised(A: torch.Tensor):
    S = _flat(sym(A))
    norm = torch.linalg.matrix_norm(S).unsqueeze(-1).unsqueeze(-1)
    return S, norm, _eye_like(S) - S / norm


def mtp_lya(
    A: torch.Tensor, func: str, p: float | None = None, *, degree: int = 11, lya_iters: int = 8
) -> torch.Tensor:
    """Matrix Taylor polynomial of sqrt, Lyapunov backward (Song et al., ICLR 2022)."""
    if degree < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    S, norm, Z = _normalised(A.detach())
    root = _polynomial(Z, sqrt_taylor_coefficients(degree)) * norm.sqrt()
    return _LyapunovSqrt.apply(A, root.reshape(A.shape), lya_iters)


def mpa_lya(
    A: torch.Tensor, func: str, p: float | None = None, *, degree: int = 5, lya_iters: int = 8
) -> torch.Tensor:
    """Matrix Padé approximant [degree/degree] of sqrt, Lyapunov backward (Song et al. 2022)."""
    if degree < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    S, norm, Z = _normalised(A.detach())
    numerator, denominator = sqrt_pade_coefficients(degree, degree)
    P, Q = _polynomial(Z, numerator), _polynomial(Z, denominator)
    root = torch.linalg.solve(Q, P) * norm.sqrt()  # P and Q commute: Q⁻¹P = PQ⁻¹
    return _LyapunovSqrt.apply(A, root.reshape(A.shape), lya_iters)


mtp_lya.funcs = ("sqrt",)
mpa_lya.funcs = ("sqrt",)


def taylor_inverse_error(x: float, degree: int) -> float:
    """|1/(1−x) − Σₖ₌₀..degree xᵏ| = x^(degree+1)/(1−x): the truncated gap term's error."""
    return x ** (degree + 1) / (1 - x)


def power_iterations_needed(ratio: float, tolerance: float = 0.05) -> int:
    """Smallest k with ratioᵏ < tolerance (Wang et al.'s count for power iteration)."""
    return math.floor(math.log(tolerance) / math.log(ratio)) + 1
