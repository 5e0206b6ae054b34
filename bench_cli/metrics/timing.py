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
- A GPU's L2 (50-60 MB on an H100/H200) holds small inputs between calls: on
  CUDA a buffer of twice the L2 is overwritten right before each timed call,
  after the setup (``flush_l2``, on by default there).
- ``cuda:N`` makes N current while timing and records events on its stream;
  MPS synchronises around each call.
- Thread count changes CPU times; env.json records it beside the run.
- Drift on a shared machine (another process, a frequency change) turns into
  a "difference" between cases timed one after another: a suite with a
  ``baseline:`` times each group of methods on the same inputs in interleaved
  rounds (``measure_time_group``) and records per-round paired ratios.
- A loaded machine, a dispersed sample or too few samples: every mode's
  record carries a ``noise`` block with a ``noisy`` flag and its reasons
  (bench_cli.metrics.noise); calls shorter than 100 clock ticks are batched.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bench_cli.metrics import CaseTimeout, Probe, noise
from bench_cli.metrics.options import MODE_LABELS, Mode, TimeOptions  # noqa: F401

TIMED_DEVICES = ("cpu", "cuda", "mps")


@dataclass
class Measured:
    """Seconds per call, one sample per timed block of ``calls`` calls."""

    samples: list[float]
    calls: int = 1


class Timer:
    """Times ``fn(setup())`` repeatedly on one device; returns seconds per call.

    - ``cuda:N``: device N is made current for the whole measurement (and the previous
      one restored), and the events are recorded on N's current stream, the stream the
      work is queued on; all are read after one synchronize.
    - ``mps``: ``torch.mps.synchronize()`` before and after each timed call, read with
      perf_counter (without it, perf_counter times the kernel launches).
    - ``cpu``: perf_counter.
    Any other device type is refused by name.
    ``flush`` (e.g. an L2 flush) runs after ``setup`` and right before each timed call.
    ``clock`` is the host clock read (a fake one in tests, so no test depends on load).

    A call shorter than ``noise.MIN_TICKS_PER_SAMPLE`` ticks of the clock is timed in a
    block of several calls (their setups all run first, untimed), and a sample is the
    block's time divided by its calls. With a flush there is no batching: the flush must
    come right before each call.
    """

    def __init__(self, device: torch.device | str, clock: Callable[[], float] = time.perf_counter):
        self.device = torch.device(device)
        if self.device.type not in TIMED_DEVICES:
            raise ValueError(
                f"cannot time on device type '{self.device.type}': "
                f"matbench times {', '.join(TIMED_DEVICES)}"
            )
        self.cuda = self.device.type == "cuda"
        self.mps = self.device.type == "mps"
        self._clock = clock
        self._resolution: float | None = None
        self.cut: tuple[int, int] | None = None  # (rounds done, planned) of a cut interleave

    @property
    def clock(self) -> str:
        """The clock this timer reads: CUDA events, or perf_counter (synchronised on MPS)."""
        if self.cuda:
            return "cuda_event"
        return "perf_counter+mps_sync" if self.mps else "perf_counter"

    @property
    def resolution(self) -> float:
        """The timer's resolution in seconds: documented for CUDA events, else measured."""
        if self._resolution is None:
            self._resolution = (
                noise.CUDA_EVENT_RESOLUTION_S
                if self.cuda
                else noise.perf_counter_resolution(self._clock)
            )
        return self._resolution

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
        elif self.mps:
            torch.mps.synchronize()

    def _current(self):
        """Context: this timer's CUDA device current while it measures (restored after)."""
        if self.cuda and self.device.index is not None:
            return torch.cuda.device(self.device.index)
        return contextlib.nullcontext()

    def _once(self, fn, setup, flush) -> float:
        state = setup() if setup else None
        if flush is not None:
            flush()
        self._sync()
        start = self._clock()
        fn(state)
        self._sync()
        return self._clock() - start

    def _block(self, fn, setup, flush, calls: int) -> Any:
        """Time one block of ``calls`` calls: seconds, or a CUDA event pair read later."""
        states = [setup() if setup else None for _ in range(calls)]
        if flush is not None:
            flush()
        if self.cuda:
            stream = torch.cuda.current_stream(self.device)
            start, end = (
                torch.cuda.Event(enable_timing=True),
                torch.cuda.Event(enable_timing=True),
            )
            start.record(stream)
            for state in states:
                fn(state)
            end.record(stream)
            return start, end
        self._sync()
        began = self._clock()
        for state in states:
            fn(state)
        self._sync()
        return self._clock() - began

    def _read(self, blocks: list[Any], calls: int) -> Measured:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            seconds = [start.elapsed_time(end) / 1e3 for start, end in blocks]
        else:
            seconds = list(blocks)
        return Measured([s / calls for s in seconds], calls)

    def _calibrate(self, fn, setup, flush, warmup: int) -> tuple[float, int]:
        """(seconds per call after warm-up, calls per timed block)."""
        estimate = min(self._once(fn, setup, flush) for _ in range(max(warmup, 1)))
        calls = 1 if flush is not None else noise.calls_per_sample(estimate, self.resolution)
        return estimate, calls

    def measure(self, fn: Callable[[Any], Any], setup=None, **options: Any) -> list[float]:
        """Time ``fn(setup())`` after warm-up, calibrated to about budget_s; one sample per
        timed block (seconds per call). ``options``: as ``measure_detail``'s."""
        return self.measure_detail(fn, setup, **options).samples

    def measure_detail(
        self,
        fn: Callable[[Any], Any],
        setup: Callable[[], Any] | None = None,
        *,
        budget_s: float,
        warmup: int,
        min_repeats: int,
        max_repeats: int,
        deadline: float | None = None,
        flush: Callable[[], Any] | None = None,
    ) -> Measured:
        """As ``measure``, with the calls each sample timed."""
        with self._current():
            estimate, calls = self._calibrate(fn, setup, flush, warmup)
            repeats = _repeats(budget_s, estimate * calls, min_repeats, max_repeats)
            blocks = []
            for _ in range(repeats):
                _check(deadline)
                blocks.append(self._block(fn, setup, flush, calls))
            return self._read(blocks, calls)

    def interleave(
        self,
        runs: Sequence[tuple[Callable[[Any], Any], Callable[[], Any] | None]],
        *,
        budget_s: float,
        warmup: int,
        min_repeats: int,
        max_repeats: int,
        deadline: float | None = None,
        flush: Callable[[], Any] | None = None,
        watch: Callable[[int], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> list[Measured]:
        """Time several (fn, setup) pairs in rounds, each once per round in a rotating
        order (ABC, BCA, CAB, ...): drift on a shared machine then hits every one alike,
        and sample r of each belongs to round r, so per-round ratios are paired.
        Each run spends about budget_s, as it would alone.

        ``watch(i)`` wraps every untimed calibration and timed block of run i (a
        per-method time limit: what overruns is then known). Past ``deadline`` the
        rounds stop, and the rounds done so far (at least one) are the result, every run
        cut alike so the pairing holds; ``self.cut`` then says (rounds done, planned)."""
        guard = watch or (lambda i: contextlib.nullcontext())
        self.cut = None
        with self._current():
            calibrated = []
            for i, (fn, setup) in enumerate(runs):
                with guard(i):
                    calibrated.append(self._calibrate(fn, setup, flush, warmup))
            per_round = sum(estimate * calls for estimate, calls in calibrated)
            rounds = _repeats(len(runs) * budget_s, per_round, min_repeats, max_repeats)
            blocks: list[list[Any]] = [[] for _ in runs]
            order = list(range(len(runs)))
            for r in range(rounds):
                if r and deadline is not None and time.monotonic() > deadline:
                    self.cut = (r, rounds)
                    break
                shift = r % len(runs)
                for i in order[shift:] + order[:shift]:
                    fn, setup = runs[i]
                    with guard(i):
                        blocks[i].append(self._block(fn, setup, flush, calibrated[i][1]))
            return [self._read(b, calls) for b, (_, calls) in zip(blocks, calibrated, strict=True)]


def _repeats(budget_s: float, per_repeat_s: float, low: int, high: int) -> int:
    return int(min(max(math.ceil(budget_s / max(per_repeat_s, 1e-9)), low), high))


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise CaseTimeout("timeout: the case reached its time limit while timing")


def labels(device: torch.device) -> dict[str, Any]:
    """What was in force while timing: threads, TF32, the linear-algebra backend."""
    from bench_cli.env import lapack_backend
    from bench_cli.layers import cpu_batch

    out = {
        "threads": torch.get_num_threads(),
        # Whether batched CPU eigh may split over the cores (bench_cli.layers.cpu_batch).
        "cpu_eigh_split": cpu_batch.enabled(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }
    if device.type == "cuda":
        out["linalg"] = f"cuda:{torch.backends.cuda.preferred_linalg_library()}"
    else:
        out["linalg"] = lapack_backend()
    return out


@functools.cache
def matmul_peak_gflops(device: str, dtype: str, budget_s: float = 0.4) -> float:
    """The device's measured batched-matmul rate in this dtype: the best of a few calls.

    Measured once per process and (device, dtype), and stored in env.json, so a
    "% of peak" is relative to what this machine actually reaches.
    """
    dev = torch.device(device)
    n, batch = (4096, 8) if dev.type == "cuda" else (768, 4)
    torch_dtype = getattr(torch, dtype)
    left = torch.randn(batch, n, n, device=dev).to(torch_dtype)
    right = torch.randn(batch, n, n, device=dev).to(torch_dtype)
    timer = Timer(dev)
    samples = timer.measure(
        lambda _: torch.bmm(left, right), budget_s=budget_s, warmup=1, min_repeats=3, max_repeats=50
    )
    return 2.0 * batch * n**3 / min(samples) / 1e9


def _peak_memory(device: torch.device):
    """Context: the peak allocation during the block, in bytes, and how it was measured."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        return lambda: {
            "bytes": int(torch.cuda.max_memory_allocated(device) - before),
            "kind": "cuda max_memory_allocated above the inputs",
        }
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB. The process high-water mark only grows: 0 means no new peak.
    return lambda: {
        "bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024,
        "kind": "process RSS high-water mark increase",
    }


# The machine reader (bench_cli.metrics.noise.read_machine); tests put in their own.
READ_MACHINE: Callable[[], noise.Reading] = noise.read_machine


@dataclass
class _Plan:
    """What timing one case runs: a (fn, setup) per mode, and the value's common fields."""

    runs: dict[str, tuple[Callable[[Any], Any], Callable[[], Any] | None]]
    header: dict[str, Any]
    flush: Callable[[], Any] | None
    flops: dict[str, float | None]


def _plan(probe: Probe, options: TimeOptions, flush: Any = None) -> _Plan:
    input_sets = [probe.inputs]
    size = sum(t.numel() * t.element_size() for t in probe.inputs.values())
    if probe.more_inputs is not None and size < options.rotate_below_bytes:
        # Small inputs would sit in cache across repeats: rotate among several sets.
        input_sets += [probe.more_inputs(i) for i in range(1, options.input_sets)]
    run = probe.run or (lambda inputs: probe.forward())
    # A compiled method's first call compiled the graph with grad: a no-grad call here
    # would compile a second graph, untimed but slow.
    with torch.no_grad() if probe.call is None else torch.enable_grad():
        out_shape = run(input_sets[0]).shape
    # A random upstream gradient, never zeros or ones: kernels can shortcut on those.
    grad_out = torch.randn(out_shape, generator=probe.generator, dtype=torch.float64)
    grad_out = grad_out.to(probe.device, next(iter(probe.inputs.values())).dtype)
    turn = itertools.count()

    def next_inputs():
        return input_sets[next(turn) % len(input_sets)]

    def leaves(inputs):
        return [t for t in inputs.values() if t.requires_grad]

    def backward(state) -> None:
        out, inputs = state
        torch.autograd.grad(out, leaves(inputs), grad_out)

    def forward_setup():
        inputs = next_inputs()
        return run(inputs), inputs

    runs: dict[str, tuple[Callable[[Any], Any], Callable[[], Any] | None]] = {
        "fwd": (lambda inputs: run(inputs), next_inputs),
        "bwd": (backward, forward_setup),
        "fwd_bwd": (lambda inputs: backward((run(inputs), inputs)), next_inputs),
    }
    header: dict[str, Any] = {
        "labels": labels(probe.device),
        "input_sets": len(input_sets),
        "flush_l2_bytes": getattr(flush, "nbytes", None),
        "peak_gflops": matmul_peak_gflops(str(probe.device), str(grad_out.dtype).split(".")[-1]),
    }
    if probe.call is not None:
        header["compile"] = dict(probe.call)
    return _Plan(runs, header, flush, dict(probe.flops))


def _mode_value(
    mode: str,
    measured: Measured,
    timer: Timer,
    options: TimeOptions,
    flops: float | None,
    before: noise.Reading,
    after: noise.Reading,
) -> dict[str, Any]:
    return {
        # Nanoseconds are below either clock's resolution: keep no more digits.
        "samples": [round(sample, 9) for sample in measured.samples],
        "mode": MODE_LABELS[mode],
        "clock": timer.clock,
        "warmup": options.warmup,
        "flops": flops,
        "noise": noise.assess(
            measured.samples,
            before,
            after,
            threads=torch.get_num_threads(),
            cores=noise.cpu_count(),
            resolution_s=timer.resolution,
            calls=measured.calls,
        ),
    }


def _timing_options(options: TimeOptions) -> dict[str, Any]:
    return {
        "budget_s": options.budget_s,
        "warmup": options.warmup,
        "min_repeats": options.min_repeats,
        "max_repeats": options.max_repeats,
    }


def measure_time(probe: Probe, options: TimeOptions) -> dict[str, Any]:
    """Time the modes ``options.modes`` of one case: raw samples per mode with their noise
    block, the case's nominal FLOPs, the timer's labels and the device's measured peak."""
    flush = _l2_flusher(probe.device) if flush_enabled(options, probe.device) else None
    plan = _plan(probe, options, flush)
    timer = Timer(probe.device)
    value = dict(plan.header)
    with torch.enable_grad():
        for mode in options.modes:
            fn, setup = plan.runs[mode]
            memory = _peak_memory(probe.device) if mode == "fwd_bwd" else None
            before = READ_MACHINE()
            measured = timer.measure_detail(
                fn, setup, deadline=probe.deadline, flush=flush, **_timing_options(options)
            )
            after = READ_MACHINE()
            value[mode] = _mode_value(
                mode, measured, timer, options, plan.flops.get(mode), before, after
            )
            if memory is not None:
                value["peak_memory"] = memory()
    return value


def measure_time_group(
    probes: Sequence[Probe],
    options: TimeOptions,
    names: Sequence[str],
    baselines: Sequence[int | None],
    *,
    watch: Callable[[int], contextlib.AbstractContextManager[Any]] | None = None,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Time several methods on the same inputs in interleaved rounds (Timer.interleave):
    one value per probe, as ``measure_time`` gives, plus for each mode the per-round
    ratios to its baseline's sample of the same round (``paired``) where it has one.
    ``baselines`` holds each probe's baseline index or None: the suite's baseline
    method for all, or for a compiled method its own eager version.

    ``watch(i)`` wraps every call of probe i (its own time limit, so a method that
    overruns is named); past ``deadline`` the rounds stop where they are, every method
    alike, and each mode says how many rounds it kept (``rounds_cut``)."""
    guard = watch or (lambda i: contextlib.nullcontext())
    pairs = list(baselines)
    device = probes[0].device
    flush = _l2_flusher(device) if flush_enabled(options, device) else None
    plans = [_plan(probe, options, flush) for probe in probes]
    timer = Timer(device)
    values = [dict(plan.header) for plan in plans]
    with torch.enable_grad():
        for mode in options.modes:
            if mode == "fwd_bwd":  # one untimed call each, for its peak memory
                for i, (plan, value) in enumerate(zip(plans, values, strict=True)):
                    memory = _peak_memory(device)
                    fn, setup = plan.runs[mode]
                    with guard(i):
                        fn(setup() if setup else None)
                    value["peak_memory"] = memory()
            before = READ_MACHINE()
            measured = timer.interleave(
                [plan.runs[mode] for plan in plans],
                deadline=deadline,
                flush=flush,
                watch=watch,
                **_timing_options(options),
            )
            after = READ_MACHINE()
            cut = timer.cut
            for plan, value, own, pair in zip(plans, values, measured, pairs, strict=True):
                value[mode] = _mode_value(
                    mode, own, timer, options, plan.flops.get(mode), before, after
                )
                if cut is not None:  # the group's time ran out: fewer rounds, still paired
                    value[mode]["rounds_cut"] = {"done": cut[0], "planned": cut[1]}
                if pair is not None:
                    base = measured[pair].samples
                    value[mode]["paired"] = {
                        "baseline": names[pair],
                        "ratios": [
                            round(a / b, 9) if b > 0 else None
                            for a, b in zip(own.samples, base, strict=True)
                        ],
                    }
    for value, pair in zip(values, pairs, strict=True):
        value["interleaved"] = {
            "methods": list(names),
            "baseline": None if pair is None else names[pair],
            "order": "rotated",
        }
    return values


def flush_enabled(options: TimeOptions, device: torch.device) -> bool:
    """The L2 flush: as the suite says, else on for GPUs, where a small input set
    stays resident in a 50-60 MB L2 between calls and would be timed warm."""
    if options.flush_l2 is not None:
        return options.flush_l2 and device.type == "cuda"
    return device.type == "cuda"


def l2_cache_bytes(device: torch.device) -> int:
    """The L2 size of a CUDA device from its properties; 0 when it does not say."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    return int(getattr(torch.cuda.get_device_properties(index), "L2_cache_size", 0) or 0)


class _L2Flusher:
    """Overwrites a buffer of twice the device's L2 (at least 64 MiB) before a timed call."""

    def __init__(self, device: torch.device, l2_bytes: int | None = None):
        l2 = l2_cache_bytes(device) if l2_bytes is None else l2_bytes
        self.nbytes = max(2 * l2, 64 * 2**20) if l2 else 256 * 2**20  # unknown L2: 256 MiB
        self.scratch = torch.empty(self.nbytes, dtype=torch.uint8, device=device)

    def __call__(self) -> None:
        self.scratch.zero_()


def _l2_flusher(device: torch.device) -> _L2Flusher | None:
    return _L2Flusher(device) if device.type == "cuda" else None
