"""Scale out through submitit: one job-array task per shard, then merge.

``--executor slurm`` submits to the cluster the user already has;
``--executor local`` uses submitit's LocalExecutor on this machine. Each task runs
its shard into its own run folder under ``<run>/shards/<round>/``, where a round
is one submitting invocation; the submitting process waits, shows progress, and
appends the shards' records to the run in grid order, skipping any already there,
so a re-run resumes. Methods with resource overrides (e.g. a GPU for one method)
form their own array with those parameters.

What a real scheduler does, and what happens here:

- sbatch refuses the array (unknown partition, GPUs the cluster lacks): one
  line naming sbatch's reason, and any array already submitted is cancelled.
- A task reaches its time limit: Slurm sends SIGUSR2 ``signal_delay_s`` before the
  limit (a tenth of the limit, 5 to 90 s; Slurm may send it up to 60 s earlier
  still), then SIGTERM at the limit. The task goes on after the warning; at the
  SIGTERM it records its case in flight as failed, ``timeout: killed by the
  scheduler after N s``, marked ``retry``, keeps every record it finished, and
  ends; a re-run measures that case again.
- A task fails or is cancelled: the records its shard finished are still
  appended, the other tasks go on, and the command ends with exit 1 naming it.
- A task that neither finishes nor fails (no accounting, a lost node): the wait
  gives up on it ``grace_s`` after its time limit, counted from when it left the
  queue, cancels it and says which job it was.

Each shard folder's env.json describes the node that measured it; the records
appended from it carry that node's ``machine_key``, and the run's env.json lists
every node under ``nodes``.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from bench_cli import shards, spec, store
from bench_cli.errors import UserError
from bench_cli.fsafe import utc_stamp
from bench_cli.records import RECORDS

DEFAULT_TIME_MIN = 60
GRACE_S = 120.0  # beyond the time limit: Slurm's KillWait, sacct's lag, a slow file system
QUEUED = ("PENDING", "REQUEUED", "CONFIGURING")
SCHEDULER_ENDS = ("CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED")


class Resources(BaseModel):
    """Slurm resources of an array task."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    partition: str | None = None
    gpus: int | None = Field(None, ge=0)
    time_min: PositiveInt | None = None
    array_parallelism: PositiveInt | None = None


class ExecutorSpec(Resources):
    """The suite's ``executor:`` block; command-line options override it."""

    shards: PositiveInt | None = None
    setup: tuple[str, ...] = ()  # shell lines run before each task (module load, ...)
    resources: dict[str, Resources] = {}  # per method label


def require_submitit():
    """A UserError naming the install command when submitit is missing."""
    return _submitit()


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UserError("--executor needs submitit: pip install 'bench_cli[slurm]'") from None
    return submitit


def signal_delay_s(time_min: int) -> int:
    """Seconds before the limit at which Slurm warns a task: a tenth of the limit, 5 to 90.

    submitit's 90 s default would warn a 1-minute task at its start."""
    return int(min(90, max(5, round(time_min * 60 / 10))))


# ---------------------------------------------------------------- inside a task


class SchedulerStop(BaseException):
    """The scheduler's warning (time limit near) or SIGTERM (cancelled) arrived: the
    task must end now.

    A BaseException, so the runner's per-metric ``except Exception`` cannot
    record it as the case's own failure."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _InFlight:
    """A runner Reporter that remembers the case being measured and since when."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.case: spec.Case | None = None
        self.started = 0.0
        self.warned: float | None = None  # when the scheduler's warning came

    def start(self, total: int) -> None: ...

    def case_started(self, case) -> None:
        self.case, self.started = case, self.clock()

    def case_finished(self, case, records) -> None:
        self.case = None

    def finish(self) -> None: ...


def scheduler_killed_records(case, suite, seconds: float) -> list[dict[str, Any]]:
    """The records of a case the scheduler stopped: failed, reason ``timeout: killed by
    the scheduler after N s``, marked ``retry`` so that a re-run measures it again."""
    from bench_cli import runner

    why = f"timeout: killed by the scheduler after {seconds:.0f} s"
    records = runner.failed_records(case, suite, [m.name for m in suite.metrics], why)
    for record in records:
        record["retry"] = True
    return records


def run_shard(
    suite_text: str,
    source: str,
    keys: Sequence[str],
    devices,
    folder: str,
    timeout: float | None,
    stop_signal: int | None = None,
) -> str:
    """One array task: run the cases with these keys into their own run folder.

    ``stop_signal`` is the scheduler's warning that the limit is near (SIGUSR2 under
    submitit). Slurm may send it up to a minute early, so the task notes it and goes
    on; the SIGTERM that follows at the limit ends the task cleanly, the case in
    flight recorded as a retryable timeout. A SIGTERM with no warning before it
    means the task was cancelled (submitit would ignore it): the task ends with no
    record for the case in flight, and fails. Every finished case stays saved."""
    suite = spec.loads(suite_text, source)
    wanted = set(keys)
    cases = [case for case in suite.cases(devices) if case.key in wanted]
    shard = store.RunFolder(folder)
    tracker = _InFlight()
    previous = {}
    if stop_signal is not None:

        def on_signal(signum, frame):
            if signum == stop_signal:  # the limit is near: note it, use the time left
                tracker.warned = tracker.clock()
                return
            raise SchedulerStop(signum)

        for signum in (stop_signal, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        cancelled = _run_shard_cases(suite, cases, shard, suite_text, timeout, tracker)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if cancelled is not None:
        raise RuntimeError(
            f"stopped by SIGTERM (cancelled) with {cancelled} record(s) of "
            f"{len(cases) * len(suite.metrics)} saved"
        )
    return folder


def _run_shard_cases(suite, cases, shard, suite_text, timeout, tracker) -> int | None:
    """Run the shard's cases; the number of records saved if SIGTERM stopped it."""
    from bench_cli import env as env_mod
    from bench_cli import runner

    cancelled = None
    with shard.open_for_run(
        suite_name=suite.name,
        fingerprint=suite.fingerprint,
        suite_text=suite_text,
        env=env_mod.collect(),
        provenance=env_mod.provenance(),
    ) as writer:
        try:
            runner.run(suite, cases, writer, shard.done(), timeout=timeout, reporter=tracker)
        except SchedulerStop:
            if tracker.warned is None:  # SIGTERM with no warning first: cancelled
                cancelled = len(shard.done())
            elif tracker.case is not None:  # SIGTERM after the warning: the time limit
                elapsed = tracker.clock() - tracker.started
                writer.append(scheduler_killed_records(tracker.case, suite, elapsed))
    return cancelled


# ---------------------------------------------------------------- the submitting side


def _groups(cases: Sequence, settings: ExecutorSpec) -> dict[str, list]:
    """Cases by resource group: a method label with its own resources, or '' for the rest."""
    groups: dict[str, list] = {}
    for case in cases:
        label = case.config.base
        groups.setdefault(label if label in settings.resources else "", []).append(case)
    return groups


def _resources(settings: ExecutorSpec, group: str) -> Resources:
    """A group's resources: its own overrides, else the run's, with the default limit."""
    own = settings.resources.get(group, Resources())
    return Resources(
        partition=own.partition or settings.partition,
        gpus=own.gpus if own.gpus is not None else (settings.gpus or 0),
        time_min=own.time_min or settings.time_min or DEFAULT_TIME_MIN,
        array_parallelism=own.array_parallelism or settings.array_parallelism,
    )


def preflight(
    settings: ExecutorSpec, cases: Sequence, run: Callable[..., Any] | None = None
) -> None:
    """Ask sbatch (``--test-only``: nothing is queued) whether it would accept each
    array, before a run folder is made; a UserError with sbatch's reason if not."""
    import subprocess

    run = run or subprocess.run
    for group in _groups(cases, settings) or {"": []}:
        res = _resources(settings, group)
        command = ["sbatch", "--test-only", f"--time={res.time_min}"]
        command += [f"--partition={res.partition}"] if res.partition else []
        command += [f"--gpus-per-node={res.gpus}"] if res.gpus else []
        try:
            result = run([*command, "--wrap", "true"], capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise UserError(
                "--executor slurm: sbatch not found; run on a machine with a Slurm client"
            ) from None
        except subprocess.TimeoutExpired:
            raise UserError("--executor slurm: sbatch --test-only gave no answer in 60 s") from None
        if result.returncode != 0:
            what = f" for '{group}'" if group else ""
            raise UserError(
                f"the scheduler refused the job array{what}: {_sbatch_reason(result.stderr)}"
            )


@dataclass
class Task:
    """One array task: its shard folder, its job and when it left the queue."""

    name: str
    folder: Path
    job: Any
    limit_s: float
    running_since: float | None = None
    gave_up: str | None = None


@dataclass
class Outcome:
    """What came back: why each failed task failed, stopped and missing cases."""

    failed: dict[str, str] = field(default_factory=dict)  # task name: reason
    retry: int = 0  # records of cases the scheduler stopped
    missing: int = 0  # cases submitted that still lack a record

    def message(self, folder: Path) -> str:
        """The one line that ends an incomplete run, or ''."""
        parts = []
        if self.failed:
            named = "; ".join(f"{name}: {why}" for name, why in sorted(self.failed.items()))
            parts.append(f"{len(self.failed)} array task(s) failed ({named})")
        if self.missing and not self.failed:
            parts.append(f"{self.missing} case(s) came back without a record")
        if self.retry:
            parts.append(
                f"{self.retry} record(s) were stopped by the scheduler's time limit "
                "(raise --time-min)"
            )
        if not parts:
            return ""
        return (
            "; ".join(parts) + f"; every finished record is saved: run again with --out "
            f"{folder} to measure the rest (logs under {folder / 'submitit'})"
        )


def _sbatch_reason(error: BaseException | str) -> str:
    """sbatch's own words from a failed submission, on one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors[0] if errors else (lines[0] if lines else "no reason given"))[:300]


def _cancel(tasks: Sequence[Task]) -> None:
    for task in tasks:
        with contextlib.suppress(Exception):  # best effort: the job may be gone already
            task.job.cancel(check=False)


def wait(
    tasks: Sequence[Task],
    reporter,
    *,
    grace_s: float = GRACE_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = 0.5,
) -> None:
    """Wait until every task is done, or past its deadline: its time limit plus
    ``grace_s`` after it left the queue. A task past it is cancelled and marked."""
    waiting = list(tasks)
    while waiting:
        now = clock()
        for task in list(waiting):
            if task.job.done():
                waiting.remove(task)
                reporter.progress_job(task.job)
                continue
            if task.running_since is None:
                try:
                    state = str(task.job.state).upper()
                except Exception:  # noqa: BLE001 -- no accounting: the clock starts now
                    state = "UNKNOWN"
                if state.split()[0] not in QUEUED:
                    task.running_since = now
            if task.running_since is not None and now - task.running_since > task.limit_s + grace_s:
                task.gave_up = (
                    f"gave up on job {task.job.job_id} after {now - task.running_since:.0f} s "
                    f"out of the queue (its limit is {task.limit_s:.0f} s); cancelled it"
                )
                _cancel([task])
                waiting.remove(task)
                reporter.progress_job(task.job)
        if waiting:
            sleep(poll_s)


def task_exception(text: str) -> str:
    """The task's own exception line from a submitit failure message: the last line of
    the trace between its "----" rules (after it come only log paths), else the last
    line that names an error, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    rules = [i for i, line in enumerate(lines) if set(line) == {"-"}]
    if len(rules) >= 2 and rules[1] > rules[0] + 1:
        return lines[rules[1] - 1]
    named = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", line)]
    return (named or lines or [""])[-1]


def _task_failure(task: Task) -> str | None:
    """Why a finished task failed, in one line, or None if it returned its folder."""
    if task.gave_up:
        return task.gave_up
    try:
        task.job.result()
    except Exception as exc:  # noqa: BLE001 -- any failure of the task is reported, not raised
        state = ""
        with contextlib.suppress(Exception):  # no accounting: no state to name
            state = (str(task.job.state).split() or [""])[0].upper()
        why = task_exception(str(exc)) or type(exc).__name__
        if state in SCHEDULER_ENDS:
            why = f"{state.lower()} by the scheduler ({why})"
        return f"job {task.job.job_id}: {why}"[:400]
    return None


def submit_and_merge(
    suite: spec.Suite,
    cases: Sequence,
    folder: store.RunFolder,
    writer,
    kind: str,
    settings: ExecutorSpec,
    devices,
    timeout: float | None,
    reporter=None,
    *,
    grace_s: float = GRACE_S,
) -> Outcome:
    """Run ``cases`` as job arrays, wait, append their records to ``writer``.

    Records from every task that left any come back, in grid order, failed tasks
    included; the Outcome names the tasks that failed."""
    submitit = _submitit()
    reporter = reporter or _SilentJobs()
    order = {case.key: case.grid for case in cases}
    groups = _groups(cases, settings)
    round_dir = folder.path / "shards" / utc_stamp()
    n = 1
    while round_dir.exists():
        n += 1
        round_dir = round_dir.with_name(f"{utc_stamp()}-{n}")
    tasks: list[Task] = []
    try:
        for group, members in groups.items():
            res = _resources(settings, group)
            time_min = res.time_min or DEFAULT_TIME_MIN
            # A paired-timing group stays in one task (shards.select): count groups.
            together = suite.paired_timing
            units = len({c.group_key for c in members}) if together else len(members)
            count = min(settings.shards or 2, units)
            executor = submitit.AutoExecutor(
                folder=folder.path / "submitit", cluster="local" if kind == "local" else "slurm"
            )
            parameters: dict[str, Any] = {"timeout_min": time_min, "gpus_per_node": res.gpus}
            stop_signal = None
            if kind == "slurm":
                parameters["slurm_signal_delay_s"] = signal_delay_s(time_min)
                stop_signal = int(signal.SIGUSR2)
                if res.partition:
                    parameters["slurm_partition"] = res.partition
                if res.array_parallelism:
                    parameters["slurm_array_parallelism"] = res.array_parallelism
                if settings.setup:
                    parameters["slurm_setup"] = list(settings.setup)
            elif settings.setup:
                parameters["local_setup"] = list(settings.setup)
            executor.update_parameters(**parameters)
            planned = []
            for index in range(1, count + 1):
                members_i = shards.select(members, index, count, together)
                name = f"{group or 'all'}-{index}-of-{count}"
                planned.append((name, [c.key for c in members_i], round_dir / name))
            try:  # submitit prints sbatch's refusal itself: keep it for the one-line error
                with contextlib.redirect_stderr(io.StringIO()):
                    jobs = executor.map_array(
                        run_shard,
                        [suite.text] * len(planned),
                        [suite.source] * len(planned),
                        [p[1] for p in planned],
                        [devices] * len(planned),
                        [str(p[2]) for p in planned],
                        [timeout] * len(planned),
                        [stop_signal] * len(planned),
                    )
            except Exception as exc:  # sbatch refused: nothing of this array runs
                why = _sbatch_reason(exc)
                raise UserError(f"the scheduler refused the job array: {why}") from exc
            tasks += [
                Task(name, path, job, time_min * 60.0)
                for (name, _, path), job in zip(planned, jobs, strict=True)
            ]
    except BaseException:
        _cancel(tasks)  # arrays of earlier groups would run on, unwatched
        raise
    reporter.start(len(tasks))
    try:
        wait(tasks, reporter, grace_s=grace_s)
    finally:
        reporter.finish()
    return collect(tasks, folder, writer, order, [m.name for m in suite.metrics])


def _append_shards(
    folder: store.RunFolder,
    writer,
    order: Mapping[str, int],
    shard_dirs: Sequence[tuple[str, Path]],
    done: set[tuple[str, str]],
) -> list[dict[str, Any]]:
    """Append the records of these (name, folder) shards that the run lacks (``done``) and
    the run's cases include, in grid order, each stamped with the machine that measured
    it and its shard; note those machines in env.json. Returns what was appended."""
    new: list[dict[str, Any]] = []
    nodes: dict[str, dict[str, Any]] = {}
    for name, path in shard_dirs:
        if not (path / RECORDS).exists():
            continue
        shard = store.RunFolder(path)
        env = shard.env
        machine = env.get("machine_key")
        for record in shard.records():
            key = (record["case"], record["metric"])
            if key in done or record["case"] not in order:
                continue
            done.add(key)
            new.append({**record, "machine_key": machine, "shard": name})
            if machine:
                nodes[machine] = env
    new.sort(key=lambda r: order.get(r["case"], math.inf))
    writer.append(new)
    if nodes:
        folder.note_nodes(nodes)
    return new


def _unlocked(path: Path) -> bool:
    """Whether no task holds this shard folder's lock (i.e. it is not still running)."""
    import fcntl

    with (path / ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True


def adopt_earlier_shards(folder: store.RunFolder, writer, order: Mapping[str, int]) -> int:
    """Append what earlier rounds' shard folders hold and the run lacks (their submitting
    process died before appending); a folder whose task still holds its lock is left."""
    shard_dirs = [
        (path.name, path)
        for path in sorted((folder.path / "shards").glob("*/*"))
        if (path / RECORDS).exists() and _unlocked(path)
    ]
    # Against every record the run holds, retryable ones too: those were appended already.
    return len(_append_shards(folder, writer, order, shard_dirs, folder.done(retry=False)))


def collect(
    tasks: Sequence[Task],
    folder: store.RunFolder,
    writer,
    order: Mapping[str, int],
    metrics: Sequence[str],
) -> Outcome:
    """Append the records of every task's shard folder (finished or not), and say which
    tasks failed and which cases still lack a record."""
    outcome = Outcome()
    for task in tasks:
        why = _task_failure(task)
        if why:
            outcome.failed[task.name] = why
    # A retryable record is not done: its new measurement goes in.
    shard_dirs = [(task.name, task.folder) for task in tasks]
    new = _append_shards(folder, writer, order, shard_dirs, folder.done())
    outcome.retry = sum(1 for r in new if r.get("retry"))
    now_done = folder.done(retry=False)  # a stopped case has its record: counted in retry
    outcome.missing = sum(1 for key in order if any((key, m) not in now_done for m in metrics))
    return outcome


class _SilentJobs:
    def start(self, total: int) -> None: ...
    def progress_job(self, job) -> None: ...
    def finish(self) -> None: ...


def parse_settings(raw: Mapping[str, Any] | None, source: str) -> ExecutorSpec:
    """A suite's executor: block, validated, or a UserError naming the key."""
    from pydantic import ValidationError

    try:
        return ExecutorSpec.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{source}: executor.{where}: {first['msg']}") from exc
