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

A comparison may name *trivial answers*: methods that look at no input (one
segment per image, a random assignment, the majority class). Every other method is
then compared with each of them too, paired the same way, and is called
``better`` than the baseline only when it also beats every trivial answer: being
better than a baseline that itself loses to predicting nothing says nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BETTER, WORSE, NO_DIFFERENCE, BASELINE = "better", "worse", "no difference shown", "baseline"
# For a quantity with no better direction (a diagnostic): which way the difference goes.
HIGHER, LOWER = "higher", "lower"
NO_VALUES = "no values (none recorded: failed, missing, or not measured for this method)"
TRIVIAL = "trivial answer"
# Better than the baseline, yet not shown better than every trivial answer.
BETTER_NOT_TRIVIAL = "better, but not than a trivial answer"


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
    """better/worse only when the interval of (method − baseline) excludes zero; with
    ``better`` "none" (a diagnostic, no direction is better) higher/lower instead."""
    if difference.low > 0:
        return {"higher": BETTER, "lower": WORSE}.get(better, HIGHER)
    if difference.high < 0:
        return {"higher": WORSE, "lower": BETTER}.get(better, LOWER)
    return NO_DIFFERENCE


@dataclass(frozen=True)
class PairedRow:
    """One method of a paired table: its interval, its difference to the baseline, a verdict,
    and its difference to each trivial answer."""

    method: str
    value: Interval
    difference: Interval | None  # None for the baseline itself
    verdict: str
    unpaired: int  # data seeds of this method without a baseline value (left out)
    # method − trivial answer, per trivial answer of the comparison (none for a trivial row)
    versus_trivial: Mapping[str, Interval] = field(default_factory=dict)
    # Whether every one of those differences is better with its interval excluding zero;
    # None where there is nothing to compare with (no trivial answers, or a trivial row).
    beats_trivial: bool | None = None


def paired_difference(own: Mapping[Any, float], other: Mapping[Any, float]) -> Interval | None:
    """The interval of own − other over the units both have (None: none shared)."""
    shared = [u for u in own if u in other]
    return t_interval([own[u] - other[u] for u in shared]) if shared else None


def paired_rows(
    values: Mapping[str, Mapping[Any, float]],
    baseline: str,
    better: str,
    trivial: Sequence[str] = (),
) -> list[PairedRow]:
    """``values[method][unit]``: one number per pairing unit (data seed). Baseline first.
    ``trivial``: the methods that are trivial answers (see the module docstring)."""
    if baseline not in values:
        raise KeyError(f"baseline '{baseline}' has no values")
    base = values[baseline]
    # A diagnostic (better "none") has no better side for a trivial answer to be beaten on.
    answers = [t for t in trivial if t in values] if better != "none" else []
    rows = []
    for method in [baseline, *(m for m in values if m != baseline)]:
        own = values[method]
        interval = t_interval(list(own.values()))
        versus: dict[str, Interval] = {}
        beats: bool | None = None
        if answers and method not in answers:
            for answer in answers:
                difference = paired_difference(own, values[answer])
                if difference is not None:
                    versus[answer] = difference
            beats = len(versus) == len(answers) and all(
                verdict(d, better) == BETTER for d in versus.values()
            )
        if method == baseline:
            rows.append(PairedRow(method, interval, None, BASELINE, 0, versus, beats))
            continue
        difference = paired_difference(own, base)
        claim = verdict(difference, better) if difference is not None else NO_VALUES
        if method in answers:
            claim = TRIVIAL
        elif claim == BETTER and beats is False:
            claim = BETTER_NOT_TRIVIAL
        unpaired = len(own) - (difference.n if difference is not None else 0)
        rows.append(PairedRow(method, interval, difference, claim, unpaired, versus, beats))
    return rows
