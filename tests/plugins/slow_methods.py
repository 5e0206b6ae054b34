"""Test-only methods for scale-out tests, loaded through MATBENCH_PLUGINS (the
tests put this folder on PYTHONPATH, so array tasks on the cluster import it too).

- ``sleepy``: eig_dk after sleeping ``sleep_s``: a case that lasts long enough for a
  scheduler to cancel its task mid-run.
- ``stopped``: sends its process what Slurm sends at a task's time limit: the
  warning (SIGUSR2), then SIGTERM.
"""

from __future__ import annotations

import os
import signal
import time

from bench_cli import registry
from bench_cli.layers import matfun


@registry.register_method("matrix_function", "sleepy", funcs=("sqrt", "log"))
def sleepy(A, func, p=None, *, sleep_s: float = 0.0):
    """eig_dk, after sleeping sleep_s seconds."""
    time.sleep(sleep_s)
    return matfun.eig_dk_matrix_function(A, func, p)


@registry.register_method("matrix_function", "stopped", funcs=("sqrt", "log"))
def stopped(A, func, p=None):
    """Sends its own process what Slurm sends at a time limit: the warning, then
    SIGTERM; would compute after."""
    os.kill(os.getpid(), signal.SIGUSR2)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the SIGTERM handler interrupts this sleep
    return matfun.eig_dk_matrix_function(A, func, p)


@registry.register_method("matrix_function", "warned", funcs=("sqrt", "log"))
def warned(A, func, p=None):
    """Gets the scheduler's early warning only (Slurm may send it a minute early)."""
    os.kill(os.getpid(), signal.SIGUSR2)
    return matfun.eig_dk_matrix_function(A, func, p)
