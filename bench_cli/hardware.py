"""One suite across every machine on record: a column per machine, each later machine's
time as a ratio to the first's with its interval and compare's verdict.

The rows are compare's (bench_cli.compare): the same cases, the same bootstrap intervals
of the time ratio, the same ``?`` for noisy or inconclusive changes, and with a
``baseline`` method each machine's times divided by that method's on the same machine
first (speed-ups, not raw times). A machine is named by what decides its speed: the
CPU or GPU model, the core count, the torch build and the BLAS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench_cli import compare as compare_mod
from bench_cli.errors import UserError
from bench_cli.store import RunFolder


def machine_name(env: Mapping[str, Any]) -> str:
    """ "AMD EPYC 7B13, 2 cores, torch 2.13.0+cpu, mkl": what a reader needs to tell
    two machines apart; a GPU run names its GPU first."""
    gpus = env.get("gpus") or []
    parts = []
    if gpus:
        first = gpus[0]
        parts.append(first.get("name", "GPU") if isinstance(first, Mapping) else str(first))
    parts.append(str(env.get("cpu_model") or "unknown CPU"))
    if env.get("cpu_count"):
        parts.append(f"{env['cpu_count']} cores")
    parts.append(f"torch {env.get('torch', '?')}")
    blas = str(env.get("blas_lapack") or "").split(" (")[0]
    if blas:
        parts.append(blas)
    return ", ".join(parts)


@dataclass
class AcrossMachines:
    """The table: one row per timed case, one column per machine."""

    machines: list[str]  # column titles, the first the reference
    frame: pd.DataFrame
    mode: str
    baseline: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def legend(self) -> str:
        what = f"time relative to {self.baseline} on the same machine" if self.baseline else "time"
        return (
            f"{self.mode}: the first machine's {what}; on every other, its {what} as a ratio "
            "to the first's (× > 1: slower), the 95% bootstrap interval of that ratio, and "
            "compare's verdict (faster, slower, ~ under the minimum effect, ? not established)"
        )


def across_machines(
    folders: Sequence[RunFolder],
    *,
    baseline: str | None = None,
    mode: str = "fwd_bwd",
    min_effect: float = 0.05,
) -> AcrossMachines:
    """Every folder's timing rows against the first's, pivoted to a column per machine."""
    if len(folders) < 2:
        raise UserError(
            f"a table across machines needs runs from at least two; found {len(folders)}"
        )
    comparisons = compare_mod.compare_many(
        folders, min_effect=min_effect, mode=mode, baseline=baseline
    )
    names = _unique([machine_name(f.env) for f in folders])
    cells: dict[tuple[str, str], dict[str, str]] = {}
    notes: list[str] = []
    for name, comparison in zip(names[1:], comparisons, strict=True):
        for row in comparison.rows:
            if not row.metric.startswith("time"):
                continue
            relative = bool(row.note.startswith("relative"))
            cell = cells.setdefault((row.label, row.method), {})
            cell[names[0]] = compare_mod.format_value(row.a, row.metric, relative)
            cell[name] = _ratio_cell(row)
        if comparison.only_a or comparison.only_b:
            notes.append(
                f"{name}: {len(comparison.only_a)} case(s) only on {names[0]}, "
                f"{len(comparison.only_b)} only on it"
            )
    index = pd.MultiIndex.from_tuples(list(cells), names=["case", "method"])
    frame = pd.DataFrame(list(cells.values()), index=index, columns=names)
    return AcrossMachines(names, frame.fillna("—"), mode, baseline, notes)


def _ratio_cell(row: compare_mod.Row) -> str:
    if row.ratio is None:
        return f"{compare_mod.format_value(row.b, row.metric, False)} ({row.verdict})"
    interval = f" [{row.low:.2f}, {row.high:.2f}]" if row.low is not None else ""
    return f"{row.ratio:.2f}×{interval} {row.verdict}"


def _unique(names: list[str]) -> list[str]:
    """Two runs on one machine model stay two columns: the later ones numbered."""
    out: list[str] = []
    for name in names:
        shown, n = name, 2
        while shown in out:
            shown, n = f"{name} ({n})", n + 1
        out.append(shown)
    return out
