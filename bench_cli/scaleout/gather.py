"""After the tasks: append every shard's records to the run in grid order, skipping
any already there (so a re-run resumes), and adopt shards an earlier round left."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench_cli import store
from bench_cli.records import RECORDS
from bench_cli.scaleout.jobs import Outcome, Task, _task_failure


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
