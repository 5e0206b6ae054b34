"""Paired comparisons: every method against a baseline on the same data, with t intervals.

A suite whose methods all see the same inputs for a given data seed (the case
seed depends on the inputs, never on the method) can compare methods *paired*:
for each data seed, method minus baseline. The spread that the data draw adds
to both sides cancels, and what is left is the difference the method makes.

Each method's value for one data seed is the table metric of its record (for
``task.accuracy.mean``, the mean over the initialisation seeds of that data).
With n paired data seeds the interval is mean ± t₀.₉₇₅,ₙ₋₁ · s/√n (Student's t;
the data seeds are independent draws). A difference is claimed only where that
interval excludes zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BETTER, WORSE, NO_DIFFERENCE, BASELINE = "better", "worse", "no difference shown", "baseline"
NO_VALUES = "no values (every record failed or is missing)"


@dataclass(frozen=True)
class Interval:
    """A mean (or mean difference) and its 95% Student-t interval."""

    mean: float
    low: float
    high: float
    n: int


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and two-sided Student-t interval; an infinite interval below two values."""
    from scipy.stats import t

    data = np.asarray(values, dtype=float)
    n = len(data)
    mean = float(data.mean()) if n else math.nan
    if n < 2:
        return Interval(mean, -math.inf, math.inf, n)
    half = float(t.ppf(0.5 + level / 2, n - 1) * data.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def verdict(difference: Interval, better: str) -> str:
    """better/worse only when the interval of (method − baseline) excludes zero."""
    if difference.low > 0:
        return BETTER if better == "higher" else WORSE
    if difference.high < 0:
        return WORSE if better == "higher" else BETTER
    return NO_DIFFERENCE


@dataclass(frozen=True)
class PairedRow:
    """One method of a paired table: its interval, its difference to the baseline, a verdict."""

    method: str
    value: Interval
    difference: Interval | None  # None for the baseline itself
    verdict: str
    unpaired: int  # data seeds of this method without a baseline value (left out)


def paired_rows(
    values: Mapping[str, Mapping[Any, float]], baseline: str, better: str
) -> list[PairedRow]:
    """``values[method][unit]``: one number per pairing unit (data seed). Baseline first."""
    if baseline not in values:
        raise KeyError(f"baseline '{baseline}' has no values")
    base = values[baseline]
    rows = []
    for method in [baseline, *(m for m in values if m != baseline)]:
        own = values[method]
        interval = t_interval(list(own.values()))
        if method == baseline:
            rows.append(PairedRow(method, interval, None, BASELINE, 0))
            continue
        shared = [u for u in own if u in base]
        difference = t_interval([own[u] - base[u] for u in shared])
        claim = verdict(difference, better) if shared else NO_VALUES
        rows.append(PairedRow(method, interval, difference, claim, len(own) - len(shared)))
    return rows
