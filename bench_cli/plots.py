"""Figures from records (never re-measured): one function per plot kind.

Every figure labels its axes with units, uses a distinct colour *and* marker per
method (readable with 8 or more, and in greyscale), and puts the legend outside
the axes.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

from bench_cli.fsafe import output_folder, replace_file
from bench_cli.records import CASE_AXES, INPUTS_PREFIX, OPTIONS_PREFIX, metric_value

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from bench_cli.metrics import is_number  # noqa: E402

MARKERS = "osD^v<>phX*P"
Figure = Any


def _style(i: int) -> dict[str, Any]:
    return {"color": plt.cm.tab10(i % 10), "marker": MARKERS[i % len(MARKERS)]}


def _line_key(record, axis: str) -> str:
    """The line a record belongs to: its method, less ``axis=value`` in the label's
    brackets where the axis is a method option (ns[iters=3] and ns[iters=5] make one line)."""
    label = str(record["axes"]["method"])
    if not axis.startswith(OPTIONS_PREFIX) or "[" not in label:
        return label
    name = axis.removeprefix(OPTIONS_PREFIX)
    base, _, inner = label.partition("[")
    kept = [part for part in inner.rstrip("]").split(",") if not part.startswith(f"{name}=")]
    return f"{base}[{','.join(kept)}]" if kept else base


def _methods(records, axis: str = "") -> list[str]:
    return list(dict.fromkeys(_line_key(r, axis) for r in records))


def _shown(axis: str, names: set[str]) -> str:
    """An axis's name in titles and file names: bare, unless both sides use it."""
    bare = axis.removeprefix(INPUTS_PREFIX).removeprefix(OPTIONS_PREFIX)
    both = {INPUTS_PREFIX + bare, OPTIONS_PREFIX + bare} <= names
    return axis if both else bare


def _candidates(records) -> list[str]:
    """Axis names a figure may sweep or split on: prefixed names where records have them
    (bare aliases left out), bare ones in records from before the prefixes."""
    names = dict.fromkeys(k for r in records for k in r["axes"] if k not in CASE_AXES)
    prefixed = {k for k in names if k.startswith((INPUTS_PREFIX, OPTIONS_PREFIX))}
    bare_of = {k.split(".", 1)[1] for k in prefixed}
    return [k for k in names if k in prefixed or k not in bare_of]


def swept_axes(records) -> list[str]:
    """Every axis whose values are numbers and that one line takes two or more values
    of, inputs first: an option that differs only between methods (eig's degree 9 and
    svd_taylor's 100) draws no line, so it gets no figure."""
    found = []
    for axis in _candidates(records):
        having = [r for r in records if axis in r["axes"]]
        if not all(is_number(r["axes"][axis]) or r["axes"][axis] is None for r in having):
            continue
        per_line: dict[str, set] = {}
        for r in having:
            if r["axes"][axis] is not None:
                per_line.setdefault(_line_key(r, axis), set()).add(r["axes"][axis])
        if any(len(values) >= 2 for values in per_line.values()):
            found.append(axis)
    return sorted(found, key=lambda a: a.startswith(OPTIONS_PREFIX))


def _groups(records, axis: str) -> dict[str, list]:
    """Records split by every input, dtype or device that varies besides ``axis`` (one
    figure each): a non-numeric axis splits figures, and is never placed on the x axis.
    Method options are in the line labels already."""
    names = set().union(*(r["axes"] for r in records)) if records else set()
    varying = [
        a
        for a in ("dtype", "device", "compile", "autocast", *_candidates(records))
        if a != axis
        and not a.startswith(OPTIONS_PREFIX)
        and len({str(r["axes"].get(a)) for r in records}) > 1
    ]
    groups: dict[str, list] = {}
    for record in records:
        key = ", ".join(f"{_shown(a, names)}={record['axes'].get(a)}" for a in varying)
        groups.setdefault(key, []).append(record)
    return groups


MAX_FIGURES_PER_KIND = 24  # a wide sweep draws this many groups per plot kind, and says so


def _capped(groups: dict[str, list], kind: str, notes: list[str] | None) -> list:
    """At most MAX_FIGURES_PER_KIND groups of one plot kind (the first, in grid order)."""
    items = list(groups.items())
    if len(items) > MAX_FIGURES_PER_KIND:
        if notes is not None:
            notes.append(
                f"plots: {kind} has {len(items)} groups; drew the first "
                f"{MAX_FIGURES_PER_KIND} (the tables hold every value)"
            )
        items = items[:MAX_FIGURES_PER_KIND]
    return items


def _literal(fig) -> Any:
    """Labels are data, never markup: every text of the figure drawn as written (a
    method named ``$\\frac{1}{$`` is not mathtext), and so is every text made while the
    context lasts (tick labels made while drawing)."""
    for text in fig.findobj(matplotlib.text.Text):
        text.set_parse_math(False)
    return matplotlib.rc_context({"text.parse_math": False, "text.usetex": False})


def _finish(fig, ax, title: str, xlabel: str, ylabel: str) -> Figure:
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        return _finish_literal(fig, ax, title, xlabel, ylabel)


def _finish_literal(fig, ax, title: str, xlabel: str, ylabel: str) -> Figure:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    for axis in (ax.xaxis, ax.yaxis):
        _two_ticks(axis)
    ax.set_title(title, fontsize=10)
    _literal(fig)
    fig.tight_layout()
    # Wrapped to the width the axes got beside the legend (a title is centred over its
    # axes, so a longer one runs off the figure's edge): about 5.5 pt per 10-pt character.
    inches = ax.get_position().width * fig.get_figwidth()
    ax.set_title(textwrap.fill(title, max(20, int(inches * 72 / 5.5))), fontsize=10)
    fig.tight_layout()
    return fig


def _two_ticks(axis) -> None:
    """At least two labelled ticks on a log axis: a range under a decade gets ticks at
    1, 2 and 5 times the powers of ten, and a range narrower than that three ticks
    spread over it, each labelled with its value."""
    if axis.get_scale() != "log":
        return
    low, high = sorted(axis.get_view_interval())
    if not (low > 0 and high > low):
        return

    def inside(ticks) -> list[float]:
        return [t for t in ticks if low <= t <= high]

    powers = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    if len(inside(10.0**k for k in powers)) >= 2:
        return
    ticks = inside(m * 10.0**k for k in powers for m in (1, 2, 5))
    if len(ticks) < 2:
        ticks = list(np.geomspace(low, high, 4)[1:-1])
    axis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.2g"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _axis_of(records, axis: str) -> str:
    """A bare axis name as the records spell it: the input's (``inputs.dim``) where
    records carry prefixes, else as given."""
    if any(axis in r["axes"] for r in records if INPUTS_PREFIX + axis not in r["axes"]):
        return axis
    return INPUTS_PREFIX + axis if any(INPUTS_PREFIX + axis in r["axes"] for r in records) else axis


def _x_scale(ax, values) -> None:
    """Log x for positive values spanning a factor of 8 or more, else linear; ticks at
    the values measured (a few), not at powers of ten."""
    values = sorted(set(values))
    if values[0] > 0 and values[-1] / values[0] >= 8:
        ax.set_xscale("log")
    if len(values) <= 12:
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.minorticks_off()


def time_vs_size(
    records: Sequence[Mapping[str, Any]],
    axis: str = "dim",
    mode: str = "fwd_bwd",
    notes: list[str] | None = None,
) -> Iterator[tuple[str, Figure]]:
    """Median time per call against a numeric axis, one line per method, IQR bands."""
    axis = _axis_of(records, axis)
    timed = [
        r
        for r in records
        if r["metric"] == "time"
        and r["status"] == "ok"
        and isinstance(r.get("value"), dict)
        and isinstance(r["value"].get(mode), dict)
        and r["value"][mode].get("samples")
        and is_number(r["axes"].get(axis))
    ]
    if len({r["axes"][axis] for r in timed}) < 2:
        return
    names = set().union(*(r["axes"] for r in records))
    shown = _shown(axis, names)
    for group, items in _capped(_groups(timed, axis), f"time-vs-{shown}", notes):
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        for i, line in enumerate(_methods(items, axis)):
            points = sorted(
                (
                    (
                        float(r["axes"][axis]),
                        np.asarray([s for s in r["value"][mode]["samples"] if is_number(s)]) * 1e3,
                    )
                    for r in items
                    if _line_key(r, axis) == line
                ),
                key=lambda point: point[0],
            )
            points = [p for p in points if p[1].size]
            if not points:
                continue
            x = [p[0] for p in points]
            q25, med, q75 = (
                np.array([np.percentile(p[1], q) for p in points]) for q in (25, 50, 75)
            )
            ax.plot(x, med, label=line, **_style(i))
            ax.fill_between(x, q25, q75, color=_style(i)["color"], alpha=0.2, linewidth=0)
        if not ax.lines:
            plt.close(fig)
            continue
        ax.set_yscale("log")
        _x_scale(ax, [float(r["axes"][axis]) for r in items])
        title = f"time per call ({mode}), median and IQR" + (f" - {group}" if group else "")
        yield f"time-vs-{shown}{_slug(group)}", _finish(fig, ax, title, shown, "time per call (ms)")


def metric_vs(
    records: Sequence[Mapping[str, Any]],
    metric_path: str,
    axis: str,
    ylabel: str,
    notes: list[str] | None = None,
) -> Iterator[tuple[str, Figure]]:
    """A metric (e.g. forward_error, stability.grad_norm) against a numeric axis, log y."""
    axis = _axis_of(records, axis)
    name, *path = metric_path.split(".")
    chosen = [
        r
        for r in records
        if r["metric"] == name and r["status"] == "ok" and is_number(r["axes"].get(axis))
    ]
    if len({r["axes"][axis] for r in chosen}) < 2:
        return
    names = set().union(*(r["axes"] for r in records))
    shown = _shown(axis, names)
    stem = metric_path.replace(".", "-")
    for group, items in _capped(_groups(chosen, axis), f"{metric_path}-vs-{shown}", notes):
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        skipped = 0
        for i, line in enumerate(_methods(items, axis)):
            points = []
            for r in items:
                if _line_key(r, axis) != line:
                    continue
                value = metric_value(r, path)
                if isinstance(value, int | float) and is_number(value) and value > 0:
                    points.append((float(r["axes"][axis]), float(value)))
                else:
                    skipped += 1
            if points:
                points.sort()
                ax.plot(*zip(*points, strict=True), label=line, **_style(i))
        if not ax.lines:  # nothing numeric in this group (e.g. all unsupported)
            plt.close(fig)
            continue
        ax.set_yscale("log")
        _x_scale(ax, [float(r["axes"][axis]) for r in items])
        title = f"{metric_path} against {shown}" + (f" - {group}" if group else "")
        if skipped:
            title += f" ({skipped} non-numeric cells not drawn)"
        yield f"{stem}-vs-{shown}{_slug(group)}", _finish(fig, ax, title, shown, ylabel)


def speedup_bars(geomeans: Mapping[str, Mapping[str, float]]) -> Figure:
    """Speed-up of each run over the first, per method (1/geometric mean of time ratios)."""
    runs = list(geomeans)
    methods = list(dict.fromkeys(m for g in geomeans.values() for m in g))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(methods) + 3), 4.2))
    width = 0.8 / max(len(runs), 1)
    for i, run in enumerate(runs):
        values = [1 / geomeans[run][m] if m in geomeans[run] else np.nan for m in methods]
        ax.bar(
            np.arange(len(methods)) + i * width,
            values,
            width,
            label="/".join(Path(run).parts[-2:]),  # the run folder, not its whole path
            color=plt.cm.tab10(i % 10),
            hatch="/\\\\.x"[i % 4],
        )
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(
        np.arange(len(methods)) + width * (len(runs) - 1) / 2, methods, rotation=30, ha="right"
    )
    return _finish(
        fig,
        ax,
        "speed-up over the first run (geometric mean over shared cases)",
        "method",
        "speed-up (x)",
    )


# What is drawn against each swept axis: (metric path, y label); time is drawn by
# time_vs_size, the others by metric_vs.
PLOTTED = (
    ("time", "time per call (ms)"),
    ("forward_error", "relative forward error"),
    ("grad_error", "relative gradient error"),
    ("stability.grad_norm", "gradient norm"),
)


def pareto(setting, label: str | None = None) -> Figure:
    """The worse of each method's errors against its speed (median paired ratio to the
    baseline where measured, else median time), one marker per method; the front joined."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    scale = 1.0 if setting.paired else 1e3
    for i, point in enumerate(setting.points):
        error = max(point.error, 1e-300)
        ax.plot(
            [setting.speed(point) * scale], [error], linestyle="none", label=point.method,
            **_style(i),
        )  # fmt: skip
    front = setting.front
    ax.plot(
        [setting.speed(p) * scale for p in front], [max(p.error, 1e-300) for p in front],
        color="black", linewidth=0.8, alpha=0.6, label="Pareto front",
    )  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    xlabel = (
        f"time relative to {setting.baseline} (paired, median)"
        if setting.paired
        else "median time per call (ms)"
    )
    return _finish(
        fig, ax, f"which method: {label or setting.label}; {setting.computes}", xlabel,
        f"worse of {' and '.join(setting.metrics)}",
    )  # fmt: skip


def all_figures(records, notes: list[str] | None = None) -> Iterator[tuple[str, Figure]]:
    """Every figure a run's records support, one per (metric, numeric swept axis) and
    group of the other varying axes, with its file stem, made one at a time: the caller
    closes each before the next is drawn (a sweep of hundreds stays small). Groups
    beyond MAX_FIGURES_PER_KIND per kind are left out, with a line in ``notes``."""
    metrics = {r["metric"] for r in records}
    for axis in swept_axes(records):
        for path, ylabel in PLOTTED:
            if path.split(".")[0] not in metrics:
                continue
            if path == "time":
                yield from time_vs_size(records, axis, notes=notes)
            else:
                yield from metric_vs(records, path, axis, ylabel, notes)


def write(records, folder: Path, progress: Callable[[str], None] | None = None) -> list[Path]:
    """Every applicable plot as PNG and SVG under ``folder`` (re-made each time), one
    figure at a time, each closed before the next; ``progress`` hears of every tenth."""

    written: list[Path] = []
    notes: list[str] = []
    for count, (name, fig) in enumerate(all_figures(records, notes), start=1):
        try:
            target = output_folder(folder)
            for suffix in (".png", ".svg"):
                buffer = io.BytesIO()
                with _literal(fig):
                    fig.savefig(buffer, format=suffix[1:], dpi=120, bbox_inches="tight")
                written.append(replace_file(target / f"{name[:120]}{suffix}", buffer.getvalue()))
        finally:
            plt.close(fig)
        if progress is not None and count % 10 == 0:
            progress(f"plots: {count} written to {folder}")
    if progress is not None:
        for note in notes:
            progress(note)
    return written


def png_bytes(fig: Figure) -> bytes:
    """A figure as PNG bytes."""
    buffer = io.BytesIO()
    with _literal(fig):
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _slug(group: str) -> str:
    return ("-" + "".join(c if c.isalnum() else "-" for c in group)).rstrip("-") if group else ""
