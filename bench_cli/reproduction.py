"""Published results beside measured ones: joins a run's records with its suite's reference.

Published numbers come from the suite's ``reference:`` block and stay in their own
column; measured numbers come from the records. Every verdict reads the
measured value, and every row is one of three outcomes:

- ``reproduces`` (evidence for the published result),
- ``fails`` (evidence against it, or nothing measured),
- ``not evidence``: the row cannot speak for or against the source (the
  baseline of a speed-up, a value set by rounding on both sides, a value that
  is exact by construction of our implementation). Such rows are still
  checked, so that a wrong measurement fails them, but never counted as
  support.

Verdicts by ``compare``:

- ``value``: ``matches`` when the measured value equals the published one at
  the published precision (half a unit in its last digit) or within
  ``tolerance``. Where the published value lies below ``rounding_floor``, the
  measured one must be a non-negative magnitude below that floor too
  (``rounding-dominated``). An entry with ``by_construction: <why>`` must
  measure a non-negative magnitude below the floor (``exact by
  construction``).
- ``bound``: the measured value must not exceed the entry's ``max``.
- ``speedup``: times are divided by the ``baseline`` method's time under the
  same other axes, here and in the source. ``holds`` when the measured
  speed-up is on the published side of 1 and within ``speedup_factor`` of
  the published one; ``direction holds, magnitude does not`` when only the
  side agrees; ``reversed`` otherwise. measured ÷ published is shown. When the
  method's or the baseline's timing was flagged noisy (bench_cli.metrics.noise),
  the row is ``inconclusive (noisy: <reason>)`` and not evidence either way.
- ``count``: a measured integer (e.g. the terms svd_pi needs, from the
  ``terms_needed`` metric) must equal the published one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench_cli.records import metric_value
from bench_cli.spec import ReferenceSpec
from bench_cli.tables import format_cell

RESERVED = {"value", "max", "ratio", "by_construction"}
REPRODUCES, FAILS, NOT_EVIDENCE = "reproduces", "fails", "not evidence"


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
    exponent = Decimal(published).as_tuple().exponent
    if not isinstance(exponent, int):  # 'n', 'N', 'F': NaN or infinity
        raise ValueError(f"published value {published!r} is not a finite number")
    return 0.5 * 10.0**exponent


def _under_floor(measured: float, floor: float) -> bool:
    """A valid magnitude set by rounding: finite, non-negative, below the floor."""
    return 0.0 <= measured < floor


def value_verdict(
    measured: float | str, published: str, ref: ReferenceSpec, by_construction: str | None = None
) -> tuple[str, str]:
    """(verdict, outcome) of one published value against the measured one."""
    if isinstance(measured, str):
        return measured, FAILS
    if not math.isfinite(measured):
        return "invalid: not finite", FAILS
    target = float(published)
    if by_construction:
        if _under_floor(measured, ref.rounding_floor):
            return "exact by construction", NOT_EVIDENCE
        return "differs (not exact, though exact by construction)", FAILS
    if target < ref.rounding_floor:
        if _under_floor(measured, ref.rounding_floor):
            return "rounding-dominated", NOT_EVIDENCE
        if measured < 0:
            return "invalid: a negative magnitude", FAILS
        return f"differs (above the {ref.rounding_floor:g} floor)", FAILS
    tolerance = ref.tolerance or 0.0  # validation requires it; old runs read as stated
    if abs(measured - target) <= half_unit(published) or (
        target and abs(measured / target - 1) <= tolerance
    ):
        return "matches", REPRODUCES
    return (f"differs ({measured / target:.3g}x)" if target else "differs"), FAILS


def _noise(records, axes, path) -> list[str] | None:
    """Why the timing a reference row reads was flagged noisy (None: it was not)."""
    from bench_cli.tables import noise_reasons

    found = [r for r in records if _matches(r, axes)]
    return noise_reasons(found[-1], path) if found else None


def speedup_verdict(measured: float, published: float, factor: float) -> tuple[str, str]:
    """A measured speed-up against the published one (both: baseline time / method time)."""
    ratio = measured / published
    same_side = (measured > 1) == (published > 1) and (measured == 1) == (published == 1)
    if same_side and 1 / factor <= ratio <= factor:
        return f"holds ({ratio:.2g}x of published)", REPRODUCES
    if same_side:
        return f"direction holds, magnitude does not ({ratio:.2g}x of published)", FAILS
    return f"reversed ({ratio:.2g}x of published)", FAILS


def verdicts(records: Sequence[Mapping[str, Any]], ref: ReferenceSpec) -> pd.DataFrame:
    """One row per published entry: published, measured, verdict and outcome."""
    name, *path = ref.metric.split(".")
    chosen = [r for r in records if r["metric"] == name]
    rows = []
    for entry in ref.entries:
        axes = {k: v for k, v in entry.items() if k not in RESERVED}
        measured = _measured(chosen, axes, path, ref.measured_scale)
        row: dict[str, Any] = {**axes}
        if ref.compare == "bound":
            row.update(bound=f"<= {entry['max']:g}", measured=measured)
            if isinstance(measured, str):
                verdict = (measured, FAILS)
            elif math.isfinite(measured) and measured <= entry["max"]:
                verdict = ("within bound", REPRODUCES)
            else:
                verdict = ("exceeds", FAILS)
        elif ref.compare == "count":
            published = str(entry["value"])
            row.update(published=published, measured=measured)
            if isinstance(measured, str):
                verdict = (measured, FAILS)
            elif measured == int(published):
                verdict = ("matches", REPRODUCES)
            else:
                verdict = (f"differs by {measured - int(published):+g}", FAILS)
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
                row["measured_speedup"] = "n/a"
                verdict = (str(measured if isinstance(measured, str) else base_measured), FAILS)
            else:
                row["measured_speedup"] = base_measured / measured
                noisy = _noise(chosen, axes, path) or _noise(chosen, base_axes, path)
                if axes.get("method") == ref.baseline:
                    verdict = ("baseline", NOT_EVIDENCE)
                elif noisy:
                    verdict = (f"inconclusive (noisy: {noisy[0]})", NOT_EVIDENCE)
                else:
                    verdict = speedup_verdict(
                        row["measured_speedup"], published_speedup, ref.speedup_factor
                    )
        else:
            published = str(entry["value"])
            target = float(published)
            ratio = measured / target if isinstance(measured, float) and target else "n/a"
            row.update(published=published, measured=measured, ratio=ratio)
            verdict = value_verdict(measured, published, ref, entry.get("by_construction"))
        row["verdict"], row["outcome"] = verdict
        rows.append(row)
    return pd.DataFrame(rows)


_RESULT_COLUMNS = {
    "published",
    "measured",
    "ratio",
    "bound",
    "published_speedup",
    "measured_speedup",
    "verdict",
    "outcome",
}


def failing_rows(frame: pd.DataFrame) -> list[str]:
    """'axis=value, ...: verdict' for every row whose outcome is ``fails``."""
    axes = [c for c in frame.columns if c not in _RESULT_COLUMNS]
    return [
        ", ".join(f"{a}={row[a]}" for a in axes) + f": {row['verdict']}"
        for _, row in frame.iterrows()
        if row["outcome"] == FAILS
    ]


def counts(frame: pd.DataFrame) -> dict[str, int]:
    """How many rows reproduce, fail, and are not evidence."""
    outcomes = list(frame["outcome"])
    return {o: outcomes.count(o) for o in (REPRODUCES, FAILS, NOT_EVIDENCE)}


# What a whole reproduction says, for `reproduce --check` (exit 0, 1 and 3).
REPRODUCED, NOT_REPRODUCED, UNTESTED = "reproduced", "not reproduced", "untested"


def overall(frame: pd.DataFrame) -> str:
    """``reproduced`` only when at least one row was tested and every tested row
    reproduces; ``not reproduced`` when any row fails; ``untested`` when no row could
    speak either way (every row inconclusive or not evidence): nothing was shown."""
    n = counts(frame)
    if n[FAILS]:
        return NOT_REPRODUCED
    return REPRODUCED if n[REPRODUCES] else UNTESTED


def untested_reason(frame: pd.DataFrame) -> str:
    """Why nothing was tested: the verdicts of the rows, counted."""
    verdicts = [
        "inconclusive (noisy)" if v.startswith("inconclusive (noisy") else v.split(" (")[0]
        for v in frame["verdict"]
    ]
    kinds = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
    return ", ".join(f"{count} {kind}" for kind, count in kinds.items())


def summary(frame: pd.DataFrame) -> str:
    """One sentence, computed from the rows: what reproduces, what fails, what is no evidence."""
    n = counts(frame)
    tested = n[REPRODUCES] + n[FAILS]
    if not tested:
        return f"nothing could be tested ({untested_reason(frame)} of {len(frame)} rows)"
    text = f"{n[REPRODUCES]} of {tested} tested rows reproduce"
    if n[NOT_EVIDENCE]:
        pairs = zip(frame["verdict"], frame["outcome"], strict=True)
        kinds = sorted({verdict for verdict, outcome in pairs if outcome == NOT_EVIDENCE})
        text += f"; {n[NOT_EVIDENCE]} more are not evidence ({', '.join(kinds)})"
    return text


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
