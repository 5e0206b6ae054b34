"""The ``op_dtypes`` metric: the dtype each matrix product and decomposition of one
forward and one backward actually ran in, read with a dispatch mode (after autocast's
casts), and the dtype of the output. Under ``autocast:`` it says which methods run in
low precision, which upcast, and where (docs/measurement.md, "Compiled and mixed
precision")."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench_cli.metrics import Probe

# The matrix products and decompositions whose dtype autocast decides (aten names, the
# overload dropped).
PRODUCTS = ("mm", "bmm", "addmm", "baddbmm", "addbmm", "matmul", "dot", "mv", "addmv")
DECOMPOSITIONS = (
    "_linalg_eigh", "linalg_eigh", "_linalg_svd", "linalg_svd", "linalg_eig", "linalg_solve_ex",
    "_linalg_solve_ex", "linalg_lu_factor_ex", "linalg_lu_solve", "lu_unpack",
    "linalg_cholesky_ex", "cholesky_solve", "linalg_inv_ex", "linalg_qr", "geqrf",
    "triangular_solve", "linalg_solve_triangular", "_linalg_det", "_linalg_slogdet",
)  # fmt: skip
NONE = "none"  # the pass ran no op of the kind
RAISED = "raised"  # the pass raised (its error is recorded beside)


class OpDtypes(TorchDispatchMode):
    """Records the dtype of each matrix product and decomposition: its first floating
    input's, as dispatch sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, set[str]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in PRODUCTS or name in DECOMPOSITIONS:
            floating = [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
            if floating:
                self.seen.setdefault(name, set()).add(str(floating[0].dtype).split(".")[-1])
        return func(*args, **(kwargs or {}))

    def summary(self) -> dict[str, Any]:
        """The dtypes of the products and of the decompositions ("bfloat16",
        "bfloat16+float32", or "none"), and each op's."""

        def joined(kinds) -> str:
            found = sorted({d for name in kinds if name in self.seen for d in self.seen[name]})
            return "+".join(found) or NONE

        return {
            "products": joined(PRODUCTS),
            "decompositions": joined(DECOMPOSITIONS),
            "ops": {name: sorted(dtypes) for name, dtypes in sorted(self.seen.items())},
        }


def op_dtypes(probe: Probe, options: Any) -> dict[str, Any]:
    """One forward and one backward under the case's call (autocast where it has one)."""
    with OpDtypes() as forward:
        out = probe.forward()
    value: dict[str, Any] = {"output": str(out.dtype).split(".")[-1], "fwd": forward.summary()}
    leaves = [t for t in probe.inputs.values() if t.requires_grad]
    if out.requires_grad and leaves:
        upstream = torch.randn(out.shape, generator=probe.generator, dtype=torch.float64)
        try:
            with OpDtypes() as backward:
                torch.autograd.grad(out, leaves, upstream.to(out.device, out.dtype))
            value["bwd"] = backward.summary()
        except RuntimeError as exc:  # e.g. a hand-written backward mixing dtypes under AMP
            first = (str(exc).strip().splitlines() or [""])[0]
            value["bwd"] = {
                "products": RAISED,
                "decompositions": RAISED,
                "error": f"{type(exc).__name__}: {first}"[:300],
            }
    return value
