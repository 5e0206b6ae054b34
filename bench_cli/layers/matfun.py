"""Spectral matrix functions f(A) = U f(Λ) Uᵀ of symmetric matrices.

``matrix_function(A, func, method)`` is the one entry point; ``METHODS`` maps
each method name to the function that computes it, so adding a method is one
function and one entry.

Non-symmetric input is *symmetrized*: every method computes f(sym(A)) with
sym(A) = (A + Aᵀ)/2, so f is defined, and differentiable, on all square
matrices and gradients are symmetric.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bench_cli.layers._checks import check_square_batch, sym

FUNCS = ("log", "sqrt", "invsqrt", "pow")


def scalar_function(func: str, p: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The scalar f applied to eigenvalues."""
    if func == "log":
        return torch.log
    if func == "sqrt":
        return torch.sqrt
    if func == "invsqrt":
        return torch.rsqrt
    if func == "pow":
        if p is None:
            raise ValueError("func 'pow' needs the exponent p")
        return lambda eigvals: eigvals.pow(p)
    raise ValueError(f"unknown func '{func}'; known: {', '.join(FUNCS)}")


def autograd_matrix_function(A: torch.Tensor, func: str, p: float | None = None) -> torch.Tensor:
    """f(A) composed from ``torch.linalg.eigh``, differentiated by torch's own backward.

    This is what a user writes by default. Its backward divides by eigenvalue
    gaps, so it returns inf/NaN gradients at repeated eigenvalues.
    """
    f = scalar_function(func, p)
    eigvals, eigvecs = torch.linalg.eigh(sym(A))
    return (eigvecs * f(eigvals).unsqueeze(-2)) @ eigvecs.mT


METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "autograd": autograd_matrix_function,
}


def matrix_function(
    A: torch.Tensor,
    func: str,
    method: str = "autograd",
    *,
    p: float | None = None,
    check_finite: bool = True,
    **options,
) -> torch.Tensor:
    """f(A) for a batch of symmetric matrices A of shape (..., d, d).

    Args:
        A: symmetric (or symmetrized, see the module docstring) matrices.
        func: one of ``log``, ``sqrt``, ``invsqrt``, ``pow`` (with ``p``).
        method: a key of ``METHODS``.
        p: the exponent for ``func='pow'``.
        check_finite: reject non-finite input (costs a device sync).
        options: method-specific options.
    """
    check_square_batch(A, check_finite=check_finite)
    if func not in FUNCS:
        raise ValueError(f"unknown func '{func}'; known: {', '.join(FUNCS)}")
    try:
        impl = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown method '{method}'; known: {', '.join(METHODS)}") from None
    return impl(A, func, p, **options)
