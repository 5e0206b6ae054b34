"""Metrics: what is measured about one case.

A metric is a function ``measure(probe, options) -> value`` plus an options
model and a unit. This module is the catalogue: every :class:`Metric` is
declared here with its options (:mod:`bench_cli.metrics.options`) and the
dotted path of its implementation, which is imported only when something is
measured, so reading, tabulating and comparing results never imports torch.

The value is plain data (a number, or nested dicts holding raw ``samples``);
statistics are derived from samples by ``STATS`` when a table asks for them,
never stored twice.

A metric signals an explicit non-ok outcome by raising :class:`NonFinite`
(recorded as status ``nonfinite``); any other exception is recorded as
``failed``.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from bench_cli.errors import UserError, unknown_name
from bench_cli.metrics.options import (
    FdOptions,
    FirstCallOptions,
    GradOptions,
    NoOptions,
    StabilityOptions,
    TaskOptions,
    TermsOptions,
    TimeOptions,
)

if TYPE_CHECKING:
    import torch

    from bench_cli.layers.declare import KTilde


class NonFinite(Exception):
    """The measured quantity is NaN or Inf; the message says where."""


class CaseTimeout(Exception):
    """The case ran past its time limit."""


class NotApplicable(Exception):
    """The metric cannot be measured for this case (recorded as skipped, with the reason)."""


@dataclass
class Probe:
    """What a metric may touch of one case."""

    forward: Callable[[], torch.Tensor]  # the layer on the case inputs, fresh graph per call
    inputs: Mapping[str, torch.Tensor]  # on the case's device and dtype; floating ones need grad
    reference: Callable[[], torch.Tensor]  # float64 CPU output for these exact inputs (cached)
    device: torch.device
    generator: torch.Generator  # CPU generator seeded from the case seed
    deadline: float | None = None  # time.monotonic() value past which the case must stop
    # The layer on any inputs of the same family (for finite differences, rotation).
    run: Callable[[Mapping[str, torch.Tensor]], torch.Tensor] | None = None
    # Input set i >= 1 of the same family and parameters, with its own seed.
    more_inputs: Callable[[int], Mapping[str, torch.Tensor]] | None = None
    # float64 CPU gradients of <upstream, f(inputs)> w.r.t. each input, independent of the
    # method under test (Daleckii-Krein in NumPy, or central differences).
    # (upstream, symmetrise=True) -> float64 reference gradients by input name
    reference_grad: Callable[..., Mapping[str, torch.Tensor]] | None = None
    # The same layer and method with some options changed, e.g. {"iters": 30}: a forward
    # on any inputs (for metrics that sweep an option of the method under test).
    with_options: (
        Callable[[Mapping[str, Any]], Callable[[Mapping[str, torch.Tensor]], Any]] | None
    ) = None
    # What the case is, for metrics that depend on it.
    layer: str = ""
    method: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    input_params: Mapping[str, Any] = field(default_factory=dict)
    # The method's declared facts, resolved for this case by the runner: nominal FLOPs
    # per mode for the whole batch (None: no model), the K̃ its backward forms (None: it
    # forms none), and the symmetric matrix it decomposes (None: there is none).
    flops: Mapping[str, float | None] = field(default_factory=dict)
    k_tilde: KTilde | None = None
    decomposed: Callable[[], torch.Tensor | None] | None = None
    symmetrises: bool = True  # its gradient is that of f((A+Aᵀ)/2) (declared)
    # How the method was called where the suite compiles: its first call's wall time,
    # graph breaks and agreement with eager (bench_cli.runner.calls.first_call).
    call: Mapping[str, Any] | None = None
    # The case's parameters (spec.Case.key_params): what a fresh process rebuilds it from.
    case: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A metric's declaration; ``impl`` ("module:function") is imported on first use."""

    name: str
    options: type[BaseModel]
    impl: str
    unit: str  # "s" for times, "" for dimensionless
    summary: str
    default_view: str = ""  # what a table shows when a suite names none, e.g. "fwd_bwd.median"
    # The table paths below the metric's name that name a value it records, as patterns:
    # "" is the value itself, "{a|b}" one of a or b, "<stat>" a statistic of samples.
    views: tuple[str, ...] = ("",)
    # Whether, with these options, the metric differentiates the layer.
    needs_grad: Callable[[Any], bool] = lambda options: True

    def measure(self, probe: Probe, options: Any) -> Any:
        """Measure one case: the value a record stores."""
        module, function = self.impl.split(":")
        return getattr(importlib.import_module(module), function)(probe, options)


def _iqr(samples: Sequence[float]) -> float:
    q75, q25 = np.percentile(samples, [75, 25])
    return float(q75 - q25)


STATS: dict[str, Callable[[Sequence[float]], float]] = {
    "median": lambda s: float(np.median(s)),
    "mean": lambda s: float(np.mean(s)),
    "min": lambda s: float(np.min(s)),
    "max": lambda s: float(np.max(s)),
    "iqr": _iqr,
    "std": lambda s: float(np.std(s, ddof=1)) if len(s) > 1 else 0.0,
    "n": lambda s: float(len(s)),
}


# What a task record holds as samples: region accuracy; the segmentation scores of
# bench_cli.tasks.scoring.SCORES and the diagnostics of bench_cli.tasks.segments.DIAGNOSTICS
# (tests/test_task_scoring.py keeps the lists equal); seconds per epoch.
TASK_VALUES = (
    "accuracy|matched_accuracy|adapted_rand_error|rand_split|rand_merge|voi|voi_split"
    "|voi_merge|zero_rows|cosine_within|cosine_across|largest_segment|epoch_time_s"
)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            name="time",
            options=TimeOptions,
            impl="bench_cli.metrics.timing:measure_time",
            unit="s",
            needs_grad=lambda options: any(mode != "fwd" for mode in options["modes"]),
            summary="wall time per call: fwd, bwd, fwd_bwd (samples; median/iqr/min derived; "
            "each mode's noise block; with a suite baseline, per-round ratios to it)",
            default_view="fwd_bwd.median",
            views=(
                "{fwd|bwd|fwd_bwd}",
                "{fwd|bwd|fwd_bwd}.<stat>",
                "{fwd|bwd|fwd_bwd}.{flops_per_s|peak_fraction|ratio_to_baseline}",
                "compile.{first_call_s|graph_breaks|graphs}",
                "compile.vs_eager.{output|grad}",
            ),
        ),
        Metric(
            name="first_call",
            options=FirstCallOptions,
            # In the runner: the child process calls the method as the runner does.
            impl="bench_cli.runner.cold:first_call",
            unit="s",
            summary="a cold start in fresh processes: import, device initialisation, first "
            "forward and first backward (compile included), each in seconds (samples)",
            default_view="fwd_s.median",
            views=(
                "{import_s|init_s|fwd_s|bwd_s}",
                "{import_s|init_s|fwd_s|bwd_s}.<stat>",
            ),
        ),
        Metric(
            name="op_dtypes",
            options=NoOptions,
            impl="bench_cli.metrics.precision:op_dtypes",
            unit="",
            summary="the dtype each matrix product and decomposition of one forward and one "
            "backward ran in (after autocast), and the output's",
            default_view="fwd.products",
            views=("output", "{fwd|bwd}.{products|decompositions}"),
        ),
        Metric(
            name="forward_error",
            options=NoOptions,
            impl="bench_cli.metrics.accuracy:forward_error",
            needs_grad=lambda options: False,
            unit="",
            summary="max over the batch of ‖f̂(A) − f(A)‖_F / ‖f(A)‖_F vs a float64 NumPy reference",
        ),
        Metric(
            name="abs_error",
            options=NoOptions,
            impl="bench_cli.metrics.accuracy:abs_error",
            needs_grad=lambda options: False,
            unit="",
            summary="max |f̂ − f| against the float64 reference (for published absolute errors)",
        ),
        Metric(
            name="grad_error",
            options=GradOptions,
            impl="bench_cli.metrics.accuracy:grad_error",
            unit="",
            summary="max relative error of the input gradient under a seeded upstream gradient, "
            "vs a float64 reference (NumPy Daleckii-Krein, or central differences)",
        ),
        Metric(
            name="fd_check",
            options=FdOptions,
            impl="bench_cli.metrics.accuracy:fd_check",
            unit="",
            summary="the paper's gradient check: directional derivative vs central differences "
            "over steps 2^-1..2^-20; the error curve and its minimum",
            default_view="min",
            views=("{min|argmin}",),
        ),
        Metric(
            name="terms_needed",
            options=TermsOptions,
            impl="bench_cli.metrics.accuracy:terms_needed",
            unit="",
            summary="smallest iteration count (or degree) whose eigenpair-coupling gradient error "
            "is under a tolerance, against the float64 Daleckii-Krein reference",
            default_view="count",
            views=("{count|error|error_before}",),
        ),
        Metric(
            name="stability",
            options=StabilityOptions,
            impl="bench_cli.metrics.stability:stability",
            unit="",
            summary="non-finite fractions, gradient norm vs reference, largest |K~| used, "
            "explosion flag",
            default_view="grad_norm",
            views=(
                "{grad_norm|reference_grad_norm|max_k_tilde|nonfinite_output|nonfinite_grad"
                "|exploded|k_tilde_infinite}",
            ),
        ),
        Metric(
            name="task",
            options=TaskOptions,
            impl="bench_cli.metrics.task:task",
            unit="",
            summary="end-to-end training with the layer as head: test accuracy (regions) or "
            "segmentation scores and collapse diagnostics over seeds, diverged runs, seconds "
            "per epoch",
            default_view="runs",
            views=(f"{{{TASK_VALUES}}}", f"{{{TASK_VALUES}}}.<stat>", "{runs|diverged}"),
        ),
    )
}


def _view_regex(view: str) -> str:
    out = re.escape(view).replace(re.escape("<stat>"), "(?:" + "|".join(STATS) + ")")
    return re.sub(r"\\\{(.*?)\\\}", lambda m: "(?:" + m.group(1).replace("\\|", "|") + ")", out)


def path_problem(path: str) -> str | None:
    """Why a table's metric path names no value its metric records (None if it does)."""
    name, _, rest = path.partition(".")
    metric = METRICS.get(name)
    if metric is None:
        return unknown_name("metric", name, METRICS)
    if any(re.fullmatch(_view_regex(view), rest) for view in metric.views):
        return None
    shown = ", ".join(f"{name}.{v}" if v else name for v in metric.views)
    stats = f" (<stat>: {', '.join(STATS)})" if any("<stat>" in v for v in metric.views) else ""
    return f"'{path}' is not a value metric '{name}' records; it records {shown}{stats}"


# ---------------------------------------------------------------- recorded value shapes
# What a reader may rely on in an ok record's value, per metric: a damaged record that
# breaks it is skipped (bench_cli.record_problem), never a traceback in a table.


def is_number(x: Any) -> bool:
    """A finite int or float (not a flag): what a table or a plot can place on an axis."""
    if not isinstance(x, int | float) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # an int beyond every float
        return False


def all_numbers(xs: list[Any]) -> bool:
    """Whether every item is a finite int or float (not a flag): :func:`is_number` of a
    list of samples, in one array operation once the types are known (records of 50,000
    cases are read in seconds)."""
    if not all(type(v) is float or type(v) is int for v in xs):
        return all(is_number(v) for v in xs)  # subclasses and flags, one at a time
    try:
        return bool(np.isfinite(np.fromiter(xs, dtype=float, count=len(xs))).all())
    except OverflowError:
        return False


def _number(x: Any, where: str) -> str | None:
    return None if x is None or is_number(x) else f"'{where}' is not a finite number"


def _samples(x: Any, where: str, empty_ok: bool = False) -> str | None:
    if not isinstance(x, dict) or not isinstance(x.get("samples"), list):
        return f"'{where}' has no list of samples"
    if not x["samples"] and not empty_ok:
        return f"'{where}.samples' is empty"
    if not all_numbers(x["samples"]):
        return f"'{where}.samples' holds something other than finite numbers"
    return None


def _fields(value: Any, where: str, check: Callable[[Any, str], str | None]) -> str | None:
    if not isinstance(value, dict):
        return f"'{where}' is not a mapping"
    for key, item in value.items():
        problem = check(item, f"{where}.{key}")
        if problem:
            return problem
    return None


def _time_value(value: Any) -> str | None:
    if not isinstance(value, dict) or not any(m in value for m in ("fwd", "bwd", "fwd_bwd")):
        return "'value' holds no timing mode"
    for mode in ("fwd", "bwd", "fwd_bwd"):
        if mode in value:
            problem = _samples(value[mode], f"value.{mode}") or _number(
                value[mode].get("flops"), f"value.{mode}.flops"
            )
            if problem:
                return problem
    return _number(value.get("peak_gflops"), "value.peak_gflops")


def _task_value(value: Any) -> str | None:
    def check(item: Any, where: str) -> str | None:
        if isinstance(item, dict) and "samples" in item:
            return _samples(item, where, empty_ok=True)
        return None if not isinstance(item, int | float) else _number(item, where)

    return _fields(value, "value", check)


def _plain(item: Any, where: str) -> str | None:
    if isinstance(item, bool | str | list | dict) or item is None:
        return None  # flags, labels and curves: no table reads these as numbers
    return _number(item, where)


VALUE_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "time": _time_value,
    "forward_error": lambda v: _number(v, "value"),
    "abs_error": lambda v: _number(v, "value"),
    "grad_error": lambda v: _number(v, "value"),
    "fd_check": lambda v: _fields(v, "value", _plain),
    "terms_needed": lambda v: _fields(v, "value", _plain),
    "stability": lambda v: _fields(v, "value", _plain),
    "task": _task_value,
    "op_dtypes": lambda v: _fields(v, "value", _plain),
    "first_call": lambda v: _nested_samples(v),
}


def _nested_samples(value: Any, where: str = "value") -> str | None:
    """Raw samples anywhere in a value (tables derive statistics from any) must be lists
    of finite numbers."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "samples":
                problem = _samples(value, where, empty_ok=True)
            else:
                problem = _nested_samples(item, f"{where}.{key}")
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _nested_samples(item, where)
            if problem:
                return problem
    return None


def value_problem(name: str, value: Any) -> str | None:
    """What makes a record's value unreadable by tables, plots and compare."""
    check = VALUE_CHECKS.get(name)
    return (check(value) if check else None) or _nested_samples(value)


def metric(name: str) -> Metric:
    """One metric by name, or a UserError naming the known ones."""
    if name not in METRICS:
        raise UserError(unknown_name("metric", name, METRICS))
    return METRICS[name]
