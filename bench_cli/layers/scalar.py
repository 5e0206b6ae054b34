"""What every matrix-function method shares: the scalar functions f and their domains,
the rebuild U f(Λ) Uᵀ, and the eigh FLOP count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from bench_cli.layers.declare import (
    EIGH,
    FUNCS,
    MATMUL,
)


def eigh_flops(d, options):
    """One eigh and the U f(Λ) Uᵀ product forward. Backward, 5 products: the rebuild's
    adjoint for ∂L/∂U (2), then Proposition 2's Uᵀ ∂L/∂U and U (…) Uᵀ (3)."""
    return (EIGH + MATMUL) * d**3, 5 * MATMUL * d**3


NonPositive = Literal["error", "floor"]


def scalar_function(func: str, p: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The scalar f applied to eigenvalues."""
    if func == "log":
        return torch.log
    if func == "sqrt":
        return torch.sqrt
    if func == "invsqrt":
        return torch.rsqrt
    if func == "identity":
        return lambda eigvals: eigvals
    if func == "pow":
        if p is None:
            raise ValueError("func 'pow' needs the exponent p")
        return lambda eigvals: eigvals.pow(p)
    raise ValueError(f"unknown func '{func}'; known: {', '.join(FUNCS)}")


def needs_positive(func: str, p: float | None) -> bool:
    """Whether f needs positive eigenvalues (not identity or non-negative integer powers)."""
    if func == "identity":
        return False
    return not (func == "pow" and p is not None and float(p).is_integer() and p >= 0)


def domain(
    eigvals: torch.Tensor, func: str, p: float | None, nonpositive: NonPositive, eps: float
) -> torch.Tensor:
    """Eigenvalues inside f's domain: checked (error) or floored at eps."""
    if not needs_positive(func, p):
        return eigvals
    if nonpositive == "floor":
        return eigvals.clamp_min(eps)
    if nonpositive != "error":
        raise ValueError(f"nonpositive must be 'error' or 'floor', got '{nonpositive}'")
    smallest = eigvals.detach().amin()
    if not bool(smallest > 0):
        raise ValueError(
            f"matrix_function({func}): input is not positive definite (smallest eigenvalue "
            f"{float(smallest):.3g}); pass nonpositive='floor' to floor eigenvalues at floor_eps"
        )
    return eigvals


def rebuild(eigvecs: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """U diag(values) Uᵀ with one matmul."""
    return (eigvecs * values.unsqueeze(-2)) @ eigvecs.mT
