"""Spectral matrix functions f(A) = U f(Λ) Uᵀ of symmetric matrices.

``matrix_function(A, func, method, **options)`` is the one entry point;
``METHODS`` maps each method name to its :class:`~bench_cli.layers.declare.Method`
entry, declared with ``@declare`` right above its function (the funcs it
computes, FLOP model, K̃, exactness, advise settings), so adding a method is
one function and one entry. A method's keyword-only parameters are its options
(and, through the registry, its suite options).

Methods:

- ``autograd``: torch.linalg.eigh composed, torch's own backward.
- ``eig``: through :func:`~bench_cli.layers.spectral.eigh`, the paper's
  Proposition 2 backward, with its ``gap`` treatments.
- ``svd``: through :func:`~bench_cli.layers.spectral.svd` of A, the paper's
  Proposition 1 backward. For symmetric A the singular vectors are
  eigenvectors and λᵢ = σᵢ · sign(uᵢᵀvᵢ).
- ``eig_dk``: the Daleckii–Krein backward ∂L/∂A = U (L_f ∘ (Uᵀ sym(G) U)) Uᵀ,
  with L_f the Loewner matrix of divided differences of f. Exact and finite at
  repeated eigenvalues, where Proposition 2 and torch's backward give NaN.

Non-symmetric input is *symmetrized*: every method computes f(sym(A)),
sym(A) = (A + Aᵀ)/2, so f is defined and differentiable on all square
matrices and gradients are symmetric.

Eigenvalues outside f's domain (λ ≤ 0 for log, sqrt, invsqrt and non-integer
powers): ``nonpositive='error'`` raises ValueError (this reads a value back
from the device); ``'floor'`` replaces λ by max(λ, floor_eps).
"""

from __future__ import annotations

import functools

import torch

from bench_cli.layers import cpu_batch
from bench_cli.layers._checks import as_in_forward, autocast_state, check_square_batch, sym
from bench_cli.layers.declare import (
    EIGH,
    EXACT_K,
    FUNCS,
    MATMUL,
    MATRIX_METHODS,
    SVD,
    KTilde,
    declare,
)
from bench_cli.layers.scalar import (
    NonPositive,
    domain,
    eigh_flops,
    needs_positive,
    rebuild,
    scalar_function,
)
from bench_cli.layers.spectral import Gap, eigh, svd

METHODS = MATRIX_METHODS  # name -> Method entry; lowrank.py and approx.py declare into it too


def _dk_flops(d, options):
    """One eigh and the rebuild forward; U (L ∘ Uᵀ sym(G) U) Uᵀ, 4 products, backward."""
    return (EIGH + MATMUL) * d**3, 4 * MATMUL * d**3


def _gap_k(on_squares: bool):
    return lambda o: KTilde(o["gap"], o["gap_eps"], o["degree"], on_squares)


@declare(METHODS, "autograd", exact=True, flops=eigh_flops, k_tilde=EXACT_K)
def autograd_matrix_function(
    A: torch.Tensor,
    func: str,
    p: float | None = None,
    *,
    nonpositive: NonPositive = "error",
    floor_eps: float = 1e-10,
) -> torch.Tensor:
    """torch.linalg.eigh composed; torch's backward (NaN at repeated eigenvalues)."""
    eigvals, eigvecs = torch.linalg.eigh(sym(A))
    eigvals = domain(eigvals, func, p, nonpositive, floor_eps)
    return rebuild(eigvecs, scalar_function(func, p)(eigvals))


@declare(METHODS, "eig", exact=True, flops=eigh_flops, k_tilde=_gap_k(False))
def eig_matrix_function(
    A: torch.Tensor,
    func: str,
    p: float | None = None,
    *,
    gap: Gap = "exact",
    gap_eps: float | None = None,
    degree: int = 9,
    nonpositive: NonPositive = "error",
    floor_eps: float = 1e-10,
) -> torch.Tensor:
    """The paper's eigendecomposition backward (Proposition 2), gap treatment selectable."""
    eigvals, eigvecs = eigh(A, gap=gap, gap_eps=gap_eps, degree=degree, check_finite=False)
    eigvals = domain(eigvals, func, p, nonpositive, floor_eps)
    return rebuild(eigvecs, scalar_function(func, p)(eigvals))


@declare(
    METHODS,
    "svd",
    exact=True,
    # Backward, 9 products: the rebuild's adjoint (2), then Proposition 1's D Vᵀ, Uᵀ D,
    # U diag(…) Vᵀ, Dᵀ U, Vᵀ ∂L/∂V and 2 U Σ (…) Vᵀ (7).
    flops=lambda d, o: ((SVD + MATMUL) * d**3, 9 * MATMUL * d**3),
    k_tilde=_gap_k(True),
)
def svd_matrix_function(
    A: torch.Tensor,
    func: str,
    p: float | None = None,
    *,
    gap: Gap = "exact",
    gap_eps: float | None = None,
    degree: int = 9,
    nonpositive: NonPositive = "error",
    floor_eps: float = 1e-10,
) -> torch.Tensor:
    """The paper's SVD backward (Proposition 1) on A; eigenvalues are signed σ."""
    U, S, V = svd(sym(A), gap=gap, gap_eps=gap_eps, degree=degree, check_finite=False)
    # For symmetric A, uᵢ = ±vᵢ and the sign is that of λᵢ.
    signs = torch.sign((U * V).sum(-2)).detach()
    eigvals = domain(S * torch.where(signs == 0, 1.0, signs), func, p, nonpositive, floor_eps)
    return rebuild(V, scalar_function(func, p)(eigvals))


# ---------------------------------------------------------------- Daleckii–Krein


def loewner(eigvals: torch.Tensor, func: str, p: float | None = None) -> torch.Tensor:
    """L_f: Lᵢⱼ = (f(λᵢ) − f(λⱼ))/(λᵢ − λⱼ), and f′(λᵢ) where λᵢ = λⱼ.

    ``eigvals`` ascending (as eigh returns them), positive except for identity.
    Written without cancellation; see :func:`half_loewner`.
    """
    n = eigvals.shape[-1]
    return (2 * half_loewner(eigvals, func, p)).expand(*eigvals.shape[:-1], n, n)


def half_loewner(eigvals: torch.Tensor, func: str, p: float | None = None) -> torch.Tensor:
    """L_f / 2, the form the backward uses: U (L/2 ∘ (X + Xᵀ)) Uᵀ = U (L ∘ sym(X)) Uᵀ.

    Cancellation-free forms, with λᵢ ≤ λⱼ for i ≤ j (ascending eigenvalues)
    and x = (λⱼ − λᵢ)/λᵢ ≥ 0 on and above the diagonal:
      sqrt:     1 / (√λᵢ + √λⱼ)
      invsqrt:  −1 / (√λᵢ √λⱼ (√λᵢ + √λⱼ))
      log:      (1/λᵢ) log1p(x)/x                -> 1/λᵢ at x = 0
      pow p:    λᵢᵖ⁻¹ expm1(p log1p(x))/x        -> p λᵢᵖ⁻¹ at x = 0
    log and pow are formed above the diagonal, where x ≥ 0 keeps log1p
    accurate to rounding, and mirrored below it. Every step is one in-place
    pass over the (..., n, n) matrix: this runs in every backward.
    """
    if func == "identity":
        return torch.full((1, 1), 0.5, dtype=eigvals.dtype, device=eigvals.device)
    if func in ("sqrt", "invsqrt"):
        roots = eigvals.sqrt()
        sign = 1.0 if func == "sqrt" else -1.0
        twice = (2 * sign) * roots
        half = (twice.unsqueeze(-1) + twice.unsqueeze(-2)).reciprocal_()
        if func == "invsqrt":
            inv_roots = roots.reciprocal()
            half.mul_(inv_roots.unsqueeze(-1)).mul_(inv_roots.unsqueeze(-2))
        return half
    if func not in ("log", "pow"):
        raise ValueError(f"unknown func '{func}'; known: {', '.join(FUNCS)}")
    if func == "pow" and p is None:
        raise ValueError("func 'pow' needs the exponent p")
    if func == "pow" and not needs_positive(func, p):
        return 0.5 * _power_divided_difference(eigvals, int(p))  # type: ignore[arg-type]
    # x = (λⱼ − λᵢ)/λᵢ ≥ 0 above the diagonal. Adding the smallest normal float makes an exact
    # tie (x = 0) give log1p(t)/t = expm1(t)/t = 1 exactly, the limit, and changes no other
    # x (every non-zero x is at least a rounding unit), so no tie mask is needed.
    x = eigvals.unsqueeze(-2) - eigvals.unsqueeze(-1)
    x.mul_(eigvals.reciprocal().unsqueeze(-1)).add_(torch.finfo(eigvals.dtype).tiny)
    upper = torch.log1p(x)
    if func == "log":  # (log λⱼ − log λᵢ)/(λⱼ − λᵢ) = (1/λᵢ) log1p(x)/x
        upper.div_(x).mul_((0.5 / eigvals).unsqueeze(-1))
    else:  # (λⱼᵖ − λᵢᵖ)/(λⱼ − λᵢ) = λᵢᵖ⁻¹ expm1(p log1p(x))/x
        assert p is not None
        upper.mul_(p).expm1_().div_(x).mul_((0.5 * eigvals.pow(p - 1)).unsqueeze(-1))
    return torch.where(_upper_mask(eigvals.shape[-1], eigvals.device), upper, upper.mT)


def _power_divided_difference(eigvals: torch.Tensor, p: int) -> torch.Tensor:
    """(λⱼᵖ − λᵢᵖ)/(λⱼ − λᵢ) = Σₖ₌₀..p₋₁ λᵢᵏ λⱼᵖ⁻¹⁻ᵏ for an integer p ≥ 0, any real λ.

    The log1p/expm1 form assumes λ > 0; an integer power is defined on indefinite
    and singular matrices too, and this sum is its exact divided difference
    (p λᵖ⁻¹ on ties, 0 for p = 0). Built by S ← λⱼ S + λᵢᵐ, m = 1 … p − 1.
    """
    lam_i, lam_j = eigvals.unsqueeze(-1), eigvals.unsqueeze(-2)
    if p == 0:
        return torch.zeros_like(lam_i * lam_j)
    total = torch.ones_like(lam_i * lam_j)
    power_i = torch.ones_like(lam_i)
    for _ in range(p - 1):
        power_i = power_i * lam_i
        total = lam_j * total + power_i
    return total


@functools.lru_cache(maxsize=64)
def _upper_mask(n: int, device: torch.device) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).triu_()


def _floored_half_loewner(eigvals, floored, func, p, eps):
    """½ × divided differences of g = f ∘ max(·, eps), for pairs where either λ was floored."""
    f = scalar_function(func, p)
    values = f(floored)
    diff = eigvals.unsqueeze(-1) - eigvals.unsqueeze(-2)
    tie = diff == 0
    generic = 0.5 * (values.unsqueeze(-1) - values.unsqueeze(-2)) / torch.where(tie, 1.0, diff)
    # g′(λ) = f′(λ) above the floor, 0 below it.
    derivative = torch.diagonal(
        half_loewner(floored, func, p).expand(*diff.shape), dim1=-2, dim2=-1
    )
    derivative = torch.where(eigvals > eps, derivative, torch.zeros_like(derivative))
    return torch.where(tie, derivative.unsqueeze(-1).expand_as(generic), generic)


def _dk_backward(U, eigvals, inside, grad_out, func, p, nonpositive, eps):
    """U (L ∘ sym(Uᵀ G U)) Uᵀ, matrix by matrix."""
    half = half_loewner(inside, func, p)
    if nonpositive == "floor" and not torch.equal(eigvals, inside):
        floored = (eigvals != inside).unsqueeze(-1) | (eigvals != inside).unsqueeze(-2)
        floored_half = _floored_half_loewner(eigvals, inside, func, p, eps)
        half = torch.where(floored, floored_half, half)
    inner = U.mT @ grad_out @ U
    # The gradient of f(sym(A)) is symmetric: U (L ∘ sym(Uᵀ G U)) Uᵀ, sym folded into L/2.
    inner = torch.add(inner, inner.mT).mul_(half)
    return U @ inner @ U.mT


class _DaleckiiKrein(torch.autograd.Function):
    """f(sym(A)) with the Daleckii–Krein backward; symmetrizes inside, so no extra graph.

    One output, the eigenpairs saved as intermediates (the forward(ctx) form): returning
    them as extra non-differentiable outputs cost about 15% at 1×64×64 on the CPU."""

    @staticmethod
    def forward(ctx, A, func, p, nonpositive, eps):
        # Eigenpairs of 2·sym(A), exactly; a CPU batch of small matrices over every core.
        # (Only the eigh: the elementwise work and the matmul run on torch's own threads.)
        twice, eigvecs = cpu_batch.eigh(A + A.mT)
        eigvals = 0.5 * twice
        inside = domain(eigvals, func, p, nonpositive, eps)
        out = rebuild(eigvecs, scalar_function(func, p)(inside))
        ctx.func, ctx.p, ctx.nonpositive, ctx.eps = func, p, nonpositive, eps
        ctx.autocast = autocast_state(A)
        ctx.save_for_backward(eigvals, eigvecs, inside)
        return out

    @staticmethod
    def backward(ctx, grad_out, *_):
        eigvals, eigvecs, inside = ctx.saved_tensors
        # Batched matmuls, which MKL already spreads over the cores: in this thread; in the
        # forward's autocast region, where it ran in one.
        with as_in_forward(ctx.autocast):
            grad = _dk_backward(
                eigvecs, eigvals, inside, grad_out, ctx.func, ctx.p, ctx.nonpositive, ctx.eps
            )
        return grad, None, None, None, None


@declare(METHODS, "eig_dk", exact=True, flops=_dk_flops, k_tilde=None)
def eig_dk_matrix_function(
    A: torch.Tensor,
    func: str,
    p: float | None = None,
    *,
    nonpositive: NonPositive = "error",
    floor_eps: float = 1e-10,
) -> torch.Tensor:
    """Daleckii–Krein backward U (L_f ∘ (Uᵀ sym(G) U)) Uᵀ: exact and finite at ties."""
    return _DaleckiiKrein.apply(A, func, p, nonpositive, floor_eps)


# ---------------------------------------------------------------- approximate gradients
# The exact eigendecomposition forward with K̃ replaced (spectral.gap_matrix).


@declare(
    METHODS,
    "svd_taylor",
    exact=False,
    flops=eigh_flops,
    k_tilde=lambda o: KTilde("taylor", 0.0, o["degree"]),
)
def svd_taylor(
    A,
    func,
    p=None,
    *,
    degree: int = 100,
    nonpositive: NonPositive = "error",
    floor_eps: float = 1e-10,
):
    """Exact forward; K̃ as the degree-n geometric series of λⱼ/λᵢ (Song et al., ICCV 2021)."""
    return eig_matrix_function(
        A, func, p, gap="taylor", degree=degree, nonpositive=nonpositive, floor_eps=floor_eps
    )


@declare(
    METHODS,
    "svd_pade",
    exact=False,
    flops=eigh_flops,
    k_tilde=lambda o: KTilde("pade", 0.0, o["degree"]),
)
def svd_pade(
    A,
    func,
    p=None,
    *,
    degree: int = 50,
    nonpositive: NonPositive = "error",
    floor_eps: float = 1e-10,
):
    """Exact forward; K̃ as the [n/n] Padé approximant of that series (Song et al., ICCV 2021)."""
    return eig_matrix_function(
        A, func, p, gap="pade", degree=degree, nonpositive=nonpositive, floor_eps=floor_eps
    )


@declare(
    METHODS,
    "svd_pi",
    exact=False,
    flops=eigh_flops,
    k_tilde=lambda o: KTilde("taylor", 0.0, o["iters"] - 1),
)
def svd_pi(
    A,
    func,
    p=None,
    *,
    iters: int = 19,
    nonpositive: NonPositive = "error",
    floor_eps: float = 1e-10,
):
    """Exact forward; the power-iteration gradient, K = iters terms (Wang et al., NeurIPS 2019)."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    return eig_matrix_function(
        A, func, p, gap="taylor", degree=iters - 1, nonpositive=nonpositive, floor_eps=floor_eps
    )


@declare(
    METHODS,
    "svd_trunc",
    exact=False,
    flops=eigh_flops,
    k_tilde=lambda o: KTilde("clip", 1.0 / o["bound"]),
)
def svd_trunc(
    A,
    func,
    p=None,
    *,
    bound: float = 1e4,
    nonpositive: NonPositive = "error",
    floor_eps: float = 1e-10,
):
    """Exact forward; K̃ entries clipped to [−bound, bound]."""
    if bound <= 0:
        raise ValueError(f"bound must be > 0, got {bound}")
    return eig_matrix_function(
        A, func, p, gap="clip", gap_eps=1.0 / bound, nonpositive=nonpositive, floor_eps=floor_eps
    )


@declare(METHODS, "svd_topn", exact=False, flops=eigh_flops, k_tilde=EXACT_K)
def svd_topn(A, func, p=None, *, n: int = 1, small_eps: float = 1e-5):
    """The smallest n eigenvalues set to small_eps; their mutual K̃ entries dropped."""
    d = A.shape[-1]
    if not 1 <= n < d:
        raise ValueError(f"n must be in [1, {d}), got {n}")
    dropped = torch.arange(d, device=A.device) < n  # eigh is ascending: the n smallest
    pair_mask = ~(dropped.unsqueeze(-1) & dropped.unsqueeze(-2))
    eigvals, eigvecs = eigh(A, pair_mask=pair_mask, check_finite=False)
    # Replace before applying f: an f(λ ≤ 0) in the unused branch would still poison gradients.
    eigvals = torch.where(dropped, torch.full_like(eigvals, small_eps), eigvals)
    eigvals = domain(eigvals, func, p, "error", small_eps)
    return rebuild(eigvecs, scalar_function(func, p)(eigvals))


def method_flops(method: str, d: int, options) -> tuple[float | None, ...]:
    """Nominal (forward, backward) FLOPs of one d x d matrix; None where there is no model."""
    return METHODS[method].flops_for(d, options)


def supported_funcs(method: str) -> tuple[str, ...]:
    """The funcs a method computes (approximations of sqrt do only that)."""
    return METHODS[method].funcs


def matrix_function(
    A: torch.Tensor,
    func: str,
    method: str = "eig_dk",
    *,
    p: float | None = None,
    check_finite: bool = True,
    **options,
) -> torch.Tensor:
    """f(A) for a batch of symmetric matrices A of shape (..., d, d).

    Args:
        A: symmetric (or symmetrized, see the module docstring) matrices.
        func: ``log``, ``sqrt``, ``invsqrt``, ``pow`` (with ``p``) or ``identity``.
        method: a key of ``METHODS``.
        p: the exponent for ``func='pow'``.
        check_finite: reject non-finite input (costs a device sync).
        options: the method's keyword-only options (``gap``, ``nonpositive``, ...).
    """
    check_square_batch(A, check_finite=check_finite)
    if func not in FUNCS:
        raise ValueError(f"unknown func '{func}'; known: {', '.join(FUNCS)}")
    if func == "pow" and p is None:
        raise ValueError("func 'pow' needs the exponent p")
    try:
        impl = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown method '{method}'; known: {', '.join(METHODS)}") from None
    if func not in supported_funcs(method):
        raise ValueError(
            f"method '{method}' computes {', '.join(supported_funcs(method))} only, not '{func}'"
        )
    return impl(A, func, p, **options)


# The truncated and low-rank methods, then the matmul-only approximations, declare
# themselves into METHODS; imported last so the table lists the eigendecomposition
# methods first.
from bench_cli.layers import lowrank  # noqa: E402, F401  # isort: skip
from bench_cli.layers import approx  # noqa: E402, F401  # isort: skip
