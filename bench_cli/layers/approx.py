"""Matmul-only approximations of sqrt and invsqrt: Newton–Schulz, MTP/MPA with a Lyapunov backward.

- ``newton_schulz``: the coupled iteration of iSQRT-COV (Li, Xie, Wang & Gao,
  CVPR 2018). Pre-normalise A_n = A / c (c = tr A, or ‖A‖_F), start from
  Y₀ = A_n, Z₀ = I and iterate

      T = ½(3I − Z Y),   Y ← Y T,   Z ← T Z,

  so Y -> A_n^{1/2} and Z -> A_n^{-1/2}; post-compensate by √c. It converges
  when ‖I − A_n‖ < 1, which both normalisations ensure for SPD A. The
  iteration runs on W = −½ Z (T = 1.5 I + W Y, W ← T W), which needs no
  scalar passes. The backward is either autograd through the iterations or
  the hand-written adjoint of each step (``backward='adjoint'``), which uses
  that Y, W and T are symmetric, commuting polynomials in A_n:

      T̄ = Y Ȳ′ + W̄′ W,   Ȳ = Ȳ′ T + W T̄,   W̄ = T W̄′ + T̄ Y.

- ``mtp_lya`` / ``mpa_lya``: Song, Sebe & Wang, "Fast Differentiable Matrix
  Square Root" (ICLR 2022). With n = ‖A‖_F *per matrix* and Z = I − A/n,
  sqrt(A) = √n · sqrt(I − Z), and sqrt(1 − z) is replaced by its Taylor
  polynomial of degree ``degree`` (MTP) or its [degree/degree] Padé
  approximant P(Z) Q(Z)⁻¹ (MPA). The backward solves the Lyapunov equation
  S X + X S = ∂L/∂S for X = ∂L/∂A with the matrix-sign iteration on
  [[S, −∂L/∂S], [0, −S]], to a tolerance by default or for ``lya_iters`` steps.
  Normalising each matrix by its own norm keeps the samples of a batch independent.

Batch dimensions stay implicit; matmuls run as one batched call each.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import torch

from bench_cli.layers._checks import autocast_state, sym
from bench_cli.layers.declare import LU_SOLVE, MATMUL, MATRIX_METHODS, Tuning, declare


def _flat(A: torch.Tensor) -> torch.Tensor:
    """(..., d, d) -> (b, d, d) for the batched-GEMM calls (baddbmm needs 3-D)."""
    return A.reshape(-1, *A.shape[-2:])


def _eye_like(A: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).unsqueeze(0)


# ---------------------------------------------------------------- Newton–Schulz


def ns_matmuls(iters: int, func: str) -> int:
    """Matmuls in the forward iteration: 1 for the first step, 3 per middle one, 2 for the last."""
    return 1 if iters == 1 else 3 * iters - 3 if func in ("sqrt", "invsqrt") else 0


def _ns_forward(A_n: torch.Tensor, iters: int, want: str, keep: bool = False):
    """The coupled iteration on (b, d, d), written with W = −½ Z.

    T = 1.5 I + W Y is one GEMM plus 1.5 on the diagonal (O(d) work, no full
    pass); Y ← Y T and W ← T W are linear. Returns Y (sqrt) or Z = −2 W
    (invsqrt), and with ``keep`` the iterates (Y_{k-1}, W_{k-1}, T_k) for the
    adjoint. Differentiable by autograd as written.
    """
    T = torch.add(_eye_like(A_n, 1.5), A_n, alpha=-0.5)
    if iters == 1:
        return (torch.bmm(A_n, T) if want == "sqrt" else T), [(A_n, None, T)]
    Y, W = torch.bmm(A_n, T), torch.add(_eye_like(A_n, -0.75), A_n, alpha=0.25)  # W₁ = −½ T₀
    history: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = []
    if keep:
        history.append((A_n, None, T))
    for step in range(1, iters):
        T = torch.bmm(W, Y)
        T.diagonal(dim1=-2, dim2=-1).add_(1.5)
        if keep:
            history.append((Y, W, T))
        if step == iters - 1:
            out = torch.bmm(Y, T) if want == "sqrt" else torch.bmm(T, W).mul_(-2)
            return out, history
        Y, W = torch.bmm(Y, T), torch.bmm(T, W)
    raise AssertionError("unreachable")


def _inner(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """⟨X, Y⟩ per matrix, as (b, 1, 1), through a GEMV: no (b, d, d) temporary."""
    b = X.shape[0]
    return torch.bmm(X.reshape(b, 1, -1), Y.reshape(b, -1, 1))


class _NewtonSchulzAdjoint(torch.autograd.Function):
    """The whole layer, A -> √c · Y(sym(A)/c) (or Z/√c), with a hand-written backward:
    the iteration's adjoint, then the normalisation's and sym's, without autograd.

    Allocation is kept low on purpose: on the CPU, (b, d, d) temporaries freed at
    the end of every call are returned to the OS and page-faulted back in on the
    next, which at d = 64 costs as much as several GEMMs.
    """

    @staticmethod
    def forward(A, iters, want, norm):
        A_n = _flat(A + A.mT)  # 2·sym(A); the ½ cancels in A_n = sym(A)/c
        c2 = _norm_scale(A_n, norm)
        A_n.div_(c2)
        c = 0.5 * c2
        root, history = _ns_forward(A_n, iters, want, keep=True)
        factor = c.sqrt() if want == "sqrt" else c.rsqrt()
        return (root * factor).reshape(A.shape), root, c, history

    @staticmethod
    def setup_context(ctx, inputs, output):
        A, ctx.iters, ctx.want, ctx.norm = inputs
        ctx.autocast = autocast_state(A)
        _, root, c, history = output
        ctx.save_for_backward(root, c, *[t for step in history for t in step if t is not None])
        ctx.layout = [tuple(t is not None for t in step) for step in history]

    @staticmethod
    def backward(ctx, grad_out, *_):
        root, c, *saved = ctx.saved_tensors
        saved = iter(saved)
        history = [
            tuple(next(saved) if present else None for present in layout) for layout in ctx.layout
        ]
        if ctx.autocast is not None:
            # Under autocast the forward's products ran in its low dtype beside float32
            # scalings; the adjoint's preallocated products (out=, which autocast never
            # casts) run in that dtype too, as the forward's did.
            low = ctx.autocast[1]
            history = [tuple(t if t is None else t.to(low) for t in step) for step in history]
            root, grad_out = root.to(low), grad_out.to(low)
        A_n = history[0][0]
        G = _flat(grad_out)
        sqrt = ctx.want == "sqrt"
        factor = c.sqrt() if sqrt else c.rsqrt()
        # out = root · c^(±½); the iteration is linear in its output gradient, so the
        # factor is applied to Ā_n afterwards instead of to a copy of G.
        grad_c = _inner(G, root) * (factor / (2 * c) if sqrt else -factor / (2 * c))
        grad_A_n = _ns_adjoint(history, G, ctx.iters, ctx.want).mul_(factor)
        # A_n = S / c:  S̄ = Ā_n / c,  c̄ −= ⟨Ā_n, S⟩ / c² = ⟨Ā_n, A_n⟩ / c.
        grad_c = grad_c - _inner(grad_A_n, A_n) / c
        grad_S = grad_A_n.div_(c)
        if ctx.norm == "trace":  # c = tr S
            grad_S.diagonal(dim1=-2, dim2=-1).add_(grad_c.squeeze(-1))
        else:  # c = ‖S‖_F, ∂c/∂S = S/c = A_n
            grad_S.add_(A_n * grad_c)
        # S = sym(A): Ā = sym(S̄).
        return (grad_S + grad_S.mT).mul_(0.5).reshape(grad_out.shape), None, None, None


def _ns_adjoint(history, grad_out, iters, want):
    """Reverse pass of _ns_forward, from ∂L/∂(its output) to ∂L/∂A_n.

    Ȳ and W̄ live in two ping-pong buffer pairs; every step writes with out=.
    """
    if iters == 1:
        A_n, _, T = history[0]
        if want == "sqrt":  # Y₁ = A_n T₀, T₀ = 1.5 I − ½ A_n
            return torch.bmm(grad_out, T).baddbmm_(A_n, grad_out, alpha=-0.5)
        return -0.5 * grad_out
    grad_Y = grad_out if want == "sqrt" else None
    grad_W = -2 * grad_out if want == "invsqrt" else None
    # Step i writes buffers[i % 2] and reads the previous step's (or the incoming) gradients.
    buffers_Y = [torch.empty_like(grad_out) for _ in range(2)]
    buffers_W = [torch.empty_like(grad_out) for _ in range(2)]
    grad_T = torch.empty_like(grad_out)
    for i, (Y, W, T) in enumerate(reversed(history[1:])):
        # Y' = Y T, W' = T W, T = 1.5 I + W Y; all symmetric and commuting, so
        # T̄ = Y Ȳ' + W̄' W,  Ȳ = Ȳ' T + W T̄,  W̄ = T W̄' + T̄ Y: GEMMs accumulated in place.
        if grad_Y is not None:
            torch.bmm(Y, grad_Y, out=grad_T)
            if grad_W is not None:
                grad_T.baddbmm_(grad_W, W)
        else:
            torch.bmm(grad_W, W, out=grad_T)
        new_Y, new_W = buffers_Y[i % 2], buffers_W[i % 2]
        if grad_Y is not None:
            torch.bmm(grad_Y, T, out=new_Y).baddbmm_(W, grad_T)
        else:
            torch.bmm(W, grad_T, out=new_Y)
        if grad_W is not None:
            torch.bmm(T, grad_W, out=new_W).baddbmm_(grad_T, Y)
        else:
            torch.bmm(grad_T, Y, out=new_W)
        grad_Y, grad_W = new_Y, new_W
    A_n, _, T = history[0]
    # First step: Y₁ = A_n T₀, W₁ = −¾ I + ¼ A_n, T₀ = 1.5 I − ½ A_n.
    torch.bmm(grad_Y, T, out=grad_T).baddbmm_(A_n, grad_Y, alpha=-0.5)
    return grad_T.add_(grad_W, alpha=0.25)


def _norm_scale(S: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "trace":
        scale = torch.diagonal(S, dim1=-2, dim2=-1).sum(-1)
    elif norm == "fro":
        scale = torch.linalg.matrix_norm(S)
    else:
        raise ValueError(f"norm must be 'trace' or 'fro', got '{norm}'")
    return scale.unsqueeze(-1).unsqueeze(-1)


def _ns_flops(d, options):
    """The forward's products (ns_matmuls); the adjoint costs twice as many."""
    forward = MATMUL * d**3 * ns_matmuls(options["iters"], "sqrt")
    return forward, 2 * forward


@declare(
    MATRIX_METHODS,
    "newton_schulz",
    exact=False,
    funcs=("sqrt", "invsqrt"),
    flops=_ns_flops,
    k_tilde=None,
    tuning=Tuning("iters", (10,), (5, 10, 20)),
)
def newton_schulz(
    A: torch.Tensor,
    func: str,
    p: float | None = None,
    *,
    iters: int = 5,
    norm: Literal["trace", "fro"] = "trace",
    backward: Literal["autograd", "adjoint"] = "adjoint",
) -> torch.Tensor:
    """Coupled Newton–Schulz iteration (iSQRT-COV) for sqrt and invsqrt."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    if norm not in ("trace", "fro"):
        raise ValueError(f"norm must be 'trace' or 'fro', got '{norm}'")
    if backward == "adjoint":
        return _NewtonSchulzAdjoint.apply(A, iters, func, norm)[0]
    if backward != "autograd":
        raise ValueError(f"backward must be 'autograd' or 'adjoint', got '{backward}'")
    S = _flat(sym(A))
    c = _norm_scale(S, norm)
    root, _ = _ns_forward(S / c, iters, func)
    return (root * (c.sqrt() if func == "sqrt" else c.rsqrt())).reshape(A.shape)


# ---------------------------------------------------------------- MTP / MPA + Lyapunov


def sqrt_taylor_coefficients(degree: int) -> np.ndarray:
    """aₖ with sqrt(1 − z) = Σ aₖ zᵏ: aₖ = (−1)ᵏ binom(1/2, k)."""
    return np.array(_taylor(degree))


def _taylor(degree: int) -> tuple[float, ...]:
    """sqrt_taylor_coefficients as Python floats, which torch.compile folds into the
    graph as constants (a NumPy array it would trace as a tensor, then read back)."""
    coefficients = [1.0]
    for k in range(1, degree + 1):
        coefficients.append(coefficients[-1] * (k - 1.5) / k)
    return tuple(coefficients)


@torch.compiler.assume_constant_result
def _pade_monomial(degree: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The [degree/degree] coefficients as floats; a constant to torch.compile, which
    would otherwise trace into mpmath and break the graph."""
    p, q = sqrt_pade_coefficients(degree, degree)
    return tuple(float(c) for c in p), tuple(float(c) for c in q)


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


def _polynomial_pair(Z: torch.Tensor, first, second) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ aₖ Zᵏ and Σ bₖ Zᵏ (same degree) sharing the powers of Z: degree − 1 products
    for both, where two Horner passes take 2·degree."""
    eye = _eye_like(Z, 1.0).expand_as(Z)
    P, Q = eye * float(first[0]), eye * float(second[0])
    power = Z
    for k in range(1, len(first)):
        if k > 1:
            power = torch.bmm(power, Z)
        P = torch.add(P, power, alpha=float(first[k]))
        Q = torch.add(Q, power, alpha=float(second[k]))
    return P, Q


def _polynomial(Z: torch.Tensor, coefficients) -> torch.Tensor:
    """Σ cₖ Zᵏ by Horner's rule: one fused baddbmm per degree."""
    result = _eye_like(Z, float(coefficients[-1])).expand_as(Z)
    for c in reversed(coefficients[:-1]):
        result = torch.baddbmm(_eye_like(Z, float(c)), result, Z)
    return result


LYA_MAX_ITERS = 100  # the cap when iterating to a tolerance


def lyapunov_sign(S: torch.Tensor, G: torch.Tensor, iters: int | None = None) -> torch.Tensor:
    """X with S X + X S = G (S symmetric positive definite), by the matrix-sign iteration.

    sign([[B, C], [0, −B]]) = [[I, 2X], [0, −I]] for B X + X B = C. Scaling S and G
    by one c > 0 leaves X unchanged; the Newton–Schulz sign step on the block matrix

        B ← ½ B (3I − B²),   C ← ½ (−B² C + B C B + 3C − C B²)

    converges when B's spectrum lies in (0, √3), and its smallest eigenvalue grows only
    by 1.5× a step until it nears 1: the number of steps grows with log(c / λmin(S)).
    So c is the tightest cheap upper bound of λmax(S) at hand, ‖S⁴‖_F^¼ (≤ ‖S‖_F; two
    products, the first of which the first step reuses as B²): at condition 100,
    d = 64, 10 steps instead of the 13 that c = ‖S‖_F takes.
    With ``iters`` None it iterates until ‖I − B²‖_F is below √ε of the dtype for every
    matrix of the batch, and takes that step as the last (convergence is quadratic
    there, so it reaches ε), at most ``LYA_MAX_ITERS`` steps. An int runs exactly that
    many steps.
    """
    shape = G.shape
    S, G = _flat(S), _flat(G)  # any batch dimensions, as one batch for bmm
    S2 = torch.bmm(S, S)
    scale = torch.linalg.matrix_norm(torch.bmm(S2, S2)).pow(0.25).unsqueeze(-1).unsqueeze(-1)
    B, C = S / scale, G / scale
    B2 = S2 / scale.square()
    tolerance = math.sqrt(torch.finfo(S.dtype).eps)
    eye = _eye_like(B, 1.0)
    if iters is not None:
        for step in range(iters):
            B, C = _sign_step(B, C, B2 if step == 0 else torch.bmm(B, B))
    elif torch.compiler.is_compiling():
        B, C = _sign_until_converged_in_graph(B, C, B2, eye, tolerance)
    else:
        skip = 0  # checks that cannot pass yet (see _checks_that_cannot_pass)
        for step in range(LYA_MAX_ITERS):
            if step:
                B2 = torch.bmm(B, B)
            # The iteration converges as B → I: with r = ‖I − B²‖_F, this step leaves an
            # error of about ¾r² (in B, and C follows), so the step once r ≤ √ε is the last.
            last = False
            if skip:
                skip -= 1
            else:
                r = float(torch.linalg.matrix_norm(B2 - eye).max())
                last = r <= tolerance
                skip = _checks_that_cannot_pass(r, B.shape[-1], tolerance)
            B, C = _sign_step(B, C, B2)
            if last:
                break
    return (0.5 * C).reshape(shape)


def _checks_that_cannot_pass(r: float, d: int, tolerance: float) -> int:
    """How many of the next steps' convergence checks must fail, given r = ‖I − B²‖_F now.

    B is symmetric and each step maps each eigenvalue x to x(3 − x²)/2, so each e = 1 − x²
    to e²(3 + e)/4, which grows with e. The largest e is at least r/√d, so the residual
    after j more steps is at least g^j(r/√d), g(e) = e²(3 + e)/4: while that bound
    exceeds twice the tolerance (a margin for rounding), the check would fail, and its
    read-back is skipped. The steps taken, and so the result, are those of checking
    every step (tests/test_layers_approx.py compares both)."""
    e, skipped = r / math.sqrt(d), 0
    if e >= 1:  # a zero eigenvalue (e = 1 stays 1): no bound to go by
        return 0
    while skipped < LYA_MAX_ITERS:
        e = e * e * (3 + e) / 4
        if e <= 2 * tolerance:
            return skipped
        skipped += 1
    return skipped


def _sign_step(B: torch.Tensor, C: torch.Tensor, B2: torch.Tensor):
    """One Newton–Schulz sign step on [[B, C], [0, −B]], given B² (five products)."""
    BC = torch.bmm(B, C)
    # B and C are symmetric, so C B² = (B² C)ᵀ: with T = ¾C + ¼BCB − ½B²C the step is
    # T + Tᵀ, five products, not six. T + Tᵀ is exactly symmetric: written as
    # (…) − ½(B²C + (B²C)ᵀ) instead, rounding's antisymmetric part would double a step.
    T = torch.baddbmm(C, BC, B, beta=0.75, alpha=0.25)
    T = torch.baddbmm(T, B2, C, alpha=-0.5)
    return torch.baddbmm(B, B2, B, beta=1.5, alpha=-0.5), T + T.mT  # B ← ½ B (3I − B²)


def _sign_until_converged_in_graph(B, C, B2, eye, tolerance: float):
    """The tolerance loop of :func:`lyapunov_sign` as one ``while_loop`` (traced by
    torch.compile without a graph break): the same steps and the same stopping rule
    as the eager loop, decided on the device instead of by a read-back. The body
    squares the new B for the next step, so the last step costs one product more."""
    from torch._higher_order_ops.while_loop import while_loop

    def go_on(step, done, B, C, B2):
        return (step < LYA_MAX_ITERS) & ~done

    def body(step, done, B, C, B2):
        last = torch.linalg.matrix_norm(B2 - eye).max() <= tolerance
        B, C = _sign_step(B, C, B2)
        return step + 1, last, B, C, torch.bmm(B, B)

    # The loop's carried values must keep their layout: the body's are row-major.
    start = (torch.zeros((), dtype=torch.int64, device=B.device),
             torch.zeros((), dtype=torch.bool, device=B.device),
             B.contiguous(), C.contiguous(), B2.contiguous())  # fmt: skip
    _, _, B, C, _ = while_loop(go_on, body, start)
    return B, C


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


def _lyapunov_backward_flops(d, options):
    """2 products for the scale, then 5 per sign step less the first step's B² (the
    scale's); None (n/a) when it iterates to a tolerance: data-dependent."""
    steps = options["lya_iters"]
    return None if steps is None else (5 * steps + 1) * MATMUL * d**3


@declare(
    MATRIX_METHODS,
    "mtp_lya",
    exact=False,
    funcs=("sqrt",),
    # One Horner pass: degree products.
    flops=lambda d, o: (o["degree"] * MATMUL * d**3, _lyapunov_backward_flops(d, o)),
    k_tilde=None,
    tuning=Tuning("degree", (11,), (11, 32)),
)
def mtp_lya(
    A: torch.Tensor,
    func: str,
    p: float | None = None,
    *,
    degree: int = 11,
    lya_iters: int | None = None,
) -> torch.Tensor:
    """Matrix Taylor polynomial of sqrt, Lyapunov backward (Song et al., ICLR 2022)."""
    if degree < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    S, norm, Z = _normalised(A.detach())
    root = _polynomial(Z, _taylor(degree)) * norm.sqrt()
    return _LyapunovSqrt.apply(A, root.reshape(A.shape), lya_iters)


# Up to this degree mpa_lya evaluates P and Q in the monomial basis (shared powers, one
# solve), as the reference implementation does; above it, in partial fractions. In
# float32 at condition 1e3, d = 64, the monomial form's forward error was float64's to
# three digits up to degree 6, then 1% off at 8, 3.5x at 10 and 31.6 (against 0.034) at
# 12: P and Q's coefficients alternate and grow, and their sums cancel. The partial
# fractions matched float64 at every degree from 4 to 16 (tests/test_layers_approx.py).
PADE_MONOMIAL_MAX_DEGREE = 6


def sqrt_pade_partial_fractions(m: int) -> tuple[np.ndarray, np.ndarray]:
    """αⱼ, βⱼ of the [m/m] Padé approximant of sqrt(1 + x) in partial fractions,
    r(x) = 1 + Σⱼ αⱼ x / (1 + βⱼ x), αⱼ = 2/(2m+1) sin²(jπ/(2m+1)), βⱼ = cos²(jπ/(2m+1))
    (the partial-fraction form of the square root's Padé approximants in Higham,
    Functions of Matrices, 2008; the tests check it equals the quotient of
    :func:`sqrt_pade_coefficients`). Every
    βⱼ < 1, so for x in (−1, 0] each 1 + βⱼx is positive: m well-conditioned solves and
    a sum of positive weights, no cancellation."""
    j = np.arange(1, m + 1)
    angle = j * np.pi / (2 * m + 1)
    return 2.0 / (2 * m + 1) * np.sin(angle) ** 2, np.cos(angle) ** 2


@torch.compiler.assume_constant_result
def _partial_fractions(m: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """sqrt_pade_partial_fractions as floats: constants to torch.compile."""
    alpha, beta = sqrt_pade_partial_fractions(m)
    return tuple(float(a) for a in alpha), tuple(float(b) for b in beta)


def _pade_sqrt_partial_fractions(Z: torch.Tensor, degree: int) -> torch.Tensor:
    """r(−Z) for the normalised Z = I − S/‖S‖: all ``degree`` systems (I − βⱼZ) Yⱼ = −Z
    in one batched solve, then I + Σ αⱼ Yⱼ."""
    alpha, beta = _partial_fractions(degree)
    X = -Z
    eye = _eye_like(Z, 1.0)
    betas = torch.tensor(beta, dtype=Z.dtype, device=Z.device).view(-1, 1, 1, 1)
    alphas = torch.tensor(alpha, dtype=Z.dtype, device=Z.device).view(-1, 1, 1, 1)
    systems = eye + betas * X.unsqueeze(0)  # (degree, B, d, d)
    Y = torch.linalg.solve(systems, X.unsqueeze(0).expand_as(systems))
    return eye + (alphas * Y).sum(0)


def _mpa_forward_flops(d: int, degree: int) -> float:
    if degree <= PADE_MONOMIAL_MAX_DEGREE:  # the powers shared by P and Q, one LU solve
        return (degree - 1) * MATMUL * d**3 + LU_SOLVE * d**3
    return degree * LU_SOLVE * d**3  # one LU solve per partial fraction


@declare(
    MATRIX_METHODS,
    "mpa_lya",
    exact=False,
    funcs=("sqrt",),
    flops=lambda d, o: (_mpa_forward_flops(d, o["degree"]), _lyapunov_backward_flops(d, o)),
    k_tilde=None,
    tuning=Tuning("degree", (5,), (5, 10)),
)
def mpa_lya(
    A: torch.Tensor,
    func: str,
    p: float | None = None,
    *,
    degree: int = 5,
    lya_iters: int | None = None,
) -> torch.Tensor:
    """Matrix Padé approximant [degree/degree] of sqrt, Lyapunov backward (Song et al. 2022).

    Up to PADE_MONOMIAL_MAX_DEGREE the monomial form Q⁻¹P; above it the partial
    fractions, which stay as accurate in float32 as in float64 at every degree."""
    if degree < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    S, norm, Z = _normalised(A.detach())
    if degree <= PADE_MONOMIAL_MAX_DEGREE:
        numerator, denominator = _pade_monomial(degree)
        P, Q = _polynomial_pair(Z, numerator, denominator)
        root = torch.linalg.solve(Q, P) * norm.sqrt()  # P and Q commute: Q⁻¹P = PQ⁻¹
    else:
        root = _pade_sqrt_partial_fractions(Z, degree) * norm.sqrt()
    return _LyapunovSqrt.apply(A, root.reshape(A.shape), lya_iters)


def taylor_inverse_error(x: float, degree: int) -> float:
    """|1/(1−x) − Σₖ₌₀..degree xᵏ| = x^(degree+1)/(1−x): the truncated gap term's error."""
    return x ** (degree + 1) / (1 - x)


def power_iterations_needed(ratio: float, tolerance: float = 0.05) -> int:
    """Smallest k with ratioᵏ < tolerance (Wang et al.'s count for power iteration)."""
    return math.floor(math.log(tolerance) / math.log(ratio)) + 1
