"""Is our mpa_lya at least as fast as the reference implementation, and as accurate?

The reference is ``MPA_Lya`` from FastDifferentiableMatSqrt (Song, Sebe & Wang,
ICLR 2022), imported at run time from the ``torch_utils.py`` the user names
(``--peer``, e.g. a clone of github.com/KingJamesSong/FastDifferentiableMatSqrt);
matbench never carries its code. Both compute the [5/5] Padé approximant of
sqrt on A/‖A‖_F and a Lyapunov backward by the matrix-sign iteration: the
reference runs a fixed 8 sign steps and treats ‖A‖_F as a constant; ours
iterates to convergence (docs/concepts.md, "Approximations").

Forward+backward, float32, at batch×d 1×64, 64×48 and 32×256 (``--sizes``),
timed interleaved (one call of each per round, rotating order), reported as
the median per-round ratio reference/ours (> 1: ours is faster). Beside it,
each one's forward error and gradient error against the float64 NumPy
references (bench_cli.references), on the same input and upstream gradient,
and the backward's own accuracy: the relative residual of the Lyapunov
equation S X + X S = G it solves for the S its forward returned (the gradient
errors are dominated by the [5/5] forward's, so they cannot show it).

    python -m bench_cli.benchmarks.mpa_lya_peer --peer PATH/torch_utils.py [--budget 6]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from bench_cli import env, references
from bench_cli.benchmarks._interleaved import batch_by_dim, interleaved, ratio_summary
from bench_cli.fsafe import utc_stamp
from bench_cli.inputs import SpdParams, generate_spd
from bench_cli.layers import matrix_function


def load_peer(path: Path):
    """The reference's MPA_Lya, imported from the user's file at run time."""
    if not path.is_file():
        raise SystemExit(
            f"--peer {path}: no such file (FastDifferentiableMatSqrt's torch_utils.py)"
        )
    spec = importlib.util.spec_from_file_location("matbench_peer_torch_utils", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--peer {path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the peer's own imports (mpmath) or code
        raise SystemExit(f"--peer {path}: import failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, "MPA_Lya"):
        raise SystemExit(f"--peer {path}: defines no MPA_Lya")
    return module.MPA_Lya


def _relative(x: torch.Tensor, reference: torch.Tensor) -> float:
    x, reference = x.double(), reference.double()
    per = torch.linalg.matrix_norm(x - reference) / torch.linalg.matrix_norm(reference)
    return float(per.max())


def accuracy(fn, A: torch.Tensor, G: torch.Tensor) -> dict[str, float]:
    """Forward and gradient error of fn against the float64 NumPy references, and the
    backward's own accuracy: the residual of the Lyapunov equation S X + X S = G that
    both backwards solve for the S their forward returned, relative to ‖G‖."""
    X = A.detach().requires_grad_(True)
    out = fn(X)
    (grad,) = torch.autograd.grad(out, X, G)
    options = {"func": "sqrt", "p": None}
    inputs = {"A": A.double()}
    S, Xg = out.detach().double(), grad.double()
    residual = torch.linalg.matrix_norm(S @ Xg + Xg @ S - G.double())
    return {
        "lyapunov_residual": float((residual / torch.linalg.matrix_norm(G.double())).max()),
        "forward_error": _relative(out.detach(), references.matrix_function(options, inputs)),
        "grad_error": _relative(
            grad, references.matrix_function_grad(options, inputs, G.double())["A"]
        ),
    }


def measure(peer, batch: int, dim: int, budget_s: float, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    A = generate_spd(SpdParams(batch=batch, dim=dim, condition=100.0), generator)["A"].float()
    G = torch.randn(A.shape, generator=generator).float()
    G = 0.5 * (G + G.mT)  # the reference's backward assumes a symmetric upstream

    def ours(X):
        return matrix_function(X, "sqrt", "mpa_lya", check_finite=False)

    def theirs(X):
        return peer.apply(X)

    def through(fn):
        def run():
            X = A.detach().requires_grad_(True)
            torch.autograd.grad(fn(X), X, G)

        return run

    samples = interleaved({"ours": through(ours), "reference": through(theirs)}, budget_s)
    return {
        "batch": batch,
        "dim": dim,
        "rounds": len(samples["ours"]),
        "median_s": {n: float(np.median(v)) for n, v in samples.items()},
        "reference/ours": ratio_summary(samples["reference"], samples["ours"]),
        "accuracy": {"ours": accuracy(ours, A, G), "reference": accuracy(theirs, A, G)},
        "samples_s": {n: [round(float(s), 9) for s in v] for n, v in samples.items()},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer", type=Path, required=True, help="the reference's torch_utils.py")
    sizes = [(1, 64), (64, 48), (32, 256)]
    parser.add_argument("--sizes", type=batch_by_dim, nargs="+", default=sizes, help="e.g. 64x48")
    parser.add_argument("--budget", type=float, default=6.0, help="seconds per size")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/mpa_lya_peer"))
    args = parser.parse_args(argv)
    peer = load_peer(args.peer)
    info = env.collect()
    print(f"{info['cpu_model']}, {info['torch_threads']} threads, torch {info['torch']}, float32")
    print(
        f"{'batch x d':>10} {'rounds':>6} {'ours':>9} {'reference':>10} {'reference/ours':>15} "
        f"{'fwd err ours':>13} {'fwd err ref':>12} {'grad err ours':>14} {'grad err ref':>13} "
        f"{'lya res ours':>13} {'lya res ref':>12}"
    )
    rows = []
    for batch, dim in args.sizes:
        row = measure(peer, batch, dim, args.budget)
        rows.append(row)
        ms = {k: v * 1e3 for k, v in row["median_s"].items()}
        ratio = row["reference/ours"]
        ours, ref = row["accuracy"]["ours"], row["accuracy"]["reference"]
        print(
            f"{f'{batch}x{dim}':>10} {row['rounds']:>6} {ms['ours']:>7.2f}ms "
            f"{ms['reference']:>8.2f}ms {ratio['median']:>8.3f} ±{ratio['iqr']:.3f} "
            f"{ours['forward_error']:>13.2e} {ref['forward_error']:>12.2e} "
            f"{ours['grad_error']:>14.2e} {ref['grad_error']:>13.2e} "
            f"{ours['lyapunov_residual']:>13.2e} {ref['lyapunov_residual']:>12.2e}",
            flush=True,
        )
    folder = args.out / f"{utc_stamp()}_{info['machine_key']}"
    folder.mkdir(parents=True, exist_ok=False)
    (folder / "result.json").write_text(
        json.dumps({"env": info, "peer": str(args.peer), "rows": rows}, indent=1)
    )
    print(f"reference/ours > 1: ours is faster (median of per-round ratios ± IQR); {folder}")


if __name__ == "__main__":
    main()
