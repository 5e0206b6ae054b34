"""Does Newton–Schulz cost no more than its own matmuls?

newton_schulz(sqrt, iters=5) forward+backward, batch 32, float32, d in {64, 128, 256},
against its lower bound: the same number of plain batched (32, d, d) matmuls.
The count is measured, not assumed: a dispatch mode counts every batched
GEMM (bmm, baddbmm, baddbmm_) of one forward+backward, weighted by its
size relative to a (32, d, d) @ (32, d, d) product. Both backward modes are
timed (autograd through the iterations, and the hand-written adjoint).
Variants run interleaved; ratios are medians of per-round paired ratios.

    python -m bench_cli.benchmarks.newton_schulz_overhead [--dims 64 128 256] [--iters 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench_cli import env
from bench_cli.benchmarks._interleaved import interleaved, ratio_summary
from bench_cli.fsafe import utc_stamp
from bench_cli.inputs import SpdParams, generate_spd
from bench_cli.layers import matrix_function


def forward_backward(A, grad_out, iters, backward):
    def run():
        X = A.detach().requires_grad_(True)
        out = matrix_function(
            X, "sqrt", "newton_schulz", iters=iters, backward=backward, check_finite=False
        )
        torch.autograd.grad(out, X, grad_out)

    return run


class _GemmCounter(TorchDispatchMode):
    """Counts batched GEMMs (plain, in-place and out= forms) in units of one product of the
    given size."""

    GEMMS = {
        torch.ops.aten.bmm.default: (0, 1),
        torch.ops.aten.bmm.out: (0, 1),
        torch.ops.aten.baddbmm.default: (1, 2),
        torch.ops.aten.baddbmm_.default: (1, 2),
        torch.ops.aten.baddbmm.out: (1, 2),
    }

    def __init__(self, unit_flops: float):
        super().__init__()
        self.unit_flops, self.count = unit_flops, 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.GEMMS:
            left, right = (args[i] for i in self.GEMMS[func])
            b, n, k = left.shape
            self.count += 2 * b * n * k * right.shape[-1] / self.unit_flops
        return func(*args, **(kwargs or {}))


def matmul_count(run, batch: int, dim: int) -> float:
    with _GemmCounter(2 * batch * dim**3) as counter:
        run()
    return counter.count


def measure(
    dim: int, batch: int, iters: int, budget_s: float, seed: int = 0,
    declared_count: int | None = None,
) -> dict:  # fmt: skip
    """Both backward modes against plain batched matmuls: as many as each executes (the
    dispatch count), or with ``declared_count`` that many (the method's FLOP model)."""
    generator = torch.Generator().manual_seed(seed)
    A = generate_spd(SpdParams(batch=batch, dim=dim, condition=100.0), generator)["A"].float()
    grad_out = torch.randn(A.shape, generator=generator).float()
    runs = {mode: forward_backward(A, grad_out, iters, mode) for mode in ("autograd", "adjoint")}
    counts = {mode: matmul_count(run, batch, dim) for mode, run in runs.items()}
    left, right = torch.randn(2, batch, dim, dim, generator=generator).float()

    def plain(n):
        def run():
            for _ in range(n):
                torch.bmm(left, right)

        return run

    n_plain = {mode: declared_count or round(count) for mode, count in counts.items()}
    runs.update({f"bound_{mode}": plain(n) for mode, n in n_plain.items()})
    samples = interleaved(runs, budget_s)
    return {
        "dim": dim,
        "batch": batch,
        "iters": iters,
        "matmuls": counts,
        "rounds": len(samples["autograd"]),
        "median_s": {n: float(np.median(v)) for n, v in samples.items()},
        "autograd/bound": ratio_summary(samples["autograd"], samples["bound_autograd"]),
        "adjoint/bound": ratio_summary(samples["adjoint"], samples["bound_adjoint"]),
        "samples_s": {n: [round(float(s), 9) for s in v] for n, v in samples.items()},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per size")
    parser.add_argument(
        "--out", type=Path, default=Path("results/benchmarks/newton_schulz_overhead")
    )
    args = parser.parse_args(argv)
    info = env.collect()
    print(
        f"{info['cpu_model']}, {info['torch_threads']} threads, torch {info['torch']}, "
        f"float32, batch {args.batch}, iters {args.iters}"
    )
    print(
        f"{'d':>5} {'matmuls':>8} {'autograd':>10} {'adjoint':>10} {'bound':>10} "
        f"{'autograd/bound':>15} {'adjoint/bound':>15}"
    )
    rows = []
    for dim in args.dims:
        row = measure(dim, args.batch, args.iters, args.budget)
        rows.append(row)
        ms = {k: v * 1e3 for k, v in row["median_s"].items()}
        ra, rb = row["autograd/bound"], row["adjoint/bound"]
        counts = "/".join(f"{c:g}" for c in row["matmuls"].values())
        print(
            f"{dim:>5} {counts:>8} {ms['autograd']:>8.2f}ms "
            f"{ms['adjoint']:>8.2f}ms {ms['bound_autograd']:>8.2f}ms "
            f"{ra['median']:>7.3f} ±{ra['iqr']:.3f} {rb['median']:>7.3f} ±{rb['iqr']:.3f}",
            flush=True,
        )
    folder = args.out / f"{utc_stamp()}_{info['machine_key']}"
    folder.mkdir(parents=True, exist_ok=False)
    (folder / "result.json").write_text(json.dumps({"env": info, "rows": rows}, indent=1))
    print(f"ratios are medians of per-round paired ratios (± IQR); raw samples: {folder}")


if __name__ == "__main__":
    main()
