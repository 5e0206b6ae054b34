"""How much to trust one timing: what the machine was doing while it was measured.

Every timing mode's record carries a ``noise`` block (docs/measurement.md, "Noise fields"):

- ``load_before`` / ``load_after``: the 1-minute load average around the measurement;
- ``cores``: the CPUs the OS reports; ``threads``: torch's intra-op threads;
- ``others_cores``: CPU time other processes used during the measurement, in cores
  (busy time of the whole machine from /proc/stat, minus this process's own CPU time);
- ``steal``: the fraction of CPU time the hypervisor gave to other guests;
- ``involuntary_switches``: times this process was preempted while measuring;
- ``n``, ``iqr_over_median``: the sample count and the samples' relative dispersion;
- ``timer_resolution_s`` and ``calls_per_sample``: the clock's measured resolution, and
  how many calls one sample times (tiny calls are batched, see ``calls_per_sample``);
- ``noisy`` and ``reasons``: whether a threshold below was crossed, and which.

The OS fields are ``None`` where the OS does not give them (no /proc/stat off Linux).
Everything here is a pure function of readings, so tests feed it made-up ones.
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Thresholds: a record crossing any of them is flagged noisy, with the reason.
MAX_IQR_OVER_MEDIAN = 0.25  # samples this dispersed do not pin a median down
# Other processes competing for the cores this measurement uses: more than half a core
# beyond the cores torch's threads leave free.
MAX_CONTENTION_CORES = 0.5
MAX_STEAL = 0.10  # a tenth of the CPU time taken by other guests of the hypervisor
MIN_SAMPLES = 10  # fewer samples give no usable IQR (docs/measurement.md, "Noise fields")
# A timed block shorter than this many timer ticks is dominated by the clock: calls are
# batched into one timed block until it is at least this long.
MIN_TICKS_PER_SAMPLE = 100
CUDA_EVENT_RESOLUTION_S = 5e-7  # the CUDA documentation's "around 0.5 microseconds"


@dataclass(frozen=True)
class Reading:
    """One snapshot of the machine: wall clock, load, CPU jiffies and own usage."""

    wall: float
    load: float | None  # 1-minute load average
    busy_s: float | None  # all CPUs' non-idle time since boot, seconds
    total_s: float | None  # all CPUs' time since boot, seconds
    steal_s: float | None
    own_s: float  # this process's user + system time, seconds
    involuntary: int | None  # this process's involuntary context switches


def _proc_stat() -> tuple[float, float, float] | None:
    """(busy, total, steal) seconds from the aggregate line of /proc/stat, or None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 5:
        return None
    hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    values = [float(v) / hz for v in fields[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice (guest is in user)
    total = sum(values[:8])
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)
    steal = values[7] if len(values) > 7 else 0.0
    return total - idle, total, steal


def read_machine() -> Reading:
    """The machine now (the real reader; tests pass their own)."""
    try:
        load: float | None = os.getloadavg()[0]
    except (OSError, AttributeError):
        load = None
    stat = _proc_stat()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Reading(
        wall=time.monotonic(),
        load=load,
        busy_s=None if stat is None else stat[0],
        total_s=None if stat is None else stat[1],
        steal_s=None if stat is None else stat[2],
        own_s=usage.ru_utime + usage.ru_stime,
        involuntary=usage.ru_nivcsw,
    )


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def perf_counter_resolution(clock: Callable[[], float] = time.perf_counter) -> float:
    """The smallest step the clock was seen to take, over a thousand reads."""
    steps = []
    previous = clock()
    for _ in range(1000):
        now = clock()
        if now > previous:
            steps.append(now - previous)
        previous = now
    return min(steps) if steps else 1e-6


def calls_per_sample(call_s: float, resolution_s: float) -> int:
    """How many calls one timed block needs to last MIN_TICKS_PER_SAMPLE ticks."""
    floor = MIN_TICKS_PER_SAMPLE * resolution_s
    if call_s >= floor:
        return 1
    return int(math.ceil(floor / max(call_s, resolution_s)))


def iqr_over_median(samples: Sequence[float]) -> float | None:
    if len(samples) < 2:
        return None
    q25, q50, q75 = np.percentile(samples, [25, 50, 75])
    return float((q75 - q25) / q50) if q50 > 0 else None


def assess(
    samples: Sequence[float],
    before: Reading,
    after: Reading,
    *,
    threads: int,
    cores: int,
    resolution_s: float,
    calls: int = 1,
) -> dict[str, Any]:
    """The noise block of one timing mode, with the verdict and its reasons."""
    wall = max(after.wall - before.wall, 1e-9)
    others = steal = None
    if before.busy_s is not None and after.busy_s is not None:
        busy = after.busy_s - before.busy_s
        others = max(0.0, busy - (after.own_s - before.own_s)) / wall
        total = (after.total_s or 0.0) - (before.total_s or 0.0)
        if total > 0:
            steal = ((after.steal_s or 0.0) - (before.steal_s or 0.0)) / total
    switches = None
    if before.involuntary is not None and after.involuntary is not None:
        switches = after.involuntary - before.involuntary
    dispersion = iqr_over_median(samples)
    reasons = []
    if dispersion is not None and dispersion > MAX_IQR_OVER_MEDIAN:
        reasons.append(f"dispersion: IQR is {dispersion:.0%} of the median")
    free = max(cores - threads, 0)
    if others is not None and others > free + MAX_CONTENTION_CORES:
        reasons.append(f"load: other processes used {others:.1f} of {cores} cores")
    elif others is None:  # no per-process accounting: the load average is all there is
        load = max(x for x in (before.load, after.load, 0.0) if x is not None)
        if load > cores + MAX_CONTENTION_CORES:
            reasons.append(f"load: load average {load:.1f} on {cores} cores")
    if steal is not None and steal > MAX_STEAL:
        reasons.append(f"steal: the hypervisor took {steal:.0%} of CPU time")
    if len(samples) < MIN_SAMPLES:
        reasons.append(f"samples: {len(samples)} < {MIN_SAMPLES}")
    return {
        "load_before": _round(before.load),
        "load_after": _round(after.load),
        "cores": cores,
        "threads": threads,
        "others_cores": _round(others),
        "steal": _round(steal),
        "involuntary_switches": switches,
        "n": len(samples),
        "iqr_over_median": _round(dispersion),
        "timer_resolution_s": float(f"{resolution_s:.3g}"),
        "calls_per_sample": calls,
        "noisy": bool(reasons),
        "reasons": reasons,
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def is_noisy(mode_value: Any) -> bool:
    """Whether a recorded timing mode was flagged noisy (records before noise fields: no)."""
    noise = mode_value.get("noise") if isinstance(mode_value, dict) else None
    return bool(isinstance(noise, dict) and noise.get("noisy"))


def reasons_of(mode_value: Any) -> list[str]:
    noise = mode_value.get("noise") if isinstance(mode_value, dict) else None
    reasons = noise.get("reasons") if isinstance(noise, dict) else None
    return [str(r) for r in reasons] if isinstance(reasons, list) else []


def ratios_of(mode_value: Any) -> list[float]:
    """The per-round ratios to the baseline a paired timing recorded (none: [])."""
    paired = mode_value.get("paired") if isinstance(mode_value, dict) else None
    ratios = paired.get("ratios") if isinstance(paired, dict) else None
    if not isinstance(ratios, list):
        return []
    return [float(r) for r in ratios if isinstance(r, int | float) and r > 0]


def paired_reasons(mode_value: Any) -> list[str]:
    """Why a paired ratio is noisy: the machine's reasons (load, steal, samples), with the
    dispersion of the per-round ratios in place of the samples' own."""
    reasons = [r for r in reasons_of(mode_value) if not r.startswith("dispersion")]
    dispersion = iqr_over_median(ratios_of(mode_value))
    if dispersion is not None and dispersion > MAX_IQR_OVER_MEDIAN:
        reasons.append(f"dispersion: IQR of the paired ratios is {dispersion:.0%} of the median")
    return reasons
