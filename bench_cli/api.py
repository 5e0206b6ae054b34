"""matbench's Python API: everything the command line does, without Typer.

    import bench_cli

    folder = bench_cli.run_suite("smoke", out="/tmp/x")        # a bundled name or a path
    frame = bench_cli.load_results(folder.path)                 # one row per case and metric
    (comparison,) = bench_cli.compare_runs([run_a, run_b])      # B against A, case by case
    outcome = bench_cli.reproduce("song2021-truncation", quick=True)

``matbench`` (bench_cli.cli) only parses arguments, calls these and prints.
Reading results (:func:`load_results`, :func:`compare_runs`, :func:`tables_of`)
imports no torch; running imports it on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from bench_cli import claims, spec, store, tables
from bench_cli import compare as compare_mod
from bench_cli import reproduction as reproduce_mod
from bench_cli.errors import IncompleteRun, UserError, unknown_name
from bench_cli.fsafe import output_folder, replace_file
from bench_cli.runner.plan import (  # the API's too: see __all__
    Estimate,
    Plan,
    choose_folder,
    done_in,
    dry_run,
    estimate,
    history_of,
    latest_unfinished,
    matching_runs,
    new_run_folder,
    plan,
    select_cases,
)
from bench_cli.spec.catalog import (  # the API's too: see __all__
    bundled_suites,
    paper_suite,
    paper_suites,
    resolve_suite,
    suites_dir,
)

if TYPE_CHECKING:
    import pandas as pd

    from bench_cli.runner import Reporter

# The public names, run-folder planning re-exported from bench_cli.runner.plan included.
__all__ = [
    "Estimate", "Plan", "Reproduction", "bundled_suites", "check_timeout", "choose_folder",
    "compare_runs", "done_in", "dry_run", "estimate", "generated_sections", "history_of",
    "judge_existing", "judge_reproduction", "latest_unfinished", "load_results",
    "load_suite", "matching_runs", "measured_peaks", "merge_runs", "new_run_folder",
    "open_run", "paper_suite", "paper_suites", "plan", "reproduce", "reproduction_markdown",
    "require_devices", "resolve_suite", "run_suite", "select_cases", "suites_dir",
    "tables_of", "write_conclusions", "write_outputs", "write_readme_section",
]  # fmt: skip

log = logging.getLogger("bench_cli")
Notify = Callable[[str], None]

README_START, README_END = "<!-- reproduced:start -->", "<!-- reproduced:end -->"
# Optional: the conclusions of the paper suites with paired tables, where the docs
# discusses them (the end-to-end tasks), generated from the same runs.
CONCLUSIONS_START, CONCLUSIONS_END = "<!-- conclusions:start -->", "<!-- conclusions:end -->"


# ---------------------------------------------------------------- suites


def load_suite(
    name_or_path: str | Path | spec.Suite, quick: bool = False, max_cases: int | None = None
) -> spec.Suite:
    """A validated suite from a path, a bundled name, or a Suite (returned as is); a grid
    of more than ``max_cases`` cases (default spec.MAX_CASES) is refused unexpanded."""
    if isinstance(name_or_path, spec.Suite):
        return name_or_path
    if max_cases is not None and max_cases < 1:
        raise UserError(f"--max-cases must be at least 1, got {max_cases}")
    ceiling = spec.MAX_CASES if max_cases is None else max_cases
    return spec.load(resolve_suite(name_or_path), quick=quick, max_cases=ceiling)


def check_timeout(timeout: float | None) -> None:
    """A per-case limit must be a finite number of seconds up to spec.MAX_TIMEOUT_S."""
    if timeout is not None and not 0 < timeout <= spec.MAX_TIMEOUT_S:  # NaN fails too
        raise UserError(
            f"--timeout must be seconds in (0, {spec.MAX_TIMEOUT_S:g}], got {timeout:g}"
        )


def require_devices(devices: Sequence[str]) -> None:
    """An explicit --device this machine lacks is a mistake (one line, exit 2), not a run
    of skipped records; a suite's own device list may still name one, and those cases
    are recorded as skipped with the reason."""
    from bench_cli import runner

    for device in devices:
        if device == "auto":
            continue
        reason = runner.device_unavailable(device)
        if reason:
            raise UserError(
                f"--device {device}: {reason}; leave --device out to run the suite's own "
                "devices (absent ones are recorded as skipped)"
            )


# ---------------------------------------------------------------- run folders


def measured_peaks(cases: Sequence[spec.Case]) -> dict[str, float]:
    """The batched-matmul rate of each (device, dtype) the run times, for "% of peak"."""
    from bench_cli import runner
    from bench_cli.metrics.timing import matmul_peak_gflops

    peaks = {}
    for device, dtype in sorted({(c.device, c.dtype) for c in cases}):
        if runner.device_unavailable(device) is None:
            try:
                peaks[f"{device}/{dtype}"] = round(matmul_peak_gflops(device, dtype), 3)
            except RuntimeError:  # no matmul kernel for this dtype here
                continue
    return peaks


# ---------------------------------------------------------------- running


def run_suite(
    suite: str | Path | spec.Suite,
    out: str | Path | None = None,
    *,
    devices: Sequence[str] | None = None,
    filter: Sequence[str] | None = None,
    timeout: float | None = None,
    results: str | Path = "results",
    resume: bool = False,
    isolate: bool = False,
    shard: str | None = None,
    executor: str | None = None,
    executor_options: dict[str, Any] | None = None,
    allow_mixed: bool = False,
    retry: bool = True,
    quick: bool = False,
    reporter: Reporter | None = None,
    job_reporter: Any = None,
    notify: Notify | None = None,
    stop: Any = None,
) -> store.RunFolder:
    """Run a suite (a path, a bundled name or a Suite) and write its run folder.

    Args:
        out: the run folder itself (created, or resumed if it holds an unfinished run of
            this suite); default: a new folder under ``results/<suite>/``.
        devices: run on these devices instead of the suite's.
        filter: only cases matching every ``AXIS=GLOB`` (or a glob on the case label).
        timeout: per-case limit in seconds (default: the suite's).
        resume: continue the latest unfinished run of this suite on this machine.
        isolate: run each case in a spawned worker; a crash or hang costs only its case.
        shard: ``"i/N"``, run that balanced share of the cases.
        executor: ``"local"`` or ``"slurm"``: shards as a submitit job array, merged here;
            ``executor_options`` override the suite's ``executor:`` block.
        allow_mixed: resume a folder whose records were measured by other code.
        retry: measure again the cases a scheduler stopped at its time limit (records
            marked ``retry``); False keeps their timeout records as the result.
        quick: the suite's reduced ``quick:`` size.
        stop: asked before each case (in this process): once it returns True nothing
            more starts (advise's time budget); the folder stays resumable.
        reporter: progress callbacks (``bench_cli.runner.Reporter``); default silent.
        notify: called with each one-line message (default: the ``bench_cli`` logger).

    Returns the run folder: records.jsonl, run.json, env.json, suite.yaml, tables/, plots/.
    Raises UserError for a bad suite, option or folder, before anything is measured.
    Interrupted (KeyboardInterrupt), every finished case stays saved and it re-raises.
    Raises IncompleteRun, after writing the tables, when executor tasks failed or were
    stopped: what they finished is saved, and running again measures the rest.
    """
    from bench_cli import env as env_mod
    from bench_cli import runner
    from bench_cli.scaleout import gather, shards, submit
    from bench_cli.scaleout import settings as scaleout_settings

    say = notify or log.info
    suite = load_suite(suite, quick=quick)
    check_timeout(timeout)
    backend = None
    if isolate:
        from bench_cli.runner import isolate as isolate_mod

        isolate_mod.grace_s()  # a bad MATBENCH_WORKER_GRACE_S, before any folder
        backend = isolate_mod.Isolated()
    scale_out = None
    if executor is not None:
        if executor not in ("local", "slurm"):
            raise UserError(unknown_name("executor", executor, ("local", "slurm")))
        if isolate or shard:
            raise UserError("--executor runs its own shards: drop --isolate and --shard")
        scaleout_settings.require_submitit()  # before any folder is made
        settings = scaleout_settings.parse_settings(suite.executor, suite.source)
        scale_out = settings.model_copy(update=dict(executor_options or {}))
    cases = select_cases(suite, devices, filter)
    if executor is None:  # an executor's devices are its nodes', not this machine's
        require_devices(devices or ())
    if scale_out is not None and executor == "slurm":
        submit.preflight(scale_out, cases)  # sbatch's refusal, before any folder
    if shard is not None:
        index, count = shards.parse(shard)
        cases = shards.select(cases, index, count, suite.paired_timing)
    folder = choose_folder(suite, out, resume=resume, results=results, shard=shard)
    env = env_mod.collect()
    if "time" in {m.name for m in suite.metrics}:
        env["matmul_peak_gflops"] = measured_peaks(cases)
    with folder.open_for_run(
        suite_name=suite.name,
        fingerprint=suite.fingerprint,
        suite_text=suite.text,
        env=env,
        provenance=env_mod.provenance(),
        allow_mixed=allow_mixed,
    ) as writer:
        say(f"run folder: {folder.path}")
        if writer.dropped:
            say(
                f"records.jsonl: dropped a torn last line ({len(writer.dropped)} bytes: "
                f"{writer.dropped[:60]!r}) left by an interrupted run; resuming from the last "
                "whole record"
            )
        if writer.mixed:
            say(f"mixed code: {writer.mixed}; new records carry their invocation")
        done = folder.done(retry=retry)
        outcome = None
        try:
            if scale_out is not None and executor is not None:
                order = {case.key: case.grid for case in cases}
                adopted = gather.adopt_earlier_shards(folder, writer, order)
                if adopted:
                    say(f"appended {adopted} records that earlier array tasks left in shards/")
                    done = folder.done(retry=retry)
                todo = [case for case, _ in runner.pending(cases, suite, done)]
                say(
                    f"{executor} executor: {len(todo)} cases as job arrays, logs under "
                    f"{folder.path / 'submitit'}"
                )
                outcome = submit.submit_and_merge(
                    suite, todo, folder, writer, executor, scale_out, devices or None, timeout,
                    job_reporter,
                )  # fmt: skip
                summary = runner.Summary(planned=len(cases), already_done=len(cases) - len(todo))
            else:
                summary = runner.run(
                    suite, cases, writer, done, timeout=timeout, reporter=reporter,
                    backend=backend, stop=stop,
                )  # fmt: skip
        except KeyboardInterrupt:
            say(
                f"interrupted: {len(folder.done())} records are saved in {folder.path}; "
                f"run again with --out {folder.path} to finish"
            )
            raise
    if summary.already_done:
        say(f"resumed: {summary.already_done} of {summary.planned} cases were already done")
    records = folder.records()
    write_outputs(folder, records, tables_of(folder, records), say)
    if outcome is not None and outcome.message(folder.path):
        raise IncompleteRun(outcome.message(folder.path), folder)
    return folder


# ---------------------------------------------------------------- reading


def open_run(path: str | Path) -> store.RunFolder:
    """A run folder, or one clear UserError when the path is not one."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: run folder not found")
    folder = store.RunFolder(path)
    folder.meta  # noqa: B018 -- raises UserError for a folder that is not a run
    return folder


def merge_runs(runs: Sequence[str | Path], out: str | Path) -> list[tuple[Path, int]]:
    """Merge shard runs of one suite into ``out`` (one folder per machine key beneath it
    where the shards differ); (merged folder, its record count) each. Overlapping shards
    are refused."""
    from bench_cli.scaleout import shards

    folders = [open_run(path) for path in runs]
    merged = shards.merge(folders, Path(out))
    return [(Path(t), len(store.RunFolder(t).records())) for t in merged]


def write_outputs(
    folder: store.RunFolder,
    records: Sequence[dict[str, Any]],
    made: Sequence[tables.Table],
    say: Callable[[str], None] | None = None,
) -> None:
    """Write a run's tables and plots into its folder. Either failing costs one warning
    line, never a record: ``matbench show`` makes them again from the folder."""
    from bench_cli import plots

    for what, write in (
        ("tables", lambda: tables.write(made, folder.path / "tables")),
        ("conclusions", lambda: write_conclusions(made, folder.path / "tables")),
        ("plots", lambda: plots.write(records, folder.path / "plots", progress=say)),
    ):
        try:
            write()
        except Exception as exc:  # noqa: BLE001 -- every record is saved; say it in a line
            detail = (
                str(exc)
                if isinstance(exc, UserError | OSError)
                else (f"{type(exc).__name__}: {exc}")
            )
            log.warning(
                f"{what} not written: {detail}; every record is saved in {folder.path} "
                f"(`matbench show {folder.path}` makes them again)"
            )


def write_conclusions(made: Sequence[tables.Table], folder: Path) -> Path | None:
    """``conclusions.md``: the sentences the paired tables support across metrics
    (bench_cli.claims), when the suite has paired tables."""

    text = claims.conclusions(made)
    if not text:
        return None
    return replace_file(output_folder(folder) / "conclusions.md", text.encode())


def tables_of(
    folder: store.RunFolder, records: Sequence[dict[str, Any]] | None = None
) -> list[tables.Table]:
    """A run's tables, re-made from its records and its suite's ``tables:`` (no torch)."""
    outline = spec.outline(folder.suite_text, str(folder.path / "suite.yaml"))
    records = folder.records() if records is None else records
    return tables.tables_for(records, outline.tables, list(outline.metric_names))


def load_results(path: str | Path) -> pd.DataFrame:
    """A tidy pandas DataFrame of a run folder's records: one row per case and metric.

    Columns: case, metric, status, reason, value (as recorded), the case's axes
    (method, dim, dtype, ...), run (the folder) and machine_key.
    """
    return compare_mod.load_results(open_run(path).path)


def compare_runs(
    runs: Sequence[str | Path],
    *,
    baseline: str | None = None,
    min_effect: float = 0.05,
    mode: str = "fwd_bwd",
    device: str | None = None,
) -> list[compare_mod.Comparison]:
    """Compare each run with the first, case by case: time ratios with bootstrap intervals
    (``faster``/``slower`` only when the interval excludes 1 and the change is at least
    ``min_effect``), accuracy differences, changed statuses. With ``baseline``, times are
    divided by that method's on the same machine first (speed-ups, not raw times)."""
    if mode not in ("fwd", "bwd", "fwd_bwd"):
        raise UserError(unknown_name("mode", mode, ("fwd", "bwd", "fwd_bwd")))
    folders = [open_run(path) for path in runs]
    return compare_mod.compare_many(
        folders, min_effect=min_effect, mode=mode, baseline=baseline, device=device
    )


# ---------------------------------------------------------------- reproducing


@dataclass
class Reproduction:
    """A reproduce run: its folder, and with a reference, the verdict table and text."""

    folder: store.RunFolder
    suite: spec.Suite
    frame: pd.DataFrame | None = None  # one row per published entry, with its verdict
    text: str = ""  # the markdown table of published beside measured
    failing: list[str] | None = None  # rows that do not reproduce

    @property
    def overall(self) -> str | None:
        """``reproduced`` (at least one row tested, every tested row reproduces), ``not
        reproduced`` (a row fails) or ``untested`` (no row could be tested); None without
        a reference."""
        return None if self.frame is None else reproduce_mod.overall(self.frame)

    @property
    def reproduces(self) -> bool:
        """True only when at least one row was tested and every tested row reproduces:
        a reproduction in which nothing could be tested does not reproduce."""
        return self.overall == reproduce_mod.REPRODUCED

    @property
    def why_untested(self) -> str:
        """The rows' verdicts, counted ("12 inconclusive (noisy) of 12 rows"), for a
        reproduction in which nothing could be tested."""
        if self.frame is None:
            return "no reference"
        return f"{reproduce_mod.untested_reason(self.frame)} of {len(self.frame)} rows"


def reproduce(name: str | Path, *, quick: bool = False, **run_options: Any) -> Reproduction:
    """Re-run a published table (a paper suite's name, or a suite file with a
    ``reference:`` block) on this machine, and set the measurements beside the source's.

    ``run_options`` are those of :func:`run_suite`. The verdict table is also written
    to ``tables/reproduction.md`` in the run folder.
    """
    suite = spec.load(paper_suite(name), quick=quick)
    return judge_reproduction(run_suite(suite, **run_options), suite)


def judge_reproduction(
    folder: store.RunFolder, suite: spec.Suite, *, write: bool = True
) -> Reproduction:
    """The verdicts of a finished run against its suite's reference (none without one),
    also written to ``tables/reproduction.md`` unless ``write`` is False (judging a
    committed run again, e.g. against an edited reference, changes nothing in it)."""
    outcome = Reproduction(folder, suite)
    if suite.reference is not None:
        frame = reproduce_mod.verdicts(folder.records(), suite.reference)
        outcome.frame = frame
        outcome.text = reproduce_mod.render(frame, suite.reference)
        outcome.failing = reproduce_mod.failing_rows(frame)
        if write:
            (folder.path / "tables" / "reproduction.md").write_text(outcome.text)
    return outcome


def judge_existing(run: str | Path, suite: spec.Suite) -> Reproduction:
    """A finished run's records judged against ``suite``'s reference, running nothing and
    writing nothing; the run must hold a run of a suite of the same name."""
    folder = open_run(run)
    if folder.meta["suite"] != suite.name:
        raise UserError(
            f"{folder.path}: holds a run of suite '{folder.meta['suite']}', not '{suite.name}'"
        )
    return judge_reproduction(folder, suite, write=False)


def reproduction_markdown(
    folder: store.RunFolder, conclusions_here: bool = True
) -> tuple[str, str | None, str]:
    """(a run's tables and, where its suite cites a source, published beside measured, as
    markdown, with the conclusions across its paired tables unless ``conclusions_here`` is
    False; the verdict sentence, or None without a reference; those conclusions, or ""),
    reading the run once."""
    outline = spec.outline(folder.suite_text, str(folder.path / "suite.yaml"))
    records = folder.records()
    parts = []
    made = tables.tables_for(records, outline.tables, list(outline.metric_names))
    for table in made:
        parts.append(tables.render(table, "md").replace("### ", "#### ", 1))  # one level down
        sentence = tables.paired_claims(table)
        if sentence:
            parts.append(sentence + "\n")
    across = claims.conclusions(made)
    if across and conclusions_here:
        parts.append("#### Conclusions, across every paired metric\n\n" + across)
    verdict = None
    if outline.reference is not None:
        frame = reproduce_mod.verdicts(records, outline.reference)
        parts.append(reproduce_mod.render(frame, outline.reference))
        verdict = reproduce_mod.summary(frame)
    return "\n".join(parts), verdict, across


def write_readme_section(readme: str | Path, results: str | Path = "results") -> int:
    """Rewrite the reproduced-tables section of one markdown file (and its task
    conclusions, where it has their markers) from the latest run of every paper suite
    under ``results``; returns the number of suites."""
    readme = Path(readme)
    if not readme.exists():
        raise UserError(f"{readme}: not found")
    texts = generated_sections({readme: readme.read_text()}, results)
    readme.write_text(texts[readme])
    return len(paper_suites())


def generated_sections(texts: Mapping[Path, str], results: str | Path) -> dict[Path, str]:
    """``texts`` (page -> its text) with the reproduced tables written between the
    ``reproduced`` markers of the page that has them, and the task suites' conclusions
    between the ``conclusions`` markers wherever those are (then once, not in each
    suite's section). Every section comes from the latest run of each paper suite."""
    results = Path(results)
    home = [path for path, text in texts.items() if README_START in text and README_END in text]
    if not home:
        names = ", ".join(str(path) for path in texts)
        raise UserError(f"{names}: no '{README_START}' ... '{README_END}' markers")
    aside = [p for p, t in texts.items() if CONCLUSIONS_START in t and CONCLUSIONS_END in t]
    sections, verdicts, concluded = [], [], []
    for name in paper_suites():
        runs = store.runs_of(results, name)
        if not runs:
            sections.append(f"### {name}\n\nNo committed run under {results / name}.\n")
            continue
        folder = runs[-1]
        shown = shown_path(results, folder)
        markdown, verdict, across = reproduction_markdown(folder, conclusions_here=not aside)
        sections.append(f"### {name}\n\nRun `{shown}`.\n\n" + markdown)
        if verdict is not None:
            verdicts.append(f"- **{name}**: {verdict}.")
        if across:
            concluded.append(f"**{name}** (run `{shown}`).\n\n{across}")
    overview = "Verdicts, counted from the tables below:\n\n" + "\n".join(verdicts) + "\n"
    body = "\n".join([overview, *sections] if verdicts else sections)
    out = dict(texts)
    out[home[0]] = between(out[home[0]], README_START, README_END, body)
    for path in aside:
        out[path] = between(out[path], CONCLUSIONS_START, CONCLUSIONS_END, "\n".join(concluded))
    return out


def shown_path(results: Path, folder: store.RunFolder) -> str:
    """A run folder as a generated page names it: from the results folder's own name on,
    so a page reads the same wherever the results folder lies."""
    return PurePosixPath(results.name, folder.path.parent.name, folder.path.name).as_posix()


def between(text: str, start_marker: str, end_marker: str, body: str) -> str:
    """``text`` with what lies between the two markers replaced by ``body``."""
    start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    return text[:start] + "\n" + body + "\n" + text[end:]
