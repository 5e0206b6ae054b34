"""The ``stability`` metric: what happens to outputs and gradients on hard inputs.

Per case, under a seeded random upstream gradient:

- ``nonfinite_output`` / ``nonfinite_grad``: fractions of NaN/Inf entries;
- ``grad_norm``: ‖∂⟨G, f⟩/∂x‖_F (None when not finite), and ``reference_grad_norm``
  from the float64 reference gradient, where the layer has one;
- ``max_k_tilde``: the largest |K̃ᵢⱼ| the method's backward forms from the
  eigenvalues of this input (None for methods without K̃; ``k_tilde_infinite``
  when a tie makes it infinite);
- ``exploded``: a non-finite gradient, or a norm above ``explode_factor`` times
  the reference norm.

Sweeps over the input families' ``condition``, ``gap`` and ``multiplicity``
give the curves; tables put those axes in their columns.
"""

from __future__ import annotations

import math

import torch

from bench_cli.metrics import Probe
from bench_cli.metrics.accuracy import _leaves, _upstream
from bench_cli.metrics.options import StabilityOptions


def _fraction_nonfinite(tensors) -> float:
    total = sum(t.numel() for t in tensors)
    bad = sum(int((~torch.isfinite(t)).sum()) for t in tensors)
    return bad / total if total else 0.0


def max_k_tilde(probe: Probe) -> tuple[float | None, bool]:
    """The largest |K̃ᵢⱼ| the method's backward forms on this input (its declared K̃ on the
    decomposed matrix's eigenvalues), and whether some entry is infinite; None without K̃."""
    from bench_cli.layers.spectral import gap_matrix

    spec = probe.k_tilde
    matrix = probe.decomposed() if probe.decomposed is not None else None
    if spec is None or matrix is None:
        return None, False
    eigvals = torch.linalg.eigvalsh(matrix)
    if spec.on_squares:
        eigvals = eigvals * eigvals
    K = gap_matrix(eigvals, spec.gap, spec.gap_eps, spec.degree).abs()
    if spec.kept is not None:  # only kept x discarded pairs enter the projector's gradient
        n = eigvals.shape[-1]
        kept = torch.arange(n, device=K.device) >= n - spec.kept
        K = torch.where(kept.unsqueeze(-1) ^ kept.unsqueeze(-2), K, torch.zeros_like(K))
    largest = float(K.max())
    if math.isfinite(largest):
        return largest, False
    return None, True


def stability(probe: Probe, options: StabilityOptions) -> dict:
    leaves = _leaves(probe)
    output = probe.forward()
    upstream = _upstream(probe, output.detach())
    grads = torch.autograd.grad(output, list(leaves.values()), upstream.to(output))
    grad_finite = all(bool(torch.isfinite(g).all()) for g in grads)
    norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads))
    grad_norm = norm if grad_finite and math.isfinite(norm) else None
    reference_norm = None
    if probe.reference_grad is not None:
        try:
            reference = probe.reference_grad(upstream)
            reference_norm = math.sqrt(sum(float(r.pow(2).sum()) for r in reference.values()))
            if not math.isfinite(reference_norm):
                reference_norm = None
        except (ValueError, RuntimeError):
            reference_norm = None  # e.g. too large for a finite-difference reference
    k_tilde, k_tilde_infinite = max_k_tilde(probe)
    exploded = grad_norm is None or (
        reference_norm is not None and grad_norm > options.explode_factor * reference_norm
    )
    return {
        "nonfinite_output": _fraction_nonfinite([output.detach()]),
        "nonfinite_grad": _fraction_nonfinite(grads),
        "grad_norm": grad_norm,
        "reference_grad_norm": reference_norm,
        "max_k_tilde": k_tilde,
        "k_tilde_infinite": k_tilde_infinite,
        "exploded": exploded,
    }
