"""How a case's method is called: eagerly, under ``torch.autocast``, or through
``torch.compile`` (docs/measurement.md, "Compiled and mixed precision").

The runner wraps the method the layer built; method code is never changed. A compiled
case's first forward+backward call is timed on its own (it pays for tracing and code
generation) and dynamo's counters say how many graph breaks it hit and why; the
compiled output and gradient are compared with the eager ones on the same inputs. A
compile that fails raises from the first call, so the case's records say why in one
line and the run goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from bench_cli.spec import Case
from bench_cli.spec.model import EAGER, NO_AUTOCAST

Run = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]

# Suite compile mode -> (dynamo backend, inductor mode).
COMPILE_MODES: dict[str, tuple[str, str | None]] = {
    "default": ("inductor", "default"),
    "reduce-overhead": ("inductor", "reduce-overhead"),
    "max-autotune": ("inductor", "max-autotune"),
    "max-autotune-no-cudagraphs": ("inductor", "max-autotune-no-cudagraphs"),
    "aot_eager": ("aot_eager", None),
}
# Every case of a suite shares the registry's forward (one code object), and dynamo keeps
# one cache entry per method, options, dtype and grad mode under it: the default limit (8)
# would send the ninth silently back to eager.
RECOMPILE_LIMIT = 512
REASON_CHARS = 300  # of each graph break's reason kept in the record


class CompileFailed(RuntimeError):
    """A compiled case's first call raised: the message names the mode and the innermost
    cause, in one line (dynamo's wrapper says only "backend raised")."""

    def __init__(self, mode: str, exc: BaseException):
        inner = getattr(exc, "inner_exception", None) or exc
        first = (str(inner).strip().splitlines() or [""])[0]
        super().__init__(f"compile ({mode}) failed: {type(inner).__name__}: {first}")


def compiled(case: Case) -> bool:
    """Whether the case runs through torch.compile."""
    return case.compile not in (None, EAGER)


def wrap(run: Run, case: Case) -> Run:
    """The method as the case calls it: under autocast, then compiled, as the suite says."""
    if case.autocast not in (None, NO_AUTOCAST):
        run = _under_autocast(run, torch.device(case.device).type, getattr(torch, case.autocast))
    if compiled(case):
        backend, mode = COMPILE_MODES[case.compile or ""]
        torch._dynamo.config.recompile_limit = max(
            torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT
        )
        torch._dynamo.config.accumulated_recompile_limit = max(
            torch._dynamo.config.accumulated_recompile_limit, 4 * RECOMPILE_LIMIT
        )
        # Graph breaks are recorded with their reasons: dynamo's own warnings about them
        # would bury the run's progress.
        torch._logging.set_logs(dynamo=logging.ERROR)
        run = _failing_in_one_line(torch.compile(run, backend=backend, mode=mode), case.compile)
    return run


def _failing_in_one_line(run: Run, mode: str | None) -> Run:
    """A compile failure, wherever the compiled method is first called (a metric's
    no-grad forward compiles its own graph), as a CompileFailed naming the cause."""

    def compiled_run(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        try:
            return run(inputs)
        except torch._dynamo.exc.BackendCompilerFailed as exc:
            raise CompileFailed(mode or "", exc) from exc

    return compiled_run


def _under_autocast(run: Run, device_type: str, dtype: torch.dtype) -> Run:
    def autocast_run(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with torch.autocast(device_type, dtype=dtype):
            return run(inputs)

    return autocast_run


def _leaves(inputs: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    return [t for t in inputs.values() if t.requires_grad]


def _fwd_bwd(run: Run, inputs, generator: torch.Generator):
    out = run(inputs)
    leaves = _leaves(inputs)
    if not out.requires_grad or not leaves:
        return out, []
    upstream = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    return out, list(torch.autograd.grad(out, leaves, upstream.to(out.device, out.dtype)))


def first_call(
    case: Case,
    run: Run,
    eager: Run,
    inputs: Mapping[str, torch.Tensor],
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """The case's first forward+backward: its wall time (compile included where it
    compiles), and for a compiled case the graph breaks and the agreement with eager
    (the same inputs and upstream gradient)."""
    from torch._dynamo.utils import counters

    counters.clear()
    started = clock()
    try:
        out, grads = _fwd_bwd(run, inputs, torch.Generator().manual_seed(case.seed))
    except Exception as exc:
        if not compiled(case) or isinstance(exc, CompileFailed):
            raise
        raise CompileFailed(case.compile or "", exc) from exc
    _sync(out)
    info: dict[str, Any] = {"mode": case.compile or EAGER, "first_call_s": clock() - started}
    if not compiled(case):
        return info
    breaks = dict(counters["graph_break"])
    backend, mode = COMPILE_MODES[case.compile or ""]
    info.update(
        backend=backend,
        inductor_mode=mode,
        graphs=int(counters["stats"].get("unique_graphs", 0)),
        graph_breaks=sum(breaks.values()),
        break_reasons=[" ".join(str(r).split())[:REASON_CHARS] for r in breaks],
    )
    eager_out, eager_grads = _fwd_bwd(eager, inputs, torch.Generator().manual_seed(case.seed))
    info["vs_eager"] = {
        "output": _relative_difference(out, eager_out),
        "grad": max(
            (_relative_difference(a, b) for a, b in zip(grads, eager_grads, strict=True)),
            default=None,
        ),
    }
    return info


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a − b| / max|b|, in float64: how far the compiled result is from eager's."""
    a, b = a.detach().to(torch.float64), b.detach().to(torch.float64)
    scale = b.abs().max().item()
    return float((a - b).abs().max().item() / scale) if scale > 0 else float((a - b).abs().max())


def _sync(out: torch.Tensor) -> None:
    if out.device.type == "cuda":
        torch.cuda.synchronize(out.device)
