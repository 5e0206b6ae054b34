"""Input checks shared by the layers: one clear ValueError per bad input."""

from __future__ import annotations

import contextlib

import torch


def check_square_batch(A: torch.Tensor, name: str = "A", *, check_finite: bool = True) -> None:
    """Raise ValueError unless A is a finite floating tensor of shape (..., d, d).

    The finiteness check reads a value back from the device, so hot loops that
    already know their input is finite pass ``check_finite=False``. Under
    ``torch.compile`` a read-back would break the graph: there the check is an
    in-graph assertion (``torch._assert_async``), which raises a RuntimeError with
    the same message when the compiled code runs.
    """
    if not isinstance(A, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(A).__name__}")
    if A.ndim < 2:
        raise ValueError(f"{name} must have shape (..., d, d), got rank {A.ndim} {tuple(A.shape)}")
    if A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{name} must be square in its last two dims, got {tuple(A.shape)}")
    if not A.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got {A.dtype}")
    if check_finite:
        check_finite_entries(A, name)


def check_finite_entries(A: torch.Tensor, name: str = "A") -> None:
    """Raise ValueError if A holds NaN or Inf; compiled, an in-graph assertion that
    raises RuntimeError with the same message (no read-back, no graph break)."""
    message = f"{name} of shape {tuple(A.shape)} has non-finite entries"
    if torch.compiler.is_compiling():
        torch._assert_async(torch.isfinite(A).all(), message)
    elif not bool(torch.isfinite(A).all()):
        raise ValueError(message)


def sym(A: torch.Tensor) -> torch.Tensor:
    """Symmetric part (A + Aᵀ)/2 of a batch of square matrices."""
    return 0.5 * (A + A.mT)


def autocast_state(t: torch.Tensor) -> tuple[str, torch.dtype] | None:
    """(device type, dtype) of the autocast region a forward runs in, or None: saved by a
    hand-written autograd Function so that its backward runs in the same region
    (:func:`as_in_forward`). Autograd runs backwards outside autocast, where the
    forward's low-precision products and its float32 decompositions would meet in one
    matmul and raise."""
    device = t.device.type
    try:
        enabled = torch.is_autocast_enabled(device)
        dtype = torch.get_autocast_dtype(device)
    except TypeError:  # torch before 2.4: per-device functions
        cpu = device == "cpu"
        enabled = torch.is_autocast_cpu_enabled() if cpu else torch.is_autocast_enabled()
        dtype = torch.get_autocast_cpu_dtype() if cpu else torch.get_autocast_gpu_dtype()
    return (device, dtype) if enabled else None


def as_in_forward(state: tuple[str, torch.dtype] | None):
    """Context: the autocast region the forward ran in (``autocast_state``), or nothing."""
    if state is None:
        return contextlib.nullcontext()
    return torch.autocast(state[0], dtype=state[1])
