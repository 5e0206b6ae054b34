"""Name -> layer / method / input family / metric lookup.

Used by the suite schema (to validate names and options), the runner (to
build what a case runs) and ``matbench list``. Layers never import this
module: the catalogue below reads their method tables, so a method added to
``bench_cli.layers`` is registered by that alone.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, create_model, model_validator

from bench_cli import inputs as _inputs
from bench_cli import metrics as _metrics
from bench_cli.errors import UserError, unknown_name
from bench_cli.layers import matfun

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


# ---------------------------------------------------------------- matrix_function


class MatrixFunctionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    func: Literal["log", "sqrt", "invsqrt", "pow"]
    p: float | None = None

    @model_validator(mode="after")
    def _p_goes_with_pow(self):
        if self.func == "pow" and self.p is None:
            raise ValueError("func 'pow' needs the exponent p")
        if self.func != "pow" and self.p is not None:
            raise ValueError(f"option p applies to func 'pow' only, not '{self.func}'")
        return self


_SHARED = ("func", "p")


def _build_matrix_function(method: str, options: Mapping[str, Any]) -> Forward:
    func, p = options["func"], options.get("p")
    extra = {k: v for k, v in options.items() if k not in _SHARED}

    def forward(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return matfun.matrix_function(inputs["A"], func, method, p=p, check_finite=False, **extra)

    return forward


def _reference_matrix_function(
    options: Mapping[str, Any], inputs: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """f(A) in float64 through NumPy's LAPACK eigh: independent of torch's code paths."""
    A = inputs["A"].detach().to("cpu", torch.float64).numpy()
    eigvals, eigvecs = np.linalg.eigh(0.5 * (A + np.swapaxes(A, -1, -2)))
    func, p = options["func"], options.get("p")
    with np.errstate(all="ignore"):
        f = {
            "log": np.log,
            "sqrt": np.sqrt,
            "invsqrt": lambda w: 1.0 / np.sqrt(w),
            "pow": lambda w: np.power(w, p),
        }[func](eigvals)
    return torch.from_numpy((eigvecs * f[..., None, :]) @ np.swapaxes(eigvecs, -1, -2))


def _doc_summary(fn: Callable) -> str:
    return (inspect.getdoc(fn) or "").split("\n")[0]


LAYERS: dict[str, Layer] = {
    "matrix_function": Layer(
        name="matrix_function",
        options=MatrixFunctionOptions,
        methods={name: Method(name, fn, _doc_summary(fn)) for name, fn in matfun.METHODS.items()},
        input_kinds=("spd",),
        build=_build_matrix_function,
        reference=_reference_matrix_function,
        summary="f(A) for symmetric A: log, sqrt, invsqrt, pow",
    ),
}


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
