"""Does matbench's Timer agree with torch.utils.benchmark on the same operations?

A batched eigh and a batched matmul, each timed by matbench's Timer (median of
per-call samples) and by torch.utils.benchmark.Timer.blocked_autorange (median
over blocks), alternating three times so drift hits both. Passed when every
median ratio is within 10%.

torch.utils.benchmark.Timer runs with one thread unless told otherwise; it is
given torch.get_num_threads() here, the setting matbench's Timer runs under.

    python -m bench_cli.benchmarks.timer_agreement
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.utils.benchmark as torch_benchmark

from bench_cli.metrics.timing import Timer

OPERATIONS = {  # the same callable goes to both timers
    "eigh (32, 64, 64) float32": (torch.linalg.eigh, (32, 64)),
    "bmm (32, 128, 128) float32": (lambda A: torch.bmm(A, A), (32, 128)),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    print(f"{threads} threads, torch {torch.__version__}")
    print(f"{'operation':<28} {'matbench':>11} {'torch':>11} {'ratio':>7}")
    worst = 0.0
    for name, (operation, (batch, dim)) in OPERATIONS.items():
        A = torch.randn(batch, dim, dim)
        A = A @ A.mT / dim + torch.eye(dim)
        ours, theirs = [], []
        for _ in range(args.rounds):

            def call(_: object, A: torch.Tensor = A, operation=operation) -> None:
                operation(A)

            samples = Timer(torch.device("cpu")).measure(
                call,
                budget_s=args.budget,
                warmup=3,
                min_repeats=10,
                max_repeats=100000,
            )
            ours.append(statistics.median(samples))
            timer = torch_benchmark.Timer(
                "operation(A)", globals={"A": A, "operation": operation}, num_threads=threads
            )
            theirs.append(timer.blocked_autorange(min_run_time=args.budget).median)
        mine, reference = statistics.median(ours), statistics.median(theirs)
        ratio = mine / reference
        worst = max(worst, abs(ratio - 1))
        print(f"{name:<28} {mine * 1e6:>9.1f}µs {reference * 1e6:>9.1f}µs {ratio:>7.3f}")
    verdict = "within" if worst <= 0.10 else "NOT within"
    print(f"largest deviation {worst:.1%}: {verdict} 10%")
    return 0 if worst <= 0.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
