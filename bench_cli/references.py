"""Float64 references, written apart from the layers they check.

Each layer's forward is re-implemented here in NumPy (float64), and so are the
gradients that have a closed form (Daleckii–Krein); :func:`fd_reference_grad`
gives central differences of any reference. None of this imports the torch
code under test, so a shared mistake cannot cancel out.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()


def _np_spectral(M: np.ndarray, func: str, p: float | None) -> np.ndarray:
    eigvals, eigvecs = np.linalg.eigh(0.5 * (M + np.swapaxes(M, -1, -2)))
    with np.errstate(all="ignore"):
        f = _np_spectral_values(eigvals, func, p)
    return (eigvecs * f[..., None, :]) @ np.swapaxes(eigvecs, -1, -2)


def _np_covariance(X: np.ndarray, center: bool) -> np.ndarray:
    if center:
        X = X - X.mean(-2, keepdims=True)
    return np.swapaxes(X, -1, -2) @ X / X.shape[-2]


def matrix_function(options, inputs) -> torch.Tensor:
    """f(sym(A)) by NumPy's eigh."""
    return torch.from_numpy(_np_spectral(_np(inputs["A"]), options["func"], options.get("p")))


def o2p(options, inputs) -> torch.Tensor:
    """f(covariance + εI), upper triangle with √2 off the diagonal."""
    C = _np_covariance(_np(inputs["X"]), options["center"])
    pooled = _np_spectral(C + options["eps"] * np.eye(C.shape[-1]), options["func"], options["p"])
    rows, cols = np.triu_indices(C.shape[-1])
    scale = np.where(rows == cols, 1.0, np.sqrt(2.0))
    return torch.from_numpy(pooled[..., rows, cols] * scale)


def ncut(options, inputs) -> torch.Tensor:
    """The projector onto the top-k eigenvectors of D^-1/2 W D^-1/2."""
    X = _np(inputs["X"])
    if options["affinity"] == "gaussian":
        sq_dist = ((X[..., :, None, :] - X[..., None, :, :]) ** 2).sum(-1)
        W = np.exp(-sq_dist / (2 * options["sigma"] ** 2))
    else:
        unit = X / np.linalg.norm(X, axis=-1, keepdims=True)
        W = 0.5 * (1 + unit @ np.swapaxes(unit, -1, -2))
    d = W.sum(-1)
    M = W / np.sqrt(d[..., :, None] * d[..., None, :])
    _, eigvecs = np.linalg.eigh(M)
    top = eigvecs[..., -options["k"] :]
    return torch.from_numpy(top @ np.swapaxes(top, -1, -2))


def bilinear(options, inputs) -> torch.Tensor:
    """Outer-product pooling, signed square root, L2 normalisation."""
    X = _np(inputs["X"])
    M = (np.swapaxes(X, -1, -2) @ X / X.shape[-2]).reshape(X.shape[0], -1)
    signed = np.sign(M) * np.sqrt(np.abs(M) + options["eps"])
    return torch.from_numpy(signed / np.linalg.norm(signed, axis=-1, keepdims=True))


def fc_weights(out_features: int, in_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed float64 weights: the head is a fixed cost here, not what is measured."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(out_features, in_features, generator=generator, dtype=torch.float64)
    bias = torch.randn(out_features, generator=generator, dtype=torch.float64)
    return weight / math.sqrt(in_features), bias


def fc(options, inputs) -> torch.Tensor:
    """The fixed linear head of :func:`fc_weights`."""
    X = _np(inputs["X"])
    weight, bias = fc_weights(options["out_features"], X.shape[-1])
    return torch.from_numpy(X @ weight.numpy().T + bias.numpy())


# ---------------------------------------------------------------- reference gradients
# ∂⟨G, f(x)⟩/∂x in float64, written apart from the layers they check.

_DERIVATIVES = {
    "log": lambda w, p: 1.0 / w,
    "sqrt": lambda w, p: 0.5 / np.sqrt(w),
    "invsqrt": lambda w, p: -0.5 * w**-1.5,
    "pow": lambda w, p: p * w ** (p - 1),
    "identity": lambda w, p: np.ones_like(w),
}


def _np_daleckii_krein(
    M: np.ndarray, G: np.ndarray, func: str, p: float | None, symmetrise: bool = True
) -> np.ndarray:
    """U (L ∘ Uᵀ sym(G) U) Uᵀ with divided differences; f′ at the midpoint for gaps below
    1e-5 relative (error ~ gap² f‴/24, below 1e-10; rounding of the plain quotient would be
    ~1e-16/gap). Without ``symmetrise``, U (L ∘ Uᵀ G U) Uᵀ: the gradient of ⟨G, f(M)⟩
    with M taken as given (for symmetric M, the Fréchet derivative U (L ∘ Uᵀ E U) Uᵀ holds
    for every direction E, symmetric or not, and is its own adjoint)."""
    w, U = np.linalg.eigh(0.5 * (M + np.swapaxes(M, -1, -2)))
    with np.errstate(all="ignore"):
        f = _np_spectral_values(w, func, p)
        wi, wj = w[..., :, None], w[..., None, :]
        close = np.abs(wi - wj) <= 1e-5 * np.maximum(np.abs(wi), np.abs(wj))
        divided = (f[..., :, None] - f[..., None, :]) / np.where(close, 1.0, wi - wj)
        L = np.where(close, _DERIVATIVES[func](0.5 * (wi + wj), p), divided)
    Gs = 0.5 * (G + np.swapaxes(G, -1, -2)) if symmetrise else G
    Ut = np.swapaxes(U, -1, -2)
    return U @ (L * (Ut @ Gs @ U)) @ Ut


def _np_spectral_values(w: np.ndarray, func: str, p: float | None) -> np.ndarray:
    """f(w) elementwise for the layer's funcs (p: the exponent of pow)."""
    if func == "log":
        return np.log(w)
    if func == "sqrt":
        return np.sqrt(w)
    if func == "invsqrt":
        return 1.0 / np.sqrt(w)
    if func == "pow":
        assert p is not None, "func 'pow' needs p"
        return np.power(w, p)
    if func == "identity":
        return w
    raise ValueError(f"unknown func '{func}'")


def matrix_function_grad(options, inputs, upstream, symmetrise=True) -> dict[str, torch.Tensor]:
    """∂⟨G, f(sym(A))⟩/∂A by Daleckii–Krein in NumPy; without ``symmetrise``, ∂⟨G, f(A)⟩/∂A
    with A taken as given (grad_error's convention as_given)."""
    A = _np(inputs["A"])
    grad = _np_daleckii_krein(A, upstream.numpy(), options["func"], options.get("p"), symmetrise)
    return {"A": torch.from_numpy(grad)}


def o2p_grad(options, inputs, upstream, symmetrise=True) -> dict[str, torch.Tensor]:
    """∂⟨g, o2p(X)⟩/∂X through the covariance, by Daleckii–Krein in NumPy (the covariance
    is symmetric by construction: both conventions give this gradient)."""
    X = _np(inputs["X"])
    Xc = X - X.mean(-2, keepdims=True) if options["center"] else X
    n, c = X.shape[-2], X.shape[-1]
    C = np.swapaxes(Xc, -1, -2) @ Xc / n + options["eps"] * np.eye(c)
    # y = triu(F)·(1 on the diagonal, √2 off it) for symmetric F: ⟨g, dy⟩ = ⟨G_F, dF⟩ with
    # G_F symmetric, g on the diagonal and g/√2 on both off-diagonal positions.
    rows, cols = np.triu_indices(c)
    G_F = np.zeros(X.shape[:-2] + (c, c))
    g = upstream.numpy()
    G_F[..., rows, cols] = np.where(rows == cols, g, g / np.sqrt(2.0))
    G_F[..., cols, rows] = G_F[..., rows, cols]
    G_C = _np_daleckii_krein(C, G_F, options["func"], options.get("p"))
    # C = Xcᵀ Xc / n: ∂/∂X = (2/n) Xc G_C (centring is absorbed: Xc's columns sum to 0).
    return {"X": torch.from_numpy(2.0 / n * Xc @ G_C)}


def _np_sym(A: np.ndarray) -> np.ndarray:
    return 0.5 * (A + np.swapaxes(A, -1, -2))


def ncut_grad(options, inputs, upstream, symmetrise=True) -> dict[str, torch.Tensor]:
    """∂⟨G, P⟩/∂X for the normalized-cuts projector, analytically in NumPy, in four steps
    back from P = UₖUₖᵀ (the top-k eigenvectors of M = D^-1/2 W D^-1/2, D = diag(W1)):

    1. P depends on span(Uₖ) only, so only kept × discarded eigenpairs enter:
       ∂/∂M = V (F ∘ Vᵀ sym(G) V) Vᵀ with Fₐᵦ = 1/(λₐ − λᵦ) for a kept and b discarded
       (and symmetrically), 0 for two kept or two discarded.
    2. Mₐᵦ = Wₐᵦ sₐ sᵦ with s = d^-1/2, d = W1: ∂/∂W = G_M ∘ ssᵀ + q1ᵀ with
       q = −½ d^-3/2 ∘ (H + Hᵀ)s, H = G_M ∘ W.
    3. Gaussian W = exp(−‖xₐ − xᵦ‖²/2σ²): with S = E + Eᵀ, E = G_W ∘ W,
       ∂/∂X = −(diag(S1) X − S X)/σ². Cosine W = (1 + ÛÛᵀ)/2, Û the rows of X made
       unit: ∂/∂Û = sym(G_W) Û, then through the normalisation (I − ûûᵀ)/‖x‖.

    Exact up to rounding (no step size), and independent of the torch layer, whose
    backward goes through Proposition 2 restricted to the same pairs; the tests hold it
    to central differences and to torch's autograd in float64."""
    X = _np(inputs["X"])
    k, sigma = options["k"], options["sigma"]
    if options["affinity"] == "gaussian":
        diff = X[..., :, None, :] - X[..., None, :, :]
        W = np.exp(-(diff**2).sum(-1) / (2 * sigma**2))
    else:
        norms = np.linalg.norm(X, axis=-1, keepdims=True)
        unit = X / norms
        W = 0.5 * (1 + unit @ np.swapaxes(unit, -1, -2))
    d = W.sum(-1)
    s = d**-0.5
    M = _np_sym(W * s[..., :, None] * s[..., None, :])
    lam, V = np.linalg.eigh(M)
    n = lam.shape[-1]
    kept = np.arange(n) >= n - k
    across = kept[:, None] ^ kept[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        F = np.where(across, 1.0 / (lam[..., :, None] - lam[..., None, :]), 0.0)
    F = np.where(kept[:, None], F, -F)  # 1/(λ_kept − λ_discarded) on both sides
    Vt = np.swapaxes(V, -1, -2)
    G_M = V @ (F * (Vt @ _np_sym(upstream.numpy()) @ V)) @ Vt
    H = G_M * W
    q = -0.5 * d**-1.5 * ((H + np.swapaxes(H, -1, -2)) @ s[..., None])[..., 0]
    G_W = G_M * s[..., :, None] * s[..., None, :] + q[..., :, None]
    if options["affinity"] == "gaussian":
        E = G_W * W
        S = E + np.swapaxes(E, -1, -2)
        grad = -(S.sum(-1)[..., None] * X - S @ X) / sigma**2
    else:
        G_U = _np_sym(G_W) @ unit
        radial = (G_U * unit).sum(-1, keepdims=True)
        grad = (G_U - unit * radial) / norms
    return {"X": torch.from_numpy(grad)}


def bilinear_grad(options, inputs, upstream, symmetrise=True) -> dict[str, torch.Tensor]:
    """∂⟨g, y⟩/∂X for bilinear pooling y = s/‖s‖, s = sign(M)·sqrt(|M| + eps),
    M = XᵀX/N, analytically in NumPy: ∂/∂s = (g − y(y·g))/‖s‖, ∂/∂M = that over
    2 sqrt(|M| + eps), ∂/∂X = X (G_M + G_Mᵀ)/N. Any size (no finite-difference limit)."""
    X = _np(inputs["X"])
    n, c = X.shape[-2], X.shape[-1]
    M = (np.swapaxes(X, -1, -2) @ X / n).reshape(X.shape[0], -1)
    root = np.sqrt(np.abs(M) + options["eps"])
    signed = np.sign(M) * root
    norm = np.linalg.norm(signed, axis=-1, keepdims=True)
    y = signed / norm
    g = upstream.numpy().reshape(y.shape)
    g_s = (g - y * (y * g).sum(-1, keepdims=True)) / norm
    G_M = (g_s / (2 * root)).reshape(X.shape[:-2] + (c, c))
    return {"X": torch.from_numpy(X @ (G_M + np.swapaxes(G_M, -1, -2)) / n)}


def fd_reference_grad(reference, options, inputs, upstream, max_elements: int = 8192):
    """Central differences of a float64 reference forward, h = 1e-6 · rms(x).

    Perturbs one position of every batch item at once (the layers treat batch items
    independently), so the cost is 2·(elements per item) reference calls.
    Truncation O(h²) plus rounding O(1e-16/h): about 1e-10 relative.
    """
    grads = {}
    for name, x in inputs.items():
        if not x.is_floating_point():
            continue
        x = x.detach().to("cpu", torch.float64)
        per_item = x[0].numel()
        if per_item > max_elements:
            raise ValueError(
                f"{name}: {per_item} elements per item is too many for a "
                f"finite-difference reference (limit {max_elements})"
            )
        h = 1e-6 * float(x.pow(2).mean().sqrt().clamp_min(1e-3))
        grad = torch.zeros_like(x)
        flat_grad, base = grad.view(x.shape[0], -1), x.reshape(x.shape[0], -1)
        for k in range(per_item):
            plus, minus = base.clone(), base.clone()
            plus[:, k] += h
            minus[:, k] -= h
            values = [
                (reference(options, {**inputs, name: moved.view(x.shape)}) * upstream)
                .flatten(1)
                .sum(1)
                for moved in (plus, minus)
            ]
            flat_grad[:, k] = (values[0] - values[1]) / (2 * h)
        grads[name] = grad
    return grads


def gap_ratio(inputs) -> torch.Tensor:
    """x = λ₁/λ₂ of the ratio family."""
    eigvals = inputs["eigvals"].detach().to("cpu", torch.float64)
    return eigvals[..., 0] / eigvals[..., 1]


def avg_pool(options, inputs) -> torch.Tensor:
    """The mean feature."""
    return torch.from_numpy(_np(inputs["X"]).mean(-2))


def max_pool(options, inputs) -> torch.Tensor:
    """The channel-wise max."""
    return torch.from_numpy(_np(inputs["X"]).max(-2))


def gap_series(options, inputs) -> torch.Tensor:
    """1/(1 − x) in float64."""
    return 1.0 / (1.0 - gap_ratio(inputs))
