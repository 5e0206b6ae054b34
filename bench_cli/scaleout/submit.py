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
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_cli import spec, store
from bench_cli.errors import UserError
from bench_cli.fsafe import utc_stamp
from bench_cli.scaleout import shards
from bench_cli.scaleout.gather import collect
from bench_cli.scaleout.jobs import Outcome, Task
from bench_cli.scaleout.settings import (
    DEFAULT_TIME_MIN,
    GRACE_S,
    QUEUED,
    ExecutorSpec,
    Resources,
    _submitit,
    signal_delay_s,
)
from bench_cli.scaleout.task import run_shard

# ---------------------------------------------------------------- inside a task


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
    round_dir = folder.path / "shards" / utc_stamp()
    n = 1
    while round_dir.exists():
        n += 1
        round_dir = round_dir.with_name(f"{utc_stamp()}-{n}")
    tasks: list[Task] = []
    try:
        for group, members in _groups(cases, settings).items():
            res = _resources(settings, group)
            time_min = res.time_min or DEFAULT_TIME_MIN
            executor = submitit.AutoExecutor(
                folder=folder.path / "submitit", cluster="local" if kind == "local" else "slurm"
            )
            executor.update_parameters(**_parameters(kind, res, settings, time_min))
            stop_signal = int(signal.SIGUSR2) if kind == "slurm" else None
            planned = _plan_array(suite, group, members, settings, round_dir)
            jobs = _submit_array(executor, suite, planned, devices, timeout, stop_signal)
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


def _parameters(kind: str, res: Resources, settings: ExecutorSpec, time_min: int) -> dict:
    """submitit's parameters for one array: time, GPUs, and on Slurm the early warning
    signal, partition, parallelism and set-up lines."""
    parameters: dict[str, Any] = {"timeout_min": time_min, "gpus_per_node": res.gpus}
    if kind == "slurm":
        parameters["slurm_signal_delay_s"] = signal_delay_s(time_min)
        if res.partition:
            parameters["slurm_partition"] = res.partition
        if res.array_parallelism:
            parameters["slurm_array_parallelism"] = res.array_parallelism
        if settings.setup:
            parameters["slurm_setup"] = list(settings.setup)
    elif settings.setup:
        parameters["local_setup"] = list(settings.setup)
    return parameters


def _plan_array(suite, group, members, settings: ExecutorSpec, round_dir: Path) -> list:
    """(task name, case keys, shard folder) per task of one array. A paired-timing group
    stays in one task (shards.select), so groups are counted, not cases."""
    together = suite.paired_timing
    units = len({c.group_key for c in members}) if together else len(members)
    count = min(settings.shards or 2, units)
    planned = []
    for index in range(1, count + 1):
        members_i = shards.select(members, index, count, together)
        name = f"{group or 'all'}-{index}-of-{count}"
        planned.append((name, [c.key for c in members_i], round_dir / name))
    return planned


def _submit_array(executor, suite, planned, devices, timeout, stop_signal) -> list:
    """Submit one array of ``run_shard`` tasks; sbatch's refusal is one UserError."""
    n = len(planned)
    try:  # submitit prints sbatch's refusal itself: keep it for the one-line error
        with contextlib.redirect_stderr(io.StringIO()):
            return executor.map_array(
                run_shard, [suite.text] * n, [suite.source] * n, [p[1] for p in planned],
                [devices] * n, [str(p[2]) for p in planned], [timeout] * n, [stop_signal] * n,
            )  # fmt: skip
    except Exception as exc:  # sbatch refused: nothing of this array runs
        why = _sbatch_reason(exc)
        raise UserError(f"the scheduler refused the job array: {why}") from exc


class _SilentJobs:
    def start(self, total: int) -> None: ...
    def progress_job(self, job) -> None: ...
    def finish(self) -> None: ...
