"""Is the Daleckii–Krein backward as fast as it can be?

matrix_function(log) forward+backward, batch 32, float32, d in {64, 128, 256}:

- ``eig_dk``   the Daleckii–Krein method (one eigh, 1 matmul forward, 4 backward);
- ``autograd`` torch.linalg.eigh composed, torch's backward;
- ``bound``    its lower bound: one batched eigh plus five batched matmuls of
               the same size, with no elementwise work at all.

The variants run interleaved, one call each per round in a rotating order, so
drift on a shared machine hits all of them alike; each round gives paired
ratios, and the medians of those ratios are reported with their IQR.

    python -m bench_cli.benchmarks.eig_dk_overhead [--dims 64 128 256] [--budget 8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from bench_cli import env
from bench_cli.benchmarks._interleaved import interleaved, ratio_summary
from bench_cli.inputs import SpdParams, generate_spd
from bench_cli.layers import matrix_function
from bench_cli.store import utc_stamp


def variants(A: torch.Tensor, grad_out: torch.Tensor):
    def through(method):
        def run():
            X = A.detach().requires_grad_(True)
            out = matrix_function(X, "log", method, check_finite=False)
            torch.autograd.grad(out, X, grad_out)

        return run

    def bound():
        eigvals, eigvecs = torch.linalg.eigh(A)
        M = eigvecs
        for _ in range(5):
            M = torch.matmul(M, eigvecs)

    return {"eig_dk": through("eig_dk"), "autograd": through("autograd"), "bound": bound}


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
        "eig_dk/autograd": ratio_summary(samples["eig_dk"], samples["autograd"]),
        "eig_dk/bound": ratio_summary(samples["eig_dk"], samples["bound"]),
        "samples_s": {n: [round(float(s), 9) for s in v] for n, v in samples.items()},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per size")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/eig_dk_overhead"))
    args = parser.parse_args(argv)
    info = env.collect()
    rows = []
    print(f"{info['cpu_model']}, {info['torch_threads']} threads, torch {info['torch']}, float32")
    print(
        f"{'d':>5} {'rounds':>6} {'eig_dk':>10} {'autograd':>10} {'bound':>10} "
        f"{'eig_dk/autograd':>16} {'eig_dk/bound':>14}"
    )
    for dim in args.dims:
        row = measure(dim, args.batch, args.budget)
        rows.append(row)
        ms = {k: v * 1e3 for k, v in row["median_s"].items()}
        ra, rb = row["eig_dk/autograd"], row["eig_dk/bound"]
        print(
            f"{dim:>5} {row['rounds']:>6} {ms['eig_dk']:>8.2f}ms {ms['autograd']:>8.2f}ms "
            f"{ms['bound']:>8.2f}ms {ra['median']:>8.3f} ±{ra['iqr']:.3f} "
            f"{rb['median']:>7.3f} ±{rb['iqr']:.3f}",
            flush=True,
        )
    folder = args.out / f"{utc_stamp()}_{info['machine_key']}"
    folder.mkdir(parents=True, exist_ok=False)
    (folder / "result.json").write_text(json.dumps({"env": info, "rows": rows}, indent=1))
    print(f"ratios are medians of per-round paired ratios (± IQR); raw samples: {folder}")


if __name__ == "__main__":
    main()
