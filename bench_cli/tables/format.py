"""Cells as text: numbers in their unit, medians with their spread, the noise marks
and summaries, and text made safe for a terminal line or a markdown cell."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bench_cli.metrics import STATS
from bench_cli.records import RATIO, metric_value

NOISY_MARK = "⚠"


_TIME_SCALES = ((1e-6, "ns", 1e9), (1e-3, "µs", 1e6), (1.0, "ms", 1e3), (math.inf, "s", 1.0))


def cell_value(record: Mapping[str, Any], path: Sequence[str]) -> float | str:
    """metric_value for a table cell: a value this record does not hold (a timing mode it
    did not measure, a field an older version did not record) is "n/a", not an error.
    Suite validation has already refused paths no metric produces."""
    try:
        return metric_value(record, path)
    except KeyError:
        return "n/a"


NOISY_IQR = 0.10  # IQR/median above this is flagged, as torch.utils.benchmark's Compare does


def spread_value(
    record: Mapping[str, Any], path: Sequence[str]
) -> float | tuple[float, float] | None:
    """Half the IQR of the samples a ``...median`` path summarises; for a ratio to the
    baseline, the 95% bootstrap interval of the median of its per-round ratios; None for
    other paths."""
    if record["status"] == "ok" and len(path) > 1 and path[-1] == RATIO:
        return ratio_interval(record, path[0])
    if record["status"] != "ok" or not path or path[-1] != "median":
        return None
    value: Any = record["value"]
    for part in path[:-1]:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if not isinstance(value, Mapping) or not value.get("samples"):
        return None
    return 0.5 * STATS["iqr"](value["samples"])


def ratio_interval(record: Mapping[str, Any], mode: str) -> tuple[float, float] | None:
    """The 95% percentile-bootstrap interval of the median per-round ratio of one timing
    mode (verdicts.bootstrap_median, as compare uses); None with fewer than 3 rounds."""
    import numpy as np

    from bench_cli.verdicts import bootstrap_median

    value = record["value"].get(mode) if isinstance(record["value"], Mapping) else None
    paired = value.get("paired") if isinstance(value, Mapping) else None
    ratios = [r for r in (paired or {}).get("ratios") or [] if r]
    if len(ratios) < 3:
        return None
    return bootstrap_median(np.asarray(ratios, dtype=float))


def format_with_interval(value: float, low: float, high: float) -> str:
    """ "0.83 [0.80, 0.86]": three significant figures of the value, the bounds at its decimals."""
    text = format_number(value, "×")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{text} [{low:.{decimals}f}, {high:.{decimals}f}]"


def noise_reasons(record: Mapping[str, Any], path: Sequence[str]) -> list[str] | None:
    """Why the timing a cell shows was flagged noisy (docs/measurement.md, "Noise
    fields"); None when it was not, or the path shows no timing."""
    from bench_cli.metrics.noise import is_noisy, paired_reasons, reasons_of

    if record["status"] != "ok" or record["metric"] != "time" or not path:
        return None
    mode = record["value"].get(path[0]) if isinstance(record["value"], Mapping) else None
    if path[-1] == RATIO:  # a ratio's noise: the paired ratios' dispersion, and the load
        return paired_reasons(mode) or None
    return reasons_of(mode) or ["noisy"] if is_noisy(mode) else None


def noise_summary(records: Sequence[Mapping[str, Any]]) -> str:
    """A line per reason class when timing records were flagged noisy, else ""."""
    from bench_cli.metrics.noise import is_noisy, reasons_of

    latest = {(r["case"], r["metric"]): r for r in records if r["metric"] == "time"}
    timed = [r for r in latest.values() if r["status"] == "ok" and isinstance(r["value"], dict)]
    flagged = [r for r in timed if any(is_noisy(v) for v in r["value"].values())]
    if not flagged:
        return ""
    kinds: dict[str, list[str]] = {}
    for record in flagged:
        for mode in record["value"].values():
            for reason in reasons_of(mode) if is_noisy(mode) else []:
                kinds.setdefault(reason.split(":")[0], []).append(reason)
    lines = [
        f"warning: {len(flagged)} of {len(timed)} timing records were measured while the "
        f"machine was noisy ({NOISY_MARK} in tables); compare calls their changes inconclusive"
    ]
    for kind, reasons in sorted(kinds.items()):
        lines.append(f"  {kind}: {len(reasons)} mode(s), e.g. {reasons[0]}")
    return "\n".join(lines)


def format_number(value: float, unit: str) -> str:
    """Three significant figures; scientific for dimensionless errors and extremes."""
    if value == 0:
        return "0"
    if unit == "exponent":
        return f"{value:.2f}"
    if not unit and float(value).is_integer() and abs(value) < 1e7:
        return str(int(value))  # counts: iterations, diverged runs
    exponent = math.floor(math.log10(abs(value)))
    if unit and -3 <= exponent < 5:
        return f"{value:.{max(0, 2 - exponent)}f}"
    return f"{value:.2e}"


def format_with_spread(value: float, half_iqr: float) -> str:
    """ "1.23 ± 0.05": the value to the decimal of the spread's first significant digit,
    between 1 and 4 significant figures of the value."""
    if value == 0 or not math.isfinite(half_iqr):
        return format_number(value, "s")
    magnitude = math.floor(math.log10(abs(value)))
    spread_digit = math.floor(math.log10(half_iqr)) if half_iqr > 0 else magnitude - 3
    spread_digit = min(max(spread_digit, magnitude - 3), magnitude)
    decimals = max(0, -spread_digit)
    if abs(magnitude) > 5:  # extreme values: scientific, figures from the spread
        figures = magnitude - spread_digit
        return f"{value:.{figures}e} ± {half_iqr:.0e}"
    spread = f"{half_iqr:.{decimals}f}"
    if float(spread) == 0:  # below 4 figures of the value: its own first digit
        spread = f"{half_iqr:.1g}"
    return f"{value:.{decimals}f} ± {spread}"


def format_cell(value: Any, unit: str, factor: float) -> str:
    """One cell for display: statuses as they are, numbers at 3 figures in the unit."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"  # no record for this cell (e.g. the case was filtered out)
    text = format_number(value * factor, unit)
    return f"{text} {unit}" if unit and unit != "exponent" else text


def plain(text: Any) -> str:
    """Text with every control character escaped (a label may hold any): one line, and
    nothing a terminal would act on."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in str(text))


# Markdown reads these in a label: a backslash escape, a table's column, math (GitHub and
# MathJax read $...$), code, emphasis, raw HTML and entities.
_MD_ESCAPES = {"\\": "\\\\", "|": "\\|", "$": "\\$", "`": "\\`", "*": "\\*",
               "<": "&lt;", ">": "&gt;", "&": "&amp;"}  # fmt: skip


def md_cell(text: Any) -> str:
    """A markdown table cell: a label is data, never markup. Control characters are
    escaped, and so is every character markdown would read (``|``, ``$``, ``\\``, ``*``,
    a backquote, ``<``, ``>``, ``&``): a label can neither break the table nor render as
    math, code, emphasis or HTML."""
    return "".join(_MD_ESCAPES.get(c, c) for c in plain(text))


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "|": r"\textbar{}", "<": r"\textless{}", ">": r"\textgreater{}",
}  # fmt: skip


def latex_cell(text: Any) -> str:
    """A LaTeX table cell: every character LaTeX would read as markup escaped (``|``
    too, which text mode draws as a dash)."""
    return "".join(_LATEX_ESCAPES.get(c, c) for c in plain(text))


def status_summary(records: Sequence[Mapping[str, Any]]) -> str:
    """One line counting records by status, with the commonest reasons. A (case, metric)
    measured again (a retried scheduler stop) counts once, by its latest record."""
    latest = {(r["case"], r["metric"]): r for r in records}
    records = list(latest.values())
    counts: dict[str, int] = {}
    reasons: dict[str, set[str]] = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
        if record["status"] != "ok" and record.get("reason"):
            reasons.setdefault(record["status"], set()).add(record["reason"])
    parts = [f"{n} {status}" for status, n in sorted(counts.items())]
    lines = [f"{len(records)} records: {', '.join(parts) or 'none'}"]
    for status, why in sorted(reasons.items()):
        for reason in sorted(why)[:5]:
            lines.append(f"  {status}: {reason}")
    return "\n".join(lines)
