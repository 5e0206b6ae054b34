"""Runs a suite's cases: :mod:`~bench_cli.runner.case` measures one case (or one
paired-timing group), :mod:`~bench_cli.runner.loop` walks the pending work on a backend,
:mod:`~bench_cli.runner.isolate` is the backend of spawned workers, and
:mod:`~bench_cli.runner.plan` finds the run folder, what it holds and what the rest
will cost.

Each case's seed derives from the suite seed and its inputs alone, so every method of a
suite sees the same data for the same input parameters (paired comparisons);
``data_seed`` in the inputs draws independent data sets.
"""

from importlib import import_module
from typing import Any

# Name -> the submodule that defines it. Loaded on first use: importing this package (or
# its torch-free plan module, as the reading commands do) loads no torch.
_HOMES = {
    **dict.fromkeys(
        ("STATUSES", "Reporter", "SilentReporter", "Summary", "device_unavailable",
         "failed_records", "run_case", "run_time_group"),
        "case",
    ),
    **dict.fromkeys(("Backend", "InProcess", "Work", "pending", "run", "units"), "loop"),
}  # fmt: skip
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"bench_cli.runner.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'bench_cli.runner' has no attribute '{name}'")
