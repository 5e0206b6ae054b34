"""The executor settings: a suite's ``executor:`` block and the command line's overrides,
per-method resources, and submitit, imported only when a run scales out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from bench_cli.errors import UserError

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


def parse_settings(raw: Mapping[str, Any] | None, source: str) -> ExecutorSpec:
    """A suite's executor: block, validated, or a UserError naming the key."""
    from pydantic import ValidationError

    try:
        return ExecutorSpec.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{source}: executor.{where}: {first['msg']}") from exc
