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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_cli import compare as compare_mod
from bench_cli import dispatch, spec, store, tables
from bench_cli import reproduction as reproduce_mod
from bench_cli.dispatch import (  # the API's too: see __all__
    Finished,
    check_timeout,
    measured_peaks,
    require_devices,
    write_conclusions,
    write_outputs,
)
from bench_cli.docs_pages import write_readme_section
from bench_cli.errors import UserError, unknown_name
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
    "Finished",
    "Estimate", "Plan", "Reproduction", "bundled_suites", "check_timeout", "choose_folder",
    "compare_runs", "across_machines", "done_in", "dry_run", "estimate", "history_of",
    "judge_existing", "judge_reproduction", "latest_unfinished", "load_results",
    "load_suite", "matching_runs", "measured_peaks", "merge_runs", "new_run_folder",
    "open_run", "paper_suite", "paper_suites", "plan", "reproduce",
    "require_devices", "resolve_suite", "run_suite", "select_cases", "suites_dir",
    "tables_of", "write_conclusions", "write_outputs", "write_readme_section",
]  # fmt: skip

log = logging.getLogger("bench_cli")
Notify = Callable[[str], None]


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


def suite_plugins(suite: spec.Suite) -> dict[str, Path]:
    """The plugin modules a loaded suite's ``plugins:`` imported, and the file each came
    from: what ``validate`` names, since checking a suite runs its plugins' code."""
    import yaml

    from bench_cli import plugins

    data = yaml.safe_load(suite.text) if suite.text else None
    named = data.get("plugins") if isinstance(data, dict) else None
    names = [named] if isinstance(named, str) else list(named or [])
    imported = plugins.imported_plugins()
    modules = [str(n).removesuffix(".py") for n in names]
    return {m: imported[m] for m in modules if m in imported}


# ---------------------------------------------------------------- run folders


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
    check_arguments("run_suite", locals())
    return run(suite, **options_of(locals())).folder


_PATH = (str, Path)
_ARGUMENTS: dict[str, tuple[tuple[type, ...], str]] = {  # name: (accepted types, in words)
    "suite": ((str, Path, spec.Suite), "a suite file, a bundled suite name or a Suite"),
    "out": ((*_PATH, type(None)), "a folder path or None"),
    "results": (_PATH, "a folder path"),
    "timeout": ((int, float, type(None)), "seconds (a number) or None"),
    "shard": ((str, type(None)), 'a share such as "1/4", or None'),
    "executor": ((str, type(None)), '"local", "slurm" or None'),
    "executor_options": ((dict, type(None)), "a dict or None"),
    **{flag: ((bool,), "True or False") for flag in
       ("resume", "isolate", "allow_mixed", "retry", "quick")},
}  # fmt: skip
_LISTS = {"devices": "device names, e.g. ['cpu']", "filter": "AXIS=GLOB strings, e.g. ['dim=16']"}


def check_arguments(function: str, given: dict[str, Any]) -> None:
    """A UserError naming the parameter for an argument of the wrong type: a string where
    a list is meant is refused, not read letter by letter."""
    for name, (types, words) in _ARGUMENTS.items():
        if name not in given:
            continue
        value = given[name]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise UserError(
                f"{function}: {name} must be {words}, got {type(value).__name__} {value!r:.60}"
            )
        if name == "timeout" and isinstance(value, int | float) and not value > 0:
            raise UserError(f"{function}: timeout must be positive seconds, got {value!r}")
    for name, words in _LISTS.items():
        value = given.get(name)
        if value is None:
            continue
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise UserError(
                f"{function}: {name} must be a list of {words}, got {type(value).__name__} "
                f"{value!r:.60}"
            )
        wrong = [v for v in value if not isinstance(v, str)]
        if wrong:
            raise UserError(
                f"{function}: {name} must be a list of {words}; {wrong[0]!r:.60} is not a string"
            )


def run(
    suite: str | Path | spec.Suite, quick: bool = False, notify: Notify | None = None, **options
) -> dispatch.Finished:
    """``run_suite``, returning the folder with the records it holds and its tables
    (the command line prints them without reading the folder again)."""
    return dispatch.execute(load_suite(suite, quick=quick), dispatch.Options(**options), notify)


def options_of(given: dict[str, Any]) -> dict[str, Any]:
    """run_suite's arguments as ``run``'s: ``suite`` apart, ``executor_options`` a dict."""
    out = {k: v for k, v in given.items() if k != "suite"}
    out["executor_options"] = dict(out.get("executor_options") or {})
    return out


# ---------------------------------------------------------------- reading


def open_run(path: str | Path) -> store.RunFolder:
    """A run folder, or one clear UserError when the path is not one."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: run folder not found")
    folder = store.RunFolder(path, cache=True)  # read to show: each file read once
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
    import pandas as pd

    folder = open_run(path)
    meta = folder.meta
    rows = [
        {
            "case": record["case"],
            "metric": record["metric"],
            "status": record["status"],
            "reason": record.get("reason"),
            "value": record["value"],
            **record["axes"],
            "run": str(folder.path),
            "machine_key": compare_mod.machine_of(record, meta),
        }
        for record in folder.records()
    ]
    return pd.DataFrame(rows)


def compare_runs(
    runs: Sequence[str | Path | store.RunFolder],
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
    folders = [run if isinstance(run, store.RunFolder) else open_run(run) for run in runs]
    return compare_mod.compare_many(
        folders, min_effect=min_effect, mode=mode, baseline=baseline, device=device
    )


def across_machines(
    targets: Sequence[str | Path],
    *,
    results: str | Path = "results",
    baseline: str | None = None,
    mode: str = "fwd_bwd",
    min_effect: float = 0.05,
) -> Any:
    """One suite's timings across every machine on record (bench_cli.hardware): ``targets``
    is a suite name, whose committed runs under ``results`` are taken oldest first, or
    run folders, the first of which is the reference."""
    from bench_cli import hardware

    if mode not in ("fwd", "bwd", "fwd_bwd"):
        raise UserError(unknown_name("mode", mode, ("fwd", "bwd", "fwd_bwd")))
    if isinstance(targets, str | Path):
        raise UserError("targets must be a list of run folders or one suite name, not a string")
    if len(targets) == 1 and not Path(targets[0]).is_dir():
        folders = [open_run(f.path) for f in store.runs_of(Path(results), str(targets[0]))]
        if not folders:
            raise UserError(
                f"no runs of suite '{targets[0]}' under {results}/ "
                "(name a suite with committed runs, or give run folders)"
            )
    else:
        folders = [open_run(t) for t in targets]
    return hardware.across_machines(folders, baseline=baseline, mode=mode, min_effect=min_effect)


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
    finished = run(suite, **options_of(run_options))
    return judge_reproduction(finished.folder, suite, records=finished.records)


def judge_reproduction(
    folder: store.RunFolder,
    suite: spec.Suite,
    *,
    write: bool = True,
    records: Sequence[dict[str, Any]] | None = None,
) -> Reproduction:
    """The verdicts of a finished run against its suite's reference (none without one),
    also written to ``tables/reproduction.md`` unless ``write`` is False (judging a
    committed run again, e.g. against an edited reference, changes nothing in it).
    ``records``: the run's, where the caller holds them already."""
    outcome = Reproduction(folder, suite)
    if suite.reference is not None:
        records = folder.records() if records is None else records
        frame = reproduce_mod.verdicts(records, suite.reference)
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
