"""The performance targets, each measured interleaved as a ratio with its interval, met
or not, with a profile where not met.

1. newton_schulz (adjoint backward) forward+backward at most 1.3x the time of its own
   declared product count (its FLOP model, in units of one batched matmul) as plain
   batched matmuls, at 32x128² float32 (bench_cli.benchmarks.newton_schulz_overhead).
2. mpa_lya at least as fast as the reference MPA_Lya (FastDifferentiableMatSqrt,
   imported from ``--peer``) at 1x64², 64x48² and 32x256², at equal forward error
   (bench_cli.benchmarks.mpa_lya_peer); skipped without ``--peer``.
3. eig_dk not slower than torch autograd at 1x64² (log, float32).
4. The CPU eigh split at OpenMP's default wait policy: at least 1.5x at 64x48², or
   switched off there (bench_cli.layers.cpu_batch); the split is also timed with
   passive waiting, in a child process (the policy is read when OpenMP starts).

A target is ``met`` when the 95% bootstrap interval of the median per-round ratio lies
on its side of the bound, ``missed`` when it lies on the other, and ``not established``
when it straddles it. For every target not met, the operators that took the time in
one call (torch.profiler, self CPU time) are printed.

    python -m bench_cli.benchmarks.performance_targets [--peer PATH/torch_utils.py]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench_cli import env, registry
from bench_cli.fsafe import utc_stamp

MET, MISSED, OPEN = "met", "missed", "not established"
SWITCHED_OFF = "met by switching it off (docs/concepts.md, Every core for batched CPU eigh)"


@dataclass
class Target:
    name: str
    ratio: str  # what is divided by what
    bound: float
    below: bool  # the ratio must be at most the bound (else at least)
    median: float
    low: float
    high: float
    note: str = ""
    profile: str = ""
    switched_off: bool = False  # the target's other branch: the feature is off here
    # (method, func, batch, dim) of matrix_function to profile where the target is not met
    profiled: tuple[str, str, int, int] | None = None

    @property
    def verdict(self) -> str:
        if self.switched_off:
            return SWITCHED_OFF
        return judge(self.low, self.high, self.bound, self.below)


def judge(low: float, high: float, bound: float, below: bool) -> str:
    """met: the whole interval on the target's side of the bound; missed: the whole of
    it on the other; not established: it straddles the bound."""
    good, bad = (high <= bound, low > bound) if below else (low >= bound, high < bound)
    return MET if good else MISSED if bad else OPEN


def declared_products(batch: int, dim: int, options: dict[str, Any]) -> float:
    """newton_schulz's declared forward+backward FLOPs in batched (b, d, d) products."""
    params = {"kind": "spd", "batch": batch, "dim": dim}
    flops = registry.flop_model("matrix_function", "newton_schulz", options, params)
    forward, backward = flops["fwd"], flops["bwd"]
    if forward is None or backward is None:
        raise SystemExit("newton_schulz declares no FLOP model for these options")
    return (forward + backward) / (2 * batch * dim**3)


def newton_schulz_target(budget: float) -> Target:
    from bench_cli.benchmarks import newton_schulz_overhead as ns

    batch, dim = 32, 128
    declared = declared_products(batch, dim, {"func": "sqrt", "iters": 5, "norm": "trace",
                                              "backward": "adjoint", "p": None})  # fmt: skip
    row = ns.measure(dim, batch, 5, budget, declared_count=round(declared))
    r = row["adjoint/bound"]
    note = (f"declared {declared:g} products, {row['matmuls']['adjoint']:.4g} executed "
            "(dispatch count)")  # fmt: skip
    return Target("newton_schulz at 32x128²", "ns fwd+bwd / declared products as bmm",
                  1.3, True, r["median"], r["low"], r["high"], note,
                  profiled=("newton_schulz", "sqrt", batch, dim))  # fmt: skip


def peer_targets(peer_path: Path, budget: float) -> list[Target]:
    from bench_cli.benchmarks import mpa_lya_peer

    peer = mpa_lya_peer.load_peer(peer_path)
    out = []
    for batch, dim in ((1, 64), (64, 48), (32, 256)):
        row = mpa_lya_peer.measure(peer, batch, dim, budget)
        r = row["reference/ours"]
        ours, theirs = row["accuracy"]["ours"], row["accuracy"]["reference"]
        note = (f"forward error ours {ours['forward_error']:.2e}, reference "
                f"{theirs['forward_error']:.2e}")  # fmt: skip
        out.append(Target(f"mpa_lya at {batch}x{dim}²", "reference / ours (> 1: ours faster)",
                          1.0, False, r["median"], r["low"], r["high"], note,
                          profiled=("mpa_lya", "sqrt", batch, dim)))  # fmt: skip
    return out


def eig_dk_targets(budget: float) -> list[Target]:
    from bench_cli.benchmarks import eig_dk_overhead as eig

    one = eig.measure(64, 1, budget)["eig_dk/autograd"]
    out = [Target("eig_dk at 1x64²", "eig_dk / torch autograd", 1.0, True,
                  one["median"], one["low"], one["high"],
                  profiled=("eig_dk", "log", 1, 64))]  # fmt: skip
    split = eig.measure(48, 64, budget)
    r = split["eig_dk/eig_dk_1"]
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    switched_off = split["slices"] == 1
    note = ("switched off at this policy (cpu_batch: it splits only with passive waiting)"
            if switched_off else f"split into {split['slices']} slices")  # fmt: skip
    speedup = Target(f"eigh split at 64x48², OMP_WAIT_POLICY={policy}",
                     "unsplit / split (speed-up)", 1.5, False,
                     1 / r["median"], 1 / r["high"], 1 / r["low"], note,
                     switched_off=switched_off)  # fmt: skip
    out.append(speedup)
    return out


def passive_split(budget: float) -> Target | None:
    """The split's speed-up with passive OpenMP waiting, measured in a child process."""
    code = ("import json,sys; from bench_cli.benchmarks import eig_dk_overhead as e; "
            f"print(json.dumps(e.measure(48, 64, {budget})['eig_dk/eig_dk_1']))")  # fmt: skip
    passive = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=passive, check=False
    )
    if done.returncode != 0:
        return None
    r = json.loads(done.stdout.strip().splitlines()[-1])
    note = "both at passive waiting, which also slows torch's own unsplit call"
    return Target("eigh split at 64x48², OMP_WAIT_POLICY=PASSIVE", "unsplit / split",
                  1.5, False, 1 / r["median"], 1 / r["high"], 1 / r["low"], note)  # fmt: skip


def profile(method: str, func: str, batch: int, dim: int) -> str:
    """The operators that took the time in five forward+backward calls of the method."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from bench_cli.inputs import SpdParams, generate_spd
    from bench_cli.layers import matrix_function

    A = generate_spd(SpdParams(batch=batch, dim=dim, condition=100.0),
                     torch.Generator().manual_seed(0))["A"].float()  # fmt: skip
    G = torch.randn(A.shape, generator=torch.Generator().manual_seed(1))

    def call():
        X = A.detach().requires_grad_(True)
        torch.autograd.grad(matrix_function(X, func, method, check_finite=False), X, G)

    call()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            call()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer", type=Path, help="FastDifferentiableMatSqrt's torch_utils.py")
    parser.add_argument("--budget", type=float, default=6.0, help="seconds per measurement")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/performance_targets"))
    args = parser.parse_args(argv)
    info = env.collect()
    print(f"{info['cpu_model']}, {info['torch_threads']} threads, torch {info['torch']}, "
          f"{info['blas_lapack']}, float32", flush=True)  # fmt: skip
    targets = [newton_schulz_target(args.budget)]
    if args.peer is not None:
        targets += peer_targets(args.peer, args.budget)
    targets += eig_dk_targets(args.budget)
    passive = passive_split(args.budget)
    if passive is not None:
        targets.append(passive)
    for target in targets:
        if target.verdict != MET and target.profiled is not None:
            target.profile = profile(*target.profiled)
    for t in targets:
        side = "≤" if t.below else "≥"
        note = f" ({t.note})" if t.note else ""
        print(f"{t.name}: {t.ratio} = {t.median:.3f} [95% CI {t.low:.3f}, {t.high:.3f}], "
              f"target {side} {t.bound:g}: {t.verdict}{note}")  # fmt: skip
        if t.profile:
            print(t.profile)
    if args.peer is None:
        print("mpa_lya against the reference: skipped (no --peer)")
    folder = args.out / f"{utc_stamp()}_{info['machine_key']}"
    folder.mkdir(parents=True, exist_ok=False)
    rows = [asdict(t) | {"verdict": t.verdict} for t in targets]
    (folder / "result.json").write_text(json.dumps({"env": info, "targets": rows}, indent=1))
    print(f"ratios are medians of per-round paired ratios, 95% bootstrap intervals: {folder}")


if __name__ == "__main__":
    main()
