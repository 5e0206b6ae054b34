"""Batched CPU eigh over every core: the same eigenpairs, bit for bit, as torch's own
call, and the rule for when it splits. No timing here: `make bench-layers` measures it."""

import pytest
import torch

from bench_cli.layers import cpu_batch, matrix_function


def spd(batch, dim, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(*batch, dim, dim, generator=g, dtype=torch.float64)
    return (X @ X.mT / dim + 0.1 * torch.eye(dim, dtype=torch.float64)).to(dtype)


@pytest.fixture
def two_threads(monkeypatch):
    """The rule sees a 2-thread caller (never torch.set_num_threads: after it, torch 2.13's
    batched LU can hang; see cpu_batch._one_intra_op_thread)."""
    monkeypatch.setattr(cpu_batch, "caller_threads", lambda: 2)
    monkeypatch.setenv("MATBENCH_CPU_SPLIT", "1")


@pytest.mark.parametrize(
    "batch, dim, dtype",
    [((64,), 48, torch.float32), ((32,), 64, torch.float32), ((8,), 64, torch.float64),
     ((3, 5), 16, torch.float64), ((5,), 7, torch.float32)],
)  # fmt: skip
def test_split_eigenpairs_are_bit_identical_to_torch(two_threads, batch, dim, dtype):
    A = spd(batch, dim, dtype)
    assert cpu_batch.slices_for(A) == 2
    values, vectors = cpu_batch.eigh(A)
    expected_values, expected_vectors = torch.linalg.eigh(A)
    assert torch.equal(values, expected_values) and torch.equal(vectors, expected_vectors)
    assert values.shape == A.shape[:-1] and vectors.shape == A.shape


def test_a_wrong_reassembly_would_be_caught(two_threads):
    """The check above can fail: slices put back in the wrong order differ from torch."""
    A = spd((8,), 16)
    values, _ = cpu_batch.eigh(A)
    swapped = torch.cat(values.tensor_split(2)[::-1])
    assert not torch.equal(swapped, torch.linalg.eigh(A)[0])


def test_when_it_splits(two_threads, monkeypatch):
    assert cpu_batch.slices_for(spd((64,), 48)) == 2
    assert cpu_batch.slices_for(spd((1,), 64)) == 1  # one matrix: nothing to split
    assert cpu_batch.slices_for(spd((3,), 8)) == 1  # under two per thread
    assert cpu_batch.slices_for(spd((), 8)) == 1  # not a batch
    big = torch.empty(32, cpu_batch.MAX_DIM + 1, cpu_batch.MAX_DIM + 1)
    assert cpu_batch.slices_for(big) == 1  # LAPACK threads these itself
    monkeypatch.setenv("MATBENCH_CPU_SPLIT", "0")
    assert cpu_batch.slices_for(spd((64,), 48)) == 1
    with cpu_batch.splitting(True):
        assert cpu_batch.slices_for(spd((64,), 48)) == 2
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert cpu_batch.slices_for(spd((64,), 48)) == 1  # an explicit 0 wins
    monkeypatch.delenv("MATBENCH_CPU_SPLIT")
    assert cpu_batch.slices_for(spd((64,), 48)) == 2  # unset: on under passive waiting
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert cpu_batch.slices_for(spd((64,), 48)) == 1  # spinning threads: torch's own call
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert cpu_batch.slices_for(spd((64,), 48)) == 1  # OpenMP's default spins too
    monkeypatch.setattr(cpu_batch, "caller_threads", lambda: 1)
    assert cpu_batch.slices_for(spd((64,), 48)) == 1  # one thread: torch's own call


def test_the_pool_leaves_batched_lu_working():
    """torch.set_num_threads anywhere in the process made a 32x256x256 batched solve spin
    forever (torch 2.13, MKL): the pool must not call it. A subprocess, so a hang is a
    timeout here and not a stuck test run."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from bench_cli.layers import cpu_batch\n"
        "X = torch.randn(64, 48, 48); A = X @ X.mT / 48 + torch.eye(48)\n"
        "with cpu_batch.splitting(True):\n"
        "    cpu_batch.eigh(A)\n"
        "B = torch.randn(32, 256, 256); B = B @ B.mT / 256 + torch.eye(256)\n"
        "torch.linalg.solve(B, B)\n"
        "print('solved')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
    )  # a hang guard only: the solve takes well under a second
    assert result.returncode == 0 and "solved" in result.stdout, result.stderr[-500:]


def test_eig_dk_and_eig_give_the_same_values_and_gradients_split_or_not(two_threads):
    A = spd((16,), 24, torch.float64).requires_grad_(True)
    G = torch.randn(16, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = {}
    for split in (True, False):
        with cpu_batch.splitting(split):
            for method in ("eig_dk", "eig"):
                y = matrix_function(A, "sqrt", method)
                (grad,) = torch.autograd.grad(y, A, G)
                out[(split, method)] = (y.detach(), grad)
    for method in ("eig_dk", "eig"):
        assert torch.equal(out[(True, method)][0], out[(False, method)][0])
        assert torch.equal(out[(True, method)][1], out[(False, method)][1])
