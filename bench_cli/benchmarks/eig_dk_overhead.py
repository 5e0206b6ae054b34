"""Is the Daleckii–Krein backward as fast as it can be, and does it use every core?

matrix_function(log) forward+backward, float32, at batch×d 64×48, 1×64, 32×64,
32×128 and 32×256 (``--sizes``):

- ``eig_dk``   the Daleckii–Krein method (one eigh, 1 matmul forward, 4 backward),
               its eigh split over the cores on a CPU batch where the rule of
               bench_cli.layers.cpu_batch says so (the ``slices`` column);
- ``eig_dk_1`` the same with splitting off: torch's own batched eigh;
- ``autograd`` torch.linalg.eigh composed, torch's backward;
- ``bound``    a lower bound of the unsplit method: one batched eigh plus five
               batched matmuls of the same size, with no elementwise work at all.

The variants run interleaved, one call each per round in a rotating order, so
drift on a shared machine hits all of them alike; each round gives paired
ratios, and the medians of those ratios are reported with their IQR.

    python -m bench_cli.benchmarks.eig_dk_overhead [--dims 64 128 256] [--budget 8]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from bench_cli import env
from bench_cli.benchmarks._interleaved import batch_by_dim, interleaved, ratio_summary
from bench_cli.fsafe import utc_stamp
from bench_cli.inputs import SpdParams, generate_spd
from bench_cli.layers import cpu_batch, matrix_function


def variants(A: torch.Tensor, grad_out: torch.Tensor):
    def through(method, split=None):
        def run():
            X = A.detach().requires_grad_(True)
            rule = contextlib.nullcontext()
            with cpu_batch.splitting(split) if split is not None else rule:
                out = matrix_function(X, "log", method, check_finite=False)
                torch.autograd.grad(out, X, grad_out)

        return run

    def bound():
        eigvals, eigvecs = torch.linalg.eigh(A)
        M = eigvecs
        for _ in range(5):
            M = torch.matmul(M, eigvecs)

    return {
        "eig_dk": through("eig_dk"),
        "eig_dk_1": through("eig_dk", split=False),
        "autograd": through("autograd"),
        "bound": bound,
    }


def measure(dim: int, batch: int, budget_s: float, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    A = generate_spd(SpdParams(batch=batch, dim=dim, condition=100.0), generator)["A"].float()
    grad_out = torch.randn(A.shape, generator=generator).float()
    samples = interleaved(variants(A, grad_out), budget_s)
    return {
        "dim": dim,
        "batch": batch,
        "rounds": len(samples["eig_dk"]),
        "median_s": {n: float(np.median(v)) for n, v in samples.items()},
        "slices": cpu_batch.slices_for(A),
        "eig_dk/autograd": ratio_summary(samples["eig_dk"], samples["autograd"]),
        "eig_dk_1/autograd": ratio_summary(samples["eig_dk_1"], samples["autograd"]),
        "eig_dk/eig_dk_1": ratio_summary(samples["eig_dk"], samples["eig_dk_1"]),
        "eig_dk_1/bound": ratio_summary(samples["eig_dk_1"], samples["bound"]),
        "samples_s": {n: [round(float(s), 9) for s in v] for n, v in samples.items()},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sizes = [(64, 48), (1, 64), (32, 64), (32, 128), (32, 256)]
    parser.add_argument("--sizes", type=batch_by_dim, nargs="+", default=sizes, help="e.g. 64x48")
    parser.add_argument("--budget", type=float, default=6.0, help="seconds per size")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/eig_dk_overhead"))
    args = parser.parse_args(argv)
    info = env.collect()
    rows = []
    policy = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    print(
        f"{info['cpu_model']}, {info['torch_threads']} threads, torch {info['torch']}, "
        f"float32, OMP_WAIT_POLICY={policy}"
    )
    print(
        f"{'batch x d':>10} {'slices':>6} {'rounds':>6} {'eig_dk':>9} {'autograd':>9} "
        f"{'eig_dk/autograd':>16} {'unsplit/autograd':>17} {'split/unsplit':>14} "
        f"{'unsplit/bound':>14}"
    )
    for batch, dim in args.sizes:
        row = measure(dim, batch, args.budget)
        rows.append(row)
        ms = {k: v * 1e3 for k, v in row["median_s"].items()}

        def r(key, row=row):
            return f"{row[key]['median']:.3f} ±{row[key]['iqr']:.3f}"

        print(
            f"{f'{batch}x{dim}':>10} {row['slices']:>6} {row['rounds']:>6} "
            f"{ms['eig_dk']:>7.2f}ms {ms['autograd']:>7.2f}ms {r('eig_dk/autograd'):>16} "
            f"{r('eig_dk_1/autograd'):>17} {r('eig_dk/eig_dk_1'):>14} {r('eig_dk_1/bound'):>14}",
            flush=True,
        )
    folder = args.out / f"{utc_stamp()}_{info['machine_key']}"
    folder.mkdir(parents=True, exist_ok=False)
    (folder / "result.json").write_text(json.dumps({"env": info, "rows": rows}, indent=1))
    print(
        "ratios are medians of per-round paired ratios (± IQR); speed-up = 1/ratio; "
        f"raw samples: {folder}"
    )


if __name__ == "__main__":
    main()
