"""Before a run: which cases it selects, which run folder it writes (given, resumed or
new), what that folder already holds, and what the rest will cost. No torch: ``plan``
and ``run --dry-run`` answer from the suite and the records alone."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_cli import spec, store
from bench_cli.errors import UserError
from bench_cli.fsafe import utc_stamp, write_failed


def select_cases(
    suite: spec.Suite, devices: Sequence[str] | None = None, filters: Sequence[str] | None = None
) -> list[spec.Case]:
    """The suite's cases on these devices (default: the suite's) matching every filter."""
    for device in devices or ():
        if not spec.DEVICE_PATTERN.match(device):
            raise UserError(f"--device '{device}': expected cpu, cuda, cuda:N, mps or auto")
    cases = spec.select(suite.cases(devices or None), filters or [])
    if not cases:
        raise UserError(f"{suite.source}: no case matches --filter {' '.join(filters or [])}")
    return cases


def matching_runs(root: Path, suite: spec.Suite, machine: str) -> list[store.RunFolder]:
    """Runs of this exact suite version on this machine under a results root, oldest first."""
    return [
        folder
        for folder in store.runs_of(root, suite.name)
        if folder.meta.get("fingerprint") == suite.fingerprint
        and folder.meta.get("machine_key") == machine
    ]


@dataclass(frozen=True)
class Estimate:
    """plan's estimate for one metric over the cases still to do: seconds from earlier
    records of the same cases, else of the same method and metric, else a cost model."""

    metric: str
    cases: int
    seconds: float
    measured: int  # cases priced by their own earlier record
    similar: int  # by records of the same layer, method and metric
    modelled: int  # by the time metric's budget
    unknown: int  # by nothing: left out of ``seconds``


def estimate(
    suite: spec.Suite, cases: Sequence[spec.Case], done: set, history: Sequence[dict[str, Any]]
) -> list[Estimate]:
    """Seconds each metric will take for the cases not done, from ``history`` (earlier
    records of this suite on this machine, any version): a case's own elapsed time where
    it was measured before, else the median of its layer and method for that metric, else,
    for time, its model (warm-up plus budget_s per mode, times 1.5 for the setup), else
    unknown. An estimate, said as one: the run's own progress line is the truth."""

    own: dict[tuple[str, str], float] = {}
    alike: dict[tuple[str, str, str], list[float]] = {}
    for record in history:
        elapsed = record.get("elapsed_s")
        if not isinstance(elapsed, int | float) or record.get("status") != "ok":
            continue
        own[(record["case"], record["metric"])] = float(elapsed)
        params = record.get("params") or {}
        key = (str(params.get("layer")), str(params.get("impl")), record["metric"])
        alike.setdefault(key, []).append(float(elapsed))
    out = []
    for config in suite.metrics:
        total, counts = 0.0, {"measured": 0, "similar": 0, "modelled": 0, "unknown": 0}
        todo = [c for c in cases if (c.key, config.name) not in done]
        for case in todo:
            similar = alike.get((case.config.layer, case.config.method, config.name))
            if (case.key, config.name) in own:
                total += own[(case.key, config.name)]
                counts["measured"] += 1
            elif similar:
                total += statistics.median(similar)
                counts["similar"] += 1
            elif config.name == "time":
                options = config.resolved
                total += 1.5 * options["budget_s"] * len(options["modes"])
                counts["modelled"] += 1
            else:
                counts["unknown"] += 1
        out.append(Estimate(config.name, len(todo), total, **counts))
    return out


def history_of(root: Path, suite: spec.Suite, machine: str) -> list[dict[str, Any]]:
    """Every record of earlier runs of this suite's name on this machine, any version."""
    return [
        record
        for folder in store.runs_of(root, suite.name)
        if folder.meta.get("machine_key") == machine
        for record in folder.records()
    ]


def latest_unfinished(root: Path, suite: spec.Suite, machine: str) -> store.RunFolder | None:
    """The newest run of this suite on this machine with cases left, or None."""
    from bench_cli import runner

    for folder in reversed(matching_runs(root, suite, machine)):
        if runner.pending(suite.cases(), suite, folder.done()):
            return folder
    return None


def new_run_folder(
    root: Path, suite: spec.Suite, machine: str, shard: str | None = None, reserve: bool = True
) -> Path:
    """results/<suite>/<UTC stamp>_<machine>[_shard-i-of-N], never an existing folder;
    ``reserve`` makes it (empty) so no other run can take the name."""
    suffix = "" if shard is None else "_shard-" + shard.replace("/", "-of-")
    base = Path(root) / suite.name / f"{utc_stamp()}_{machine}{suffix}"
    path, n = base, 1
    while not reserve and path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    while reserve:  # reserved by an exclusive mkdir: two runs started in one second never share
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        except OSError as exc:
            raise write_failed(path.parent, exc) from exc
    return path


def choose_folder(
    suite: spec.Suite,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    results: str | Path = "results",
    shard: str | None = None,
    reserve: bool = True,
) -> store.RunFolder:
    """Where a run writes: ``out`` itself, the latest unfinished run (``resume``), or new
    (made empty at once unless ``reserve`` is False, as for a dry run)."""
    from bench_cli import env as env_mod

    if out is not None and resume:
        raise UserError("--out and --resume both name the run folder; give one")
    machine = env_mod.machine_key()
    if out is not None:
        return store.RunFolder(out)
    if resume:
        folder = latest_unfinished(Path(results), suite, machine)
        if folder is None:
            raise UserError(
                f"no unfinished run of suite '{suite.name}' on this machine "
                f"under {Path(results) / suite.name}"
            )
        return folder
    return store.RunFolder(new_run_folder(Path(results), suite, machine, shard, reserve))


def done_in(folder: store.RunFolder, suite: spec.Suite, retry: bool = True) -> set:
    """The (case, metric) pairs a folder already holds for this suite (none if it holds no
    run yet); a UserError if it holds another suite or another version of it."""
    if not folder.path.exists():
        return set()
    meta = folder.meta
    if meta["suite"] != suite.name or meta["fingerprint"] != suite.fingerprint:
        what = (
            f"suite '{meta['suite']}'"
            if meta["suite"] != suite.name
            else f"a different version of suite '{suite.name}'"
        )
        raise UserError(f"{folder.path}: holds a run of {what}, not of this suite")
    return folder.done(retry=retry)


@dataclass
class Plan:
    """What ``plan`` and ``run --dry-run`` show: the selected cases (an iterator for a
    grid too large to hold), the (case, metric) pairs done, the run folder they were
    read from, and the estimate for the rest (None where expanding the grid twice would
    cost too much)."""

    cases: Any
    done: set
    against: Path | None = None
    estimates: list[Estimate] | None = None


def dry_run(
    suite: spec.Suite,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    results: str | Path = "results",
    devices: Sequence[str] | None = None,
    filter: Sequence[str] | None = None,
    retry: bool = True,
    **_ignored: Any,
) -> Plan:
    """What ``run`` would do with these options, measuring and writing nothing: the same
    choice of folder as a run makes, without reserving it."""
    cases = select_cases(suite, devices, filter)
    folder = choose_folder(suite, out, resume=resume, results=results, reserve=False)
    return Plan(cases, done_in(folder, suite, retry=retry), folder.path)


def plan(
    suite: spec.Suite,
    *,
    out: str | Path | None = None,
    results: str | Path = "results",
    devices: Sequence[str] | None = None,
    filter: Sequence[str] | None = None,
    estimate_up_to: int = 500,
) -> Plan:
    """The cases of a suite, which are done (in ``out``, else in the latest run of this
    suite on this machine) and, for a grid up to ``estimate_up_to`` cases, the estimate."""
    from bench_cli import env as env_mod

    results = Path(results)
    cases = select_cases(suite, devices, filter) if filter else suite.iter_cases(devices)
    machine = env_mod.machine_key()
    history = history_of(results, suite, machine)
    done: set = set()
    against = None
    if out is not None:
        folder = store.RunFolder(out)
        done = done_in(folder, suite)
        history += folder.records() if (Path(out) / "run.json").is_file() else []
    else:
        runs = matching_runs(results, suite, machine)
        if runs:
            done, against = runs[-1].done(), runs[-1].path
    found = Plan(cases, done, against)
    if suite.case_count <= estimate_up_to:  # a grid this size is cheap to expand twice
        picked = select_cases(suite, devices, filter) if filter else suite.cases(devices)
        found.estimates = estimate(suite, picked, done, history)
    return found
