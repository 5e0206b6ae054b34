"""A differentiable normalized-cuts layer and the paper's projector loss.

Features X (B, N, C) -> affinity W -> M = D^{-1/2} W D^{-1/2} (D = diag(W1))
-> the eigenvectors U of the k largest eigenvalues of M -> projector P = UUᵀ.
The learning objective (Ionescu et al., Sec. 5) compares P with the projector
Π onto span(D^1/2 E), the degree-weighted indicator vectors E of the
ground-truth segments, which is what P equals for a perfectly block-diagonal
affinity: J = ½ ‖P − Π‖²_F.

P depends on U only through span(U): its gradient involves only the gaps
between kept and discarded eigenvalues, so ``method='eig'`` keeps exactly those
pairs of K̃ (:func:`top_projector`). Ties inside the kept block, which make
Proposition 2 as written return NaN, do not matter.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, overload

import torch
from torch import nn

from bench_cli.layers._checks import sym
from bench_cli.layers.declare import EIGH, LU_FACTOR, MATMUL, QR, KTilde, Method, declare
from bench_cli.layers.spectral import Gap, eigh_backward

Affinity = Literal["gaussian", "cosine"]


class Degrees(NamedTuple):
    """The degrees d = W1 (B, N) of an affinity graph, with the graph they belong to."""

    values: torch.Tensor
    affinity_kind: str
    sigma: float | None  # None for the cosine affinity

    def same_graph(self, other: Degrees) -> bool:
        """Whether two degree vectors describe one kind of graph (sigma: gaussian only)."""
        return self.affinity_kind == other.affinity_kind and (
            self.affinity_kind != "gaussian" or self.sigma == other.sigma
        )


class Cut(NamedTuple):
    """What :func:`normalized_cuts` returns with ``return_degrees``: the projector and the
    degrees of the graph it cut (unpacks as ``P, degrees``)."""

    projector: torch.Tensor
    degrees: Degrees


MISSING_SIGMA = (
    "the gaussian affinity needs sigma, its scale in the features' units; it has no "
    "default (the median pairwise distance of your features, ncut.median_distance(X), is "
    "a common choice)"
)


def median_distance(X: torch.Tensor) -> float:
    """The median distance between distinct rows of X (B, N, C) over the batch: a scale
    for the gaussian affinity that keeps it away from the identity (σ far too small) and
    from all ones (σ far too large)."""
    distances = torch.cdist(X.detach().double(), X.detach().double())
    upper = torch.triu_indices(X.shape[-2], X.shape[-2], offset=1)
    return float(distances[..., upper[0], upper[1]].median())


def affinity(
    X: torch.Tensor, kind: Affinity = "gaussian", sigma: float | None = None
) -> torch.Tensor:
    """W (B, N, N), non-negative: exp(−‖xᵢ − xⱼ‖²/(2σ²)) or (1 + cos(xᵢ, xⱼ))/2."""
    if X.ndim != 3:
        raise ValueError(f"features must be (B, N, C), got {tuple(X.shape)}")
    if kind == "gaussian":
        if sigma is None:
            raise ValueError(MISSING_SIGMA)
        sq_norms = (X * X).sum(-1)
        sq_dist = (sq_norms.unsqueeze(-1) + sq_norms.unsqueeze(-2) - 2 * X @ X.mT).clamp_min(0)
        return torch.exp(-sq_dist / (2 * sigma**2))
    if kind == "cosine":
        unit = nn.functional.normalize(X, dim=-1)
        return 0.5 * (1 + unit @ unit.mT)
    raise ValueError(f"unknown affinity '{kind}'; known: gaussian, cosine")


def normalized_affinity(W: torch.Tensor) -> torch.Tensor:
    """D^-1/2 W D^-1/2 with D = diag(W1)."""
    inv_sqrt_degree = W.sum(-1).rsqrt()
    return sym(inv_sqrt_degree.unsqueeze(-1) * W * inv_sqrt_degree.unsqueeze(-2))


class _TopProjector(torch.autograd.Function):
    @staticmethod
    def forward(M, k, gap, gap_eps, degree):
        eigvals, eigvecs = torch.linalg.eigh(M)
        top = eigvecs[..., -k:]
        return top @ top.mT, eigvals, eigvecs

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, ctx.k, ctx.gap, ctx.gap_eps, ctx.degree = inputs
        _, eigvals, eigvecs = output
        ctx.save_for_backward(eigvals, eigvecs)
        ctx.mark_non_differentiable(eigvals, eigvecs)

    @staticmethod
    def backward(ctx, grad_P, *_):
        eigvals, eigvecs = ctx.saved_tensors
        n, k = eigvals.shape[-1], ctx.k
        top = eigvecs[..., -k:]
        grad_eigvecs = torch.zeros_like(eigvecs)
        grad_eigvecs[..., -k:] = (grad_P + grad_P.mT) @ top  # ∂L/∂U for P = UUᵀ
        kept = torch.arange(n, device=eigvals.device) >= n - k
        pair_mask = kept.unsqueeze(-1) ^ kept.unsqueeze(-2)  # kept x discarded pairs only
        grad_M = eigh_backward(
            eigvals,
            eigvecs,
            None,
            grad_eigvecs,
            gap=ctx.gap,
            gap_eps=ctx.gap_eps,
            degree=ctx.degree,
            pair_mask=pair_mask,
        )
        return grad_M, None, None, None, None


METHODS: dict[str, Method] = {}  # name -> entry, declared above each projector


def _eigh_projector_flops(n, options):
    """eigh of the N x N matrix and the k-column projector; backward (G + Gᵀ) U_k with
    N x k blocks, then Proposition 2's Uᵀ ∂L/∂U and U (…) Uᵀ (3 N x N products)."""
    k = options["k"]
    return EIGH * n**3 + MATMUL * n * n * k, 3 * MATMUL * n**3 + MATMUL * n * n * k


def _autograd_projector_flops(n, options):
    """As eig's, but torch's adjoint of P = U_k U_kᵀ takes two N x k products, not one."""
    k = options["k"]
    return EIGH * n**3 + MATMUL * n * n * k, 3 * MATMUL * n**3 + 2 * MATMUL * n * n * k


def _lowrank_projector_flops(n, options):
    """(iters + 2) products with N x q blocks, iters + 1 QRs of them, the q x q Rayleigh
    quotient and its eigh, the Ritz vectors and the projector; backward k LU solves with
    one right-hand side each and 3 products with N x k blocks."""
    k, iters = options["k"], options["iters"]
    q = min(k + options["oversample"], n)
    forward = (
        (iters + 2) * MATMUL * n * n * q + (iters + 1) * QR * n * q * q
        + MATMUL * n * q * q + EIGH * q**3 + MATMUL * n * q * k + MATMUL * n * n * k
    )  # fmt: skip
    backward = k * (LU_FACTOR * n**3 + 2 * n * n) + 3 * MATMUL * n * n * k
    return forward, backward


def top_projector(
    M: torch.Tensor, k: int, *, gap: Gap = "exact", gap_eps: float | None = None, degree: int = 9
) -> torch.Tensor:
    """Projector onto the eigenvectors of the k largest eigenvalues of symmetric M."""
    return _TopProjector.apply(M, k, gap, gap_eps, degree)[0]


@declare(
    METHODS,
    "eig",
    exact=True,
    flops=_eigh_projector_flops,
    k_tilde=lambda o: KTilde(o["gap"], o["gap_eps"], o["degree"], kept=o["k"]),
)
def eig_projector(M, k, *, gap: Gap = "exact", gap_eps: float | None = None, degree: int = 9):
    """Proposition 2, restricted to kept x discarded eigenvalue pairs."""
    return top_projector(M, k, gap=gap, gap_eps=gap_eps, degree=degree)


@declare(
    METHODS,
    "autograd",
    exact=True,
    flops=_autograd_projector_flops,
    k_tilde=lambda o: KTilde("exact", kept=o["k"]),
)
def autograd_projector(M, k):
    """torch.linalg.eigh and torch's backward (NaN when kept eigenvalues tie)."""
    _, eigvecs = torch.linalg.eigh(M)
    top = eigvecs[..., -k:]
    return top @ top.mT


class _RitzProjector(torch.autograd.Function):
    """P = UUᵀ from Ritz pairs (λ, U) of symmetric M; backward by resolvent solves.

    The Ritz pairs come from a subspace the forward found without gradient. The
    backward is the exact derivative of the top-k projector at those pairs,
    computed without the discarded eigenvectors (which a low-rank method never
    forms): for P = Σᵢ uᵢuᵢᵀ over the kept i, with G = ∂L/∂P + (∂L/∂P)ᵀ,

        ∂L/∂M = sym(Σᵢ yᵢ uᵢᵀ),   yᵢ = (λᵢ I − M)⁺ (I − P) G uᵢ,

    the pseudo-inverse taken on the discarded eigenspace, i.e. Proposition 2's
    kept × discarded K̃ entries Σⱼ uⱼuⱼᵀ/(λᵢ − λⱼ). yᵢ solves
    (λᵢ I − M + αP) yᵢ = (I − P) G uᵢ: α = 1 + 2‖M‖_F makes the kept block
    invertible, and on the discarded block the matrix is λᵢ − λⱼ > 0. It equals
    the derivative of the forward whenever the subspace holds the top-k
    eigenvectors, as it does for any M of rank ≤ q (range(M) is reached in one
    product), whatever rank(M) is: there is no division by zero singular values.
    """

    @staticmethod
    def forward(M, eigvals, eigvecs):
        return eigvecs @ eigvecs.mT

    @staticmethod
    def setup_context(ctx, inputs, output):
        M, eigvals, eigvecs = inputs
        ctx.save_for_backward(M, eigvals, eigvecs, output)

    @staticmethod
    def backward(ctx, grad_P):
        M, eigvals, eigvecs, P = ctx.saved_tensors
        eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
        G = grad_P + grad_P.mT
        rhs = (eye - P) @ (G @ eigvecs)  # (..., n, k)
        alpha = 1 + 2 * torch.linalg.matrix_norm(M)
        shifted = (alpha.unsqueeze(-1).unsqueeze(-1) * P - M).unsqueeze(-3)  # (..., 1, n, n)
        systems = shifted + eigvals.unsqueeze(-1).unsqueeze(-1) * eye  # (..., k, n, n)
        solved = torch.linalg.solve(systems, rhs.mT.unsqueeze(-1)).squeeze(-1)  # (..., k, n)
        return sym(solved.mT @ eigvecs.mT), None, None


@declare(METHODS, "lowrank", exact=False, flops=_lowrank_projector_flops, k_tilde=None)
def lowrank_projector(M, k, *, iters: int = 2, oversample: int = 8):
    """Randomized subspace iteration and Rayleigh-Ritz for the top-k eigenvectors of M.

    q = k + ``oversample`` random vectors, ``iters`` products with M and
    re-orthonormalisation, then the k largest Ritz pairs of QᵀMQ. The gradient is
    :class:`_RitzProjector`'s, correct at any rank of M (torch.svd_lowrank's own
    backward divides by zero singular values once q exceeds rank(M)).
    """
    n = M.shape[-1]
    q = min(k + oversample, n)
    with torch.no_grad():
        start = torch.randn(*M.shape[:-1], q, dtype=M.dtype, device=M.device)
        basis, _ = torch.linalg.qr(M @ start)
        for _ in range(iters):
            basis, _ = torch.linalg.qr(M @ basis)
        ritz_values, ritz_vectors = torch.linalg.eigh(basis.mT @ M @ basis)
        eigvals, eigvecs = ritz_values[..., -k:], basis @ ritz_vectors[..., -k:]
    return _RitzProjector.apply(M, eigvals, eigvecs)


@declare(METHODS, "lobpcg", exact=False, flops=None, k_tilde=None)
def lobpcg_projector(M, k, *, iters: int = 20):
    """torch.lobpcg for the k largest eigenpairs (needs N >= 3k)."""
    if M.shape[-1] < 3 * k:
        raise ValueError(f"lobpcg needs N >= 3k, got N = {M.shape[-1]}, k = {k}")
    _, top = torch.lobpcg(M, k=k, largest=True, niter=iters)
    return top @ top.mT


@declare(
    METHODS,
    "subspace",
    exact=False,
    # iters products with N x k blocks and iters + 1 QRs, then P; no backward model: it is
    # autograd through torch's QR adjoint, whose products this project does not count.
    flops=lambda n, o: (
        (o["iters"] + 1) * MATMUL * n * n * o["k"] + (o["iters"] + 1) * QR * n * o["k"] ** 2,
        None,
    ),
    k_tilde=None,
)
def subspace_projector(M, k, *, iters: int = 10):
    """Block power iteration with QR re-orthonormalisation; P depends on the span only."""
    start = torch.randn(*M.shape[:-1], k, dtype=M.dtype, device=M.device)
    Q, _ = torch.linalg.qr(start)
    for _ in range(iters):
        Q, _ = torch.linalg.qr(M @ Q)
    return Q @ Q.mT


@overload
def normalized_cuts(
    X: torch.Tensor,
    k: int,
    *,
    affinity_kind: Affinity = ...,
    sigma: float | None = ...,
    method: str = ...,
    return_degrees: Literal[False] = ...,
    **options,
) -> torch.Tensor: ...


@overload
def normalized_cuts(
    X: torch.Tensor,
    k: int,
    *,
    affinity_kind: Affinity = ...,
    sigma: float | None = ...,
    method: str = ...,
    return_degrees: Literal[True],
    **options,
) -> Cut: ...


@overload
def normalized_cuts(
    X: torch.Tensor,
    k: int,
    *,
    affinity_kind: Affinity = ...,
    sigma: float | None = ...,
    method: str = ...,
    return_degrees: bool,
    **options,
) -> torch.Tensor | Cut: ...


def normalized_cuts(
    X: torch.Tensor,
    k: int,
    *,
    affinity_kind: Affinity = "gaussian",
    sigma: float | None = None,
    method: str = "eig",
    return_degrees: bool = False,
    **options,
) -> torch.Tensor | Cut:
    """The spectral projector P (B, N, N) of the normalised affinity of X (B, N, C); with
    ``return_degrees``, a :class:`Cut`: P and the degrees of the graph it cut, which the
    paper's loss needs (``projector_loss(cut, labels)``)."""
    if X.ndim != 3 or not X.is_floating_point():
        raise ValueError(f"features must be a floating (B, N, C) tensor, got {tuple(X.shape)}")
    if not 1 <= k < X.shape[-2]:
        raise ValueError(f"k must be in [1, N) = [1, {X.shape[-2]}), got {k}")
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; known: {', '.join(METHODS)}")
    W = affinity(X, affinity_kind, sigma)
    P = METHODS[method](normalized_affinity(W), k, **options)
    return Cut(P, Degrees(W.sum(-1), affinity_kind, sigma)) if return_degrees else P


class NormalizedCuts(nn.Module):
    """Features (B, N, C) -> projector onto the top-k eigenvectors of D^{-1/2} W D^{-1/2}."""

    def __init__(
        self,
        k: int,
        affinity: Affinity = "gaussian",
        sigma: float | None = None,
        method: str = "eig",
        **options,
    ):
        super().__init__()
        self.k, self.affinity, self.sigma, self.method, self.options = (
            k,
            affinity,
            sigma,
            method,
            options,
        )

    def forward(self, X: torch.Tensor, return_degrees: bool = False) -> torch.Tensor | Cut:
        """The projector P (B, N, N) of features X (B, N, C); with ``return_degrees`` a
        :class:`Cut`, for ``projector_loss(cut, labels)``."""
        return normalized_cuts(
            X,
            self.k,
            affinity_kind=self.affinity,
            sigma=self.sigma,
            method=self.method,
            return_degrees=return_degrees,
            **self.options,
        )


def segment_projector(
    labels: torch.Tensor,
    num_segments: int | None = None,
    dtype: torch.dtype = torch.float32,
    degrees: torch.Tensor | None = None,
) -> torch.Tensor:
    """Π, the projector onto span(D^1/2 E) for segment indicators E (B, N) and degrees d.

    For a graph whose affinity is block-diagonal by segment, the top eigenvectors of
    D^-1/2 W D^-1/2 span exactly D^1/2 E, not E (Ionescu et al., Sec. 5): this Π is the
    target a perfect affinity reaches. The columns D^1/2 eₛ have disjoint supports, so
    Π = Σₛ (√d ∘ eₛ)(√d ∘ eₛ)ᵀ / Σᵢ∈ₛ dᵢ. ``degrees`` None means all ones: the
    projector onto span(E). Empty segments add nothing.
    """
    if labels.ndim != 2 or labels.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"labels must be an integer (B, N) tensor, got {labels.dtype} {tuple(labels.shape)}"
        )
    if bool((labels < 0).any()):
        raise ValueError("labels must be non-negative segment indices")
    if degrees is not None and degrees.shape != labels.shape:
        raise ValueError(
            f"degrees {tuple(degrees.shape)} and labels {tuple(labels.shape)} do not match"
        )
    count = int(labels.max()) + 1 if num_segments is None else num_segments
    E = nn.functional.one_hot(labels.long(), count).to(dtype)
    if degrees is None:
        sizes = E.sum(-2).clamp_min(1)
        return (E / sizes.unsqueeze(-2)) @ E.mT
    weighted = E * degrees.to(dtype).sqrt().unsqueeze(-1)  # D^1/2 E
    volumes = (weighted * weighted).sum(-2)
    volumes = torch.where(volumes > 0, volumes, torch.ones_like(volumes))
    return (weighted / volumes.unsqueeze(-2)) @ weighted.mT


def projector_loss(
    P: torch.Tensor | Cut,
    labels: torch.Tensor,
    degrees: Degrees | torch.Tensor | None = None,
) -> torch.Tensor:
    """½‖P − Π‖²_F averaged over the batch, Π the projector onto span(D^½E): the paper's
    normalized-cuts objective (Ionescu et al., Sec. 5).

    The easy path passes the :class:`Cut` that ``normalized_cuts(...,
    return_degrees=True)`` (or ``NormalizedCuts(...)(X, return_degrees=True)``) returns:
    its degrees are those of the graph P was cut from. A bare projector needs
    ``degrees=``: a :class:`Degrees` (:func:`graph_degrees`) or, for a graph built by
    hand, its W.sum(-1). Refused: no degrees (the target would silently become span(E),
    which a perfect affinity does not reach; :func:`segment_projector` builds that one
    on purpose), and degrees of another graph than the cut's.
    """
    if isinstance(P, Cut):
        if degrees is not None:
            if not isinstance(degrees, Degrees):
                raise ValueError(
                    "the cut carries the degrees of its own graph: pass the cut alone, or "
                    "its projector with degrees="
                )
            if not degrees.same_graph(P.degrees):
                raise ValueError(
                    f"degrees of a {_graph_name(degrees)} graph for a projector cut from a "
                    f"{_graph_name(P.degrees)} graph: the target would be another graph's"
                )
        degrees = P.degrees
        P = P.projector
    if degrees is None:
        raise ValueError(
            "projector_loss needs the graph's degrees for the paper's target span(D^1/2 E): "
            "pass the Cut of normalized_cuts(..., return_degrees=True), or degrees=; "
            "segment_projector(labels) gives span(E) if that is what you want"
        )
    values = degrees.values if isinstance(degrees, Degrees) else degrees
    if P.shape[:-1] != labels.shape or P.shape[-1] != P.shape[-2]:
        raise ValueError(f"P {tuple(P.shape)} and labels {tuple(labels.shape)} do not match")
    target = segment_projector(labels, dtype=P.dtype, degrees=values).to(P.device)
    return 0.5 * ((P - target) ** 2).sum((-2, -1)).mean()


def _graph_name(degrees: Degrees) -> str:
    kind = degrees.affinity_kind
    return f"{kind} (sigma {degrees.sigma:g})" if kind == "gaussian" else kind


def graph_degrees(X: torch.Tensor, *, kind: Affinity, sigma: float | None) -> Degrees:
    """The degrees d = W1 (B, N) of the affinity normalized_cuts builds from features
    X (B, N, C) with this ``kind`` and ``sigma`` (both required: a default here once
    disagreed silently with the layer's)."""
    return Degrees(affinity(X, kind, sigma).sum(-1), kind, sigma)
