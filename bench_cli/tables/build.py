"""Building tables from records: pivots per the suite's ``tables:``, paired tables
with their intervals and trivial answers, scaling exponents, and the caption of the
options a table's methods were given."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench_cli.metrics import METRICS
from bench_cli.records import INPUTS_PREFIX, RATIO, THROUGHPUT
from bench_cli.spec import TableSpec
from bench_cli.tables.format import (
    _TIME_SCALES,
    NOISY_IQR,
    NOISY_MARK,
    cell_value,
    format_cell,
    format_with_interval,
    format_with_spread,
    noise_reasons,
    spread_value,
)

log = logging.getLogger("bench_cli")

MIXED_MARK = "†"  # a cell measured by a code version other than the run's first


def code_version(record: Mapping[str, Any]) -> int:
    """The run.json invocation whose code measured a record: 0 (the first code) unless a
    resume with --allow-mixed marked it with its own."""
    version = record.get("invocation")
    return version if isinstance(version, int) else 0


@dataclass(frozen=True)
class PairedComparison:
    """What a paired table compared: the metric, its direction, the baseline, the trivial
    answers, and one :class:`bench_cli.paired.PairedRow` per method."""

    metric: str
    better: str
    baseline: str
    trivial: tuple[str, ...]
    rows: tuple[Any, ...]  # bench_cli.paired.PairedRow (imported lazily: scipy)


@dataclass
class Table:
    """A rendered-later table: raw cells (SI numbers or statuses) with labels."""

    title: str
    metric: str
    unit: str
    frame: pd.DataFrame  # index: row axes; columns: column labels; cells: float | str
    stem: str
    # Half the IQR of each median cell (same shape as frame; None elsewhere), or no frame.
    spread: pd.DataFrame | None = None
    # The noise reasons of each cell whose timing was flagged noisy (None elsewhere).
    noise: pd.DataFrame | None = None
    # A paired table's comparison, for sentences drawn across tables (bench_cli.claims).
    paired: PairedComparison | None = None
    # The options the suite set for these rows and no row or column shows (sigma=4.0,
    # gap_eps=1e-06, ...): what a reader needs to know a default did not make the numbers.
    options: str = ""
    # The code versions each cell was built from (run.json invocation indices; 0 for the
    # first code), where a resume with --allow-mixed measured some records with other code.
    versions: pd.DataFrame | None = None

    @property
    def mixed_cells(self) -> dict[tuple[int, int], str]:
        """The marks of cells measured by a later code version than the run's first,
        or by several: only where the table holds more than one code version."""
        if self.versions is None:
            return {}
        cells = self.versions.to_numpy().ravel()
        seen = {v for cell in cells if isinstance(cell, frozenset) for v in cell}
        if len(seen) < 2:
            return {}
        marks = {}
        for i in range(self.versions.shape[0]):
            for j in range(self.versions.shape[1]):
                cell = self.versions.iat[i, j]
                if isinstance(cell, frozenset) and cell and (len(cell) > 1 or min(cell) > 0):
                    names = ",".join(str(v) for v in sorted(cell))
                    marks[(i, j)] = f"{MIXED_MARK}{names}"
        return marks

    @property
    def flagged(self) -> int:
        """How many cells show a timing flagged noisy."""
        if self.noise is None:
            return 0
        return sum(isinstance(v, list) for v in self.noise.to_numpy().ravel())

    @property
    def noisy(self) -> bool:
        """Whether some cell's IQR exceeds NOISY_IQR of its median."""
        return bool(self._noise_percents())

    def _noise_percents(self) -> dict[tuple[int, int], float]:
        if self.spread is None:
            return {}
        out = {}
        for i, (values, spreads) in enumerate(
            zip(self.frame.to_numpy(), self.spread.to_numpy(), strict=True)
        ):
            for j, (v, h) in enumerate(zip(values, spreads, strict=True)):
                numbers = isinstance(v, float) and isinstance(h, float) and v > 0
                if numbers and 2 * h / v > NOISY_IQR:
                    out[(i, j)] = 200 * h / v
        return out

    @property
    def display_scale(self) -> tuple[str, float]:
        """The unit and factor cells are shown in (ms, µs, GFLOP/s, %)."""
        if self.unit == "FLOP/s":
            return "GFLOP/s", 1e-9
        if self.unit == "fraction":
            return "%", 100.0
        if self.unit == "ratio":
            return "×", 1.0
        if self.unit != "s":
            return self.unit, 1.0
        # Finite cells only: a missing cell (NaN) would break the median that picks the unit.
        numbers = [
            v for v in self.frame.to_numpy().ravel() if isinstance(v, float) and math.isfinite(v)
        ]
        if not numbers:
            return "s", 1.0
        typical = sorted(abs(v) for v in numbers)[len(numbers) // 2]
        for bound, name, factor in _TIME_SCALES:
            if typical < bound:
                return name, factor
        return "s", 1.0

    def formatted(self) -> pd.DataFrame:
        """Display strings: medians as "m ± h" (h half the IQR) at the digits h justifies,
        "(!N%)" where the IQR is N% > 10% of the median; other cells (and medians of samples
        without spread, e.g. one sample) at 3 figures."""
        unit, factor = self.display_scale
        out = self.frame.map(lambda v: format_cell(v, unit, factor))
        noisy = self._noise_percents()
        for i in range(out.shape[0] if self.spread is not None else 0):
            for j in range(out.shape[1]):
                v, h = self.frame.iat[i, j], self.spread.iat[i, j]  # type: ignore[union-attr]
                if isinstance(v, float) and isinstance(h, tuple) and math.isfinite(v):
                    out.iat[i, j] = f"{format_with_interval(v * factor, *h)} {unit}".rstrip()
                    continue
                if isinstance(v, float) and isinstance(h, float) and math.isfinite(v) and h > 0:
                    text = format_with_spread(v * factor, h * factor)
                    text = f"{text} {unit}" if unit else text
                    if (i, j) in noisy:
                        text += f" (!{noisy[(i, j)]:.0f}%)"
                    out.iat[i, j] = text
        # One rule for noise: every cell drawn from a timing flagged noisy is marked, whatever
        # the table shows of it (median, ratio to the baseline, GFLOP/s, scaling exponent).
        if self.noise is not None:
            for i in range(out.shape[0]):
                for j in range(out.shape[1]):
                    if isinstance(self.noise.iat[i, j], list):
                        out.iat[i, j] = f"{out.iat[i, j]} {NOISY_MARK}"
        for (i, j), mark in self.mixed_cells.items():
            if i < out.shape[0] and j < out.shape[1]:
                out.iat[i, j] = f"{out.iat[i, j]} {mark}"
        return out

    @property
    def legend(self) -> str:
        """A sentence saying how spread is shown and which options the rows set, or ""."""
        parts = [self.options] if self.options else []
        spreads = [] if self.spread is None else list(self.spread.to_numpy().ravel())
        if any(isinstance(h, float) for h in spreads):
            parts.append("median ± half the interquartile range of the samples")
        if any(isinstance(h, tuple) for h in spreads):
            parts.append("ratio: median of the per-round ratios [95% bootstrap interval]")
        if self.spread is not None and self.noisy:
            parts.append(f"(!N%): the IQR is N% of the median, above {NOISY_IQR:.0%}")
        if self.mixed_cells:
            parts.append(
                f"{MIXED_MARK}N: measured by the code of invocation N (run.json), not the code "
                f"that measured the unmarked cells; {MIXED_MARK}N,M: drawn from both (a resume "
                "with --allow-mixed)"
            )
        if self.flagged:
            parts.append(
                f"{NOISY_MARK}: timed while the machine was noisy (load, dispersion or too "
                "few samples; the run's last lines say which)"
            )
        return "; ".join(parts)


def default_tables(metric_names: Sequence[str]) -> list[TableSpec]:
    """One table per metric at its default view, for suites that name none."""
    out = []
    for name in metric_names:
        view = METRICS[name].default_view if name in METRICS else ""
        path = f"{name}.{view}" if view else name
        out.append(TableSpec(title=path, metric=path))
    return out


MAX_OPTION_PARTS = 8  # beyond this many, the caption points to suite.yaml


def options_caption(chosen: Sequence[Mapping[str, Any]], shown: set[str]) -> str:
    """ "options set: sigma=4.0; gap=clamp (eig[gap=clamp])": every option the suite gave
    these rows' methods that no row or column and no method label already shows, with the
    methods it applies to where not all. The rest are the layer's defaults. Records from
    before ``given_options`` name every recorded option ("options: ...")."""
    methods = list(dict.fromkeys(str(r["axes"]["method"]) for r in chosen))
    given: dict[tuple[str, str], list[str]] = {}
    old = any("given_options" not in r for r in chosen)
    for record in chosen:
        method = str(record["axes"]["method"])
        options = record.get("given_options")
        if options is None:
            options = record["params"].get("options") or {}
        for key, value in options.items():
            if key in shown or f"{key}=" in method:
                continue
            holders = given.setdefault((key, str(value)), [])
            if method not in holders:
                holders.append(method)
    parts = [
        f"{key}={value}" + ("" if len(holders) == len(methods) else f" ({', '.join(holders)})")
        for (key, value), holders in given.items()
    ]
    if not parts:
        return ""
    if len(parts) > MAX_OPTION_PARTS:
        more = len(parts) - MAX_OPTION_PARTS
        parts = [*parts[:MAX_OPTION_PARTS], f"and {more} more (the run's suite.yaml)"]
    return ("options: " if old else "options set: ") + "; ".join(parts)


def build(records: Sequence[Mapping[str, Any]], spec: TableSpec) -> Table:
    """The table a TableSpec asks for, from records (the last record of a case wins)."""
    name = spec.metric.split(".")[0]
    latest = list({r["case"]: r for r in records if r["metric"] == name}.values())
    table = _build(latest, spec)  # the last record of each case, picked once
    shown = {str(n) for n in table.frame.index.names if n} | {
        part.split("=")[0] for label in table.frame.columns for part in str(label).split(", ")
    }
    table.options = options_caption(
        latest, {a.removeprefix(INPUTS_PREFIX).removeprefix("options.") for a in shown}
    )
    return table


def _build(records: Sequence[Mapping[str, Any]], spec: TableSpec) -> Table:
    name, *path = spec.metric.split(".")
    latest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if record["metric"] == name:
            latest[record["case"]] = record  # the last record of a case wins
    # Grid order (the suite's order of methods and values), whatever order shards or
    # resumes wrote the records in; records from before "grid" keep their file order.
    chosen = sorted(latest.values(), key=lambda r: (r.get("grid") is None, r.get("grid") or 0))
    rows = list(spec.rows)
    cols = list(spec.cols)
    free: list[str] = []
    if chosen:
        # An axis joins the rows only where it varies among records that the rows and
        # columns already put in one cell; a bare name and its inputs. spelling are one.
        candidates = [
            "method", *chosen[0]["params"]["inputs"], "device", "dtype", "compile", "autocast",
        ]  # fmt: skip
        named = {a.removeprefix(INPUTS_PREFIX) for a in (*rows, *cols, spec.scaling) if a}
        for axis in candidates:
            if axis in named or axis == "kind":
                continue
            cells_of: dict[tuple, set[str]] = {}
            for r in chosen:
                where = tuple(str(r["axes"].get(a)) for a in (*rows, *cols, *free))
                cells_of.setdefault(where, set()).add(str(r["axes"].get(axis)))
            if any(len(values) > 1 for values in cells_of.values()):
                free.append(axis)
    index_axes = rows + free
    if spec.paired is not None:
        return _paired_table(spec, chosen, path)
    if spec.scaling:
        return _scaling_table(spec, chosen, path, index_axes, cols)
    cells: dict[tuple, dict[str, Any]] = {}
    spreads: dict[tuple, dict[str, Any]] = {}
    noises: dict[tuple, dict[str, Any]] = {}
    versions: dict[tuple, dict[str, Any]] = {}
    col_labels: list[str] = []
    for record in chosen:
        axes = record["axes"]
        row_key = tuple(axes.get(a) for a in index_axes)
        versions.setdefault(row_key, {})[col_label := _col_label(axes, cols, spec)] = frozenset(
            {code_version(record)}
        )
        if col_label not in col_labels:
            col_labels.append(col_label)
        cells.setdefault(row_key, {})[col_label] = cell_value(record, path)
        spreads.setdefault(row_key, {})[col_label] = spread_value(record, path)
        noises.setdefault(row_key, {})[col_label] = noise_reasons(record, path)
    if len(index_axes) == 1:
        index = pd.Index([key[0] for key in cells], name=index_axes[0])
    else:
        index = pd.MultiIndex.from_tuples(list(cells), names=index_axes) if index_axes else None
    frame = pd.DataFrame(list(cells.values()), index=index, columns=col_labels, dtype=object)
    spread = pd.DataFrame(list(spreads.values()), index=index, columns=col_labels, dtype=object)
    noise = pd.DataFrame(list(noises.values()), index=index, columns=col_labels, dtype=object)
    has_spread = any(isinstance(h, float | tuple) for h in spread.to_numpy().ravel())
    has_noise = any(isinstance(h, list) for h in noise.to_numpy().ravel())
    unit = METRICS[name].unit if name in METRICS else (chosen[0]["unit"] if chosen else "")
    if any(part.endswith("_s") for part in path):  # e.g. task.epoch_time_s.median
        unit = "s"
    elif path and path[0] == "compile":  # graph breaks and counts, relative differences
        unit = ""
    if path and path[0] == "accuracy" and path[-1] != "n":  # a fraction, shown in %
        unit = "fraction"
    if path and path[-1] in THROUGHPUT:
        unit = "FLOP/s" if path[-1] == "flops_per_s" else "fraction"
    if path and path[-1] == RATIO:
        unit = "ratio"
    version = pd.DataFrame(list(versions.values()), index=index, columns=col_labels, dtype=object)
    return Table(
        spec.title, spec.metric, unit, frame, spec.stem,
        spread if has_spread else None, noise if has_noise else None, versions=version,
    )  # fmt: skip


def _col_label(axes: Mapping[str, Any], cols: Sequence[str], spec: TableSpec) -> str:
    return ", ".join(f"{c}={axes.get(c)}" for c in cols) or spec.metric


def _paired_table(spec: TableSpec, chosen, path) -> Table:
    """Methods as rows: mean [95% CI] over the data draws, difference to the baseline."""
    from bench_cli import paired

    assert spec.paired is not None
    values: dict[str, dict[tuple, float]] = {}
    row_versions: dict[str, set[int]] = {}
    for record in chosen:
        value = cell_value(record, path)
        method = str(record["axes"]["method"])
        values.setdefault(method, {})
        row_versions.setdefault(method, set()).add(code_version(record))
        if isinstance(value, float) and math.isfinite(value):
            inputs = record["params"]["inputs"]
            unit = tuple(sorted((k, str(v)) for k, v in inputs.items() if k != "kind"))
            key = (*unit, record["params"]["device"], record["params"]["dtype"])
            values[method][key] = value
    percent = bool(path) and path[0] == "accuracy"

    def number(x: float) -> str:
        if not math.isfinite(x):
            return "—"
        return f"{100 * x:.1f} %" if percent else f"{x:.3g}"

    def interval(i) -> str:
        return f"{number(i.mean)} [{number(i.low)}, {number(i.high)}]"

    base, trivial = spec.paired.baseline, tuple(spec.paired.trivial)
    rows = {}
    found = []
    if base in values:
        found = paired.paired_rows(values, base, spec.paired.better, trivial)
        for row in found:
            rows[row.method] = {
                "n": row.value.n,
                "mean [95% CI]": interval(row.value),
                f"minus {base} [95% CI]": ""
                if row.difference is None
                else interval(row.difference),
                "verdict": row.verdict
                + (f" ({row.unpaired} unpaired left out)" if row.unpaired else ""),
                **{
                    f"minus {answer} [95% CI]": interval(row.versus_trivial[answer])
                    if answer in row.versus_trivial
                    else ""
                    for answer in trivial
                    if answer in values
                },
            }
    frame = pd.DataFrame(
        list(rows.values()), index=pd.Index(list(rows), name="method"), dtype=object
    )
    direction = (
        "a diagnostic: no direction is better"
        if spec.paired.better == "none"
        else f"{spec.paired.better} is better"
    )
    caption = f"{spec.metric}, paired by data draw ({direction})"
    if trivial:
        caption += f"; trivial answers: {', '.join(trivial)}"
    comparison = PairedComparison(spec.metric, spec.paired.better, base, trivial, tuple(found))
    version = pd.DataFrame(
        [[frozenset(row_versions.get(m, ()))] + [None] * (frame.shape[1] - 1) for m in rows],
        index=frame.index,
        dtype=object,
    )  # fmt: skip  (a row's mark goes on its first cell)
    return Table(spec.title, caption, "", frame, spec.stem, paired=comparison, versions=version)


def paired_claims(table: Table) -> str:
    """The sentence a paired table supports, computed from its verdicts: nothing else is claimed."""
    if table.paired is None or not table.paired.rows:
        return ""
    from bench_cli import paired

    groups: dict[str, list[str]] = {}
    baseline = table.paired.baseline
    short_of_trivial = []
    for row in table.paired.rows:
        if row.verdict not in (paired.BASELINE, paired.TRIVIAL):
            groups.setdefault(row.verdict, []).append(f"`{row.method}`")
        if row.beats_trivial is False:
            short_of_trivial.append(f"`{row.method}`")
    parts = [
        f"{label} than `{baseline}` (95% CI of the paired difference excludes 0): "
        + ", ".join(groups[kind])
        for kind, label in ((paired.BETTER, "Better"), (paired.WORSE, "Worse"))
        if groups.get(kind)
    ]
    if groups.get(paired.BETTER_NOT_TRIVIAL):
        parts.append(
            f"better than `{baseline}` but not shown better than every trivial answer: "
            + ", ".join(groups[paired.BETTER_NOT_TRIVIAL])
        )
    if groups.get(paired.NO_DIFFERENCE):
        parts.append(
            f"no difference from `{baseline}` shown (the CI includes 0): "
            + ", ".join(groups[paired.NO_DIFFERENCE])
        )
    if short_of_trivial:
        answers = ", ".join(f"`{t}`" for t in table.paired.trivial)
        parts.append(f"not shown better than the trivial answers ({answers}): "
                     + ", ".join(short_of_trivial))  # fmt: skip
    return "; ".join(parts) + "." if parts else ""


def scaling_exponent(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(value) against log(size); None with under two sizes."""
    points = [(x, y) for x, y in points if x > 0 and y > 0]
    if len({x for x, _ in points}) < 2:
        return None
    xs, ys = np.log([x for x, _ in points]), np.log([y for _, y in points])
    return float(np.polyfit(xs, ys, 1)[0])


def _scaling_table(spec, chosen, path, index_axes, cols) -> Table:
    groups: dict[tuple, dict[str, list]] = {}
    noisy_points: dict[tuple, list[str]] = {}
    cell_versions: dict[tuple, set[int]] = {}
    col_labels: list[str] = []
    for record in chosen:
        axes = record["axes"]
        label = ", ".join(f"{c}={axes.get(c)}" for c in cols) or f"exponent in {spec.scaling}"
        if label not in col_labels:
            col_labels.append(label)
        value = cell_value(record, path)
        points = groups.setdefault(tuple(axes.get(a) for a in index_axes), {})
        if isinstance(value, float):
            points.setdefault(label, []).append((float(axes[spec.scaling]), value))
        else:
            points.setdefault(label, [])
        cell_versions.setdefault((tuple(axes.get(a) for a in index_axes), label), set()).add(
            code_version(record)
        )
        reasons = noise_reasons(record, path)
        if reasons:  # an exponent fitted through a noisy point is as noisy as that point
            key = tuple(axes.get(a) for a in index_axes)
            noisy_points.setdefault((key, label), []).extend(reasons)
    rows, noise_rows = [], []
    for key, points in groups.items():
        row, noise_row = {}, {}
        for label in col_labels:
            slope = scaling_exponent(points.get(label, []))
            row[label] = "n/a" if slope is None else slope
            noise_row[label] = noisy_points.get((key, label))
        rows.append(row)
        noise_rows.append(noise_row)
    if len(index_axes) == 1:
        index = pd.Index([key[0] for key in groups], name=index_axes[0])
    else:
        index = pd.MultiIndex.from_tuples(list(groups), names=index_axes) if index_axes else None
    frame = pd.DataFrame(rows, index=index, columns=col_labels, dtype=object)
    noise = pd.DataFrame(noise_rows, index=index, columns=col_labels, dtype=object)
    version = pd.DataFrame(
        [[frozenset(cell_versions.get((key, c), ())) for c in col_labels] for key in groups],
        index=index, columns=col_labels, dtype=object,
    )  # fmt: skip
    return Table(
        spec.title, f"{spec.metric} ~ {spec.scaling}^k", "exponent", frame, spec.stem,
        noise=noise if noisy_points else None, versions=version,
    )  # fmt: skip


def tables_for(
    records: Sequence[Mapping[str, Any]], specs: Sequence[TableSpec], metric_names: Sequence[str]
) -> list[Table]:
    """A run's tables: its suite's, or one default table per metric. A table that cannot
    be made is left out with one warning line; the records and the other tables stand."""
    made = []
    for spec in specs or default_tables(metric_names):
        try:
            made.append(build(records, spec))
        except Exception as exc:  # noqa: BLE001 -- one table's bug must not lose the rest
            name = spec.title or spec.metric
            log.warning(f"table '{name}' not made: {type(exc).__name__}: {exc}")
    return made
