"""Scale out through submitit: one job-array task per shard, then merge.

:mod:`~bench_cli.scaleout.settings` reads the executor settings,
:mod:`~bench_cli.scaleout.shards` splits the cases and merges shard folders,
:mod:`~bench_cli.scaleout.submit` submits the arrays and waits,
:mod:`~bench_cli.scaleout.task` is what each array task runs, and
:mod:`~bench_cli.scaleout.gather` appends the shards' records to the run.
No torch here: a task loads it when it measures.
"""

from bench_cli.scaleout.gather import adopt_earlier_shards, collect
from bench_cli.scaleout.jobs import Outcome, Task
from bench_cli.scaleout.settings import (
    ExecutorSpec,
    Resources,
    parse_settings,
    require_submitit,
    signal_delay_s,
)
from bench_cli.scaleout.submit import preflight, submit_and_merge, wait
from bench_cli.scaleout.task import SchedulerStop, run_shard, scheduler_killed_records
