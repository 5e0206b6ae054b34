"""Accuracy metrics against a float64 reference computed independently of the method."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict

from bench_cli.metrics import Metric, NonFinite, Probe


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def relative_errors(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """‖output − reference‖_F / ‖reference‖_F per matrix of the batch, in float64."""
    output = output.detach().to("cpu", torch.float64)
    diff = torch.linalg.matrix_norm(output - reference)
    return diff / torch.linalg.matrix_norm(reference)


def forward_error(probe: Probe, options: NoOptions) -> float:
    """The worst relative Frobenius error over the batch."""
    with torch.no_grad():
        output = probe.forward()
    bad = int((~torch.isfinite(output)).sum())
    if bad:
        raise NonFinite(f"forward output has {bad} non-finite entries of {output.numel()}")
    reference = probe.reference()
    if not bool(torch.isfinite(reference).all()):
        raise ValueError("the float64 reference is non-finite for this input")
    return float(relative_errors(output, reference).max())


FORWARD_ERROR = Metric(
    name="forward_error",
    options=NoOptions,
    measure=forward_error,
    unit="",
    summary="max over the batch of ‖f̂(A) − f(A)‖_F / ‖f(A)‖_F vs a float64 NumPy reference",
)
