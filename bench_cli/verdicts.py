"""The verdict rules of a comparison, apart from the rows they judge: bootstrap
intervals of a median and of a median ratio, the time verdict (faster, slower, ~, ?)
against min_effect, the interval and the noise floor, and the accuracy verdict with
its rounding level per metric and dtype. No torch; compare, pareto and advise use them."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench_cli.metrics import noise

INCONCLUSIVE = "?"


# The percentile bootstrap of a median, by ranks: a resample's median is a function of
# which ranks of the sorted samples it drew (the middle one, or the two middle ones, of
# the drawn ranks), whatever the values. So the drawn ranks are made once per sample
# count and seed (rounds x n integers, sorted), and each row's resampled medians are two
# look-ups into its sorted samples: the same distribution as resampling the values,
# without sorting rounds x n values per row (compare on 50,000 records).


@functools.lru_cache(maxsize=64)
def _middle_ranks(n: int, rounds: int, seed: int, draw: int) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper middle ranks of ``rounds`` resamples of n ranks, drawn from
    ``seed`` (``draw`` > 0: the draws that follow, for a second side)."""
    rng = np.random.default_rng(seed)
    for _ in range(draw):
        rng.integers(0, n, size=(rounds, n))
    ranks = np.sort(rng.integers(0, n, size=(rounds, n)), axis=1)
    return ranks[:, (n - 1) // 2], ranks[:, n // 2]


def _resampled_medians(values: np.ndarray, rounds: int, seed: int, draw: int) -> np.ndarray:
    """(rows, rounds) bootstrap medians of each row of ``values`` (rows, n)."""
    ordered = np.sort(np.asarray(values, dtype=float), axis=-1)
    low, high = _middle_ranks(ordered.shape[-1], rounds, seed, draw)
    return (ordered[..., low] + ordered[..., high]) / 2


def bootstrap_median_ratio(
    a: np.ndarray, b: np.ndarray, *, rounds: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(b)/median(a), resampling each side."""
    return bootstrap_median_ratios([(a, b)], rounds=rounds, confidence=confidence, seed=seed)[0]


def bootstrap_median_ratios(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], *, rounds: int = 2000,
    confidence: float = 0.95, seed: int = 0,
) -> list[tuple[float, float]]:  # fmt: skip
    """:func:`bootstrap_median_ratio` of many (a, b) pairs at once, each as one call
    gives it: pairs of equal sample counts are stacked and resampled together."""
    out: list[tuple[float, float]] = [(math.nan, math.nan)] * len(pairs)
    shapes: dict[tuple[int, int], list[int]] = {}
    for i, (a, b) in enumerate(pairs):
        shapes.setdefault((len(a), len(b)), []).append(i)
    tail = (1 - confidence) / 2 * 100
    for rows in shapes.values():
        for start in range(0, len(rows), 1000):  # 1000 rows: 2 x 16 MB of medians
            chunk = rows[start : start + 1000]
            ma = _resampled_medians(np.stack([pairs[i][0] for i in chunk]), rounds, seed, 0)
            mb = _resampled_medians(np.stack([pairs[i][1] for i in chunk]), rounds, seed, 1)
            low, high = np.percentile(mb / ma, [tail, 100 - tail], axis=1)
            for i, lo, hi in zip(chunk, low, high, strict=True):
                out[i] = (float(lo), float(hi))
    return out


def bootstrap_median(
    values: np.ndarray, *, rounds: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(values) (e.g. paired per-round ratios)."""
    medians = _resampled_medians(np.asarray(values, dtype=float)[None, :], rounds, seed, 0)[0]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(low), float(high)


def _time_verdict(
    ratio: float, low: float, high: float, min_effect: float, floor: float = 0.0,
    noisy: bool = False,
) -> str:  # fmt: skip
    """One rule for noise: ``?`` whenever a record was flagged noisy, whatever the ratio;
    ``~`` when the change is under min_effect; ``?`` when a larger change is not
    established (its interval includes 1, or it lies within the noise floor); else
    faster or slower."""
    if noisy:
        return INCONCLUSIVE
    if abs(ratio - 1) < min_effect:
        return "~"
    if low <= 1 <= high or abs(ratio - 1) < floor:
        return INCONCLUSIVE
    return "slower" if ratio > 1 else "faster"


def _open_why(ratio: float, low: float, high: float, floor: float) -> str:
    """Why a change beyond min_effect from two quiet records is still ``?``."""
    if low <= 1 <= high:
        return f"{ratio:.3g}x, but the 95% interval includes 1"
    return f"within the noise floor ±{floor:.0%}"


# Accuracy: a change of a relative error (‖reference‖ = 1) smaller than its rounding
# level in the case's dtype is rounding, not a change of method. Rounding in a d × d
# eigendecomposition-based function grows like d·eps (times the conditioning), so a
# forward or gradient error moves by a few d·eps between two builds or CPUs: 100 eps
# (2.2e-14 in float64, 1.2e-5 in float32) covers d up to about 100 at modest condition.
# fd_check's minimum is a central difference's own floor, about eps^(2/3) (truncation h²
# balanced against rounding eps/h): 100 eps^(2/3), 3.7e-9 in float64, 2.4e-3 in float32.
# Two torch builds that differ by 3e-16 in a float64 error have not made a method better.
ROUNDING_MULTIPLE = 100


ROUNDING_POWER = {"forward_error": 1.0, "grad_error": 1.0, "fd_check": 2.0 / 3.0}


_EPS = {
    "float64": float(np.finfo(np.float64).eps),
    "float32": float(np.finfo(np.float32).eps),
    "float16": float(np.finfo(np.float16).eps),
    "bfloat16": 2.0**-7,
}


def rounding_level(metric: str, dtype: str) -> float | None:
    """The smallest change of a relative error that counts, for a metric and a dtype; None
    where there is none (abs_error records no reference scale; an unknown dtype)."""
    eps, power = _EPS.get(str(dtype)), ROUNDING_POWER.get(metric)
    return None if eps is None or power is None else ROUNDING_MULTIPLE * eps**power


def _accuracy_verdict(metric: str, va: float, vb: float, dtype: str, min_effect: float) -> str:
    """better/worse/~ for an error (changed/~ for the stability norms): ``~`` under
    min_effect, and for a relative error also under its :func:`rounding_level`."""
    ratio = vb / va if va else (1.0 if vb == va else math.inf)
    level = rounding_level(metric, dtype)
    if abs(ratio - 1) < min_effect or (level is not None and abs(vb - va) < level):
        return "~"
    if metric == "stability":  # a norm, not an error: no better or worse
        return "changed"
    return "worse" if ratio > 1 else "better"


def _dispersion(samples: np.ndarray) -> float:
    return noise.iqr_over_median(list(samples)) or 0.0


def _noise_why(va: Any, vb: Any, paired: bool = False) -> str:
    """The first reason either side is noisy, named by side ("" when neither is)."""
    for side, value in (("A", va), ("B", vb)):
        reasons = noise.paired_reasons(value) if paired else noise.reasons_of(value)
        if (paired or noise.is_noisy(value)) and reasons:
            return f"{side} noisy ({reasons[0]})"
    return ""
