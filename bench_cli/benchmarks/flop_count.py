"""Every declared FLOP model against what its method executes.

Products are counted by ``torch.utils.flop_counter.FlopCounterMode``. In torch 2.13 it
does not count in-place GEMMs (``baddbmm_`` and kin: it counted 26 d³ for
newton_schulz's adjoint backward, whose 24 products of 2 d³ each are 48 d³), so they
are added with the out-of-place formula. FlopCounterMode counts no factorization; a
dispatch mode logs each LAPACK call (eigh, SVD, LU solve, QR, triangular solve,
Cholesky) with its shapes, and prices it with the nominal constants of
:mod:`bench_cli.layers.declare`: the models are nominal there too, so what is checked
is their structure, how many products and factorizations of what size.

A part without a model (None) must say why in :data:`NO_MODEL`; every other part must
lie within 10 % of the count (``tests/test_flop_models.py``).

    python -m bench_cli.benchmarks.flop_count     # the table: declared against counted
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from bench_cli import registry
from bench_cli.layer_options import NcutOptions
from bench_cli.layers.declare import EIGH, LU_FACTOR, QR, SVD

aten = torch.ops.aten
SIZE = 64  # d (matrix functions) and N (normalized cuts)
BATCH = 2
TOLERANCE = 0.10

# (layer, method, part) -> why that part has no model. A None not listed here fails the test.
NO_MODEL = {
    ("matrix_function", "lowrank", "bwd"): "autograd through torch.svd_lowrank's QR and "
    "SVD adjoints, whose products depend on torch's implementation of them",
    ("matrix_function", "mtp_lya", "bwd"): "lya_iters None iterates the Lyapunov solve to "
    "a tolerance: data-dependent (checked with lya_iters fixed below)",
    ("matrix_function", "mpa_lya", "bwd"): "lya_iters None iterates the Lyapunov solve to "
    "a tolerance: data-dependent (checked with lya_iters fixed below)",
    ("ncut", "lobpcg", "fwd"): "torch.lobpcg iterates to its own convergence test",
    ("ncut", "lobpcg", "bwd"): "torch.lobpcg's own backward, not modelled",
    ("ncut", "subspace", "bwd"): "autograd through torch's QR adjoint at every iteration",
}


def _gemm(self_shape, a_shape, b_shape, *_, out_shape=None, **__) -> int:
    """2 m k n per matrix of a batch, for in-place GEMMs (a @ b added into self)."""
    *batch, m, k = a_shape
    return 2 * math.prod(batch) * m * k * b_shape[-1]


IN_PLACE_GEMMS = {aten.baddbmm_: _gemm, aten.addmm_: _gemm, aten.addbmm_: _gemm}


def _shape(x) -> tuple[int, ...]:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else ()


FACTORIZATIONS = (
    "_linalg_eigh", "_linalg_svd", "linalg_qr", "_linalg_solve_ex", "linalg_solve_triangular",
    "cholesky_solve", "linalg_cholesky_ex",
)  # fmt: skip


def _factorization_flops(name: str, args) -> float:
    """Nominal FLOPs of one logged LAPACK call (0 for any other op)."""
    if name not in FACTORIZATIONS or not args or len(_shape(args[0])) < 2:
        return 0.0
    *batch, m, n = _shape(args[0])
    count, big, small = math.prod(batch), max(m, n), min(m, n)
    rhs = _shape(args[1]) if len(args) > 1 else ()
    columns = (rhs[-1] if len(rhs) >= len(batch) + 2 else 1) if rhs else 0
    if name == "_linalg_eigh":
        return count * EIGH * n**3
    if name == "_linalg_svd":
        return count * SVD * big * small**2
    if name == "linalg_qr":
        return count * QR * big * small**2
    if name == "_linalg_solve_ex":
        return count * (LU_FACTOR * n**3 + 2 * n * n * columns)
    if name in ("linalg_solve_triangular", "cholesky_solve"):
        factor = 1 if name == "linalg_solve_triangular" else 2
        return count * factor * n * n * columns
    if name == "linalg_cholesky_ex":
        return count * n**3 / 3
    return 0.0


class _Factorizations(TorchDispatchMode):
    """Adds up the nominal FLOPs of the factorizations that run inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0.0
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        flops = _factorization_flops(name, args)
        if flops:
            self.flops += flops
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def count(fn: Callable[[], Any]) -> tuple[float, list[str], Any]:
    """(FLOPs counted while ``fn`` runs, the factorizations it called, its result)."""
    factorizations = _Factorizations()
    products = FlopCounterMode(display=False, custom_mapping=IN_PLACE_GEMMS)
    with products, factorizations:
        result = fn()
    return products.get_total_flops() + factorizations.flops, factorizations.calls, result


@dataclass(frozen=True)
class Case:
    layer: str
    method: str
    options: Mapping[str, Any]

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.options.items() if k not in ("func", "k"))
        return f"{self.layer}/{self.method}" + (f"[{extra}]" if extra else "")


def cases() -> Iterator[Case]:
    """Every declared method of matrix_function and ncut at its defaults, plus the
    settings whose model differs: fixed Lyapunov steps, MPA's partial fractions,
    Newton–Schulz through autograd."""
    for name, method in registry.LAYERS["matrix_function"].methods.items():
        func = "sqrt" if "sqrt" in method.funcs else method.funcs[0]
        yield Case("matrix_function", name, {"func": func})
    yield Case("matrix_function", "mtp_lya", {"func": "sqrt", "lya_iters": 8})
    yield Case("matrix_function", "mpa_lya", {"func": "sqrt", "lya_iters": 8})
    yield Case("matrix_function", "mpa_lya", {"func": "sqrt", "degree": 8, "lya_iters": 8})
    yield Case("matrix_function", "newton_schulz", {"func": "sqrt", "backward": "autograd"})
    for name in registry.LAYERS["ncut"].methods:
        yield Case("ncut", name, {"k": 4, "sigma": 1.0})


def _input(layer: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(BATCH, SIZE, SIZE, generator=generator, dtype=torch.float64)
    A = X @ X.mT / SIZE
    if layer == "matrix_function":
        return A + torch.eye(SIZE, dtype=torch.float64)  # SPD, condition about 5
    return A / torch.linalg.matrix_norm(A).unsqueeze(-1).unsqueeze(-1)  # symmetric, as M


def measure(case: Case) -> dict[str, Any]:
    """Declared and counted FLOPs, forward and backward, for the whole batch."""
    model = registry.options_model(case.layer, case.method)(**case.options).model_dump()
    entry = registry.LAYERS[case.layer].methods[case.method]
    declared = entry.flops_for(SIZE, model)
    if case.layer == "matrix_function":
        own = {k: v for k, v in model.items() if k not in ("func", "p")}
        func, p = model["func"], model.get("p")

        def call(A):
            return registry.matfun.matrix_function(A, func, case.method, p=p, **own)
    else:
        own = {k: v for k, v in model.items() if k not in NcutOptions.model_fields}

        def call(A):
            return entry(A, model["k"], **own)

    A = _input(case.layer).requires_grad_(True)
    torch.manual_seed(0)
    forward, forward_calls, out = count(lambda: call(A))
    upstream = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1))
    backward, backward_calls, _ = count(lambda: out.backward(upstream))
    return {
        "case": case,
        "declared": {
            part: None if value is None else BATCH * value
            for part, value in zip(("fwd", "bwd"), declared, strict=True)
        },
        "counted": {"fwd": forward, "bwd": backward},
        "factorizations": {"fwd": forward_calls, "bwd": backward_calls},
    }


def verdict(case: Case, part: str, declared: float | None, counted: float) -> str:
    """ "ok" within TOLERANCE of the count; "no model: why" for a listed None; else what is
    wrong."""
    if declared is None:
        why = NO_MODEL.get((case.layer, case.method, part))
        if why is None:
            return "no model, and no reason stated"
        if "lya_iters" in case.options:  # the fixed-step settings must be modelled
            return "no model, though its steps are fixed"
        return f"no model: {why}"
    if counted == 0:
        return "nothing counted"
    ratio = declared / counted
    return "ok" if abs(ratio - 1) <= TOLERANCE else f"off by {ratio:.2f}x"


def table() -> list[list[str]]:
    rows = []
    for case in cases():
        result = measure(case)
        for part in ("fwd", "bwd"):
            declared = result["declared"][part]
            counted = result["counted"][part]
            scale = BATCH * SIZE**3
            rows.append([
                case.label, part,
                "n/a" if declared is None else f"{declared / scale:.3f}",
                f"{counted / scale:.3f}",
                verdict(case, part, declared, counted),
            ])  # fmt: skip
    return rows


def main() -> None:
    from tabulate import tabulate

    print(f"FLOPs per matrix in units of d³ (d = N = {SIZE}, a batch of {BATCH}, float64)")
    headers = ["method", "part", "declared", "counted", "verdict"]
    print(tabulate(table(), headers=headers, tablefmt="github"))


if __name__ == "__main__":
    main()
