"""The executor's behaviour under a scheduler, with fakes: no cluster, no clocks.

tests/test_slurm.py runs the same paths against a real Slurm; these pin down each
decision (deadline, refusal, failed tasks, scheduler stops, retry, order, nodes)
where CI cannot produce the event on demand.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench_cli import scaleout as executor
from bench_cli import spec, store
from bench_cli.errors import UserError
from bench_cli.scaleout import jobs, submit
from tests.helpers import read_records as _records

PLUGINS = Path(__file__).parent / "plugins"

SUITE = """\
name: scale
inputs: {kind: spd, batch: 2, dim: [6, 3, 5, 4]}
methods:
  dk: {layer: matrix_function, func: log, method: eig_dk}
  ag: {layer: matrix_function, func: sqrt, method: autograd}
metrics: [forward_error]
tables:
  - {title: err, metric: forward_error, rows: [method], cols: [dim]}
"""


# ---------------------------------------------------------------- signal delay


@pytest.mark.parametrize(("minutes", "delay"), [(1, 6), (2, 12), (10, 60), (15, 90), (600, 90)])
def test_the_warning_comes_a_tenth_of_the_limit_early_never_at_the_start(minutes, delay):
    assert executor.signal_delay_s(minutes) == delay
    assert executor.signal_delay_s(minutes) < minutes * 60  # submitit's 90 s is not


# ---------------------------------------------------------------- the wait deadline


class FakeJob:
    """A job whose state is a function of a fake clock (or fixed)."""

    def __init__(self, job_id: str, state_at=None, result=None, error: Exception | None = None):
        self.job_id = job_id
        self.state_at = state_at or (lambda: "COMPLETED")
        self._result, self.error = result, error
        self.cancelled = False

    @property
    def state(self) -> str:
        return self.state_at()

    def done(self) -> bool:
        return self.state in ("COMPLETED", "FAILED", "CANCELLED")

    def result(self):
        if self.error:
            raise self.error
        return self._result

    def cancel(self, check: bool = True) -> None:
        self.cancelled = True


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Progress:
    def __init__(self):
        self.done: list[str] = []

    def start(self, total): ...

    def progress_job(self, job):
        self.done.append(job.job_id)

    def finish(self): ...


def test_a_task_that_never_ends_is_given_up_after_its_limit_and_cancelled(tmp_path):
    clock = FakeClock()
    # Queued for 1000 s (does not count), then "running" forever (no accounting answers).
    stuck = FakeJob("7_1", lambda: "PENDING" if clock.now < 1000 else "RUNNING")
    quick = FakeJob("7_0", lambda: "RUNNING" if clock.now < 50 else "COMPLETED")
    tasks = [executor.Task("a", tmp_path, quick, 60.0), executor.Task("b", tmp_path, stuck, 60.0)]
    executor.wait(tasks, Progress(), grace_s=30.0, clock=clock, sleep=clock.sleep, poll_s=10.0)
    assert not quick.cancelled and tasks[0].gave_up is None
    assert stuck.cancelled and "gave up on job 7_1" in (tasks[1].gave_up or "")
    # It left the queue at t = 1000 s; the deadline is 60 + 30 s later (one poll's slack).
    assert 1000 + 90 < clock.now <= 1000 + 90 + 10
    assert jobs._task_failure(tasks[1]) == tasks[1].gave_up


def test_a_task_that_ends_before_its_deadline_is_not_given_up(tmp_path):
    clock = FakeClock()
    slow = FakeJob("8_0", lambda: "RUNNING" if clock.now < 85 else "COMPLETED")
    tasks = [executor.Task("a", tmp_path, slow, 60.0)]
    executor.wait(tasks, Progress(), grace_s=30.0, clock=clock, sleep=clock.sleep, poll_s=10.0)
    assert tasks[0].gave_up is None and not slow.cancelled


# ---------------------------------------------------------------- refusals


def test_preflight_turns_sbatch_s_refusal_into_one_user_error():
    def refuse(command, **kwargs):
        assert "--test-only" in command and "--partition=nope" in command
        return subprocess.CompletedProcess(
            command, 1, "", "sbatch: error: invalid partition specified: nope\nallocation failure"
        )

    settings = executor.ExecutorSpec(partition="nope")
    with pytest.raises(UserError, match="sbatch: error: invalid partition specified: nope"):
        executor.preflight(settings, [], run=refuse)

    def accept(command, **kwargs):
        return subprocess.CompletedProcess(command, 0, "", "sbatch: Job 3 to start")

    executor.preflight(settings, [], run=accept)  # no error

    def missing(command, **kwargs):
        raise FileNotFoundError("sbatch")

    with pytest.raises(UserError, match="sbatch not found"):
        executor.preflight(settings, [], run=missing)


class FakeExecutor:
    """submitit's AutoExecutor, in-process: each task runs at once, or fails as told."""

    submitted: list[FakeJob] = []
    refuse_group: str | None = None
    fail_tasks: set[str] = set()

    def __init__(self, folder, cluster):
        self.parameters: dict = {}

    def update_parameters(self, **parameters):
        self.parameters = parameters

    def map_array(self, fn, *columns):
        names = [Path(folder).name for folder in columns[4]]
        if self.refuse_group and any(n.startswith(self.refuse_group) for n in names):
            raise RuntimeError("sbatch: error: Invalid generic resource (gres) specification")
        jobs = []
        for i, args in enumerate(zip(*columns, strict=True)):
            folder = fn(*args)
            name = Path(folder).name
            error = RuntimeError("Job 9 has state CANCELLED") if name in self.fail_tasks else None
            job = FakeJob(f"{len(self.submitted)}_{i}", result=folder, error=error)
            jobs.append(job)
        FakeExecutor.submitted.extend(jobs)
        return jobs


@pytest.fixture
def fake_submitit(monkeypatch):
    FakeExecutor.submitted, FakeExecutor.refuse_group, FakeExecutor.fail_tasks = [], None, set()
    fake = SimpleNamespace(AutoExecutor=FakeExecutor)
    monkeypatch.setattr(submit, "_submitit", lambda: fake)
    monkeypatch.setattr(submit, "preflight", lambda settings, cases: None)
    return FakeExecutor


def test_a_refused_second_array_cancels_the_first_and_is_one_line(
    fake_submitit, cli, write_suite, tmp_path
):
    suite = write_suite(SUITE + "executor:\n  resources:\n    ag: {gpus: 1}\n")
    fake_submitit.refuse_group = "ag"
    result = cli("run", suite, "--executor", "slurm", "--out", "run")
    assert result.exit_code == 2, result.output
    assert "matbench: error: the scheduler refused the job array: sbatch: error: Invalid" in (
        result.stderr
    )
    assert "Traceback" not in result.output
    assert fake_submitit.submitted and all(job.cancelled for job in fake_submitit.submitted)


def test_a_failed_task_keeps_its_records_and_the_others_then_exits_1(
    fake_submitit, cli, write_suite, tmp_path
):
    suite = write_suite(SUITE)
    fake_submitit.fail_tasks = {"all-2-of-3"}
    result = cli("run", suite, "--executor", "slurm", "--shards", "3", "--out", "run")
    assert result.exit_code == 1, result.output
    assert "1 array task(s) failed (all-2-of-3: job" in result.stderr
    assert "cancelled by the scheduler" not in result.stderr  # the fake has no sacct state
    records = _records(tmp_path / "run")
    assert len(records) == 8  # every shard's records, the failed task's too
    assert {r["shard"] for r in records} == {"all-1-of-3", "all-2-of-3", "all-3-of-3"}
    # Grid order in the records and the table, whatever order the shards came back in.
    assert [r["grid"] for r in records] == sorted(r["grid"] for r in records)
    header = next(
        line
        for line in (tmp_path / "run" / "tables" / "err.md").read_text().splitlines()
        if line.startswith("| method")
    )
    assert [c.strip() for c in header.strip("|").split("|")][1:] == [
        f"dim={d}" for d in (6, 3, 5, 4)
    ]
    # The node that measured is on record.
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert set(env["nodes"]) == {r["machine_key"] for r in records}
    # A second run finds nothing to do and succeeds.
    fake_submitit.fail_tasks = set()
    again = cli("run", suite, "--executor", "slurm", "--out", "run")
    assert again.exit_code == 0, again.output
    assert len(_records(tmp_path / "run")) == 8


# ---------------------------------------------------------------- a scheduler stop


@pytest.fixture
def stopping_method(monkeypatch, register_method):
    monkeypatch.syspath_prepend(str(PLUGINS))
    import slow_methods

    from bench_cli import registry

    # The import registers them once; a test that restores the registry may have removed them.
    for fn in (slow_methods.stopped, slow_methods.sleepy, slow_methods.warned):
        if fn.__name__ not in registry.LAYERS["matrix_function"].methods:
            register_method(fn, funcs=("sqrt", "log"))


STOPPED = """\
name: stops
inputs: {kind: spd, batch: 1, dim: [3, 4]}
methods:
  fine: {layer: matrix_function, func: sqrt, method: eig_dk}
  stop: {layer: matrix_function, func: sqrt, method: stopped}
metrics: [forward_error]
"""


def test_the_scheduler_s_warning_records_a_retryable_timeout_and_keeps_the_rest(
    stopping_method, tmp_path
):
    suite = spec.loads(STOPPED)
    keys = [case.key for case in suite.cases()]
    before = signal.getsignal(signal.SIGUSR2), signal.getsignal(signal.SIGTERM)
    executor.run_shard(STOPPED, "<t>", keys, None, str(tmp_path / "s"), None, signal.SIGUSR2)
    assert (signal.getsignal(signal.SIGUSR2), signal.getsignal(signal.SIGTERM)) == before
    records = _records(tmp_path / "s")
    ok = [r for r in records if r["status"] == "ok"]
    stopped = [r for r in records if r.get("retry")]
    assert len(ok) == 2 and {r["axes"]["method"] for r in ok} == {"fine"}
    # The task ends at the warning: one record for the case in flight, none after it.
    assert len(stopped) == 1 and stopped[0]["status"] == "failed"
    assert stopped[0]["reason"].startswith("timeout: killed by the scheduler after ")


def test_the_early_warning_alone_stops_nothing(stopping_method, tmp_path):
    text = STOPPED.replace("method: stopped", "method: warned")
    keys = [case.key for case in spec.loads(text).cases()]
    executor.run_shard(text, "<t>", keys, None, str(tmp_path / "s"), None, signal.SIGUSR2)
    records = _records(tmp_path / "s")
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)


def test_sigterm_ends_the_task_as_failed_with_its_finished_cases_saved(tmp_path, monkeypatch):
    suite = spec.loads(SUITE)
    keys = [case.key for case in suite.cases()]
    from bench_cli.runner import case as runner

    real = runner.run_case
    calls = []

    def cancel_on_third(case, *args, **kwargs):
        calls.append(case.key)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGTERM)
        return real(case, *args, **kwargs)

    monkeypatch.setattr(runner, "run_case", cancel_on_third)
    with pytest.raises(RuntimeError, match=r"stopped by SIGTERM \(cancelled\) with 2 record"):
        executor.run_shard(SUITE, "<t>", keys, None, str(tmp_path / "s"), None, signal.SIGUSR2)
    assert len(_records(tmp_path / "s")) == 2


def test_a_rerun_measures_scheduler_stopped_cases_again_unless_told_not_to(
    cli, write_suite, tmp_path
):
    suite = write_suite(SUITE)
    for out in ("retry", "keep"):
        assert cli("run", suite, "--out", out).exit_code == 0
        first = _records(tmp_path / out)[0]
        stopped = {**first, "status": "failed", "value": None, "retry": True,
                   "reason": "timeout: killed by the scheduler after 50 s"}  # fmt: skip
        with (tmp_path / out / "records.jsonl").open("a") as handle:
            handle.write(json.dumps(stopped) + "\n")
    assert cli("run", suite, "--out", "retry").exit_code == 0
    again = _records(tmp_path / "retry")
    assert len(again) == 10 and again[-1]["case"] == first["case"]
    assert again[-1]["status"] == "ok" and not again[-1].get("retry")
    assert cli("run", suite, "--out", "keep", "--no-retry-failed").exit_code == 0
    assert len(_records(tmp_path / "keep")) == 9
    assert store.RunFolder(tmp_path / "keep").done(retry=True) != store.RunFolder(
        tmp_path / "keep"
    ).done(retry=False)


def test_a_rerun_appends_what_a_dead_submitter_s_tasks_left_without_resubmitting(
    fake_submitit, cli, write_suite, tmp_path
):
    suite = write_suite(SUITE)
    assert cli("run", suite, "--executor", "slurm", "--shards", "2", "--out", "run").exit_code == 0
    # The submitting process died after the tasks wrote their shards, before appending.
    records = (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    (tmp_path / "run" / "records.jsonl").write_text("\n".join(records[:3]) + "\n")
    fake_submitit.submitted = []
    result = cli("run", suite, "--executor", "slurm", "--shards", "2", "--out", "run")
    assert result.exit_code == 0, result.output
    assert "appended 5 records that earlier array tasks left" in result.stderr
    assert fake_submitit.submitted == []  # nothing left to measure, nothing submitted
    pairs = [(r["case"], r["metric"]) for r in _records(tmp_path / "run")]
    assert len(pairs) == len(set(pairs)) == 8


def test_a_stopped_case_is_measured_again_once_and_its_timeout_not_copied_twice(
    fake_submitit, cli, write_suite, tmp_path
):
    suite = write_suite(SUITE)
    assert cli("run", suite, "--executor", "slurm", "--shards", "2", "--out", "run").exit_code == 0
    # As a time limit leaves it: the timeout record in the task's shard and in the run.
    first = _records(tmp_path / "run")[0]
    stopped = {**first, "status": "failed", "value": None, "retry": True,
               "reason": "timeout: killed by the scheduler after 8 s"}  # fmt: skip
    (round_dir,) = (tmp_path / "run" / "shards").iterdir()
    for path in (tmp_path / "run", round_dir / first["shard"]):
        with (path / "records.jsonl").open("a") as handle:
            handle.write(json.dumps(stopped) + "\n")
    fake_submitit.submitted = []
    result = cli("run", suite, "--executor", "slurm", "--out", "run")
    assert result.exit_code == 0, result.output
    assert len(fake_submitit.submitted) == 1  # measured again, not copied from the old shard
    records = _records(tmp_path / "run")
    assert len(records) == 10  # 8, the timeout, and the case measured again
    assert [r["status"] for r in records if r["case"] == first["case"]] == ["ok", "failed", "ok"]
    assert "8 records: 8 ok" in result.stderr  # the latest record of each counts
