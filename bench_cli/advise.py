"""`matbench advise`: which method should I use, for my sizes, on this hardware?

Builds ordinary suites in memory from the user's question and runs them through
the normal runner, in two phases so the time budget goes where it matters:

1. *screen*: forward (and gradient) error on the ``spd`` family at the user's
   condition number and on the ``covariance`` family (N samples), and the
   ``stability`` metric on a small gap sweep;
2. *time*: forward+backward (or forward) time of the methods that passed.

Decision rule: among methods whose forward and gradient errors are within the
tolerance on both families and that produce no non-finite value on the
stability probes, rank by time: the methods are timed interleaved, round by
round on the same inputs, and ranked by their paired ratio to the first of
them (geometric mean over the sizes asked). When the first two are within
noise (their paired ratio's interval includes 1, or it is within 5%, or a
timing was flagged noisy) a note says so. Every excluded method gets its
reason in one phrase.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench_cli import runner, spec
from bench_cli.advice_suites import (
    SCREEN_BATCH,
    SCREEN_SHARE,
    SHORT_BUDGET_S,
    TIMING_SHARE,
    Question,
    _config_of,
    is_exact,
    screen_suites,
    time_suite,
)
from bench_cli.errors import UserError
from bench_cli.metrics import noise

# A ranking between two methods is claimed only when their paired per-round ratio differs
# from 1 by at least this and its 95% interval excludes 1.
MIN_RANK_EFFECT = 0.05


def within_noise(first: dict, second: dict) -> str:
    """A note when the measured order of two ranked methods is not established: their
    per-round time ratio (same rounds, every size pooled) is within MIN_RANK_EFFECT of 1,
    its bootstrap interval includes 1, or a timing was flagged noisy. "" otherwise."""
    from bench_cli.verdicts import bootstrap_median

    quotients: list[float] = []
    for dim, a in first["rounds"].items():
        b = second["rounds"].get(dim, [])
        quotients += [x / y for x, y in zip(b, a, strict=False) if x > 0 and y > 0]
    if not quotients:
        return ""
    low, high = bootstrap_median(np.asarray(quotients))
    median = float(np.median(quotients))
    noisy = first["noisy"] or second["noisy"]
    if low <= 1 <= high or abs(median - 1) < MIN_RANK_EFFECT or noisy:
        why = "timings flagged noisy; " if noisy else ""
        return (
            f"{first['method']} before {second['method']} is within noise ({why}per-round "
            f"time ratio {second['method']}/{first['method']} {median:.3f}, 95% CI "
            f"[{low:.3f}, {high:.3f}]): either will do"
        )
    return ""


@dataclass
class Advice:
    """The answer: the ranking, every exclusion with its reason, notes, suites and records."""

    ranking: list[dict[str, Any]] = field(default_factory=list)  # eligible, fastest first
    baseline: str | None = None  # the method the paired ratios are to
    unranked: list[str] = field(default_factory=list)  # eligible, but the budget ran out
    cut: list[str] = field(default_factory=list)  # not fully screened: the budget ran out
    excluded: dict[str, str] = field(default_factory=dict)  # label -> reason
    notes: list[str] = field(default_factory=list)
    suites: dict[str, dict] = field(default_factory=dict)
    records: dict[str, list] = field(default_factory=dict)
    saved: list[Path] = field(default_factory=list)  # run folders, with save_to

    def render(self, question: Question) -> list[Any]:
        """What ``matbench advise`` prints: the recommendation, the runner-up, the evidence
        table and every exclusion and note (see :func:`render`)."""
        return render(self, question)


class _ListWriter:
    def __init__(self):
        self.records = []

    def append(self, records):
        self.records.extend(records)


def _run(
    suite_data: dict,
    reporter=None,
    save_to: Path | None = None,
    advice: Advice | None = None,
    stop=None,
) -> tuple[spec.Suite, list]:
    """Run a generated suite: in memory, or with ``save_to`` as an ordinary run folder
    under that results root (through :func:`bench_cli.api.run_suite`). ``stop``: asked
    before each case; once True, nothing more starts."""
    suite = spec.loads(yaml.safe_dump(suite_data, sort_keys=False), suite_data["name"])
    if save_to is not None:
        from bench_cli import api

        folder = api.run_suite(suite, results=save_to, reporter=reporter, stop=stop)
        if advice is not None:
            advice.saved.append(folder.path)
        return suite, folder.records()
    writer = _ListWriter()
    runner.run(suite, suite.cases(), writer, set(), reporter=reporter, stop=stop)
    return suite, writer.records


def _unreached(suite: spec.Suite, records: list) -> list[str]:
    """The method labels of a suite with a case that has no record: cut by the budget."""
    measured = {r["case"] for r in records}
    return list(dict.fromkeys(c.config.label for c in suite.cases() if c.key not in measured))


def _exclusions(records_by_role, question: Question) -> dict[str, str]:
    reasons: dict[str, str] = {}
    for role in ("spd", "covariance"):
        for record in records_by_role[role]:
            label = record["axes"]["method"]
            if label in reasons:
                continue
            what = {"forward_error": "forward error", "grad_error": "gradient error"}[
                record["metric"]
            ]
            where = f"{role}, d={record['axes'].get('dim') or record['axes'].get('channels')}"
            if record["status"] != "ok":
                reasons[label] = f"{what} {record['status']} ({where}): {record['reason']}"
            elif record["value"] > question.tolerance:
                reasons[label] = (
                    f"{what} {record['value']:.1e} > tolerance {question.tolerance:g} ({where})"
                )
    for record in records_by_role["stability"]:
        label = record["axes"]["method"]
        if label in reasons:
            continue
        value = record["value"] or {}
        if record["status"] != "ok":
            reasons[label] = f"stability probe {record['status']}: {record['reason']}"
        elif value.get("nonfinite_output") or value.get("nonfinite_grad"):
            reasons[label] = f"non-finite values at relative gap {record['axes']['gap']:g}"
    return reasons


def advise(
    question: Question,
    reporter_factory=None,
    save_to: Path | None = None,
    clock=time.monotonic,
) -> Advice:
    """Screen every candidate for accuracy and stability, time those that pass, rank them.

    The budget holds: screening starts no case after SCREEN_SHARE of it, and timing none
    after all of it, and each case has a time limit drawn from it; what was cut is said
    in ``Advice.notes`` and ``Advice.excluded``. ``reporter_factory`` makes a progress
    reporter per phase; with ``save_to`` (a results root) every phase is also written as
    an ordinary run folder (``Advice.saved``). ``clock``: seconds, for tests to fake.
    """
    question.check()
    absent = runner.device_unavailable(spec.resolve_device(question.device))
    if absent:
        raise UserError(f"--device {question.device}: {absent}")
    started = clock()
    deadline = started + question.budget_s
    screen_until = started + SCREEN_SHARE * question.budget_s
    advice = Advice(notes=_opening_notes(question))
    _screen(advice, question, reporter_factory, save_to, lambda: clock() >= screen_until)
    if advice.cut:
        advice.notes.append(
            f"budget: screening stopped at {clock() - started:.0f} s ({SCREEN_SHARE:.0%} of "
            f"the budget); {len(advice.cut)} method(s) not fully screened and not "
            "considered: " + ", ".join(advice.cut)
        )
    configs = {r["axes"]["method"]: r["params"] for r in advice.records["spd"]}
    eligible = [label for label in configs if label not in advice.excluded]
    if not eligible:
        _none_eligible(advice)
        return _finish(advice, clock() - started, question)
    remaining = deadline - clock()
    cases = len(eligible) * len(question.dims)
    if remaining <= 0:
        advice.unranked = eligible
        advice.notes.append("budget: spent on screening; nothing was timed, so no ranking")
        return _finish(advice, clock() - started, question)
    per_case = min(0.5, max(0.02, TIMING_SHARE * remaining / cases))
    if per_case < 0.5:
        advice.notes.append(
            f"budget: {clock() - started:.0f} s went to screening; timing uses "
            f"{per_case:.2f} s per case (0.50 s when time allows)"
        )
    methods = {label: _config_of(configs[label]) for label in eligible}
    # A paired group of all eligible methods at one size may take what is left.
    advice.suites["time"] = time_suite(
        question, methods, per_case, limit_s=max(1.0, remaining / len(eligible))
    )
    suite, advice.records["time"] = _run(
        advice.suites["time"], reporter_factory() if reporter_factory else None, save_to, advice,
        stop=lambda: clock() >= deadline,
    )  # fmt: skip
    timed_dims = {r["axes"]["dim"] for r in advice.records["time"]}
    untimed = [d for d in question.dims if d not in timed_dims]
    if untimed:
        advice.notes.append(
            f"budget: ran out before timing d = {', '.join(map(str, untimed))}; ranked on "
            f"d = {', '.join(map(str, sorted(timed_dims))) or 'none'}"
        )
    _rank(advice, question, configs, [d for d in question.dims if d in timed_dims])
    advice.baseline = suite.baseline
    if not advice.ranking:
        advice.unranked = [label for label in eligible if label not in advice.excluded]
    return _finish(advice, clock() - started, question)


def _opening_notes(question: Question) -> list[str]:
    """What the advice says of its own shape before anything runs."""
    notes = []
    if question.batch > SCREEN_BATCH:
        notes.append(
            f"accuracy screened on {SCREEN_BATCH} matrices of each family "
            f"(errors are per matrix); timed at batch {question.batch}"
        )
    if question.budget_s < SHORT_BUDGET_S:
        notes.append(
            f"budget under {SHORT_BUDGET_S:g} s: one iteration/degree setting "
            "per approximate method"
        )
    return notes


def _none_eligible(advice: Advice) -> None:
    """No method passed screening: a UserError when none could run at all, else a note
    (unless the budget cut screening, which a note already says)."""
    screened = [r for role in ("spd", "covariance") for r in advice.records[role]]
    if screened and not any(r["status"] == "ok" for r in screened):
        reasons = sorted({str(r.get("reason")) for r in screened})
        raise UserError(
            f"no method could run at all ({len(screened)} screening records, none ok): "
            f"{reasons[0][:200]}"
        )
    if not advice.cut:
        advice.notes.append("no method meets the tolerance on every probe")


def _screen(advice: Advice, question: Question, reporter_factory, save_to, stop) -> None:
    """Run the screening suites until ``stop``; exclude each method that fails a probe,
    and each one a probe never reached (``Advice.cut``), with its reason."""
    advice.suites = screen_suites(question)
    cut: dict[str, str] = {}
    for role, data in advice.suites.items():
        reporter = reporter_factory() if reporter_factory else None
        suite, advice.records[role] = _run(data, reporter, save_to, advice, stop=stop)
        for label in _unreached(suite, advice.records[role]):
            cut.setdefault(label, role)
    advice.excluded = _exclusions(advice.records, question)
    for label, role in cut.items():
        advice.excluded.setdefault(
            label, f"not screened: the budget's screening share ran out ({role})"
        )
    advice.cut = list(cut)


def _rank(advice: Advice, question: Question, configs: dict, dims: list[int]) -> None:
    """Rank the timed methods by their paired ratio to the timing suite's baseline
    (geometric mean over ``dims``), the figure the evidence table shows."""
    mode = "fwd_bwd" if question.need_grad else "fwd"
    by_label: dict[str, dict[int, dict[str, Any]]] = {}
    for record in advice.records["time"]:
        if record["status"] == "ok":
            value = record["value"][mode]
            samples = sorted(value["samples"])
            ratios = noise.ratios_of(value)
            by_label.setdefault(record["axes"]["method"], {})[record["axes"]["dim"]] = {
                "time": samples[len(samples) // 2],
                "ratio": float(np.median(ratios)) if ratios else None,
                "samples": value["samples"],  # in round order: paired across methods
                "noisy": noise.is_noisy(value),
            }
        else:
            advice.excluded[record["axes"]["method"]] = (
                f"timing {record['status']}: {record.get('reason') or ''}".rstrip(": ")
            )
    for label, per_dim in by_label.items():
        if not dims or any(d not in per_dim for d in dims) or label in advice.excluded:
            continue
        errors = {
            r["metric"]: r["value"] for r in advice.records["spd"] if r["axes"]["method"] == label
        }
        ratios = [per_dim[d]["ratio"] for d in dims]
        advice.ranking.append(
            {
                "method": label,
                "time_s": _geomean([per_dim[d]["time"] for d in dims]),
                "per_dim": {d: per_dim[d]["time"] for d in dims},
                # Time relative to the timing suite's baseline, paired round by round.
                "ratio": None if None in ratios else _geomean(ratios),
                "rounds": {d: per_dim[d]["samples"] for d in dims},
                "noisy": any(per_dim[d]["noisy"] for d in dims),
                "forward_error": errors.get("forward_error"),
                "grad_error": errors.get("grad_error"),
                "exact": is_exact(configs[label]),
            }
        )
    paired = all(row["ratio"] is not None for row in advice.ranking)
    advice.ranking.sort(key=lambda row: row["ratio"] if paired else row["time_s"])
    if len(advice.ranking) > 1:
        note = within_noise(advice.ranking[0], advice.ranking[1])
        if note:
            advice.notes.append(note)


def _finish(advice: Advice, spent: float, question: Question) -> Advice:
    advice.notes.append(f"advice took {spent:.1f} s of a {question.budget_s:g} s budget")
    return advice


def render(advice: Advice, question: Question) -> list[Any]:
    """What `matbench advise` prints, in order: the recommendation (or why there is none),
    the evidence table ranked by the column it shows, every exclusion, every note. Rich
    renderables and markup strings; labels escaped."""
    from rich.markup import escape
    from rich.table import Table

    mode = "forward+backward" if question.need_grad else "forward"
    ranking = advice.ranking
    paired = bool(ranking) and all(row["ratio"] is not None for row in ranking)
    base = advice.baseline or "the first"

    def speed(row) -> str:  # the figure the ranking uses, as the table shows it
        if paired:
            return f"paired time ratio {row['ratio']:.3f} to {base}"
        return f"{row['time_s'] * 1e3:.3g} ms {mode}"

    out: list[Any] = []
    if ranking:
        kind = "exact" if ranking[0]["exact"] else "approximate"
        out.append(
            f"[bold]recommended:[/] {escape(ranking[0]['method'])} ({kind}), {speed(ranking[0])}"
        )
        if len(ranking) > 1:
            out.append(f"runner-up:   {escape(ranking[1]['method'])}, {speed(ranking[1])}")
    elif advice.unranked:
        out.append(
            "[bold yellow]not ranked:[/] the budget ran out before timing; these met the "
            f"tolerance: {escape(', '.join(advice.unranked))}"
        )
    elif advice.cut:
        out.append(
            "[bold yellow]no answer within the budget:[/] screening was cut before any "
            "method passed every probe; raise --budget (the notes below say what ran)"
        )
    else:
        out.append("[bold red]no method meets the tolerance on every probe[/]")
    table = Table(
        title=f"evidence: {question.func}, batch {question.batch}, d "
        f"{', '.join(map(str, question.dims))}, {question.dtype}, tolerance "
        f"{question.tolerance:g}",
        caption=(
            f"ranked by the paired time ratio to {base} (interleaved rounds, geometric mean "
            "over the sizes); medians for scale"
            if paired
            else "ranked by median time"
        ),
        title_justify="left",
    )
    columns = ["method", *([f"time ratio to {base} (paired)"] if paired else [])]
    columns += [f"{mode} time (median)", "forward error", "gradient error", "rank"]
    for column in columns:
        table.add_column(escape(column))
    for i, row in enumerate(ranking):
        ratio = [f"{row['ratio']:.3f}" + (" ⚠" if row["noisy"] else "")] if paired else []
        table.add_row(
            escape(row["method"]), *ratio, f"{row['time_s'] * 1e3:.3g} ms",
            f"{row['forward_error']:.1e}",
            "" if row["grad_error"] is None else f"{row['grad_error']:.1e}",
            "recommended" if i == 0 else f"#{i + 1}",
        )  # fmt: skip
    out.append(table)
    out += [f"excluded {escape(label)}: {escape(why)}" for label, why in advice.excluded.items()]
    out += [escape(note) for note in advice.notes]
    return out


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def write_suites(result: Advice, path: Path) -> list[Path]:
    """Write the generated suites: ``path`` (timing) and its siblings <stem>-<role>.yaml."""
    written = []
    for role, data in result.suites.items():
        target = path if role == "time" else path.with_name(f"{path.stem}-{role}{path.suffix}")
        try:
            target.write_text(yaml.safe_dump(data, sort_keys=False))
        except OSError as exc:
            raise UserError(f"{target}: cannot write: {exc.strerror or exc}") from exc
        written.append(target)
    return written
