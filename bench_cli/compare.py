"""Compare runs across machines and versions, from their records alone.

Runs align by case *excluding the device* (a CPU laptop and a GPU server run
the same suite with ``device: auto``). Every later run is compared with the
first, A:

- **timings**: the ratio median(B)/median(A) of a timing mode, with a bootstrap
  confidence interval of that median ratio from the raw samples. The verdict
  is ``faster`` or ``slower`` only when the interval excludes 1, the change is at
  least ``min_effect`` (default 5%) *and* it exceeds the noise floor (the larger
  IQR/median of the two records); ``~`` when the interval includes 1 or the
  change is under ``min_effect``; ``?`` (inconclusive) when the change lies within
  the noise floor or either record was flagged noisy (bench_cli.metrics.noise),
  since a loaded machine shifts raw times by an unknown factor, and when one
  record was timed interleaved with other methods and the other alone (a
  suite with and without ``baseline:``): between two quiet runs that alone
  moved eig_dk's time 1.7x.
- **paired ratios**: records of a suite with a ``baseline:`` carry per-round
  ratios to it, measured interleaved on the same machine at the same moments;
  a second row compares those (``time.<mode>.ratio_to_baseline``). Drift
  within a run cancels in them, so their floor is only their own dispersion.
  Load does not cancel: methods slow down by different factors under it (a
  ratio moved 2.9x between a quiet and a loaded run of throughput.yaml on 2
  cores), so a paired row with a load, steal or sample-count reason on either
  side is ``?`` too.
- **speed-up view** (``baseline``): each run's times are first divided by the
  baseline method's median under the same other axes in that same run, so
  machines compare by speed-ups, not raw times.
- **accuracy and stability**: the difference B − A and the ratio; a changed
  status (say ``ok`` -> ``nonfinite``) is called out first.
- **summary**: the geometric mean of the time ratios per method, and the cases
  present in one run only.
- **machines**: a record names the machine that measured it (``machine_key``,
  set by executor runs whose nodes differ; otherwise the run's). The speed-up view
  divides only by a baseline measured on the same machine, and a run measured on
  several machines lists them and names the machines on each timing row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench_cli.errors import UserError
from bench_cli.metrics import noise
from bench_cli.records import metric_value
from bench_cli.store import RunFolder
from bench_cli.tables import format_cell, format_number
from bench_cli.verdicts import (
    INCONCLUSIVE,
    _accuracy_verdict,
    _dispersion,
    _noise_why,
    _open_why,
    _time_verdict,
    bootstrap_median_ratios,
)

ACCURACY_VIEWS = {
    "forward_error": [],
    "abs_error": [],
    "grad_error": [],
    "fd_check": ["min"],
    "stability": ["grad_norm"],
}


def alignment_key(record: Mapping[str, Any], axes_keys: set[str] | None = None) -> str:
    """The case without its device, from its resolved axes (restricted to ``axes_keys``,
    the axes both runs know): runs written before and after case keys hashed resolved
    options, or before a new parameter with a default existed, align alike."""
    params = record["params"]
    axes = {
        k: v
        for k, v in record["axes"].items()
        if k != "device" and (axes_keys is None or k in axes_keys)
    }
    return json.dumps(
        # A --quick run of a suite aligns with a full run where their cases coincide.
        {
            "suite": str(params.get("suite")).removesuffix("-quick"),
            "seed": params.get("seed"),
            "axes": axes,
        },  # fmt: skip
        sort_keys=True,
        default=str,
    )


@dataclass
class Row:
    """One compared (case, metric): the values of A and B, their ratio and verdict."""

    label: str  # the case, readable
    method: str
    metric: str
    a: float | str
    b: float | str
    ratio: float | None
    low: float | None = None
    high: float | None = None
    verdict: str = "~"
    note: str = ""


@dataclass
class Comparison:
    """Run B against run A: rows, the cases only in one, geometric means per method."""

    a: str
    b: str
    rows: list[Row] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    geomean: dict[str, float] = field(default_factory=dict)
    geomean_rows: dict[str, int] = field(default_factory=dict)  # conclusive rows per method
    mode: str = "fwd_bwd"
    baseline: str | None = None
    machines_a: dict[str, int] = field(default_factory=dict)  # machine key: records
    machines_b: dict[str, int] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        """What follows the table: the geometric means over conclusive timing rows, how
        many rows are open, the machines of a run measured on several, the unshared cases."""
        means = ", ".join(
            f"{m} {g:.3f} ({self.geomean_rows.get(m, 0)} rows)" for m, g in self.geomean.items()
        )
        lines = [
            f"geometric mean of time ratios B/A ({self.mode}"
            + (f", relative to {self.baseline}" if self.baseline else "")
            + "): "
            + (means or "none: no timing row is conclusive (the ? rows are left out)")
        ]
        open_rows = sum(row.verdict == "?" for row in self.rows)
        if open_rows:
            lines.append(
                f"{open_rows} row(s) inconclusive (?): a record was measured while the machine "
                "was noisy, or the change lies within the records' own spread"
            )
        for side, counts in (("A", self.machines_a), ("B", self.machines_b)):
            if len(counts) > 1:
                lines.append(
                    f"{side} was measured on {len(counts)} machines: "
                    + ", ".join(f"{k} ({n} records)" for k, n in sorted(counts.items()))
                )
        if self.only_a:
            lines.append(f"only in A ({len(self.only_a)}): " + "; ".join(self.only_a[:10]))
        if self.only_b:
            lines.append(f"only in B ({len(self.only_b)}): " + "; ".join(self.only_b[:10]))
        return lines


def _timing_row(
    label: str, method: str, metric: str, sa: np.ndarray, sb: np.ndarray, *,
    min_effect: float, noisy: bool, note: str, why: str, pending: list[_Pending],
) -> Row:  # fmt: skip
    """A timing row, its interval and verdict settled later with every other row's
    (:func:`_settle`: one bootstrap over all rows, not one per row)."""
    ratio = float(np.median(sb) / np.median(sa))
    row = Row(
        label, method, metric, float(np.median(sa)), float(np.median(sb)), ratio,
        verdict=INCONCLUSIVE, note=note,
    )  # fmt: skip
    pending.append(_Pending(row, sa, sb, min_effect, noisy, why))
    return row


@dataclass
class _Pending:
    """A timing row waiting for its bootstrap interval."""

    row: Row
    sa: np.ndarray
    sb: np.ndarray
    min_effect: float
    noisy: bool
    why: str


def _settle(pending: Sequence[_Pending]) -> None:
    """Every pending timing row's interval (one vectorised bootstrap) and verdict."""
    intervals = bootstrap_median_ratios([(p.sa, p.sb) for p in pending])
    for p, (low, high) in zip(pending, intervals, strict=True):
        row, ratio = p.row, p.row.ratio or 0.0
        floor = max(_dispersion(p.sa), _dispersion(p.sb))
        row.low, row.high = low, high
        row.verdict = _time_verdict(ratio, low, high, p.min_effect, floor, p.noisy)
        if row.verdict == INCONCLUSIVE:
            reason = (
                (p.why or "a record was flagged noisy")
                if p.noisy
                else _open_why(ratio, low, high, floor)
            )
            row.note = f"{row.note}; {reason}" if row.note else reason


def _label(record: Mapping[str, Any]) -> str:
    inputs = record["params"]["inputs"]
    shown = ", ".join(f"{k}={v}" for k, v in inputs.items() if k != "kind")
    return f"{inputs['kind']}({shown}) {record['axes']['dtype']}"


def _common_axes(*runs: Sequence[Mapping[str, Any]]) -> set[str]:
    """The axis names every record of every run has."""
    names: set[str] | None = None
    for records in runs:
        for record in records:
            keys = set(record["axes"])
            names = keys if names is None else names & keys
    return names or set()


def _by_alignment(
    folder: RunFolder,
    records: Sequence[Mapping[str, Any]],
    device: str | None = None,
    axes_keys: set[str] | None = None,
) -> dict[tuple[str, str], Mapping[str, Any]]:
    out: dict[tuple[str, str], Mapping[str, Any]] = {}
    for record in records:
        if device is not None and record["axes"]["device"] != device:
            continue
        key = (alignment_key(record, axes_keys), record["metric"])
        if key in out and out[key]["axes"]["device"] != record["axes"]["device"]:
            raise UserError(
                f"{folder.path}: holds the same case on several devices; "
                "compare with --device to pick one"
            )
        out[key] = record
    return out


def measured_devices(records: Sequence[Mapping[str, Any]]) -> set[str]:
    """The devices a run measured on (skipped cases, e.g. cuda without a GPU, left out)."""
    return {str(r["axes"]["device"]) for r in records if r["status"] != "skipped"}


def pick_devices(
    a: RunFolder, records_a, b: RunFolder, records_b, device: str | None
) -> tuple[str | None, str | None]:
    """The device each side is read on. ``--device`` names it for both; without it, a run
    that measured on one device is read there, and a run that measured on several is
    read on the other run's one device (a user's CPU run against the committed smoke run,
    which also holds skipped cuda cases); two runs of several devices need ``--device``."""
    if device is not None:
        return device, device
    on_a, on_b = measured_devices(records_a), measured_devices(records_b)
    one_a = next(iter(on_a)) if len(on_a) == 1 else None
    one_b = next(iter(on_b)) if len(on_b) == 1 else None
    if len(on_a) <= 1 and len(on_b) <= 1:
        return one_a, one_b  # one device each: they align whatever their names
    if one_a is not None and one_a in on_b:
        return one_a, one_a
    if one_b is not None and one_b in on_a:
        return one_b, one_b
    raise UserError(
        f"{a.path} measured on {', '.join(sorted(on_a))} and {b.path} on "
        f"{', '.join(sorted(on_b))}: compare with --device to pick one"
    )


def _baseline_medians(records, baseline: str, mode: str) -> dict[str, float]:
    """Median time of the baseline method per alignment key with the method left out."""
    out = {}
    for (_, metric), record in records.items():
        if metric == "time" and record["axes"]["method"] == baseline and record["status"] == "ok":
            out[_without_method(record)] = float(np.median(record["value"][mode]["samples"]))
    return out


def _without_method(record) -> str:
    params = {
        k: v
        for k, v in record["params"].items()
        if k not in ("device", "method", "layer", "impl", "options")
    }
    # A baseline measured on another node of the same run is no baseline: same machine only.
    params["machine_key"] = record.get("machine_key")
    return json.dumps(params, sort_keys=True, default=str)


def _paired_ratios(va: Any, vb: Any) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Both sides' per-round ratios when both were paired with the same baseline."""
    pa, pb = va.get("paired"), vb.get("paired")
    if not isinstance(pa, dict) or not isinstance(pb, dict):
        return None
    if pa.get("baseline") != pb.get("baseline") or not isinstance(pa.get("baseline"), str):
        return None
    ra, rb = noise.ratios_of(va), noise.ratios_of(vb)
    if not ra or not rb:
        return None
    return np.asarray(ra), np.asarray(rb), pa["baseline"]


def machine_of(record: Mapping[str, Any], meta: Mapping[str, Any]) -> str | None:
    """The machine that measured a record: its own ``machine_key`` (executor runs), else
    the run's."""
    return record.get("machine_key") or meta.get("machine_key")


def machines(records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> dict[str, int]:
    """How many records each machine measured."""
    out: dict[str, int] = {}
    for record in records:
        key = str(machine_of(record, meta))
        out[key] = out.get(key, 0) + 1
    return out


def compare_runs(
    a: RunFolder,
    b: RunFolder,
    *,
    min_effect: float = 0.05,
    mode: str = "fwd_bwd",
    baseline: str | None = None,
    device: str | None = None,
) -> Comparison:
    """Compare run B with run A case by case (see the module docstring)."""
    meta_a, meta_b = a.meta, b.meta
    suite_a, suite_b = (m["suite"].removesuffix("-quick") for m in (meta_a, meta_b))
    if suite_a != suite_b:
        raise UserError(
            f"{a.path} and {b.path} are runs of different suites "
            f"('{meta_a['suite']}' and '{meta_b['suite']}')"
        )
    # Filter by device first: a folder may hold the same case on several devices.
    all_a, all_b = a.records(), b.records()  # read once
    common = _common_axes(all_a, all_b)
    device_a, device_b = pick_devices(a, all_a, b, all_b, device)
    records_a = _by_alignment(a, all_a, device_a, common)
    records_b = _by_alignment(b, all_b, device_b, common)
    shared = sorted(set(records_a) & set(records_b), key=lambda k: (k[1], k[0]))
    if not shared:
        raise UserError(
            f"{a.path} and {b.path} share no cases" + (f" on device {device}" if device else "")
        )
    result = Comparison(str(a.path), str(b.path), mode=mode, baseline=baseline)
    result.machines_a, result.machines_b = machines(all_a, meta_a), machines(all_b, meta_b)
    several = len(result.machines_a) > 1 or len(result.machines_b) > 1
    result.only_a = sorted(
        {
            _label(records_a[k]) + " " + records_a[k]["axes"]["method"]
            for k in set(records_a) - set(records_b)
        }
    )
    result.only_b = sorted(
        {
            _label(records_b[k]) + " " + records_b[k]["axes"]["method"]
            for k in set(records_b) - set(records_a)
        }
    )
    base_a = _baseline_medians(records_a, baseline, mode) if baseline else {}
    base_b = _baseline_medians(records_b, baseline, mode) if baseline else {}
    if baseline and not base_a:
        raise UserError(f"--baseline: no timings of method '{baseline}' in {a.path}")
    timing = _Timing(mode, baseline, base_a, base_b, meta_a, meta_b, several, min_effect, [])
    first_rows: list[Row] = []  # each case's first timing row: the geometric means' input
    for key in shared:
        ra, rb = records_a[key], records_b[key]
        method, metric = ra["axes"]["method"], key[1]
        label = _label(ra)
        if ra["status"] != "ok" or rb["status"] != "ok":
            verdict = "~" if ra["status"] == rb["status"] else f"{ra['status']} -> {rb['status']}"
            result.rows.append(
                Row(label, method, metric, ra["status"], rb["status"], None, verdict=verdict)
            )
            continue
        if metric == "time":
            rows = _time_rows(ra, rb, label, method, timing)
            result.rows += rows
            first_rows += rows[:1]
        elif metric in ACCURACY_VIEWS:
            result.rows.append(_accuracy_row(ra, rb, label, method, metric, min_effect))
    _settle(timing.pending)
    log_ratios: dict[str, list[float]] = {}
    for row in first_rows:
        if row.verdict != INCONCLUSIVE:  # noise must not read as a speed-up
            log_ratios.setdefault(row.method, []).append(math.log(row.ratio or 1.0))
    result.geomean = {m: math.exp(sum(v) / len(v)) for m, v in log_ratios.items()}
    result.geomean_rows = {m: len(v) for m, v in log_ratios.items()}
    # Changed statuses first: they matter more than any ratio.
    result.rows.sort(key=lambda r: 0 if "->" in r.verdict else 1)
    return result


@dataclass(frozen=True)
class _Timing:
    """What every timing row of one comparison shares."""

    mode: str
    baseline: str | None
    base_a: dict[str, float]  # the baseline's median per case, in A and in B
    base_b: dict[str, float]
    meta_a: Mapping[str, Any]
    meta_b: Mapping[str, Any]
    several: bool  # a run measured on several machines: each row names them
    min_effect: float
    pending: list[_Pending]  # timing rows whose intervals are settled together


def _time_rows(ra, rb, label: str, method: str, t: _Timing) -> list[Row]:
    """A case's timing rows: the raw (or baseline-relative) time ratio first, then, for a
    paired run without --baseline, the ratio of its per-round ratios to the baseline."""
    if t.mode not in ra["value"] or t.mode not in rb["value"]:
        return []
    va, vb = ra["value"][t.mode], rb["value"][t.mode]
    sa = np.asarray(va["samples"], dtype=float)
    sb = np.asarray(vb["samples"], dtype=float)
    note = ""
    where = f"A on {machine_of(ra, t.meta_a)}, B on {machine_of(rb, t.meta_b)}"
    ratios = _paired_ratios(va, vb)
    noisy = noise.is_noisy(va) or noise.is_noisy(vb)
    why = _noise_why(va, vb)
    ways = ["interleaved" if "interleaved" in r["value"] else "alone" for r in (ra, rb)]
    if ways[0] != ways[1]:  # other methods' calls between samples, or none
        noisy, why = True, f"A timed {ways[0]}, B {ways[1]}: not like with like"
    if t.baseline and ratios and ratios[2] == t.baseline:  # measured paired: use that
        sa, sb = ratios[0], ratios[1]
        note = f"relative to {t.baseline}, paired rounds"
        why = _noise_why(va, vb, paired=True)
        noisy = bool(why)
    elif t.baseline:
        wa, wb = t.base_a.get(_without_method(ra)), t.base_b.get(_without_method(rb))
        if wa is None or wb is None:
            return []
        sa, sb, note = sa / wa, sb / wb, f"relative to {t.baseline}"
    if t.several:
        note = f"{note}; {where}" if note else where
    rows = [
        _timing_row(
            label,
            method,
            f"time.{t.mode}",
            sa,
            sb,
            min_effect=t.min_effect,
            noisy=noisy,
            note=note,
            why=why,
            pending=t.pending,
        )  # fmt: skip
    ]
    if not t.baseline and ratios and method != ratios[2]:
        why = _noise_why(va, vb, paired=True)
        rows.append(
            _timing_row(
                label,
                method,
                f"time.{t.mode}.ratio_to_{ratios[2]}",
                ratios[0],
                ratios[1],
                min_effect=t.min_effect,
                noisy=bool(why),
                note=(where if t.several else ""),
                why=why,
                pending=t.pending,
            )  # fmt: skip
        )
    return rows


def _accuracy_row(ra, rb, label: str, method: str, metric: str, min_effect: float) -> Row:
    """An accuracy or stability metric's row: B − A, B/A, and the verdict."""
    path = ACCURACY_VIEWS[metric]
    va, vb = metric_value(ra, path), metric_value(rb, path)
    name = ".".join([metric, *path])
    if isinstance(va, str) or isinstance(vb, str):
        return Row(label, method, name, va, vb, None, verdict="~" if va == vb else f"{va} -> {vb}")
    ratio = vb / va if va else (1.0 if vb == va else math.inf)
    verdict = _accuracy_verdict(metric, va, vb, ra["axes"].get("dtype"), min_effect)
    return Row(label, method, name, va, vb, ratio, verdict=verdict, note=f"B - A = {vb - va:.3g}")


def compare_many(folders: Sequence[RunFolder], **options) -> list[Comparison]:
    """Compare every later folder with the first."""
    if len(folders) < 2:
        raise UserError("compare needs at least two run folders")
    return [compare_runs(folders[0], other, **options) for other in folders[1:]]


def format_value(value, metric: str, relative: bool) -> str:
    """A compared value as a cell: times in ms (unless relative), other numbers at 3 figures."""
    if isinstance(value, str):
        return value
    if metric.startswith("time") and not relative and ".ratio_to_" not in metric:
        return format_cell(value, "ms", 1e3)
    return format_number(value, "")


def comparison_frame(result: Comparison) -> pd.DataFrame:
    """One printable row per compared case and metric: A, B, B/A, its interval, verdict."""
    rows = []
    for row in result.rows:
        relative = bool(row.note.startswith("relative"))
        interval = f"[{row.low:.3f}, {row.high:.3f}]" if row.low is not None else ""
        rows.append(
            {
                "case": row.label,
                "method": row.method,
                "metric": row.metric,
                "A": format_value(row.a, row.metric, relative),
                "B": format_value(row.b, row.metric, relative),
                "B/A": "" if row.ratio is None else f"{row.ratio:.3f}",
                "95% CI": interval,
                "verdict": row.verdict,
                "note": row.note,
            }
        )
    return pd.DataFrame(rows)
