"""The ``time`` metric: forward, backward and forward+backward wall time.

Protocol (design.md, "Measurement rules"): warm-up calls first; a repeat
count calibrated so each mode spends about ``budget_s``; every call timed on
its own, so the record keeps raw samples and the median, IQR and min are
derived later.

Pitfalls this guards against:
- CUDA kernels run asynchronously: a host clock read right after a launch
  measures the launch. On CUDA each call is bracketed by CUDA events and all
  are read after one synchronize; on the CPU, ``time.perf_counter``.
- First calls pay for allocation, kernel selection and lazy initialisation:
  ``warmup`` untimed calls come first.
- Work outside the timed region (the forward before a backward) runs
  untimed in ``setup``.
- Thread count changes CPU times; env.json records it beside the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from bench_cli.metrics import CaseTimeout, Metric, Probe

Mode = Literal["fwd", "bwd", "fwd_bwd"]
MODE_LABELS = {
    "fwd": "forward, autograd recording on",
    "bwd": "backward only (forward untimed)",
    "fwd_bwd": "forward + backward",
}


class TimeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    budget_s: PositiveFloat = Field(0.25, description="seconds of timed calls per mode")
    warmup: PositiveInt = 2
    min_repeats: PositiveInt = 5
    max_repeats: PositiveInt = 2000
    modes: list[Mode] = Field(default_factory=lambda: ["fwd", "bwd", "fwd_bwd"], min_length=1)


class Timer:
    """Times ``fn(setup())`` repeatedly on one device; returns seconds per call."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"

    @property
    def clock(self) -> str:
        return "cuda_event" if self.cuda else "perf_counter"

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def _once(self, fn: Callable[[Any], Any], setup: Callable[[], Any] | None) -> float:
        state = setup() if setup else None
        self._sync()
        start = time.perf_counter()
        fn(state)
        self._sync()
        return time.perf_counter() - start

    def measure(
        self,
        fn: Callable[[Any], Any],
        setup: Callable[[], Any] | None = None,
        *,
        budget_s: float,
        warmup: int,
        min_repeats: int,
        max_repeats: int,
        deadline: float | None = None,
    ) -> list[float]:
        estimate = min(self._once(fn, setup) for _ in range(max(warmup, 1)))
        repeats = int(min(max(math.ceil(budget_s / max(estimate, 1e-9)), min_repeats), max_repeats))
        samples: list[float] = []
        if self.cuda:
            events = []
            for _ in range(repeats):
                _check(deadline)
                state = setup() if setup else None
                start, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                start.record()
                fn(state)
                end.record()
                events.append((start, end))
            torch.cuda.synchronize(self.device)
            samples = [start.elapsed_time(end) / 1e3 for start, end in events]
        else:
            for _ in range(repeats):
                _check(deadline)
                state = setup() if setup else None
                start = time.perf_counter()
                fn(state)
                samples.append(time.perf_counter() - start)
        return samples


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise CaseTimeout("time limit reached while timing")


def measure_time(probe: Probe, options: TimeOptions) -> dict[str, Any]:
    leaves = [t for t in probe.inputs.values() if t.requires_grad]
    with torch.no_grad():
        out_shape = probe.forward().shape
    # A random upstream gradient, never zeros or ones: kernels can shortcut on those.
    grad_out = torch.randn(out_shape, generator=probe.generator, dtype=torch.float64)
    grad_out = grad_out.to(probe.device, next(iter(probe.inputs.values())).dtype)

    def backward(out: torch.Tensor) -> None:
        torch.autograd.grad(out, leaves, grad_out)

    def forward_backward(_: None) -> None:
        backward(probe.forward())

    runs: dict[str, tuple[Callable[[Any], Any], Callable[[], Any] | None]] = {
        "fwd": (lambda _: probe.forward(), None),
        "bwd": (backward, probe.forward),
        "fwd_bwd": (forward_backward, None),
    }
    timer = Timer(probe.device)
    value: dict[str, Any] = {}
    with torch.enable_grad():
        for mode in options.modes:
            fn, setup = runs[mode]
            samples = timer.measure(
                fn,
                setup,
                budget_s=options.budget_s,
                warmup=options.warmup,
                min_repeats=options.min_repeats,
                max_repeats=options.max_repeats,
                deadline=probe.deadline,
            )
            value[mode] = {
                # Nanoseconds are below either clock's resolution: keep no more digits.
                "samples": [round(sample, 9) for sample in samples],
                "mode": MODE_LABELS[mode],
                "clock": timer.clock,
                "warmup": options.warmup,
            }
    return value


METRIC = Metric(
    name="time",
    options=TimeOptions,
    measure=measure_time,
    unit="s",
    needs_grad=lambda options: any(mode != "fwd" for mode in options["modes"]),
    summary="wall time per call: fwd, bwd, fwd_bwd (samples; median/iqr/min derived)",
    default_view="fwd_bwd.median",
)
