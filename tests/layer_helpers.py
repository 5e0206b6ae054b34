"""Inputs and independent references for the layer tests (float64 NumPy, no torch.linalg)."""

from __future__ import annotations

import numpy as np
import torch

F64 = torch.float64


def spd(batch: int, dim: int, seed: int = 0, floor: float = 0.5) -> torch.Tensor:
    """Well-conditioned SPD matrices: eigenvalues in about [floor, floor + 3]."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(batch, dim, 2 * dim, generator=g, dtype=F64)
    return X @ X.mT / (2 * dim) + floor * torch.eye(dim, dtype=F64)


def sym_direction(shape, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    E = torch.randn(*shape, generator=g, dtype=F64)
    return (E + E.mT) / 2


def numpy_matrix_function(A: torch.Tensor, func: str, p: float | None = None) -> torch.Tensor:
    w, V = np.linalg.eigh(A.detach().numpy())
    f = {
        "log": np.log,
        "sqrt": np.sqrt,
        "invsqrt": lambda w: w**-0.5,
        "pow": lambda w: w**p,
        "identity": lambda w: w,
    }[func](w)
    return torch.from_numpy((V * f[..., None, :]) @ np.swapaxes(V, -1, -2))


def richardson_directional(fn, A: torch.Tensor, E: torch.Tensor, h: float) -> float:
    """d/dt fn(A + tE) at 0: central differences at h and h/2, Richardson-extrapolated.

    Error O(h⁴) from truncation plus O(ε·|fn|/h) from rounding.
    """

    def central(step):
        return (fn(A + step * E) - fn(A - step * E)) / (2 * step)

    return float((4 * central(h / 2) - central(h)) / 3)


def analytic_directional(fn, A: torch.Tensor, E: torch.Tensor) -> tuple[float, torch.Tensor]:
    X = A.clone().requires_grad_(True)
    fn(X).backward()
    return float((X.grad * E).sum()), X.grad
