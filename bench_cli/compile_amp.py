"""What compile and autocast do to each method, read from a run's records: when compile
pays (its break-even number of calls) and, inside mixed-precision training, which
methods stay accurate, which run at the low dtype's precision, which lose accuracy
beyond it and which raise.

Both are verdicts, so both can fail: compile "pays" only where the 95% interval of the
compiled/eager ratio lies below 1; an autocast verdict compares the method's error under
autocast with its own error without it and with the autocast dtype's unit roundoff.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench_cli.records import metric_value
from bench_cli.verdicts import bootstrap_median

# ---------------------------------------------------------------- compile


@dataclass(frozen=True)
class BreakEven:
    """One method and input setting: compiled/eager, and when compiling pays."""

    method: str
    inputs: str
    mode: str  # the compile mode
    ratio: float  # median per-round compiled/eager time
    low: float
    high: float
    first_call_s: float  # the compiled first call (compile included)
    eager_first_call_s: float
    eager_s: float  # eager median time per call
    calls: int | None  # calls after which compiling has paid; None: it never does

    @property
    def verdict(self) -> str:
        if self.calls is not None:
            return f"pays after {self.calls:,} calls"
        if self.low > 1:
            return "never pays: compiled is slower"
        return "never pays: no speed-up established"


def break_even(records: Sequence[Mapping[str, Any]], mode: str = "fwd_bwd") -> list[BreakEven]:
    """Every compiled case of a compile run against its eager version. The calls that pay
    for compiling: (first compiled call − first eager call) / (eager time × (1 − ratio)),
    only where the interval of the ratio lies below 1."""
    timed = [r for r in records if r["metric"] == "time" and r["status"] == "ok"]
    eager = {_setting(r): r for r in timed if r["axes"].get("compile") == "eager"}
    out = []
    for record in timed:
        compile_mode = record["axes"].get("compile")
        base = eager.get(_setting(record))
        if compile_mode in (None, "eager") or base is None:
            continue
        ratios = [x for x in record["value"][mode].get("paired", {}).get("ratios", []) if x]
        if len(ratios) < 3:
            continue
        ratio = float(np.median(ratios))
        low, high = bootstrap_median(np.asarray(ratios, dtype=float))
        first = float(record["value"]["compile"]["first_call_s"])
        eager_first = float(base["value"]["compile"]["first_call_s"])
        eager_s = float(metric_value(base, [mode, "median"]))
        calls = None
        if high < 1:
            calls = max(1, math.ceil((first - eager_first) / (eager_s * (1 - ratio))))
        out.append(
            BreakEven(
                record["axes"]["method"],
                _inputs(record),
                compile_mode,
                ratio,
                low,
                high,
                first,
                eager_first,
                eager_s,
                calls,
            )  # fmt: skip
        )
    return out


def _setting(record: Mapping[str, Any]) -> tuple:
    params = record["params"]
    return (record["axes"]["method"], _inputs(record), params.get("device"), params.get("dtype"))


def _inputs(record: Mapping[str, Any]) -> str:
    """The inputs as the suite gave them: "spd(batch=32, dim=64, condition=100.0)", from
    the case's label (spec.Case.label), whose defaults are not spelled out."""
    found = re.search(r"\w+\([^)]*\)", str(record.get("label", "")))
    if found:
        return found.group(0)
    inputs = record["params"]["inputs"]
    return ", ".join(f"{k}={v}" for k, v in inputs.items() if k != "kind")


# ---------------------------------------------------------------- autocast

UNIT_ROUNDOFF = {"bfloat16": 2.0**-8, "float16": 2.0**-11}
# An error under autocast within this factor of the method's own error without it is
# "unchanged": the method's approximation error, not the dtype, decides it.
UNCHANGED_FACTOR = 2.0
# Within this many unit roundoffs of the autocast dtype: a chosen threshold, of the order
# of what a few dozen products lose to rounding alone (docs/hardware.md says so).
PRECISION_UNITS = 10.0

RAISES, UNCHANGED, AT_PRECISION, LOSES = (
    "raises", "unchanged", "at the dtype's precision", "loses accuracy",
)  # fmt: skip


@dataclass(frozen=True)
class AmpVerdict:
    method: str
    autocast: str
    verdict: str
    forward: tuple[float | str, float | str]  # error without autocast, with it
    grad: tuple[float | str, float | str]
    products: str  # the dtype the forward's products ran in
    decompositions: str
    why: str = ""


def autocast_verdicts(records: Sequence[Mapping[str, Any]]) -> list[AmpVerdict]:
    """One verdict per method and autocast dtype of an autocast run."""
    latest = {(r["case"], r["metric"]): r for r in records}
    by: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for r in latest.values():
        by[(r["axes"]["method"], str(r["axes"].get("autocast")), r["metric"])] = r
    methods = list(dict.fromkeys(m for m, _, _ in by))
    dtypes = [d for d in dict.fromkeys(a for _, a, _ in by) if d in UNIT_ROUNDOFF]
    out = []
    for method in methods:
        for dtype in dtypes:
            errors: dict[str, tuple[float | str, float | str]] = {
                metric: (
                    _value(by.get((method, "none", metric))),
                    _value(by.get((method, dtype, metric))),
                )
                for metric in ("forward_error", "grad_error")
            }
            dtypes_record = by.get((method, dtype, "op_dtypes"))
            value = (
                dtypes_record["value"] if dtypes_record and dtypes_record["status"] == "ok" else {}
            )
            verdict, why = _amp_verdict(errors, value, UNIT_ROUNDOFF[dtype])
            out.append(
                AmpVerdict(
                    method,
                    dtype,
                    verdict,
                    errors["forward_error"],
                    errors["grad_error"],
                    (value.get("fwd") or {}).get("products", "?"),
                    (value.get("fwd") or {}).get("decompositions", "?"),
                    why,
                )  # fmt: skip
            )
    return out


def _value(record: Mapping[str, Any] | None) -> float | str:
    if record is None:
        return "absent"
    return metric_value(record, [])


def _amp_verdict(errors: Mapping[str, tuple], dtypes: Mapping[str, Any], unit: float):
    bwd = dtypes.get("bwd") or {}
    if bwd.get("products") == "raised":
        return RAISES, f"backward: {bwd.get('error', '')}"
    for metric, (_, low) in errors.items():
        if isinstance(low, str):
            return RAISES, f"{metric}: {low}"
    worst = UNCHANGED
    for metric, (full, low) in errors.items():
        if isinstance(full, str):
            continue
        if low <= UNCHANGED_FACTOR * full:
            continue
        if low <= PRECISION_UNITS * unit:
            worst = AT_PRECISION if worst == UNCHANGED else worst
            continue
        return LOSES, f"{metric} {low:.2e} against {full:.2e} without autocast"
    return worst, ""


def autocast_summary(verdicts: Sequence[AmpVerdict]) -> str:
    """The answer in sentences, one per verdict, from the verdicts themselves."""
    lines = []
    for verdict in (RAISES, LOSES, AT_PRECISION, UNCHANGED):
        found = [f"`{v.method}` ({v.autocast})" for v in verdicts if v.verdict == verdict]
        if found:
            lines.append(f"- **{verdict}**: {', '.join(found)}.")
    methods = {v.method for v in verdicts}
    upcast = sorted(
        m for m in methods
        if all(v.decompositions == "float32" for v in verdicts if v.method == m)
    )  # fmt: skip
    if upcast:
        lines.append(
            "- **Upcast without a word**: the decompositions of "
            + ", ".join(f"`{m}`" for m in upcast)
            + " ran in float32 under every autocast dtype (autocast's float32 list), "
            "while their matrix products ran in the low dtype."
        )
    return "\n".join(lines) + "\n" if lines else ""
