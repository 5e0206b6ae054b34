"""Interleaved timing: each variant once per round, in a rotating order.

Drift on a shared machine (another process, frequency changes) then hits all
variants alike, and each round yields paired ratios whose median is robust.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np


def interleaved(
    runs: Mapping[str, Callable[[], object]],
    budget_s: float,
    min_rounds: int = 7,
    max_rounds: int = 200,
) -> dict[str, np.ndarray]:
    names = list(runs)
    for run in runs.values():  # warm-up: allocator, thread pools, lazy initialisation
        for _ in range(2):
            run()
    start = time.perf_counter()
    for run in runs.values():
        run()
    per_round = time.perf_counter() - start
    rounds = int(min(max(budget_s / per_round, min_rounds), max_rounds))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            runs[name]()
            samples[name].append(time.perf_counter() - t0)
    return {name: np.array(values) for name, values in samples.items()}


def batch_by_dim(text: str) -> tuple[int, int]:
    """ "64x48" as (batch 64, d 48): the --sizes argument of the benchmarks."""
    batch, dim = text.lower().split("x")
    return int(batch), int(dim)


def ratio_summary(numerator: np.ndarray, denominator: np.ndarray) -> dict[str, float]:
    """Median, IQR and the 95% percentile-bootstrap interval of the median of the
    per-round paired ratios (bench_cli.verdicts.bootstrap_median, as compare uses)."""
    from bench_cli.verdicts import bootstrap_median

    ratios = numerator / denominator
    q25, q50, q75 = np.percentile(ratios, [25, 50, 75])
    low, high = bootstrap_median(ratios)
    return {"median": float(q50), "iqr": float(q75 - q25), "low": low, "high": high}
