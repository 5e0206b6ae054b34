"""Every core for a batch of small CPU eigendecompositions.

torch's CPU ``linalg.eigh`` walks a batch one matrix at a time, each a LAPACK
``syevd`` call that gains little from threads when the matrix is small: on a
2-core machine a 64×48×48 batch keeps one core busy. :func:`eigh` splits such a
batch into one slice per intra-op thread and decomposes the slices at once
from a small thread pool (torch releases the GIL inside the call); each slice
is still an ordinary ``torch.linalg.eigh``, and every eigenpair is
bit-identical to the unsplit call's (tests/test_cpu_batch.py checks it):

- up to d = ``ONE_THREAD_MAX_DIM`` each slice runs on one intra-op thread, so
  no more threads run than cores: LAPACK does not thread ``syevd`` at these
  sizes (MKL starts to from about d = 88, and its result then depends on the
  thread count), so one thread computes the caller's bits;
- above it each slice keeps the caller's thread count, so LAPACK takes the
  same path as the unsplit call, at the cost of more threads than cores.

:func:`map_slices` runs any per-matrix function the same way, so a layer can
do its elementwise work before and after the decomposition in the slices too.

When it splits (README, "Every core for batched CPU eigh"): on the CPU, with at
least two intra-op threads, at least ``MIN_PER_THREAD`` matrices per thread and
matrices of at most ``MAX_DIM`` rows; otherwise torch's own call runs. The bound
comes from ``make bench-layers`` on the 2-core VM. ``MATBENCH_CPU_SPLIT=0``
turns splitting off.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

MAX_DIM = 512  # larger matrices: LAPACK's own threading already uses the cores
MIN_PER_THREAD = 2  # fewer matrices per thread: the pool's overhead is not repaid
ONE_THREAD_MAX_DIM = 64  # slices of matrices up to this size run on one intra-op thread

_lock = threading.Lock()
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (pool threads, intra-op threads each)


_forced: bool | None = None


def enabled() -> bool:
    """Whether splitting is on (MATBENCH_CPU_SPLIT=0 turns it off; ``splitting`` overrides)."""
    if _forced is not None:
        return _forced
    return os.environ.get("MATBENCH_CPU_SPLIT", "1") != "0"


@contextlib.contextmanager
def splitting(on: bool) -> Iterator[None]:
    """Splitting on or off inside the block (benchmarks time both in one run)."""
    global _forced
    before, _forced = _forced, on
    try:
        yield
    finally:
        _forced = before


def slices_for(A: torch.Tensor) -> int:
    """How many slices :func:`eigh` cuts the batch of ``A`` into (1: no split)."""
    if not enabled() or A.device.type != "cpu" or A.dim() < 3:
        return 1
    dim = A.shape[-1]
    batch = A.numel() // max(dim * dim, 1)
    threads = torch.get_num_threads()
    if threads < 2 or dim > MAX_DIM or batch < MIN_PER_THREAD * 2:
        return 1
    return min(threads, batch // MIN_PER_THREAD)


def _executor(size: int, threads: int) -> ThreadPoolExecutor:
    """A pool of ``size`` threads, each set to ``threads`` intra-op threads, all started
    here; called under ``_lock``."""
    if (size, threads) not in _pools:
        caller = torch.get_num_threads()
        pool = ThreadPoolExecutor(
            max_workers=size,
            thread_name_prefix="matbench-eigh",
            initializer=torch.set_num_threads,
            initargs=(threads,),
        )
        barrier = threading.Barrier(size)
        list(pool.map(lambda _: barrier.wait(), range(size)))  # every thread set up now
        # torch.set_num_threads in a pool thread also changes settings the caller reads
        # (torch's process-wide default; MKL's): put the caller's back.
        torch.set_num_threads(caller)
        _pools[(size, threads)] = pool
    return _pools[(size, threads)]


def map_slices(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` for a function that treats each matrix of a batch alone: every tensor
    argument with the first one's batch dimensions is cut into the same slices (others
    are passed whole), and fn returns a tensor or a tuple of tensors with those batch
    dimensions in front. On a CPU batch of small matrices the slices run in parallel (see
    the module docstring), without autograd; otherwise it is one call."""
    A = args[0]
    slices = slices_for(A)
    if slices <= 1:  # called from custom autograd functions: grad mode is already off
        return fn(*args)
    batch = A.shape[:-2]
    size = math.prod(batch)

    def cut(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.shape[: len(batch)] == batch and x.dim() > len(batch):
            return x.detach().reshape(size, *x.shape[len(batch) :]).tensor_split(slices)
        return [x] * slices

    columns = [cut(x) for x in args]
    threads = torch.get_num_threads()
    each = 1 if A.shape[-1] <= ONE_THREAD_MAX_DIM else threads

    def one(i: int) -> Any:
        with torch.no_grad():  # grad mode is per thread: the pool's threads start with it on
            return fn(*(column[i] for column in columns))

    with _lock:  # one split at a time, sharing the pools
        parts = list(_executor(slices, each).map(one, range(slices)))

    def joined(pieces: list[torch.Tensor]) -> torch.Tensor:
        whole = torch.cat(pieces)
        return whole.reshape(*batch, *whole.shape[1:])

    if isinstance(parts[0], tuple):
        return tuple(joined([p[i] for p in parts]) for i in range(len(parts[0])))
    return joined(parts)


def eigh(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh(A)`` without autograd (for custom backwards), with a CPU batch
    of small matrices decomposed in parallel slices (see the module docstring)."""
    return map_slices(torch.linalg.eigh, A)
