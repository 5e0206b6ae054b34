"""Figures from records (never re-measured): one function per plot kind.

Every figure labels its axes with units, uses a distinct colour *and* marker per
method (readable with 8 or more, and in greyscale), and puts the legend outside
the axes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench_cli.metrics import is_number  # noqa: E402
from bench_cli.tables import metric_value  # noqa: E402

MARKERS = "osD^v<>phX*P"
Figure = Any


def _style(i: int) -> dict[str, Any]:
    return {"color": plt.cm.tab10(i % 10), "marker": MARKERS[i % len(MARKERS)]}


def _methods(records) -> list[str]:
    return list(dict.fromkeys(r["axes"]["method"] for r in records))


def _groups(records, axis: str) -> dict[str, list]:
    """Records split by every axis that varies besides method and ``axis`` (one figure each)."""
    varying = [
        a
        for a in ("dtype", "device", "batch", "dim", "condition", "gap", "samples")
        if a not in (axis, "method") and len({str(r["axes"].get(a)) for r in records}) > 1
    ]
    groups: dict[str, list] = {}
    for record in records:
        key = ", ".join(f"{a}={record['axes'].get(a)}" for a in varying)
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


def _finish(fig, ax, title: str, xlabel: str, ylabel: str) -> Figure:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def time_vs_size(
    records: Sequence[Mapping[str, Any]],
    axis: str = "dim",
    mode: str = "fwd_bwd",
    notes: list[str] | None = None,
) -> Iterator[tuple[str, Figure]]:
    """Median time per call against a size axis, log-log, one line per method, IQR bands."""
    timed = [
        r
        for r in records
        if r["metric"] == "time"
        and r["status"] == "ok"
        and mode in r["value"]
        and is_number(r["axes"].get(axis))
    ]
    if len({r["axes"][axis] for r in timed}) < 2:
        return
    for group, items in _capped(_groups(timed, axis), f"time-vs-{axis}", notes):
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        for i, method in enumerate(_methods(items)):
            points = sorted(
                (r["axes"][axis], np.asarray(r["value"][mode]["samples"]) * 1e3)
                for r in items
                if r["axes"]["method"] == method
            )
            x = [p[0] for p in points]
            q25, med, q75 = (
                np.array([np.percentile(p[1], q) for p in points]) for q in (25, 50, 75)
            )
            ax.plot(x, med, label=method, **_style(i))
            ax.fill_between(x, q25, q75, color=_style(i)["color"], alpha=0.2, linewidth=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        sizes = sorted({r["axes"][axis] for r in items})
        ax.set_xticks(sizes, [str(v) for v in sizes])  # the sizes measured, not powers of 10
        ax.minorticks_off()
        title = f"time per call ({mode}), median and IQR" + (f" - {group}" if group else "")
        yield f"time-vs-{axis}{_slug(group)}", _finish(fig, ax, title, axis, "time per call (ms)")


def metric_vs(
    records: Sequence[Mapping[str, Any]],
    metric_path: str,
    axis: str,
    ylabel: str,
    notes: list[str] | None = None,
) -> Iterator[tuple[str, Figure]]:
    """A metric (e.g. forward_error, stability.grad_norm) against gap or condition, log-log."""
    name, *path = metric_path.split(".")
    chosen = [r for r in records if r["metric"] == name and is_number(r["axes"].get(axis))]
    if len({r["axes"][axis] for r in chosen}) < 2:
        return
    for group, items in _capped(_groups(chosen, axis), f"{metric_path}-vs-{axis}", notes):
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        skipped = 0
        for i, method in enumerate(_methods(items)):
            points = []
            for r in items:
                if r["axes"]["method"] != method:
                    continue
                value = metric_value(r, path)
                if isinstance(value, float) and value > 0:
                    points.append((float(r["axes"][axis]), value))
                else:
                    skipped += 1
            if points:
                points.sort()
                ax.plot(*zip(*points, strict=True), label=method, **_style(i))
        if not ax.lines:  # nothing numeric in this group (e.g. all unsupported)
            plt.close(fig)
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        title = f"{metric_path} against {axis}" + (f" - {group}" if group else "")
        if skipped:
            title += f" ({skipped} non-numeric cells not drawn)"
        yield (
            f"{metric_path.replace('.', '-')}-vs-{axis}{_slug(group)}",
            _finish(fig, ax, title, axis, ylabel),
        )


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
            label=run,
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


def all_figures(records, notes: list[str] | None = None) -> Iterator[tuple[str, Figure]]:
    """Every figure a run's records support, with its file stem, made one at a time: the
    caller closes each before the next is drawn (a sweep of hundreds stays small). Groups
    beyond MAX_FIGURES_PER_KIND per kind are left out, with a line in ``notes``."""
    yield from time_vs_size(records, "dim", notes=notes)
    for axis in ("gap", "condition"):
        yield from metric_vs(records, "forward_error", axis, "relative forward error", notes)
        yield from metric_vs(records, "grad_error", axis, "relative gradient error", notes)
        yield from metric_vs(records, "stability.grad_norm", axis, "gradient norm", notes)


def write(records, folder: Path, progress: Callable[[str], None] | None = None) -> list[Path]:
    """Every applicable plot as PNG and SVG under ``folder`` (re-made each time), one
    figure at a time, each closed before the next; ``progress`` hears of every tenth."""
    from bench_cli.store import output_folder, replace_file

    written: list[Path] = []
    notes: list[str] = []
    for count, (name, fig) in enumerate(all_figures(records, notes), start=1):
        try:
            target = output_folder(folder)
            for suffix in (".png", ".svg"):
                buffer = io.BytesIO()
                fig.savefig(buffer, format=suffix[1:], dpi=120)
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
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _slug(group: str) -> str:
    return ("-" + "".join(c if c.isalnum() else "-" for c in group)).rstrip("-") if group else ""
