"""Scale out through submitit: one job-array task per shard, then merge.

``--executor slurm`` submits to the cluster the user already has;
``--executor local`` uses submitit's LocalExecutor on this machine, which is how
it is tested. Each task runs its shard into its own run folder under
``<run>/shards/``; the submitting process waits, shows progress, and appends the
shards' records to the run (skipping any already there), so a re-run resumes.
Methods with resource overrides (e.g. a GPU for one method) form their own
array with those parameters.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from bench_cli import env as env_mod
from bench_cli import shards, spec, store
from bench_cli.errors import UserError


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


def run_shard(
    suite_text: str, source: str, keys: Sequence[str], devices, folder: str, timeout: float | None
) -> str:
    """One array task: run the cases with these keys into their own run folder."""
    from bench_cli import runner

    suite = spec.loads(suite_text, source)
    wanted = set(keys)
    cases = [case for case in suite.cases(devices) if case.key in wanted]
    shard = store.RunFolder(folder)
    with shard.open_for_run(
        suite_name=suite.name,
        fingerprint=suite.fingerprint,
        suite_text=suite_text,
        env=env_mod.collect(),
    ) as writer:
        runner.run(suite, cases, writer, shard.done(), timeout=timeout)
    return folder


def submit_and_merge(
    suite: spec.Suite,
    cases: Sequence,
    folder: store.RunFolder,
    writer,
    kind: str,
    settings: ExecutorSpec,
    devices,
    timeout: float | None,
    reporter,
) -> int:
    """Run ``cases`` as job arrays, wait, append their records to ``writer``; return count."""
    submitit = _submitit()
    groups: dict[str, list] = {}
    for case in cases:
        label = case.config.base
        groups.setdefault(label if label in settings.resources else "", []).append(case)
    jobs = []
    for group, members in groups.items():
        resources = settings.resources.get(group, Resources())
        count = min(settings.shards or 2, len(members))
        executor = submitit.AutoExecutor(
            folder=folder.path / "submitit", cluster="local" if kind == "local" else "slurm"
        )
        parameters: dict[str, Any] = {
            "timeout_min": resources.time_min or settings.time_min or 60,
            "gpus_per_node": resources.gpus if resources.gpus is not None else (settings.gpus or 0),
        }
        if kind == "slurm":
            partition = resources.partition or settings.partition
            if partition:
                parameters["slurm_partition"] = partition
            parallelism = resources.array_parallelism or settings.array_parallelism
            if parallelism:
                parameters["slurm_array_parallelism"] = parallelism
        executor.update_parameters(**parameters)
        tasks = []
        for index in range(1, count + 1):
            members_i = shards.select(members, index, count)
            name = f"{group or 'all'}-{index}-of-{count}"
            tasks.append(([c.key for c in members_i], str(folder.path / "shards" / name)))
        jobs += executor.map_array(
            run_shard,
            [suite.text] * len(tasks),
            [suite.source] * len(tasks),
            [t[0] for t in tasks],
            [devices] * len(tasks),
            [t[1] for t in tasks],
            [timeout] * len(tasks),
        )
    reporter.start(len(jobs))
    waiting = list(jobs)
    while waiting:
        for job in [j for j in waiting if j.done()]:
            waiting.remove(job)
            reporter.progress_job(job)
        time.sleep(0.5)
    reporter.finish()
    done = folder.done()
    appended = 0
    for job in jobs:
        try:
            shard = store.RunFolder(job.result())
        except Exception as exc:  # the task itself failed: say so, keep the others
            raise UserError(
                f"array task {job.job_id} failed: {str(exc).splitlines()[-1]}; "
                f"logs under {folder.path / 'submitit'}"
            ) from exc
        new = [r for r in shard.records() if (r["case"], r["metric"]) not in done]
        writer.append(new)
        appended += len(new)
    return appended


def parse_settings(raw: Mapping[str, Any] | None, source: str) -> ExecutorSpec:
    """A suite's executor: block, validated, or a UserError naming the key."""
    from pydantic import ValidationError

    try:
        return ExecutorSpec.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{source}: executor.{where}: {first['msg']}") from exc
