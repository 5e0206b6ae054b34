"""Every core for a batch of small CPU eigendecompositions.

torch's CPU ``linalg.eigh`` walks a batch one matrix at a time, each a LAPACK
``syevd`` call that gains little from threads when the matrix is small: on a
2-core machine a 64×48×48 batch keeps one core busy. :func:`eigh` splits such a
batch into one slice per intra-op thread and decomposes the slices at once
from a small thread pool (torch releases the GIL inside the call); each slice
is still an ordinary ``torch.linalg.eigh`` run with the caller's intra-op
thread count, so LAPACK computes every matrix exactly as the unsplit call does
and every eigenpair is bit-identical to it (tests/test_cpu_batch.py checks it).
MKL's ``syevd`` threads its reduction from about d = 88 on; the result then
depends on the thread count, which is why the slices keep the caller's, and
why large matrices are left to LAPACK's own threads.

When it splits (README, "Every core for batched CPU eigh"): on the CPU, with at
least two intra-op threads, at least ``MIN_PER_THREAD`` matrices per thread and
matrices of at most ``MAX_DIM`` rows; otherwise torch's own call runs. The bound
comes from ``make bench-layers`` on the 2-core VM. ``MATBENCH_CPU_SPLIT=0``
turns splitting off.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch

MAX_DIM = 512  # larger matrices: LAPACK's own threading already uses the cores
MIN_PER_THREAD = 2  # fewer matrices per thread: the pool's overhead is not repaid

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_shape = (0, 0)  # (threads in the pool, intra-op threads each)


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
    """The pool, each of its threads set to ``threads`` intra-op threads (OpenMP and MKL
    settings are per thread); made or remade here, called under ``_lock``."""
    global _pool, _pool_shape
    if _pool is None or _pool_shape != (size, threads):
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(
            max_workers=size,
            thread_name_prefix="matbench-eigh",
            initializer=torch.set_num_threads,
            initargs=(threads,),
        )
        _pool_shape = (size, threads)
    return _pool


def _one_slice(chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():  # grad mode is per thread: the pool's threads start with it on
        return torch.linalg.eigh(chunk)


def eigh(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh(A)`` without autograd (for custom backwards), with a CPU batch
    of small matrices decomposed in parallel slices (see the module docstring)."""
    slices = slices_for(A)
    if slices <= 1:
        with torch.no_grad():
            return torch.linalg.eigh(A)
    dim = A.shape[-1]
    flat = A.detach().reshape(-1, dim, dim)
    chunks = flat.tensor_split(slices)
    threads = torch.get_num_threads()
    with _lock:  # one split at a time, sharing the pool
        parts = list(_executor(slices, threads).map(_one_slice, chunks))
    eigvals = torch.cat([p[0] for p in parts]).reshape(A.shape[:-1])
    eigvecs = torch.cat([p[1] for p in parts]).reshape(A.shape)
    return eigvals, eigvecs
