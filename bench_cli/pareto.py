"""Which method should I use? Answered from one run's own records: per input setting,
the Pareto front of error against time, and the fastest method within each of a few
error tolerances. No torch; ``report`` draws it, and ``advise`` measures afresh."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench_cli.compare import _label as case_label
from bench_cli.metrics import is_number
from bench_cli.metrics.noise import is_noisy

TOLERANCES = (1e-2, 1e-4, 1e-6)  # relative error: a few %, a 1e-4 and a float32-level answer
ERROR_METRICS = ("forward_error", "grad_error")


@dataclass(frozen=True)
class Point:
    """One method at one setting: its error and median time per call."""

    method: str
    error: float
    seconds: float
    noisy: bool  # its timing was flagged (load, dispersion, few samples)


@dataclass(frozen=True)
class Setting:
    """One input setting (everything but the method) and its methods' points."""

    label: str
    points: list[Point]

    @property
    def front(self) -> list[Point]:
        """The methods no other beats on both error and time, fastest first."""
        front: list[Point] = []
        for point in sorted(self.points, key=lambda p: (p.seconds, p.error)):
            if not front or point.error < front[-1].error:
                front.append(point)
        return front

    def fastest_within(self, tolerance: float) -> Point | None:
        """The fastest method whose error is at most ``tolerance``; None if none is."""
        within = [p for p in self.points if p.error <= tolerance]
        return min(within, key=lambda p: p.seconds) if within else None


def settings(
    records: Sequence[Mapping[str, Any]], error_metric: str, mode: str = "fwd_bwd"
) -> list[Setting]:
    """Every setting where at least two methods have both an error and a time, in the
    order the run measured them; a method failed on either is left out."""
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for record in records:
        latest[(record["case"], record["metric"])] = record  # the last record wins
    errors: dict[str, float] = {}
    times: dict[str, tuple[float, bool]] = {}
    where: dict[str, Mapping[str, Any]] = {}
    for (case, metric), record in latest.items():
        if record["status"] != "ok":
            continue
        if metric == error_metric and is_number(record["value"]):
            errors[case] = float(record["value"])
            where[case] = record
        elif metric == "time" and isinstance(record["value"], dict):
            value = record["value"].get(mode)
            samples = value.get("samples") if isinstance(value, dict) else None
            numbers = [s for s in samples or [] if is_number(s)]
            if numbers:
                times[case] = (statistics.median(numbers), is_noisy(value))
    grouped: dict[str, list[Point]] = {}
    for case, error in errors.items():
        if case in times:
            record = where[case]
            seconds, noisy = times[case]
            point = Point(str(record["axes"]["method"]), error, seconds, noisy)
            label = f"{case_label(record)} {record['axes']['device']}"  # compare's label
            grouped.setdefault(label, []).append(point)
    return [Setting(label, points) for label, points in grouped.items() if len(points) >= 2]
