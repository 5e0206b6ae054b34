"""Conclusions drawn across a suite's paired tables, generated from their intervals.

One paired table says what its one metric supports. A conclusion about a method
needs every metric at once: a method better on variation of information and not
shown to differ on Rand error is not "not shown to differ". So for each baseline
that several paired tables share, every method gets one sentence naming, per
metric, which way its paired interval falls; and every method (the baseline
included) gets the metrics on which it is not shown better than the trivial
answers. Nothing here is written by hand: change a number and the sentences move.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench_cli.tables import PairedComparison, Table

__all__ = ["conclusions", "metric_name"]


def metric_name(metric: str) -> str:
    """'task.matched_accuracy.mean' -> 'matched_accuracy': the part a reader knows."""
    parts = metric.split(".")
    return parts[1] if len(parts) == 3 else metric


def _interval(value) -> str:
    return f"{value.mean:+.3g} [{value.low:.3g}, {value.high:.3g}]"


def _by_method(group: Sequence[PairedComparison]) -> dict[str, dict[str, object]]:
    """method -> metric -> PairedRow, in the order the first table lists methods."""
    out: dict[str, dict[str, object]] = {}
    for comparison in group:
        for row in comparison.rows:
            out.setdefault(row.method, {})[comparison.metric] = row
    return out


def _against_baseline(method: str, rows: dict, group, baseline: str) -> str:
    from bench_cli import paired

    names = {c.metric: metric_name(c.metric) for c in group}
    kinds: dict[str, list[str]] = {}
    for comparison in group:
        row = rows.get(comparison.metric)
        if row is None:
            continue
        kind = row.verdict
        detail = names[comparison.metric]
        # A claimed difference carries its interval; the tables hold the rest.
        if row.difference is not None and kind in (paired.BETTER, paired.WORSE,
                                                   paired.BETTER_NOT_TRIVIAL):  # fmt: skip
            detail += f" {_interval(row.difference)}"
        kinds.setdefault(kind, []).append(detail)
    if set(kinds) <= {paired.NO_VALUES}:
        return f"`{method}`: no values on any metric."
    order = (
        (paired.BETTER, "better"),
        (paired.BETTER_NOT_TRIVIAL, "better, but not than every trivial answer,"),
        (paired.WORSE, "worse"),
        (paired.NO_DIFFERENCE, "not shown to differ"),
        (paired.NO_VALUES, "no values"),
    )
    head = f"`{method}` against `{baseline}`: "
    if len(kinds) == 1 and len(group) > 1:
        ((kind, details),) = kinds.items()
        return head + f"{dict(order)[kind]} on every metric ({', '.join(details)})."
    parts = [f"{label} on {', '.join(kinds[kind])}" for kind, label in order if kinds.get(kind)]
    return head + "; ".join(parts) + "."


def _against_trivial(method: str, rows: dict, group) -> str | None:
    """Where a method is not shown better than every trivial answer, with the gaps."""
    from bench_cli import paired

    short = []
    for comparison in group:
        row = rows.get(comparison.metric)
        if row is None or row.beats_trivial is not False:
            continue
        kept = [
            f"`{answer}`"
            for answer, difference in row.versus_trivial.items()
            if paired.verdict(difference, comparison.better) != paired.BETTER
        ]
        missing = [f"`{a}`" for a in comparison.trivial if a not in row.versus_trivial]
        short.append(f"{metric_name(comparison.metric)} ({', '.join(kept + missing)})")
    if not short:
        return None
    return (
        f"`{method}` is not shown better than these trivial answers on: " + "; ".join(short) + "."
    )


def conclusions(made: Sequence[Table]) -> str:
    """Markdown: per baseline shared by paired tables, one line per method across every
    metric, then the methods that do not beat the trivial answers, and where. ""
    without paired tables."""
    groups: dict[str, list[PairedComparison]] = {}
    for table in made:  # diagnostics (better: none) support no conclusion
        if table.paired is not None and table.paired.rows and table.paired.better != "none":
            groups.setdefault(table.paired.baseline, []).append(table.paired)
    lines: list[str] = []
    for baseline, group in groups.items():
        by_method = _by_method(group)
        trivial = {answer for comparison in group for answer in comparison.trivial}
        metrics = ", ".join(dict.fromkeys(metric_name(c.metric) for c in group))
        lines.append(f"Against `{baseline}` (paired over data sets; {metrics}):\n")
        for method, rows in by_method.items():
            if method == baseline or method in trivial:
                continue
            lines.append(f"- {_against_baseline(method, rows, group, baseline)}")
        beaten = [
            sentence
            for method, rows in by_method.items()
            if method not in trivial and (sentence := _against_trivial(method, rows, group))
        ]
        if trivial:
            everyone = [m for m in by_method if m not in trivial]
            lines.append("")
            if beaten:
                lines.extend(f"- {sentence}" for sentence in beaten)
            else:
                lines.append(
                    f"- Every method ({', '.join(f'`{m}`' for m in everyone)}) is better than "
                    f"every trivial answer on every metric ({metrics})."
                )
        lines.append("")
    return "\n".join(lines).strip() + "\n" if lines else ""
