"""Published results beside measured ones: joins a run's records with its suite's reference.

Published numbers come from the suite's ``reference:`` block and stay in their own
column; measured numbers come from the records. Each row gets a verdict:

- ``value``: a match when the measured value equals the published one at the
  published precision (half a unit in its last digit) or within ``tolerance``;
  ``rounding-dominated`` when both lie below ``rounding_floor``.
- ``bound``: the measured value must not exceed the entry's ``max``.
- ``speedup``: times are divided by the ``baseline`` method's time under the same
  other axes, here and in the source; the claim holds when both speed-ups lie on
  the same side of 1. Absolute times do not compare across machines.
- ``power_iterations``: the entry's published k against the count matbench's
  svd_pi gradient needs, ⌈log 0.05 / log x⌉ computed by the implementation,
  exact integers; the measured metric of that (x, k) case is shown beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench_cli.report import format_cell, metric_value
from bench_cli.spec import ReferenceSpec

RESERVED = {"value", "max", "ratio"}


def _matches(record: Mapping[str, Any], axes: Mapping[str, Any]) -> bool:
    return all(str(record["axes"].get(k)) == str(v) for k, v in axes.items())


def _measured(records, axes, path, scale: float = 1.0) -> float | str:
    found = [r for r in records if _matches(r, axes)]
    if not found:
        return "missing"
    value = metric_value(found[-1], path)
    return value * scale if isinstance(value, float) else value


def half_unit(published: str) -> float:
    """Half a unit in the last digit the source printed: '2e-4' -> 5e-5, '36' -> 0.5."""
    return 0.5 * 10.0 ** Decimal(published).as_tuple().exponent


def value_verdict(measured: float | str, published: str, ref: ReferenceSpec) -> str:
    if isinstance(measured, str):
        return measured
    target = float(published)
    if measured < ref.rounding_floor and target < ref.rounding_floor:
        return "rounding-dominated"
    if abs(measured - target) <= half_unit(published) or (
        target and abs(measured / target - 1) <= ref.tolerance
    ):
        return "matches"
    return f"differs ({measured / target:.3g}x)" if target else "differs"


def compare(records: Sequence[Mapping[str, Any]], ref: ReferenceSpec) -> pd.DataFrame:
    name, *path = ref.metric.split(".")
    chosen = [r for r in records if r["metric"] == name]
    rows = []
    for entry in ref.entries:
        axes = {k: v for k, v in entry.items() if k not in RESERVED}
        measured = _measured(chosen, axes, path, ref.measured_scale)
        row: dict[str, Any] = {**axes}
        if ref.compare == "bound":
            row.update(bound=f"<= {entry['max']:g}", measured=measured)
            row["verdict"] = (
                measured
                if isinstance(measured, str)
                else "within bound"
                if measured <= entry["max"]
                else "exceeds"
            )
        elif ref.compare == "power_iterations":
            from bench_cli.layers.approx import power_iterations_needed

            published = str(entry["value"])
            count = power_iterations_needed(float(entry["ratio"]))
            row.update(published=published, computed=count, measured=measured)
            row["verdict"] = "matches" if count == int(published) else "differs"
        elif ref.compare == "speedup":
            published = str(entry["value"])
            base_axes = {**axes, "method": ref.baseline}
            base_entry = next(
                e for e in ref.entries if all(str(e.get(k)) == str(v) for k, v in base_axes.items())
            )
            base_measured = _measured(chosen, base_axes, path, ref.measured_scale)
            published_speedup = float(base_entry["value"]) / float(published)
            row.update(published=published, measured=measured, published_speedup=published_speedup)
            if isinstance(measured, str) or isinstance(base_measured, str):
                row["measured_speedup"], row["verdict"] = "n/a", str(measured)
            else:
                speedup = base_measured / measured
                row["measured_speedup"] = speedup
                same_side = (speedup > 1) == (published_speedup > 1) or published_speedup == 1
                row["verdict"] = (
                    "baseline"
                    if axes.get("method") == ref.baseline
                    else ("holds here" if same_side else "reversed here")
                )
        else:
            published = str(entry["value"])
            target = float(published)
            ratio = measured / target if isinstance(measured, float) and target else "n/a"
            row.update(published=published, measured=measured, ratio=ratio)
            row["verdict"] = value_verdict(measured, published, ref)
        rows.append(row)
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> str:
    verdicts = list(frame["verdict"])
    good = sum(
        v in ("matches", "rounding-dominated", "within bound", "holds here", "baseline")
        for v in verdicts
    )
    return f"{good} of {len(verdicts)} rows reproduce ({', '.join(sorted(set(verdicts)))})"


def render(frame: pd.DataFrame, ref: ReferenceSpec, unit: str = "") -> str:
    """Markdown: the source, then published and measured side by side."""
    shown = frame.copy()
    for column in ("measured",):
        if column in shown:
            shown[column] = [
                v if isinstance(v, str) else format_cell(v, "", 1.0) for v in shown[column]
            ]
    if "ratio" in shown:
        shown["ratio"] = [v if isinstance(v, str) else f"{v:.3g}" for v in shown["ratio"]]
    for column in ("published_speedup", "measured_speedup"):
        if column in shown:
            shown[column] = [v if isinstance(v, str) else f"{v:.2f}x" for v in shown[column]]
    head = f"**{ref.citation}**, {ref.source}"
    if ref.hardware:
        head += f" (published on {ref.hardware})"
    body = tabulate(
        shown.values.tolist(), headers=list(shown.columns), tablefmt="github", disable_numparse=True
    )
    note = f"\n\n{ref.note}" if ref.note else ""
    return f"{head}\n\n{body}\n\nVerdict: {summary(frame)}.{note}\n"
