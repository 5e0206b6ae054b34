"""Every core for a batch of small CPU eigendecompositions.

torch's CPU ``linalg.eigh`` walks a batch one matrix at a time, each a LAPACK
``syevd`` call that gains little from threads when the matrix is small: on a
2-core machine a 64×48×48 batch keeps one core busy. :func:`eigh` splits such a
batch into one slice per intra-op thread and decomposes the slices at once
from a small thread pool (torch releases the GIL inside the call); each slice
is still an ordinary ``torch.linalg.eigh``, and every eigenpair equals the
unsplit call's to rounding (tests/test_cpu_batch.py checks it):

- each slice runs on one intra-op thread, so no more threads run than cores;
- on the Intel Xeon VM the earlier bit-identity test passed: LAPACK does not
  thread ``syevd`` up to d = ``MAX_DIM`` (MKL starts to from about d = 88, and
  its result then depends on the thread count), and larger matrices are not
  split. On an AMD EPYC VM MKL's bits depended on the thread count and on
  where a matrix sits in memory even below that size (3.9e-16 apart).
  (Slices of larger matrices on the caller's thread count were tried: each
  pool thread then leads an OpenMP team of its own, and MKL's LU in the
  caller's nested parallel region once spun forever beside them.)

:func:`map_slices` runs any per-matrix function of a batch the same way.

When it splits (docs/concepts.md, "Every core for batched CPU eigh"): on the CPU, with at
least two intra-op threads, at least ``MIN_PER_THREAD`` matrices per thread and
matrices of at most ``MAX_DIM`` rows, and only when OpenMP waits passively
(``OMP_WAIT_POLICY=passive``); otherwise torch's own call runs. With OpenMP's
default, the caller's OpenMP threads keep spinning on the cores after each
parallel region, and ``make bench-layers`` measured the split at 0.99-1.17x
of torch's call in eig_dk (never faster); with passive waiting, 0.63-0.66x.
``MATBENCH_CPU_SPLIT=1`` or ``0`` forces it on or off.

What is promised is agreement to rounding, checked on this machine: the first time it
would split a batch of a dtype, it decomposes a fixed batch both ways and compares
(:func:`agree_to_rounding`). If they disagree (a LAPACK build whose threads interfere),
it warns once and leaves that dtype to torch's own call for the rest of the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

# Larger matrices are left to torch's own call: LAPACK threads their decomposition itself,
# and a slice on one thread would change the bits (see below).
MAX_DIM = 64
MIN_PER_THREAD = 2  # fewer matrices per thread: the pool's overhead is not repaid

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}  # by size


_forced: bool | None = None


def enabled() -> bool:
    """Whether splitting is on: MATBENCH_CPU_SPLIT=1 or 0 says so; unset, only under
    OMP_WAIT_POLICY=passive (see the module docstring); ``splitting`` overrides both."""
    if _forced is not None:
        return _forced
    chosen = os.environ.get("MATBENCH_CPU_SPLIT", "")
    if chosen in ("0", "1"):
        return chosen == "1"
    return os.environ.get("OMP_WAIT_POLICY", "").strip().lower() == "passive"


@contextlib.contextmanager
def splitting(on: bool) -> Iterator[None]:
    """Splitting on or off inside the block (benchmarks time both in one run)."""
    global _forced
    before, _forced = _forced, on
    try:
        yield
    finally:
        _forced = before


def caller_threads() -> int:
    """The caller's intra-op thread count (tests replace it, never torch.set_num_threads)."""
    return torch.get_num_threads()


def slices_for(A: torch.Tensor) -> int:
    """How many slices :func:`eigh` cuts the batch of ``A`` into (1: no split)."""
    if not enabled() or A.device.type != "cpu" or A.dim() < 3:
        return 1
    dim = A.shape[-1]
    batch = A.numel() // max(dim * dim, 1)
    threads = caller_threads()
    if threads < 2 or dim > MAX_DIM or batch < MIN_PER_THREAD * 2:
        return 1
    if not split_agrees(A.dtype, min(threads, batch // MIN_PER_THREAD)):
        return 1
    return min(threads, batch // MIN_PER_THREAD)


# Eigenvalues within ULPS * d * eps * max|A_ij| of torch's, and residuals |A v - λ v| within
# the same: a backward-stable symmetric eigensolver's error is a small multiple of
# d * eps * ||A|| (Golub & Van Loan, 8.1), and 50 leaves room for two of them to differ.
ULPS = 50


def agree_to_rounding(
    A: torch.Tensor, values: torch.Tensor, vectors: torch.Tensor, expected: torch.Tensor
) -> bool:
    """Whether eigenpairs (values, vectors) of A equal torch's (eigenvalues ``expected``)
    to rounding: eigenvalues within ULPS d ulps of max|A_ij|, and residuals
    ||A v - λ v||_inf within the same bound (so a pair put in the wrong place fails)."""
    dim, dtype = A.shape[-1], A.dtype
    scale = A.double().abs().amax((-2, -1)).unsqueeze(-1)
    tolerance = ULPS * dim * torch.finfo(dtype).eps * scale
    close = (values.double() - expected.double()).abs() <= tolerance
    residual = A.double() @ vectors.double() - vectors.double() * values.double().unsqueeze(-2)
    return bool(close.all()) and bool((residual.abs().amax(-2) <= tolerance).all())


_verdicts: dict[tuple[torch.dtype, int], bool] = {}


def split_agrees(dtype: torch.dtype, slices: int) -> bool:
    """Whether, on this machine, the split eigh agrees with torch's own call to rounding
    for ``dtype`` (checked once per dtype and slice count, on a fixed batch of matrices of
    odd and even sizes); if not, a warning, once, and the split stays off for it."""
    key = (dtype, slices)
    if key not in _verdicts:  # _split_call decomposes directly: no recursion into here
        agrees = True
        g = torch.Generator().manual_seed(0)
        for dim in (7, 16, MAX_DIM):
            X = torch.randn(slices * MIN_PER_THREAD, dim, dim, generator=g, dtype=torch.float64)
            A = (X @ X.mT / dim + 0.1 * torch.eye(dim, dtype=torch.float64)).to(dtype)
            values, vectors = _split_call(torch.linalg.eigh, A, slices)
            agrees = agrees and agree_to_rounding(A, values, vectors, torch.linalg.eigh(A)[0])
        _verdicts[key] = agrees
        if not agrees:
            warnings.warn(
                f"the batched CPU eigh split over {slices} threads does not agree with "
                f"torch.linalg.eigh to rounding here ({dtype}); torch's own call is used",
                RuntimeWarning,
                stacklevel=2,
            )
    return _verdicts[key]


@functools.cache
def _omp_set_num_threads() -> Callable[[int], Any] | None:
    """The OpenMP runtime torch loaded (its own omp_set_num_threads, which sets the calling
    thread's count only), or None where there is none to find."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line or "libomp" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            return ctypes.CDLL(path).omp_set_num_threads
        except (OSError, AttributeError):
            continue
    return None


def _one_intra_op_thread() -> None:
    """A pool thread's set-up: its own OpenMP thread count 1, so its eigh neither threads
    nor oversubscribes. Never torch.set_num_threads: that also sets MKL's process-wide
    dynamic-threads flag off, after which torch 2.13's batched LU in nested parallel regions
    spins forever (a 32x256x256 solve hung in tests)."""
    torch.get_num_threads()  # torch's per-thread set-up first, which would reset the count
    setter = _omp_set_num_threads()
    if setter is not None:
        setter(1)


def _executor(size: int) -> ThreadPoolExecutor:
    """A pool of ``size`` threads, each on one intra-op thread; called under ``_lock``."""
    if size not in _pools:
        _pools[size] = ThreadPoolExecutor(
            max_workers=size, thread_name_prefix="matbench-eigh", initializer=_one_intra_op_thread
        )
    return _pools[size]


def map_slices(fn: Callable[[torch.Tensor], Any], A: torch.Tensor) -> Any:
    """``fn(A)`` for a function that treats each matrix of the batch alone and returns a
    tensor or a tuple of tensors with A's batch dimensions in front: on a CPU batch of
    small matrices in parallel slices (see the module docstring), without autograd;
    otherwise one call."""
    slices = slices_for(A)
    if slices <= 1:  # called from custom autograd functions: grad mode is already off
        return fn(A)
    return _split_call(fn, A, slices)


def _split_call(fn: Callable[[torch.Tensor], Any], A: torch.Tensor, slices: int) -> Any:
    """``fn(A)`` in ``slices`` slices of the batch, on the pool's threads."""
    batch = A.shape[:-2]
    chunks = A.detach().reshape(-1, *A.shape[-2:]).tensor_split(slices)

    def one(chunk: torch.Tensor) -> Any:
        with torch.no_grad():  # grad mode is per thread: the pool's threads start with it on
            return fn(chunk)

    with _lock:  # one split at a time, sharing the pool
        parts = list(_executor(slices).map(one, chunks))

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
