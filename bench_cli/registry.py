"""Name -> layer / method / input family lookup.

Used by the suite schema (to validate names and options), the runner (to
build what a case runs) and ``matbench list``. Layers never import this
module: each layer's ``METHODS`` table holds the :class:`Method` entries
declared beside their functions (:mod:`bench_cli.layers.declare`), and a
:class:`Layer` here holds that very table, so a method declared in
``bench_cli.layers`` or registered by a plugin is seen everywhere at once.

Float64 references live in :mod:`bench_cli.references`, metric lookups in
:mod:`bench_cli.metrics`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import (
    BaseModel,
    PositiveInt,
    create_model,
)

from bench_cli import inputs as _inputs
from bench_cli import references as ref
from bench_cli.errors import UserError, unknown_name
from bench_cli.layer_options import (
    DirectOptions,
    MatrixFunctionOptions,
    NcutOptions,
    O2POptions,
    _Options,
)
from bench_cli.layers import matfun, ncut, pooling, spectral
from bench_cli.layers.declare import FUNCS, MATMUL, Gap, KTilde, Method, entry
from bench_cli.plugins import load_plugins, note_registrant, signature_problem

Forward = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
# (method entry, resolved options, resolved input parameters) -> per-item (forward,
# backward) nominal FLOPs, either None where the method has no model.
LayerFlops = Callable[[Method, Mapping[str, Any], Mapping[str, Any]], tuple[Any, Any]]


@dataclass(frozen=True)
class Layer:
    """A layer: shared options, its method table, input kinds, builder, references, FLOPs."""

    name: str
    options: type[BaseModel]  # options every method of this layer shares
    methods: MutableMapping[str, Method]  # the layer's own table: declarations and plugins
    input_kinds: tuple[str, ...]
    build: Callable[[str, Mapping[str, Any]], Forward]  # (method, options) -> forward
    reference: Callable[[Mapping[str, Any], Mapping[str, torch.Tensor]], torch.Tensor]
    summary: str
    flops: LayerFlops
    # (options, float64 inputs, float64 upstream) -> float64 input gradients; None: use
    # central differences of ``reference``.
    reference_grad: Callable[..., dict[str, torch.Tensor]] | None = None
    differentiable: bool = True
    # (options, inputs) -> the symmetric matrix whose eigendecomposition the backward
    # differentiates (for the stability metric's K̃ bound); None: there is none.
    decomposed: Callable[[Mapping[str, Any], Mapping[str, torch.Tensor]], torch.Tensor] | None = (
        None
    )

    @property
    def default_method(self) -> str | None:
        """The method a suite may leave out: the only one, where there is one."""
        return next(iter(self.methods)) if len(self.methods) == 1 else None


# ---------------------------------------------------------------- layer options


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
    for task_only in ("mode", "loss", "route"):
        own.pop(task_only, None)
    return lambda inputs: ncut.normalized_cuts(
        inputs["X"],
        own["k"],
        affinity_kind=own["affinity"],
        sigma=own["sigma"],
        method=method,
        **rest,
    )


def _fc(X: torch.Tensor, *, out_features: PositiveInt = 16) -> torch.Tensor:
    """A fixed linear head over the last dimension."""
    weight, bias = ref.fc_weights(out_features, X.shape[-1])
    return torch.nn.functional.linear(X, weight.to(X), bias.to(X))


def _direct_layer(name, fn, reference, summary, flops, reference_grad=None) -> Layer:
    """A layer with one method, ``direct``; ``flops(n, c, options)`` per item, forward."""
    table = {"direct": entry("direct", fn, exact=True, flops=None, k_tilde=None)}

    def layer_flops(method, options, params):
        forward = flops(params["samples"], params["channels"], options)
        return forward, 2 * forward

    def build(method: str, options: Mapping[str, Any]) -> Forward:
        own = {k: v for k, v in options.items() if k not in DirectOptions.model_fields}
        return lambda inputs: fn(inputs["X"], **own)

    return Layer(name, DirectOptions, table, ("features", "mosaic"), build, reference, summary,
                 layer_flops, reference_grad=reference_grad)  # fmt: skip


def _gap_term(gap: Gap):
    def approximate(eigvals: torch.Tensor, *, degree: int = 100) -> torch.Tensor:
        """The implemented K̃ entry for the pair (x, 1): an approximation of 1/(1 − x)."""
        return spectral.gap_matrix(eigvals.detach(), gap, degree=degree)[..., 0, 1]

    approximate.__doc__ = {
        "exact": "1/(λ₁ − λ₂) as Proposition 2 forms it",
        "taylor": "the degree-n geometric series of λ₂/λ₁ (Song et al., ICCV 2021)",
        "pade": "the [n/n] Padé approximant of that series (Song et al., ICCV 2021)",
    }[gap]
    return approximate


GAP_TERMS: tuple[Gap, ...] = ("exact", "taylor", "pade")


def _series_k(name: Gap) -> Callable[[Mapping[str, Any]], KTilde]:
    return lambda options: KTilde(name, 0.0, options["degree"])


GAP_SERIES: dict[str, Method] = {
    name: entry(
        name,
        _gap_term(name),
        exact=name == "exact",
        flops=None,
        k_tilde=_series_k(name),
    )
    for name in GAP_TERMS
}


def _build_gap_series(method: str, options: Mapping[str, Any]) -> Forward:
    fn = GAP_SERIES[method]
    return lambda inputs: fn(inputs["eigvals"], **options)


# ---------------------------------------------------------------- per-layer facts


def _matrix_size(params: Mapping[str, Any]) -> int:
    return params.get("dim") or params["channels"]


def _matrix_function_flops(method, options, params):
    return method.flops_for(_matrix_size(params), options)


def _plus(parts: tuple[float | None, ...], extra: float) -> tuple[float | None, ...]:
    """Each modelled part plus the layer's own work; a part without a model stays None."""
    return tuple(None if part is None else part + extra for part in parts)


def _o2p_flops(method, options, params):
    """The method's own count on the C x C covariance, plus forming it (2NC²) both ways."""
    n, c = params["samples"], params["channels"]
    return _plus(method.flops_for(c, options), MATMUL * n * c * c)


def _ncut_flops(method, options, params):
    """The method's count on the N x N matrix, plus the affinity (2N²C) both ways."""
    n, c = params["samples"], params["channels"]
    return _plus(method.flops_for(n, options), MATMUL * n * n * c)


def _symmetric_input(options, inputs):
    A = inputs["A"].detach()
    return 0.5 * (A + A.mT)


def _o2p_covariance(options, inputs):
    Y = pooling.weighted_samples(inputs["X"].detach(), None, options["center"])
    return Y.mT @ Y + options["eps"] * torch.eye(Y.shape[-1], dtype=Y.dtype, device=Y.device)


def _ncut_matrix(options, inputs):
    X = inputs["X"].detach()
    return ncut.normalized_affinity(ncut.affinity(X, options["affinity"], options["sigma"]))


LAYERS: dict[str, Layer] = {
    "matrix_function": Layer(
        "matrix_function",
        MatrixFunctionOptions,
        matfun.METHODS,
        ("spd", "covariance"),
        _build_matrix_function,
        ref.matrix_function,
        "f(A) for symmetric A: log, sqrt, invsqrt, pow, identity",
        _matrix_function_flops,
        reference_grad=ref.matrix_function_grad,
        decomposed=_symmetric_input,
    ),
    "o2p": Layer(
        "o2p",
        O2POptions,
        matfun.METHODS,
        ("features", "mosaic"),
        _build_o2p,
        ref.o2p,
        "second-order pooling: f(covariance + εI) of features, upper triangle",
        _o2p_flops,
        reference_grad=ref.o2p_grad,
        decomposed=_o2p_covariance,
    ),
    "ncut": Layer(
        "ncut",
        NcutOptions,
        ncut.METHODS,
        ("features", "segmentation"),
        _build_ncut,
        ref.ncut,
        "normalized cuts: projector onto the top-k eigenvectors of D^-1/2 W D^-1/2",
        _ncut_flops,
        reference_grad=ref.ncut_grad,
        decomposed=_ncut_matrix,
    ),
    "avg_pool": _direct_layer(
        "avg_pool",
        pooling.avg_pool,
        ref.avg_pool,
        "first-order baseline: mean feature",
        lambda n, c, o: float(n * c),
    ),
    "max_pool": _direct_layer(
        "max_pool",
        pooling.max_pool,
        ref.max_pool,
        "first-order baseline: channel-wise max",
        lambda n, c, o: float(n * c),
    ),
    "bilinear": _direct_layer(
        "bilinear",
        pooling.bilinear,
        ref.bilinear,
        "unstructured second-order baseline: outer product, signed sqrt, L2",
        lambda n, c, o: MATMUL * n * c * c,
        reference_grad=ref.bilinear_grad,
    ),
    "fc": _direct_layer(
        "fc",
        _fc,
        ref.fc,
        "fully connected head (fixed weights)",
        lambda n, c, o: MATMUL * n * c * o.get("out_features", 0),
    ),
    "gap_series": Layer(
        "gap_series",
        _Options,
        GAP_SERIES,
        ("ratio",),
        _build_gap_series,
        ref.gap_series,
        "the gap term 1/(1 − x) as a backward forms it: exact, Taylor or Padé",
        lambda method, options, params: (None, None),
        differentiable=False,
    ),
}
MATRIX_FUNCTION_LAYERS = ("matrix_function", "o2p")  # share matfun.METHODS
DIRECT_LAYERS = ("avg_pool", "max_pool", "bilinear", "fc")  # the layer models their FLOPs


def flops_modelled(layer_name: str, method: str) -> bool:
    """Whether a FLOP model covers this method (its declaration's, or a direct layer's)."""
    return layer_name in DIRECT_LAYERS or LAYERS[layer_name].methods[method].flops is not None


def register_method(
    layer_name: str,
    name: str,
    fn: Callable[..., Any] | None = None,
    *,
    exact: bool = False,
    flops=None,
    k_tilde=None,
    funcs: tuple[str, ...] = FUNCS,
    tuning=None,
    rank_option: str | None = None,
    summary: str | None = None,
    symmetrises: bool = True,
):
    """Add a method to a layer, from a plugin or a test; usable as a decorator (no ``fn``).

    The facts are those of :func:`bench_cli.layers.declare.entry`. Left out, a method
    is an approximation with no FLOP model (GFLOP/s n/a) and no K̃ (max_k_tilde n/a).
    For ``matrix_function`` and ``o2p`` the function's signature is
    ``fn(A, func, p=None, *, option=default, ...)`` (A: (..., d, d); its keyword-only
    parameters become suite options), and it is added to both layers; ``ncut`` calls
    ``fn(M, k, *, ...)``. A signature the layer cannot call is refused here, in one line
    (:func:`bench_cli.plugins.signature_problem`), not when the first case runs.
    ``symmetrises=False`` says the method takes A as given, not (A+Aᵀ)/2: grad_error then
    compares it with the gradient of f(A) (docs/plugins.md).
    """
    facts = dict(
        exact=exact, flops=flops, k_tilde=k_tilde, funcs=funcs, tuning=tuning,
        rank_option=rank_option, summary=summary, symmetrises=symmetrises,
    )  # fmt: skip

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        if layer_name not in LAYERS:
            raise UserError(unknown("layer", layer_name))
        table = LAYERS[layer_name].methods
        if name in table:
            raise UserError(f"method '{name}' of layer '{layer_name}' is already registered")
        problem = signature_problem(layer_name, fn)
        if problem:
            raise UserError(f"register_method('{layer_name}', '{name}'): {problem}")
        table[name] = entry(name, fn, **facts)
        note_registrant(getattr(fn, "__module__", "") or "")
        options_model.cache_clear()
        return fn

    return add if fn is None else add(fn)


def option_problem(layer_name: str, method_name: str, options: Mapping[str, Any]) -> str | None:
    """A combination the option models cannot see, e.g. a method that computes sqrt only,
    or a thresholded gap treatment without its threshold."""
    if options.get("gap") in spectral.NEEDS_EPS and options.get("gap_eps") is None:
        return spectral.missing_gap_eps(options["gap"])
    if layer_name in MATRIX_FUNCTION_LAYERS and "func" in options:
        funcs = LAYERS[layer_name].methods[method_name].funcs
        if options["func"] not in funcs:
            return (
                f"method '{method_name}' computes func {', '.join(funcs)} only, not "
                f"'{options['func']}'"
            )
    return None


def describe(layer_name: str, method: Method) -> dict[str, str]:
    """A method as ``matbench list methods`` shows it: exactness, FLOP model, K̃, its
    options with their defaults, and its summary."""
    model = options_model(layer_name, method.name)
    options = ", ".join(
        name if f.is_required() else f"{name}={f.default}" for name, f in model.model_fields.items()
    )
    return {
        "kind": "exact" if method.exact else "approximate",
        "FLOPs": "modelled" if flops_modelled(layer_name, method.name) else "n/a",
        "K̃": k_tilde_summary(method),
        "options": options,
        "summary": method.summary,
    }


def k_tilde_summary(method: Method) -> str:
    """How a method's backward forms K̃, in a word: its gap treatment, "by options" when
    the options decide, "none" without one (what `matbench list methods` shows)."""
    if method.k_tilde is None:
        return "none"
    return method.k_tilde.gap if isinstance(method.k_tilde, KTilde) else "by options"


def k_tilde(layer_name: str, method: str, options: Mapping[str, Any]) -> KTilde | None:
    """The K̃ the method's backward forms with these options (from its declaration)."""
    return LAYERS[layer_name].methods[method].k_tilde_for(options)


def flop_model(
    layer_name: str, method: str, options: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, float | None]:
    """Nominal FLOPs of one call, forward and backward, for the whole batch; None (n/a)
    for a mode containing a part the method's declaration has no model for."""
    layer = LAYERS[layer_name]
    batch = inputs.get("batch", 1)
    sized = "dim" in inputs or ("samples" in inputs and "channels" in inputs)
    if not sized:  # task data (images): no matrix size to count with
        return {"fwd": None, "bwd": None, "fwd_bwd": None}
    forward, backward = layer.flops(layer.methods[method], options, inputs)
    return {
        "fwd": None if forward is None else batch * forward,
        "bwd": None if backward is None else batch * backward,
        "fwd_bwd": None if forward is None or backward is None else batch * (forward + backward),
    }


@functools.cache
def options_model(layer_name: str, method_name: str) -> type[BaseModel]:
    """The layer's shared options plus the method's own keyword-only parameters."""
    layer = LAYERS[layer_name]
    impl = layer.methods[method_name].fn
    hints = typing.get_type_hints(impl)
    fields: dict[str, Any] = {}
    for param in inspect.signature(impl).parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            default = ... if param.default is param.empty else param.default  # required
            fields[param.name] = (hints.get(param.name, Any), default)
    return create_model(f"{layer_name}.{method_name}", __base__=layer.options, **fields)


# ---------------------------------------------------------------- lookups


def unknown(kind: str, name: str, choices=None) -> str:
    """ "unknown <kind> '<name>'", with a did-you-mean and the known names."""
    if choices is None:
        choices = {"input kind": _inputs.FAMILIES, "layer": LAYERS}[kind]
    return unknown_name(kind, name, choices)


def layers() -> Mapping[str, Layer]:
    """Every layer, by name (plugins loaded)."""
    load_plugins()
    return LAYERS


def layer(name: str) -> Layer:
    """One layer by name, or a UserError naming the known ones."""
    load_plugins()
    if name not in LAYERS:
        raise UserError(unknown("layer", name))
    return LAYERS[name]


def input_families() -> Mapping[str, _inputs.InputFamily]:
    """Every input family, by kind."""
    return _inputs.FAMILIES


def input_family(name: str) -> _inputs.InputFamily:
    """One input family by kind, or a UserError naming the known ones."""
    if name not in _inputs.FAMILIES:
        raise UserError(unknown("input kind", name))
    return _inputs.FAMILIES[name]
