"""Which method should I use? Answered from one run's own records. No torch; ``report``
draws it, and ``advise`` measures afresh.

Per setting (the inputs, dtype and device) and per function computed (the layer and
the options that define its output: func, p, eps, ...), the answer at a tolerance is
the fastest method whose forward *and* gradient errors are both within it; a layer
of the user needs both. Only methods that compute the same thing compete: bilinear
pooling is another descriptor than O2P's log, not a faster way to compute it, and
appears in its own group (a task suite compares descriptors by task accuracy).

Speed is the median of the per-round paired ratios to the suite's baseline where the
run measured them (methods timed interleaved on the same inputs), else the median
time. The winner is named only when its lead over the runner-up is established: no
timing of the two flagged noisy, and the 95% interval of their time ratio (paired
round by round where it can be) excludes 1 by at least MIN_LEAD. Otherwise the
answer is "inconclusive", with the reason.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench_cli.compare import _label as case_label
from bench_cli.metrics import is_number
from bench_cli.metrics.noise import is_noisy, ratios_of
from bench_cli.verdicts import bootstrap_median, bootstrap_median_ratio

TOLERANCES = (1e-2, 1e-4, 1e-6)  # relative error: a few %, a 1e-4 and a float32-level answer
ERROR_METRICS = ("forward_error", "grad_error")
# The options that define what a layer outputs (not how a method computes it): two
# methods compete only when these agree.
FUNCTION_OPTIONS = ("func", "p", "eps", "center", "k", "affinity", "sigma")
MIN_LEAD = 0.05  # a lead under 5% is not a lead, as advise and compare hold


@dataclass(frozen=True)
class Point:
    """One method at one setting: its errors, its median time and its paired ratios."""

    method: str
    errors: Mapping[str, float]  # forward_error, grad_error (inf: not ok)
    seconds: float
    samples: tuple[float, ...]
    ratios: tuple[float, ...]  # per-round ratios to the paired baseline; () if none
    noisy: bool  # its timing was flagged (load, dispersion, few samples)

    @property
    def error(self) -> float:
        """The worse of the errors measured: a layer needs its forward and its gradient."""
        return max(self.errors.values())

    def within(self, tolerance: float) -> bool:
        return all(e <= tolerance for e in self.errors.values())


@dataclass(frozen=True)
class Answer:
    """The fastest method within a tolerance, or why none is named."""

    method: str | None
    text: str  # what the cell says
    conclusive: bool


@dataclass(frozen=True)
class Setting:
    """One input setting and one function; the methods that compute it."""

    label: str
    computes: str  # e.g. "matrix_function func=sqrt"
    points: list[Point]
    baseline: str | None  # the paired baseline every point's ratios are to, if any
    metrics: tuple[str, ...]  # the error metrics every point was judged on

    @property
    def paired(self) -> bool:
        return self.baseline is not None

    def speed(self, point: Point) -> float:
        """What ranks: the median paired ratio where measured, else the median time."""
        return statistics.median(point.ratios) if self.paired else point.seconds

    @property
    def front(self) -> list[Point]:
        """The methods no other beats on both error and speed, fastest first."""
        front: list[Point] = []
        for point in sorted(self.points, key=lambda p: (self.speed(p), p.error)):
            if not front or point.error < front[-1].error:
                front.append(point)
        return front

    def fastest_within(self, tolerance: float) -> Point | None:
        """The fastest method whose errors are all at most ``tolerance``; None if none is."""
        within = [p for p in self.points if p.within(tolerance)]
        return min(within, key=self.speed) if within else None

    def lead(self, first: Point, second: Point) -> tuple[float, float, float]:
        """first's time over second's: the median and its 95% interval, round by round
        where both were paired with one baseline, else from the two sets of samples."""
        if self.paired and len(first.ratios) == len(second.ratios):
            quotients = np.asarray(
                [a / b for a, b in zip(first.ratios, second.ratios, strict=True)]
            )
            low, high = bootstrap_median(quotients)
            return float(np.median(quotients)), low, high
        a, b = np.asarray(second.samples), np.asarray(first.samples)
        low, high = bootstrap_median_ratio(a, b)
        return float(np.median(b) / np.median(a)), low, high

    def answer(self, tolerance: float) -> Answer:
        """The fastest method within ``tolerance`` when its lead is established."""
        within = sorted((p for p in self.points if p.within(tolerance)), key=self.speed)
        if not within:
            return Answer(None, "none", True)
        best = within[0]
        if len(within) == 1:
            return Answer(best.method, f"{best.method} (the only one)", True)
        second = within[1]
        if best.noisy or second.noisy:
            return Answer(None, f"inconclusive (noisy): {best.method} or {second.method}", False)
        ratio, low, high = self.lead(best, second)
        shown = f"{ratio:.2f}× {second.method}'s time [{low:.2f}, {high:.2f}]"
        if high >= 1 or ratio > 1 - MIN_LEAD:
            return Answer(None, f"inconclusive: {best.method} ≈ {second.method} ({shown})", False)
        return Answer(best.method, f"{best.method} ({shown})", True)


def _computes(record: Mapping[str, Any]) -> str:
    axes = record["axes"]
    parts = [str(axes.get("layer") or record["params"].get("layer") or "?")]
    parts += [f"{k}={axes[k]}" for k in FUNCTION_OPTIONS if axes.get(k) is not None]
    return " ".join(parts)


def _timing(record: Mapping[str, Any], mode: str):
    value = record["value"].get(mode) if isinstance(record["value"], dict) else None
    samples = value.get("samples") if isinstance(value, dict) else None
    numbers = tuple(float(s) for s in samples or [] if is_number(s))
    if not numbers:
        return None
    paired = value.get("paired") if isinstance(value, dict) else None
    baseline = paired.get("baseline") if isinstance(paired, dict) else None
    return numbers, tuple(ratios_of(value)), baseline, is_noisy(value)


def settings(records: Sequence[Mapping[str, Any]], mode: str = "fwd_bwd") -> list[Setting]:
    """Every (setting, function) where at least two methods have a time and an error, in
    the order the run measured them. A method whose error record is not ok counts as
    beyond every tolerance; a method without a time is left out."""
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for record in records:
        latest[(record["case"], record["metric"])] = record  # the last record wins
    errors: dict[str, dict[str, float]] = {}
    times: dict[str, tuple] = {}
    where: dict[str, Mapping[str, Any]] = {}
    for (case, metric), record in latest.items():
        if metric in ERROR_METRICS:
            ok = record["status"] == "ok" and is_number(record["value"])
            errors.setdefault(case, {})[metric] = float(record["value"]) if ok else math.inf
            where[case] = record
        elif metric == "time" and record["status"] == "ok":
            timing = _timing(record, mode)
            if timing is not None:
                times[case] = timing
    grouped: dict[tuple[str, str], list[tuple[Point, str | None]]] = {}
    for case, errs in errors.items():
        if case not in times:
            continue
        record = where[case]
        samples, ratios, baseline, noisy = times[case]
        point = Point(
            str(record["axes"]["method"]), errs, statistics.median(samples), samples, ratios,
            noisy,
        )  # fmt: skip
        label = f"{case_label(record)} {record['axes']['device']}"  # compare's label
        grouped.setdefault((label, _computes(record)), []).append((point, baseline))
    out = []
    for (label, computes), members in grouped.items():
        if len(members) < 2:
            continue
        metrics = tuple(m for m in ERROR_METRICS if all(m in p.errors for p, _ in members))
        points = [
            Point(
                p.method, {m: p.errors[m] for m in metrics}, p.seconds, p.samples, p.ratios, p.noisy
            )  # fmt: skip
            for p, _ in members
        ]
        baselines = {b for _, b in members}
        counts = {len(p.ratios) for p in points}
        paired = (
            len(baselines) == 1 and None not in baselines and len(counts) == 1 and 0 not in counts
        )
        out.append(Setting(label, computes, points, baselines.pop() if paired else None, metrics))
    return out


def alone(records: Sequence[Mapping[str, Any]], found: Sequence[Setting]) -> list[str]:
    """The functions that only one method computes (``found``: the run's settings): not
    compared with the others as a route to the same output ("bilinear" beside "o2p")."""
    counted = {s.computes for s in found}
    seen: dict[str, None] = {}
    for record in records:
        if record["metric"] in ERROR_METRICS:
            computes = _computes(record)
            if computes not in counted:
                seen.setdefault(f"{computes} ({record['axes']['method']})", None)
    return list(seen)


def point_text(setting: Setting, point: Point) -> str:
    """One front entry: method (speed, ⚠ where its timing is noisy, worse error)."""
    from bench_cli.tables import format_cell

    mark = " ⚠" if point.noisy else ""
    speed = (
        f"{setting.speed(point):.2f}× {setting.baseline}"
        if setting.paired
        else format_cell(point.seconds, "ms", 1e3)
    )
    return f"{point.method} ({speed}{mark}, {point.error:.1e})"


def answer_rows(found: Sequence[Setting], labels: Mapping[str, str]) -> list[dict[str, str]]:
    """One row per setting and function: the answer at each tolerance and the Pareto
    front, fastest first; ``labels`` shortens the setting labels (the report's and the
    generated docs page's table)."""
    rows = []
    for setting in found:
        row = {
            "setting": labels.get(setting.label, setting.label),
            "computes": setting.computes,
            "judged on": " and ".join(setting.metrics),
            "speed": f"paired ratio to {setting.baseline}" if setting.paired else "median time",
        }
        for tolerance in TOLERANCES:
            row[f"≤ {tolerance:.0e}"] = setting.answer(tolerance).text
        row["Pareto front, fastest first"] = "; ".join(
            point_text(setting, p) for p in setting.front
        )
        rows.append(row)
    return rows
