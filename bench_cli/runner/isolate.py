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
import re
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
    """The worker crashed or was killed; the message is the reason. ``culprit``: the
    index, in the paired group it was timing, of the method whose call was running."""

    def __init__(self, reason: str, culprit: int | None = None):
        super().__init__(reason)
        self.culprit = culprit


def _die_with(parent: int) -> None:
    """Kill this worker's whole process group (itself and whatever a method started) as
    soon as the parent is gone, a kill -9 included: a thread that watches the parent's
    pid. The worker leads its own group, so nothing else is touched."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="matbench-parent-watch", daemon=True).start()


def _worker_main(conn, stderr_path: str, parent: int, progress=None) -> None:
    os.setpgid(0, 0)  # a group of its own: killed whole, children included
    _die_with(parent)
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)  # native crashes write here too; the parent reads the tail
    faulthandler.enable()  # a fatal signal prints its Python traceback there first
    from bench_cli import plugins
    from bench_cli.runner import case as runner

    if progress is not None:  # which method of a paired group runs, since when, its limit

        def tell(index: int, since: float, limit: float) -> None:
            progress[1], progress[2] = since, limit
            progress[0] = index

        runner.PROGRESS = tell

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


def faulting_frames(dump: Sequence[str]) -> list[str]:
    """The frames of the thread that faulted, innermost first, from faulthandler's dump:
    the block headed "Current thread" (faulthandler lists the other threads too, and
    first), else the first block."""
    blocks: list[tuple[str, list[str]]] = []
    for line in dump:
        text = line.strip()
        if text.startswith(("Thread 0x", "Current thread 0x", "Stack (most recent")):
            blocks.append((text, []))
        elif text.startswith("File") and blocks:
            blocks[-1][1].append(text)
        elif text.startswith("File"):
            blocks.append(("", [text]))
    current = [frames for header, frames in blocks if header.startswith("Current thread")]
    return current[0] if current else (blocks[0][1] if blocks else [])


def blame(frames: Sequence[str]) -> str:
    """The frame to name for a crash: the innermost frame in a plugin's file where there
    is one, else the innermost frame ("file:line in function")."""
    from bench_cli import plugins

    parsed = []
    for frame in frames:
        found = re.match(r'File "(.*)", line (\d+) in (.*)', frame)
        if found:
            parsed.append((found[1], found[2], found[3].strip()))
    plugin_files = {str(path.resolve()) for path in plugins.imported_plugins().values()}
    for path, line, function in parsed:
        if str(Path(path).resolve()) in plugin_files:
            return f"{path}:{line} in {function} (plugin)"
    if parsed:
        path, line, function = parsed[0]
        return f"{path}:{line} in {function}"
    return ""


class Worker:
    def __init__(self):
        descriptor, path = tempfile.mkstemp(prefix="matbench-worker-", suffix=".log")
        os.close(descriptor)
        self._stderr_path = path
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        # [index of the group's method now running or -1, its start (monotonic), its limit]
        self.progress = context.Array("d", [-1.0, 0.0, 0.0], lock=False)
        self.process = context.Process(
            target=_worker_main,
            args=(child, self._stderr_path, os.getpid(), self.progress),
            daemon=True,
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
        """The time records of a paired-timing group (runner.run_time_group), in the worker.
        The worker says which method runs; one whose call outlives its limit and the grace
        is killed with the worker, and ``WorkerDied.culprit`` names it, as it does for a
        method that crashes the worker."""
        self.progress[0] = -1.0
        self.conn.send(("group", list(cases), suite, timeout))
        grace = grace_s()
        allowed = 3 * timeout * len(cases) + grace
        overall = time.monotonic() + allowed  # past it, our own code hung between calls
        while not self.conn.poll(0.2):
            index, since, limit = self.progress[:]
            now = time.monotonic()
            if index >= 0 and now - since > limit + grace:
                self.kill()
                name = cases[int(index)].config.label
                raise WorkerDied(
                    f"timeout: {name} did not return within its {limit:g} s limit and "
                    f"{grace:g} s of grace; the worker was killed{self._stderr_tail()}",
                    culprit=int(index),
                )
            if now > overall:
                self.kill()
                raise WorkerDied(f"timeout: worker killed after {allowed:g} s{self._stderr_tail()}")
            if not self.process.is_alive():
                break
        try:
            return self.conn.recv()
        except (EOFError, ConnectionResetError):
            self.process.join(5)
            index = int(self.progress[0])
            culprit = index if index >= 0 else None
            where = f" in {cases[index].config.label}" if culprit is not None else ""
            raise WorkerDied(self._death_reason(where), culprit=culprit) from None

    def _answer(self, deadline: float):
        if not self.conn.poll(deadline):
            self.kill()
            raise WorkerDied(f"timeout: worker killed after {deadline:g} s{self._stderr_tail()}")
        try:
            return self.conn.recv()
        except (EOFError, ConnectionResetError):
            self.process.join(5)
            raise WorkerDied(self._death_reason()) from None

    def _death_reason(self, where: str = "") -> str:
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"crashed: {name}{where}{self._stderr_tail()}"
        return f"worker exited with code {code}{where}{self._stderr_tail()}"

    def _stderr_tail(self) -> str:
        try:
            lines = Path(self._stderr_path).read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        fatal = [i for i, line in enumerate(lines) if line.startswith("Fatal Python error")]
        if fatal:  # faulthandler's dump: the error, then the faulting thread's frames
            start = fatal[-1]
            frames = faulting_frames(lines[start + 1 :])
            chosen = [lines[start], *frames[:2]]
            culprit = blame(frames)
            where = f"; at {culprit}" if culprit else ""
            tail = " | ".join(line.strip() for line in chosen if line.strip())
            return f"{where}; stderr: {tail}"
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
        """A paired group in the worker. A method that hangs or crashes it costs only its
        own record: the worker is restarted and the rest of the group timed again,
        paired among themselves, saying who was left out."""
        from bench_cli.runner.case import failed_records

        remaining, records, left_out = list(cases), {}, {}
        while remaining:
            try:
                got = self._live().run_group(remaining, suite, limit)
            except WorkerDied as exc:
                self._lost()
                if exc.culprit is None:  # no one method to blame: the group's records
                    for c in remaining:
                        records[c.key] = failed_records(c, suite, ["time"], str(exc))[0]
                    break
                bad = remaining.pop(exc.culprit)
                records[bad.key] = failed_records(bad, suite, ["time"], str(exc))[0]
                left_out[bad.config.label] = records[bad.key]["reason"]
                continue
            for record in got.values():
                interleaved = (record.get("value") or {}).get("interleaved")
                if left_out and isinstance(interleaved, dict):
                    interleaved["left_out"] = {**left_out, **interleaved.get("left_out", {})}
            records.update(got)
            break
        return {c.key: records[c.key] for c in cases}

    def run(self, case, suite, metrics: list[str], limit: float) -> list[dict]:
        from bench_cli.runner.case import failed_records

        try:
            return self._live().run(case, suite, metrics, limit)
        except WorkerDied as exc:  # only this case is lost; the next gets a new worker
            self._lost()
            return failed_records(case, suite, metrics, str(exc))

    def close(self) -> None:
        self._lost()
