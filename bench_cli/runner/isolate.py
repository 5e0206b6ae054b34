"""Run cases in a worker process, so a crash costs only the case that caused it.

The worker is started with *spawn*, never fork (a forked CUDA context is
unusable), imports matbench afresh (plugins from MATBENCH_PLUGINS included),
and is reused from case to case. The parent waits for each case with a hard
deadline: the case's own time limit plus a grace period for start-up. A
worker that dies (a signal such as SIGSEGV, the OOM killer) or misses the
deadline (a native call that never returns) is killed and replaced; its case
is recorded as failed, with the signal name or the timeout and the last
lines the worker wrote to stderr.
"""

from __future__ import annotations

import contextlib
import faulthandler
import math
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench_cli.errors import UserError

STARTUP_S = 300.0  # importing torch in a fresh worker can take a while on a busy machine


MAX_GRACE_S = 3600.0


def grace_s() -> float:
    """Seconds past a case's own limit before its worker is killed (MATBENCH_WORKER_GRACE_S,
    default 10); a UserError for anything but a number in [0, MAX_GRACE_S]."""
    text = os.environ.get("MATBENCH_WORKER_GRACE_S", "10")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_GRACE_S:  # NaN fails too
        raise UserError(
            f"MATBENCH_WORKER_GRACE_S must be seconds in [0, {MAX_GRACE_S:g}], got {text!r}"
        )
    return value


STDERR_LINES = 5


class WorkerDied(Exception):
    """The worker crashed or was killed; the message is the reason."""


def _die_with(parent: int) -> None:
    """Kill this worker's whole process group (itself and whatever a method started) as
    soon as the parent is gone, a kill -9 included: a thread that watches the parent's
    pid. The worker leads its own group, so nothing else is touched."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="matbench-parent-watch", daemon=True).start()


def _worker_main(conn, stderr_path: str, parent: int) -> None:
    os.setpgid(0, 0)  # a group of its own: killed whole, children included
    _die_with(parent)
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)  # native crashes write here too; the parent reads the tail
    faulthandler.enable()  # a fatal signal prints its Python traceback there first
    from bench_cli import plugins
    from bench_cli.runner import case as runner

    try:
        plugins.load_plugins()  # here, so a plugin that breaks in workers says so at once
    except UserError as exc:
        conn.send(("error", str(exc)))
        return
    conn.send("ready")  # imports done: the parent's deadline now covers cases only
    while True:
        message = conn.recv()
        if message is None:
            return
        if message[0] == "group":  # a paired-timing group: interleaved time records
            _, cases, suite, timeout = message
            conn.send(runner.run_time_group(cases, suite, timeout))
            continue
        case, suite, metric_names, timeout = message
        conn.send(runner.run_case(case, suite, metric_names, timeout))


class Worker:
    def __init__(self):
        descriptor, path = tempfile.mkstemp(prefix="matbench-worker-", suffix=".log")
        os.close(descriptor)
        self._stderr_path = path
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child, self._stderr_path, os.getpid()), daemon=True
        )
        self.process.start()
        child.close()
        ready = self._receive_ready() if self.conn.poll(STARTUP_S) else None
        if isinstance(ready, tuple) and ready[0] == "error":
            self.close()
            raise UserError(f"in the isolated worker: {ready[1]}")
        if ready != "ready":
            self.kill()
            raise WorkerDied(f"worker did not start within {STARTUP_S:g} s{self._stderr_tail()}")

    def _receive_ready(self):
        try:
            return self.conn.recv()
        except (EOFError, ConnectionResetError):
            self.process.join(5)
            raise WorkerDied(self._death_reason()) from None

    def run(self, case, suite, metric_names: Sequence[str], timeout: float) -> list[dict]:
        self.conn.send((case, suite, list(metric_names), timeout))
        return self._answer(timeout + grace_s())

    def run_group(self, cases, suite, timeout: float) -> dict[str, dict]:
        """The time records of a paired-timing group (runner.run_time_group), in the worker."""
        self.conn.send(("group", list(cases), suite, timeout))
        return self._answer(timeout * len(cases) + grace_s())

    def _answer(self, deadline: float):
        if not self.conn.poll(deadline):
            self.kill()
            raise WorkerDied(f"timeout: worker killed after {deadline:g} s{self._stderr_tail()}")
        try:
            return self.conn.recv()
        except (EOFError, ConnectionResetError):
            self.process.join(5)
            raise WorkerDied(self._death_reason()) from None

    def _death_reason(self) -> str:
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"crashed: {name}{self._stderr_tail()}"
        return f"worker exited with code {code}{self._stderr_tail()}"

    def _stderr_tail(self) -> str:
        try:
            lines = Path(self._stderr_path).read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        fatal = [i for i, line in enumerate(lines) if line.startswith("Fatal Python error")]
        if fatal:  # faulthandler's dump: the error, then the innermost frames
            start = fatal[-1]
            frames = [line for line in lines[start + 1 :] if line.strip().startswith("File")]
            chosen = [lines[start], *frames[:2]]
        else:
            chosen = lines[-STDERR_LINES:]
        tail = " | ".join(line.strip() for line in chosen if line.strip())
        return f"; stderr: {tail}" if tail else ""

    def kill(self) -> None:
        """Kill the worker and its process group (what a method started dies with it)."""
        if self.process.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(None)
                self.process.join(5)
            except (BrokenPipeError, OSError):
                pass
        self.kill()
        Path(self._stderr_path).unlink(missing_ok=True)


class Isolated:
    """The runner's backend for ``--isolate``: every case (or paired group) in one spawned
    worker, reused from case to case. A worker that dies costs only what it was measuring,
    recorded ``failed`` with the reason; the next case gets a new worker."""

    def __init__(self) -> None:
        self.worker: Worker | None = None

    def _live(self) -> Worker:
        if self.worker is None:
            try:
                self.worker = Worker()
            except WorkerDied as exc:
                raise UserError(f"the isolated worker could not start: {exc}") from exc
        return self.worker

    def _lost(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.worker = None

    def run_group(self, cases, suite, limit: float) -> dict[str, dict]:
        from bench_cli.runner.case import failed_records

        try:
            return self._live().run_group(cases, suite, limit)
        except WorkerDied as exc:
            self._lost()
            return {c.key: failed_records(c, suite, ["time"], str(exc))[0] for c in cases}

    def run(self, case, suite, metrics: list[str], limit: float) -> list[dict]:
        from bench_cli.runner.case import failed_records

        try:
            return self._live().run(case, suite, metrics, limit)
        except WorkerDied as exc:  # only this case is lost; the next gets a new worker
            self._lost()
            return failed_records(case, suite, metrics, str(exc))

    def close(self) -> None:
        self._lost()
