"""One case, or one paired-timing group: seeding, time limits, failure capture.

Each case's seed derives from the suite seed and its inputs alone, so every
method of a suite sees the same data for the same input parameters (paired
comparisons); ``data_seed`` in the inputs draws independent data sets. Each
case gets one record per metric. A metric that raises is recorded
as ``failed`` with its message and the run goes on; a case past its time limit
is recorded as ``failed`` with reason ``timeout``. The limit is enforced with
SIGALRM between Python bytecodes and by the metrics between calls: a single
native call that never returns needs process isolation.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from bench_cli import metrics, references, registry
from bench_cli.fsafe import utc_now
from bench_cli.metrics import CaseTimeout, NonFinite, NotApplicable, Probe
from bench_cli.runner import calls
from bench_cli.spec import Case, Suite

STATUSES = ("ok", "failed", "skipped", "nonfinite", "unsupported")
LOW_PRECISION = ("float16", "bfloat16")
_UNSUPPORTED_HINTS = ("Half", "BFloat16", "Low precision", "not implemented for", "not supported")


def _is_unsupported(case: Case, exc: BaseException) -> bool:
    """An operation that has no kernel for the case's low-precision dtype."""
    return case.dtype in LOW_PRECISION and any(h in str(exc) for h in _UNSUPPORTED_HINTS)


class Reporter(Protocol):
    """Progress callbacks of a run."""

    def start(self, total: int) -> None: ...
    def case_started(self, case: Case) -> None: ...
    def case_finished(self, case: Case, records: Sequence[dict[str, Any]]) -> None: ...
    def finish(self) -> None: ...


class RecordSink(Protocol):
    """Where records go: a run folder's RunWriter, or a list in memory (advise)."""

    def append(self, records: Sequence[dict]) -> None: ...


class SilentReporter:
    """A Reporter that reports nothing."""

    def start(self, total: int) -> None: ...
    def case_started(self, case: Case) -> None: ...
    def case_finished(self, case: Case, records: Sequence[dict[str, Any]]) -> None: ...
    def finish(self) -> None: ...


@dataclass
class Summary:
    """How many cases a run planned and how many were already done."""

    planned: int = 0
    already_done: int = 0
    ran: int = 0
    statuses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    cut: int = 0  # cases left unrun because ``stop`` said so (a spent time budget)


def device_unavailable(device: str) -> str | None:
    """Why a case on this device cannot run here, or None."""
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        return f"invalid device '{device}': {exc}"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return f"{device} is absent: this machine has {torch.cuda.device_count()} GPU(s)"
    if dev.type == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available on this machine"
    return None


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[float]:
    """Raise CaseTimeout after ``seconds``; yields the monotonic deadline."""
    deadline = time.monotonic() + seconds
    in_main = threading.current_thread() is threading.main_thread()
    if not in_main or not hasattr(signal, "SIGALRM"):
        yield deadline
        return

    def on_alarm(signum, frame):
        raise CaseTimeout(f"timeout: case exceeded its {seconds:g} s limit")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield deadline
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _is_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_is_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_is_finite(v) for v in value)
    return True


def _value_outcome(value: Any) -> tuple[str, Any, str | None]:
    """ok, or nonfinite for a value holding NaN or Inf."""
    if _is_finite(value):
        return ("ok", value, None)
    return ("nonfinite", None, "the measured value is NaN or Inf")


def _failure(case: Case, exc: BaseException) -> tuple[str, Any, str]:
    """failed (or unsupported: no low-precision kernel), with the exception's reason."""
    return ("unsupported" if _is_unsupported(case, exc) else "failed", None, _reason(exc))


def _measure(probe: Probe, config: Any) -> Any:
    """One metric's value for a prepared case (its options validated as the suite's)."""
    metric = metrics.metric(config.name)
    return metric.measure(probe, metric.options.model_validate(config.resolved))


def _attempt(case: Case, measure: Callable[[], Any]) -> tuple[str, Any, str | None, float]:
    """(status, value, reason, seconds) of one measurement: ok or nonfinite by its value,
    skipped where the metric does not apply, failed (or unsupported) where it raised. A
    case timeout is not an outcome: it propagates to the case's own handler."""
    started = time.perf_counter()
    outcome: tuple[str, Any, str | None]
    try:
        outcome = _value_outcome(measure())
    except NonFinite as exc:
        outcome = ("nonfinite", None, _reason(exc))
    except NotApplicable as exc:
        outcome = ("skipped", None, _reason(exc))
    except CaseTimeout:
        raise
    except Exception as exc:
        outcome = _failure(case, exc)
    return (*outcome, time.perf_counter() - started)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, CaseTimeout | NonFinite | NotApplicable):
        return message[:500]
    return f"{type(exc).__name__}: {message}"[:500]


def _inputs_for(case: Case, seed: int) -> dict[str, torch.Tensor]:
    """One input set of the case's family, on its device and dtype, leaves needing grad."""
    generator = torch.Generator().manual_seed(seed)
    family = registry.input_family(case.inputs["kind"])
    params = family.params.model_validate(
        {k: v for k, v in case.resolved_inputs.items() if k != "kind"}
    )
    raw = family.generate(params, generator)
    device, dtype = torch.device(case.device), getattr(torch, case.dtype)
    return {
        name: tensor.to(device, dtype).requires_grad_(True)
        if tensor.is_floating_point()
        else tensor.to(device)
        for name, tensor in raw.items()
    }


def _prepare(case: Case, first_call: bool = False) -> tuple[Probe, Callable[[], torch.Tensor]]:
    """Inputs, forward and references for one case. The forward is the method as the
    case calls it (under autocast, compiled: :mod:`bench_cli.runner.calls`); with
    ``first_call``, in a suite that compiles, its first forward+backward is timed here,
    before any other call."""
    torch.manual_seed(case.seed)  # for methods with random starts
    generator = torch.Generator().manual_seed(case.seed)
    inputs = _inputs_for(case, case.seed)
    layer = registry.layer(case.config.layer)
    options = case.config.resolved
    eager = layer.build(case.config.method, options)
    forward_inputs = calls.wrap(eager, case)
    call = None
    if first_call and case.compile is not None:
        call = calls.first_call(case, forward_inputs, eager, inputs)
    cache: dict[str, torch.Tensor] = {}

    def detached64() -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in inputs.items()}

    def reference() -> torch.Tensor:
        if "ref" not in cache:
            cache["ref"] = layer.reference(options, detached64())
        return cache["ref"]

    def reference_grad(upstream: torch.Tensor, symmetrise: bool = True) -> dict[str, torch.Tensor]:
        as64 = {k: v.to("cpu", torch.float64) for k, v in detached64().items()}
        if layer.reference_grad is not None:
            return layer.reference_grad(options, as64, upstream, symmetrise=symmetrise)
        return references.fd_reference_grad(layer.reference, options, as64, upstream)

    def decomposed() -> torch.Tensor | None:
        return None if layer.decomposed is None else layer.decomposed(options, detached64())

    probe = Probe(
        forward=lambda: forward_inputs(inputs),
        inputs=inputs,
        reference=reference,
        device=torch.device(case.device),
        generator=generator,
        run=forward_inputs,
        more_inputs=lambda i: _inputs_for(case, case.seed + 7919 * i),
        reference_grad=reference_grad if layer.differentiable else None,
        with_options=lambda changed: layer.build(case.config.method, {**options, **changed}),
        layer=case.config.layer,
        method=case.config.method,
        options=options,
        input_params=case.resolved_inputs,
        flops=registry.flop_model(layer.name, case.config.method, options, case.resolved_inputs),
        k_tilde=registry.k_tilde(layer.name, case.config.method, options),
        decomposed=None if layer.decomposed is None else decomposed,
        symmetrises=layer.methods[case.config.method].symmetrises,
        call=call,
        case=case.key_params(),
    )
    return probe, reference


def run_case(case: Case, suite: Suite, metric_names: Sequence[str], timeout: float) -> list[dict]:
    """Measure the named metrics of one case; one record per metric, never raises for a case."""
    configs = [m for m in suite.metrics if m.name in metric_names]
    outcomes: dict[str, tuple[str, Any, str | None, float]] = {}
    skip_reason = device_unavailable(case.device)
    if skip_reason:
        outcomes = {m.name: ("skipped", None, skip_reason, 0.0) for m in configs}
    else:
        try:
            with time_limit(timeout) as deadline:
                try:
                    probe, _ = _prepare(case, first_call="time" in metric_names)
                    probe.deadline = deadline
                except CaseTimeout:
                    raise
                except Exception as exc:  # the case's set-up failed: every metric fails
                    outcomes = {m.name: (*_failure(case, exc), 0.0) for m in configs}
                    probe = None
                for config in configs if probe is not None else ():
                    assert probe is not None
                    measure = functools.partial(_measure, probe, config)
                    outcomes[config.name] = _attempt(case, measure)
        except CaseTimeout as exc:
            for config in configs:
                if config.name not in outcomes:
                    outcomes[config.name] = ("failed", None, _reason(exc), 0.0)
        finally:
            if case.device.startswith("cuda") and torch.cuda.is_available():
                torch.cuda.empty_cache()
    return _records(case, configs, outcomes)


def _recorded_options(case: Case, config) -> dict[str, Any]:
    """A metric's resolved options as recorded: grad_error's convention "method" as the
    convention this case's method was compared with."""
    options = dict(config.resolved)
    if config.name == "grad_error" and options.get("convention") == "method":
        from bench_cli.metrics.accuracy import gradient_convention

        method = registry.layer(case.config.layer).methods[case.config.method]
        options["convention"] = gradient_convention(method.symmetrises, "method")
    return options


def _records(case: Case, configs, outcomes) -> list[dict]:
    finished = utc_now()
    return [
        {
            "case": case.key,
            "metric": config.name,
            "status": outcomes[config.name][0],
            "value": outcomes[config.name][1],
            "reason": outcomes[config.name][2],
            "unit": metrics.metric(config.name).unit,
            "label": case.label,
            "axes": case.axes,
            "params": case.key_params(),
            # The options the suite gave (params holds them with defaults filled in): what
            # a table's caption names, so a reader sees which numbers a non-default made.
            "given_options": dict(case.config.options),
            "metric_options": _recorded_options(case, config),
            "seed": case.seed,
            "grid": case.grid,
            "elapsed_s": round(outcomes[config.name][3], 6),
            "utc": finished,
        }
        for config in configs
    ]


# Where the group stands, for a parent process watching a worker (runner.isolate): a
# callable given (index of the case in the group, monotonic start, its limit) when a
# method's call starts, and (-1, 0, 0) when it ends. None: nobody watches.
PROGRESS: Callable[[int, float, float], None] | None = None


class MethodTimeout(CaseTimeout):
    """One method of a paired group ran past its own time limit."""


class _Watch:
    """Each method of a paired group on its own time limit: one SIGALRM timer, re-armed
    for every call of a method (its set-up, its first call, each calibration and timed
    block), so a method that overruns is the one named, and no other method pays."""

    def __init__(self, cases: Sequence[Case], limit: float):
        self.cases, self.limit = cases, limit
        self.current: int | None = None
        self.alarms = threading.current_thread() is threading.main_thread() and hasattr(
            signal, "SIGALRM"
        )

    def _on_alarm(self, signum, frame):
        index = self.current if self.current is not None else -1
        name = self.cases[index].config.label if index >= 0 else "the group"
        raise MethodTimeout(f"timeout: {name} exceeded its {self.limit:g} s limit")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGALRM, self._on_alarm) if self.alarms else None
        try:
            yield
        finally:
            if self.alarms:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)

    @contextlib.contextmanager
    def __call__(self, index: int) -> Iterator[None]:
        """Method ``index`` is running: its limit is armed, and a watching parent told."""
        self.current = index
        if PROGRESS is not None:
            PROGRESS(index, time.monotonic(), self.limit)
        if self.alarms:
            signal.setitimer(signal.ITIMER_REAL, self.limit)
        try:
            yield
        finally:
            if self.alarms:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if PROGRESS is not None:
                PROGRESS(-1, 0.0, 0.0)
        self.current = None  # (left set when the call raised: the culprit is known)


def run_time_group(cases: Sequence[Case], suite: Suite, timeout: float) -> dict[str, dict]:
    """The time records of a paired-timing group (cases that differ only in the method),
    timed in interleaved rounds on the same inputs; {case key: record}.

    Each method pays for itself: its set-up, its first call and every call while timing
    run on its own limit (``timeout``). A method that overruns it, or raises, is recorded
    failed with its own reason, and the others are interleaved again without it, paired
    among themselves; their records say who was left out (``interleaved.left_out``).
    Without the baseline (it failed, or another shard holds it) the others are
    interleaved without ratios. Past the group's time (the case limit times its size),
    the rounds stop where they are for every method alike (``rounds_cut``) rather than
    failing good methods. Under --isolate a method that hangs in native code or crashes
    the worker is found the same way by the parent (``PROGRESS``).
    """
    from bench_cli.metrics import timing
    from bench_cli.metrics.options import TimeOptions

    (config,) = [m for m in suite.metrics if m.name == "time"]
    options = TimeOptions.model_validate(config.resolved)
    outcomes: dict[str, tuple[str, Any, str | None, float]] = {}
    left_out: dict[str, str] = {}
    ready: list[tuple[int, Case, Probe]] = []
    if any(calls.compiled(case) for case in cases):
        torch._dynamo.reset()  # each group compiles afresh: what it times is its own compile
    started = time.perf_counter()
    watch = _Watch(cases, timeout)
    try:
        with watch.installed():
            for index, case in enumerate(cases):
                skip = device_unavailable(case.device)
                if skip:
                    outcomes[case.key] = ("skipped", None, skip, 0.0)
                    continue
                try:
                    with watch(index):
                        probe, _ = _prepare(case, first_call=True)
                        if probe.call is None:  # (a compiled one's first call ran it)
                            with torch.no_grad():  # one that raises fails alone, before rounds
                                probe.forward()
                    ready.append((index, case, probe))
                except Exception as exc:  # a MethodTimeout too: this method's own
                    outcomes[case.key] = (*_failure(case, exc), 0.0)
                    left_out[case.config.label] = _reason(exc)
            deadline = time.monotonic() + timeout * len(cases)
            while ready:
                names = [case.timing_name for _, case, _ in ready]
                pairs = _pairs([case for _, case, _ in ready], suite)
                positions = [index for index, _, _ in ready]
                try:
                    values = timing.measure_time_group(
                        [p for _, _, p in ready], options, names, pairs,
                        watch=functools.partial(_at, watch, positions), deadline=deadline,
                    )  # fmt: skip
                except Exception as exc:  # a MethodTimeout too
                    culprit = watch.current
                    watch.current = None
                    if culprit is None:  # not inside one method's call: each alone instead
                        _each_alone(ready, options, outcomes, timeout)
                        break
                    (case,) = [c for index, c, _ in ready if index == culprit]
                    outcomes[case.key] = (*_failure(case, exc), 0.0)
                    left_out[case.config.label] = _reason(exc)
                    ready = [item for item in ready if item[0] != culprit]
                    continue  # the rest again, paired among themselves
                share = (time.perf_counter() - started) / max(len(ready), 1)
                for (_, case, _), value in zip(ready, values, strict=True):
                    if left_out:
                        value["interleaved"]["left_out"] = dict(left_out)
                    outcomes[case.key] = (*_value_outcome(value), share)
                break
    finally:
        if any(c.device.startswith("cuda") for c in cases) and torch.cuda.is_available():
            torch.cuda.empty_cache()
    return {case.key: _records(case, [config], {"time": outcomes[case.key]})[0] for case in cases}


def _at(watch: _Watch, positions: list[int], i: int):
    """Probe i of those still timed is case positions[i] of the group."""
    return watch(positions[i])


def _each_alone(ready, options, outcomes, timeout: float) -> None:
    """Time each method alone: an interleaved measurement broke outside any one method."""
    from bench_cli.metrics import timing

    for _, case, probe in ready:
        measure = functools.partial(timing.measure_time, probe, options)
        try:
            with time_limit(timeout) as deadline:
                probe.deadline = deadline
                outcomes[case.key] = _attempt(case, measure)
        except CaseTimeout as exc:
            outcomes[case.key] = ("failed", None, _reason(exc), 0.0)


def _pairs(cases: Sequence[Case], suite: Suite) -> list[int | None]:
    """Each case's paired baseline in its group (an index, or None without one): the
    suite's baseline method, or where the suite has several compile modes, the same
    method in the first mode (compiled / eager)."""
    if len(suite.compile_modes or ()) > 1:
        first = (suite.compile_modes or ())[0]
        where = {c.config.label: i for i, c in enumerate(cases) if c.compile == first}
        return [where.get(c.config.label) for c in cases]
    labels = [c.config.label for c in cases]
    base = labels.index(suite.baseline) if suite.baseline in labels else None
    return [base] * len(cases)


def failed_records(case: Case, suite: Suite, metric_names: Sequence[str], reason: str):
    """One failed record per metric, for a case whose worker died."""
    configs = [m for m in suite.metrics if m.name in metric_names]
    return _records(case, configs, {c.name: ("failed", None, reason[:1000], 0.0) for c in configs})
