"""Metrics: what is measured about one case.

A metric is a function ``measure(probe, options) -> value`` plus an options
model and a unit. The value is plain data (a number, or nested dicts holding
raw ``samples``); statistics are derived from samples by ``STATS`` when a
table asks for them, never stored twice.

A metric signals an explicit non-ok outcome by raising :class:`NonFinite`
(recorded as status ``nonfinite``); any other exception is recorded as
``failed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel


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
    reference_grad: Callable[[torch.Tensor], Mapping[str, torch.Tensor]] | None = None
    # The same layer and method with some options changed, e.g. {"iters": 30}: a forward
    # on any inputs (for metrics that sweep an option of the method under test).
    with_options: (
        Callable[[Mapping[str, Any]], Callable[[Mapping[str, torch.Tensor]], Any]] | None
    ) = None
    # What the case is, for metrics that depend on it (FLOP models, K~ bounds).
    layer: str = ""
    method: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    input_params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    name: str
    options: type[BaseModel]
    measure: Callable[[Probe, Any], Any]
    unit: str  # "s" for times, "" for dimensionless
    summary: str
    default_view: str = ""  # what a table shows when a suite names none, e.g. "fwd_bwd.median"
    # Whether, with these options, the metric differentiates the layer.
    needs_grad: Callable[[Any], bool] = lambda options: True


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


def _registry() -> dict[str, Metric]:
    from bench_cli.metrics import accuracy, stability, task, timing

    return {
        m.name: m
        for m in (
            timing.METRIC,
            accuracy.FORWARD_ERROR,
            accuracy.ABS_ERROR,
            accuracy.GRAD_ERROR,
            accuracy.FD_CHECK,
            accuracy.TERMS_NEEDED,
            stability.METRIC,
            task.METRIC,
        )
    }


METRICS: dict[str, Metric] = _registry()
