"""Name -> layer / method / input family / metric lookup.

Used by the suite schema (to validate names and options), the runner (to
build what a case runs) and ``matbench list``. Layers never import this
module: the catalogue below reads their method tables, so a method added to
``bench_cli.layers`` is registered by that alone.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    create_model,
    model_validator,
)

from bench_cli import inputs as _inputs
from bench_cli import metrics as _metrics
from bench_cli.errors import UserError, unknown_name
from bench_cli.layers import matfun, ncut, pooling, spectral

Forward = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class Method:
    name: str
    impl: Callable[..., Any]
    summary: str


@dataclass(frozen=True)
class Layer:
    name: str
    options: type[BaseModel]  # options every method of this layer shares
    methods: Mapping[str, Method]
    input_kinds: tuple[str, ...]
    build: Callable[[str, Mapping[str, Any]], Forward]  # (method, options) -> forward
    reference: Callable[[Mapping[str, Any], Mapping[str, torch.Tensor]], torch.Tensor]
    summary: str
    # (options, float64 inputs, float64 upstream) -> float64 input gradients; None: use
    # central differences of ``reference``.
    reference_grad: Callable[..., dict[str, torch.Tensor]] | None = None
    differentiable: bool = True

    @property
    def default_method(self) -> str | None:
        """The method a suite may leave out: the only one, where there is one."""
        return next(iter(self.methods)) if len(self.methods) == 1 else None


# ---------------------------------------------------------------- references
# Float64 NumPy re-implementations of each layer's forward: independent of the
# torch code under test, so a shared mistake cannot cancel out.


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()


def _np_spectral(M: np.ndarray, func: str, p: float | None) -> np.ndarray:
    eigvals, eigvecs = np.linalg.eigh(0.5 * (M + np.swapaxes(M, -1, -2)))
    with np.errstate(all="ignore"):
        f = {
            "log": np.log,
            "sqrt": np.sqrt,
            "invsqrt": lambda w: 1.0 / np.sqrt(w),
            "pow": lambda w: np.power(w, p),
            "identity": lambda w: w,
        }[func](eigvals)
    return (eigvecs * f[..., None, :]) @ np.swapaxes(eigvecs, -1, -2)


def _np_covariance(X: np.ndarray, center: bool) -> np.ndarray:
    if center:
        X = X - X.mean(-2, keepdims=True)
    return np.swapaxes(X, -1, -2) @ X / X.shape[-2]


def _ref_matrix_function(options, inputs) -> torch.Tensor:
    return torch.from_numpy(_np_spectral(_np(inputs["A"]), options["func"], options.get("p")))


def _ref_o2p(options, inputs) -> torch.Tensor:
    C = _np_covariance(_np(inputs["X"]), options["center"])
    pooled = _np_spectral(C + options["eps"] * np.eye(C.shape[-1]), options["func"], options["p"])
    rows, cols = np.triu_indices(C.shape[-1])
    scale = np.where(rows == cols, 1.0, np.sqrt(2.0))
    return torch.from_numpy(pooled[..., rows, cols] * scale)


def _ref_ncut(options, inputs) -> torch.Tensor:
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


def _ref_bilinear(options, inputs) -> torch.Tensor:
    X = _np(inputs["X"])
    M = (np.swapaxes(X, -1, -2) @ X / X.shape[-2]).reshape(X.shape[0], -1)
    signed = np.sign(M) * np.sqrt(np.abs(M) + options["eps"])
    return torch.from_numpy(signed / np.linalg.norm(signed, axis=-1, keepdims=True))


def _fc_weights(out_features: int, in_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed float64 weights: the head is a fixed cost here, not what is measured."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(out_features, in_features, generator=generator, dtype=torch.float64)
    bias = torch.randn(out_features, generator=generator, dtype=torch.float64)
    return weight / math.sqrt(in_features), bias


def _ref_fc(options, inputs) -> torch.Tensor:
    X = _np(inputs["X"])
    weight, bias = _fc_weights(options["out_features"], X.shape[-1])
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


def _np_daleckii_krein(M: np.ndarray, G: np.ndarray, func: str, p: float | None) -> np.ndarray:
    """U (L ∘ Uᵀ sym(G) U) Uᵀ with divided differences; f′ at the midpoint for gaps below
    1e-5 relative (error ~ gap² f‴/24, below 1e-10; rounding of the plain quotient would be
    ~1e-16/gap)."""
    w, U = np.linalg.eigh(0.5 * (M + np.swapaxes(M, -1, -2)))
    with np.errstate(all="ignore"):
        f = _np_spectral_values(w, func, p)
        wi, wj = w[..., :, None], w[..., None, :]
        close = np.abs(wi - wj) <= 1e-5 * np.maximum(np.abs(wi), np.abs(wj))
        divided = (f[..., :, None] - f[..., None, :]) / np.where(close, 1.0, wi - wj)
        L = np.where(close, _DERIVATIVES[func](0.5 * (wi + wj), p), divided)
    Gs = 0.5 * (G + np.swapaxes(G, -1, -2))
    Ut = np.swapaxes(U, -1, -2)
    return U @ (L * (Ut @ Gs @ U)) @ Ut


def _np_spectral_values(w: np.ndarray, func: str, p: float | None) -> np.ndarray:
    return {
        "log": np.log,
        "sqrt": np.sqrt,
        "invsqrt": lambda w: 1.0 / np.sqrt(w),
        "pow": lambda w: np.power(w, p),
        "identity": lambda w: w,
    }[func](w)


def _ref_grad_matrix_function(options, inputs, upstream) -> dict[str, torch.Tensor]:
    A = _np(inputs["A"])
    grad = _np_daleckii_krein(A, upstream.numpy(), options["func"], options.get("p"))
    return {"A": torch.from_numpy(grad)}


def _ref_grad_o2p(options, inputs, upstream) -> dict[str, torch.Tensor]:
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


# ---------------------------------------------------------------- layer options


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Func = Literal["log", "sqrt", "invsqrt", "pow", "identity"]


class _FuncOptions(_Options):
    """func and its exponent p; subclasses declare func first, so it lists first."""

    @model_validator(mode="after")
    def _p_goes_with_pow(self):
        if self.func == "pow" and self.p is None:
            raise ValueError("func 'pow' needs the exponent p")
        if self.func != "pow" and self.p is not None:
            raise ValueError(f"option p applies to func 'pow' only, not '{self.func}'")
        return self


class MatrixFunctionOptions(_FuncOptions):
    func: Func
    p: float | None = None


class O2POptions(_FuncOptions):
    func: Func = "log"
    p: float | None = None
    center: bool = True
    eps: PositiveFloat = Field(1e-3, description="the regularizer εI added to the covariance")
    hidden: int = Field(
        0,
        ge=0,
        description="task benchmarks only: a hidden FC layer of this "
        "width before the classifier (DeepO2P-FC); the layer ignores it",
    )


class NcutOptions(_Options):
    k: PositiveInt
    affinity: Literal["gaussian", "cosine"] = "gaussian"
    sigma: PositiveFloat = 1.0
    mode: Literal["nc", "untrained", "raw", "kmeans"] = Field(
        "nc", description="task benchmarks only: what the segmentation task compares"
    )


# ---------------------------------------------------------------- builders


def _split(options: Mapping[str, Any], shared: type[BaseModel]) -> tuple[dict, dict]:
    own = {k: v for k, v in options.items() if k in shared.model_fields}
    rest = {k: v for k, v in options.items() if k not in shared.model_fields}
    return own, rest


def _build_matrix_function(method: str, options: Mapping[str, Any]) -> Forward:
    own, rest = _split(options, MatrixFunctionOptions)
    return lambda inputs: matfun.matrix_function(
        inputs["A"], own["func"], method, p=own.get("p"), check_finite=False, **rest
    )


def _build_o2p(method: str, options: Mapping[str, Any]) -> Forward:
    own, rest = _split(options, O2POptions)
    own.pop("hidden", None)
    return lambda inputs: pooling.o2p(inputs["X"], method=method, **own, **rest)


def _build_ncut(method: str, options: Mapping[str, Any]) -> Forward:
    own, rest = _split(options, NcutOptions)
    own.pop("mode", None)
    return lambda inputs: ncut.normalized_cuts(
        inputs["X"],
        own["k"],
        affinity_kind=own["affinity"],
        sigma=own["sigma"],
        method=method,
        **rest,
    )


def _build_direct(fn: Callable[..., torch.Tensor]):
    def build(method: str, options: Mapping[str, Any]) -> Forward:
        return lambda inputs: fn(inputs["X"], **options)

    return build


def _fc(X: torch.Tensor, *, out_features: PositiveInt = 16) -> torch.Tensor:
    """A fixed linear head over the last dimension."""
    weight, bias = _fc_weights(out_features, X.shape[-1])
    return torch.nn.functional.linear(X, weight.to(X), bias.to(X))


def _methods(table: Mapping[str, Callable[..., Any]]) -> dict[str, Method]:
    return {name: Method(name, fn, _doc_summary(fn)) for name, fn in table.items()}


def _doc_summary(fn: Callable) -> str:
    return (inspect.getdoc(fn) or "").split("\n")[0]


def _direct_layer(name, fn, reference, summary) -> Layer:
    return Layer(
        name,
        _Options,
        _methods({"direct": fn}),
        ("features", "mosaic"),
        _build_direct(fn),
        reference,
        summary,
    )


def _gap_term(gap: str):
    def approximate(eigvals: torch.Tensor, *, degree: int = 100) -> torch.Tensor:
        """The implemented K̃ entry for the pair (x, 1): an approximation of 1/(1 − x)."""
        return spectral.gap_matrix(eigvals.detach(), gap, degree=degree)[..., 0, 1]

    approximate.__doc__ = {
        "exact": "1/(λ₁ − λ₂) as Proposition 2 forms it",
        "taylor": "the degree-n geometric series of λ₂/λ₁ (Song et al., ICCV 2021)",
        "pade": "the [n/n] Padé approximant of that series (Song et al., ICCV 2021)",
    }[gap]
    return approximate


def _build_gap_series(method: str, options: Mapping[str, Any]) -> Forward:
    fn = GAP_SERIES[method]
    return lambda inputs: fn(inputs["eigvals"], **options)


GAP_SERIES = {name: _gap_term(name) for name in ("exact", "taylor", "pade")}


LAYERS: dict[str, Layer] = {
    "matrix_function": Layer(
        "matrix_function",
        MatrixFunctionOptions,
        _methods(matfun.METHODS),
        ("spd", "covariance"),
        _build_matrix_function,
        _ref_matrix_function,
        "f(A) for symmetric A: log, sqrt, invsqrt, pow, identity",
        reference_grad=_ref_grad_matrix_function,
    ),
    "o2p": Layer(
        "o2p",
        O2POptions,
        _methods(matfun.METHODS),
        ("features", "mosaic"),
        _build_o2p,
        _ref_o2p,
        "second-order pooling: f(covariance + εI) of features, upper triangle",
        reference_grad=_ref_grad_o2p,
    ),
    "ncut": Layer(
        "ncut",
        NcutOptions,
        _methods(ncut.METHODS),
        ("features", "segmentation"),
        _build_ncut,
        _ref_ncut,
        "normalized cuts: projector onto the top-k eigenvectors of D^-1/2 W D^-1/2",
    ),
    "avg_pool": _direct_layer(
        "avg_pool",
        pooling.avg_pool,
        lambda o, i: torch.from_numpy(_np(i["X"]).mean(-2)),
        "first-order baseline: mean feature",
    ),
    "max_pool": _direct_layer(
        "max_pool",
        pooling.max_pool,
        lambda o, i: torch.from_numpy(_np(i["X"]).max(-2)),
        "first-order baseline: channel-wise max",
    ),
    "bilinear": _direct_layer(
        "bilinear",
        pooling.bilinear,
        _ref_bilinear,
        "unstructured second-order baseline: outer product, signed sqrt, L2",
    ),
    "fc": _direct_layer("fc", _fc, _ref_fc, "fully connected head (fixed weights)"),
    "gap_series": Layer(
        "gap_series",
        _Options,
        _methods(GAP_SERIES),
        ("ratio",),
        _build_gap_series,
        lambda options, inputs: 1.0 / (1.0 - _np_gap_ratio(inputs)),
        "the gap term 1/(1 − x) as a backward forms it: exact, Taylor or Padé",
        differentiable=False,
    ),
}


def _np_gap_ratio(inputs) -> torch.Tensor:
    eigvals = inputs["eigvals"].detach().to("cpu", torch.float64)
    return eigvals[..., 0] / eigvals[..., 1]


def register_method(layer_name: str, name: str, fn: Callable[..., Any]) -> None:
    """Add a method to a layer, e.g. from a plugin module (see ``load_plugins``).

    For ``matrix_function`` and ``o2p`` the function has the signature
    ``fn(A, func, p=None, *, options...)`` and is added to both.
    """
    targets = (
        ("matrix_function", "o2p") if layer_name in ("matrix_function", "o2p") else (layer_name,)
    )
    if layer_name in ("matrix_function", "o2p"):
        matfun.METHODS[name] = fn
    for target in targets:
        layer = LAYERS[target]
        methods = dict(layer.methods, **{name: Method(name, fn, _doc_summary(fn))})
        LAYERS[target] = dataclasses.replace(layer, methods=methods)
    options_model.cache_clear()


def load_plugins() -> None:
    """Import the modules named in MATBENCH_PLUGINS (comma-separated); they register
    methods with ``register_method``. Runs in every process, isolated workers too."""
    for module in filter(
        None, (m.strip() for m in os.environ.get("MATBENCH_PLUGINS", "").split(","))
    ):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UserError(f"MATBENCH_PLUGINS: cannot import '{module}': {exc}") from exc


def option_problem(layer_name: str, method_name: str, options: Mapping[str, Any]) -> str | None:
    """A combination the option models cannot see, e.g. a method that computes sqrt only."""
    if layer_name in ("matrix_function", "o2p") and "func" in options:
        funcs = matfun.supported_funcs(method_name)
        if options["func"] not in funcs:
            return (
                f"method '{method_name}' computes func {', '.join(funcs)} only, not "
                f"'{options['func']}'"
            )
    return None


def k_tilde_spec(layer_name: str, method: str, options: Mapping[str, Any]):
    """How a method forms K̃ = 1/(λᵢ − λⱼ): (gap, gap_eps, degree, on σ²), or None if it has none."""
    if layer_name == "ncut":
        return ("exact", 0.0, 0, False) if method in ("eig", "autograd") else None
    if layer_name not in ("matrix_function", "o2p"):
        return None
    if method in ("autograd", "topk", "svd_topn"):
        return ("exact", 0.0, 0, False)
    if method in ("eig", "svd"):
        return (options["gap"], options["gap_eps"], options["degree"], method == "svd")
    if method == "svd_taylor":
        return ("taylor", 0.0, options["degree"], False)
    if method == "svd_pade":
        return ("pade", 0.0, options["degree"], False)
    if method == "svd_pi":
        return ("taylor", 0.0, options["iters"] - 1, False)
    if method == "svd_trunc":
        return ("clip", 1.0 / options["bound"], 0, False)
    return None  # eig_dk, newton_schulz, mtp_lya, mpa_lya, lowrank: no K̃


def decomposed_matrix(
    layer_name: str, options: Mapping[str, Any], inputs: Mapping[str, torch.Tensor]
) -> torch.Tensor | None:
    """The symmetric matrix whose eigendecomposition the layer differentiates."""
    if layer_name == "matrix_function":
        A = inputs["A"].detach()
        return 0.5 * (A + A.mT)
    if layer_name == "o2p":
        Y = pooling.weighted_samples(inputs["X"].detach(), None, options["center"])
        return Y.mT @ Y + options["eps"] * torch.eye(Y.shape[-1], dtype=Y.dtype, device=Y.device)
    if layer_name == "ncut":
        X = inputs["X"].detach()
        return ncut.normalized_affinity(ncut.affinity(X, options["affinity"], options["sigma"]))
    return None


# ---------------------------------------------------------------- FLOP models
# Matrix-function methods declare their own counts (matfun.method_flops); the layers add
# their own work around them. GFLOP/s from these are nominal rates.


def flop_model(
    layer_name: str, method: str, options: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, float]:
    """Nominal FLOPs of one call, forward and backward, for the whole batch."""
    batch = inputs.get("batch", 1)
    if layer_name == "matrix_function":
        forward, backward = matfun.method_flops(
            method, inputs.get("dim") or inputs["channels"], options
        )
    elif layer_name == "o2p":
        n, c = inputs["samples"], inputs["channels"]
        covariance = 2.0 * n * c * c
        forward, backward = matfun.method_flops(method, c, options)
        forward = forward + covariance
        backward = None if backward is None else backward + covariance
    elif layer_name == "ncut":
        n, c, k = inputs["samples"], inputs["channels"], options["k"]
        forward = 2.0 * n * n * c + 9.0 * n**3 + 2.0 * n * n * k
        backward = 4 * 2.0 * n**3 + 2.0 * n * n * c
    else:
        n, c = inputs["samples"], inputs["channels"]
        forward = {
            "bilinear": 2.0 * n * c * c,
            "fc": 2.0 * n * c * options.get("out_features", 0),
        }.get(layer_name, float(n * c))
        backward = 2 * forward
    # A part with no model (None, e.g. a backward that iterates to a tolerance) makes the
    # modes that contain it n/a rather than a guess.
    return {
        "fwd": _times(batch, forward),
        "bwd": _times(batch, backward),
        "fwd_bwd": None if forward is None or backward is None else batch * (forward + backward),
    }


def _times(batch: int, flops: float | None) -> float | None:
    return None if flops is None else batch * flops


@functools.cache
def options_model(layer_name: str, method_name: str) -> type[BaseModel]:
    """The layer's shared options plus the method's own keyword-only parameters."""
    layer = LAYERS[layer_name]
    impl = layer.methods[method_name].impl
    hints = typing.get_type_hints(impl)
    fields: dict[str, Any] = {}
    for param in inspect.signature(impl).parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            fields[param.name] = (hints.get(param.name, Any), param.default)
    return create_model(f"{layer_name}.{method_name}", __base__=layer.options, **fields)


# ---------------------------------------------------------------- lookups


def unknown(kind: str, name: str, choices=None) -> str:
    if choices is None:
        choices = {"input kind": _inputs.FAMILIES, "layer": LAYERS, "metric": _metrics.METRICS}[
            kind
        ]
    return unknown_name(kind, name, choices)


def layers() -> Mapping[str, Layer]:
    return LAYERS


def layer(name: str) -> Layer:
    if name not in LAYERS:
        raise UserError(unknown("layer", name))
    return LAYERS[name]


def input_families() -> Mapping[str, _inputs.InputFamily]:
    return _inputs.FAMILIES


def input_family(name: str) -> _inputs.InputFamily:
    if name not in _inputs.FAMILIES:
        raise UserError(unknown("input kind", name))
    return _inputs.FAMILIES[name]


def metrics() -> Mapping[str, _metrics.Metric]:
    return _metrics.METRICS


def metric(name: str) -> _metrics.Metric:
    if name not in _metrics.METRICS:
        raise UserError(unknown("metric", name))
    return _metrics.METRICS[name]


load_plugins()
