"""Batched CPU eigh over every core: the same eigenpairs as torch's own call (to
rounding; bit for bit where LAPACK allows), and the rule for when it splits. No timing
here: `make bench-layers` measures it."""

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


agree_to_rounding = cpu_batch.agree_to_rounding


@pytest.mark.parametrize(
    "batch, dim, dtype",
    [((64,), 48, torch.float32), ((32,), 64, torch.float32), ((8,), 64, torch.float64),
     ((3, 5), 16, torch.float64), ((5,), 7, torch.float32)],
)  # fmt: skip
def test_split_eigenpairs_equal_torchs_to_rounding(two_threads, batch, dim, dtype):
    """Bit-identical on the Intel Xeon VM (this test, checking bits, passed there). On the
    AMD EPYC VM (MKL) the bits of one matrix's eigh depend on the thread count and on where
    the matrix sits in memory: float64 at d = 64 and float32 at d = 7 (matrices of 196
    bytes, so slices start unaligned) moved in the last bits (3.9e-16). So the check is
    agreement to rounding, which still catches a slice put back in the wrong place (below)."""
    A = spd(batch, dim, dtype)
    assert cpu_batch.slices_for(A) == 2
    values, vectors = cpu_batch.eigh(A)
    expected_values, _ = torch.linalg.eigh(A)
    assert agree_to_rounding(A, values, vectors, expected_values)
    assert values.shape == A.shape[:-1] and vectors.shape == A.shape


def test_a_wrong_reassembly_would_be_caught(two_threads):
    """The check above can fail: slices put back in the wrong order differ from torch."""
    A = spd((8,), 16)
    values, vectors = cpu_batch.eigh(A)
    expected_values, _ = torch.linalg.eigh(A)
    swapped_values = torch.cat(values.tensor_split(2)[::-1])
    swapped_vectors = torch.cat(vectors.tensor_split(2)[::-1])
    assert agree_to_rounding(A, values, vectors, expected_values)
    assert not agree_to_rounding(A, swapped_values, swapped_vectors, expected_values)
    assert not agree_to_rounding(A, values, vectors.flip(-1), expected_values)


def test_a_machine_where_the_split_disagrees_turns_it_off(two_threads, monkeypatch):
    """The promise is checked at first use: where the split's eigenpairs differ from
    torch's beyond rounding (faked here: slices put back swapped), a warning says so once
    and torch's own call is used for that dtype from then on."""
    monkeypatch.setattr(cpu_batch, "_verdicts", {})
    real = cpu_batch._split_call

    def swapped(fn, A, slices):
        values, vectors = real(fn, A, slices)
        return torch.cat(values.tensor_split(2)[::-1]), torch.cat(vectors.tensor_split(2)[::-1])

    monkeypatch.setattr(cpu_batch, "_split_call", swapped)
    A = spd((8,), 16)
    with pytest.warns(RuntimeWarning, match="does not agree with torch.linalg.eigh"):
        assert cpu_batch.slices_for(A) == 1
    assert cpu_batch.slices_for(A) == 1  # decided once: no second warning, still off
    values, _ = cpu_batch.eigh(A)
    assert torch.equal(values, torch.linalg.eigh(A)[0])  # torch's own call, bit for bit
    with pytest.warns(RuntimeWarning, match="float64"):  # checked per dtype
        assert cpu_batch.slices_for(spd((8,), 16, torch.float64)) == 1
    monkeypatch.setattr(cpu_batch, "_split_call", real)
    monkeypatch.setattr(cpu_batch, "_verdicts", {})
    assert cpu_batch.slices_for(A) == 2  # where it agrees, it splits


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
    # Rounding apart (see above): eigenvalue gaps here are above 1e-3, so eigenvectors
    # that differ in the last bits move values and gradients by under 1e-12 relative.
    for method in ("eig_dk", "eig"):
        for part in (0, 1):
            torch.testing.assert_close(
                out[(True, method)][part], out[(False, method)][part], rtol=1e-10, atol=1e-12
            )
