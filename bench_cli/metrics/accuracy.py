"""Accuracy metrics against a float64 reference computed independently of the method."""

from __future__ import annotations

import math

import numpy as np
import torch

from bench_cli.metrics import NonFinite, NotApplicable, Probe
from bench_cli.metrics.options import FdOptions, GradOptions, NoOptions, TermsOptions


def relative_errors(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """‖output − reference‖_F / ‖reference‖_F per batch item (all its entries), in float64."""
    output = output.detach().to("cpu", torch.float64)
    items = output.shape[0] if output.ndim >= 2 else 1
    diff = (output - reference).reshape(items, -1).norm(dim=1)
    return diff / reference.reshape(items, -1).norm(dim=1)


def forward_error(probe: Probe, options: NoOptions) -> float:
    """The worst relative Frobenius error over the batch."""
    with torch.no_grad():
        output = probe.forward()
    bad = int((~torch.isfinite(output)).sum())
    if bad:
        raise NonFinite(f"forward output has {bad} non-finite entries of {output.numel()}")
    reference = probe.reference()
    if not bool(torch.isfinite(reference).all()):
        raise ValueError("the float64 reference is non-finite for this input")
    return float(relative_errors(output, reference).max())


def abs_error(probe: Probe, options: NoOptions) -> float:
    """The largest absolute difference from the float64 reference."""
    with torch.no_grad():
        output = probe.forward()
    if not bool(torch.isfinite(output).all()):
        raise NonFinite("output has non-finite entries")
    return float((output.detach().to("cpu", torch.float64) - probe.reference()).abs().max())


# ---------------------------------------------------------------- gradients


def _upstream(probe: Probe, output: torch.Tensor) -> torch.Tensor:
    """A seeded random upstream gradient in float64 on the CPU; never zeros."""
    generator = torch.Generator().manual_seed(int(probe.generator.initial_seed()) + 1)
    return torch.randn(output.shape, generator=generator, dtype=torch.float64)


def _leaves(probe: Probe) -> dict[str, torch.Tensor]:
    return {name: t for name, t in probe.inputs.items() if t.requires_grad}


def method_gradients(probe: Probe, upstream: torch.Tensor) -> dict[str, torch.Tensor]:
    leaves = _leaves(probe)
    output = probe.forward()
    grads = torch.autograd.grad(output, list(leaves.values()), upstream.to(output))
    return dict(zip(leaves, grads, strict=True))


def gradient_convention(symmetrises: bool, convention: str) -> str:
    """The reference grad_error compares with: the option's, or the method's own."""
    if convention != "method":
        return convention
    return "symmetrised" if symmetrises else "as_given"


def grad_error(probe: Probe, options: GradOptions) -> float:
    """The worst relative Frobenius error of ∂⟨G, f(x)⟩/∂x over the batch and the inputs.

    For a symmetric-matrix input A the reference is, by ``convention``, the gradient of
    f((A+Aᵀ)/2) (``symmetrised``: symmetric, what every bundled method returns), or of
    f(A) with A taken as given (``as_given``: for a method that does not symmetrise its
    input, whose gradient then has a skew part); ``method`` (the default) takes each
    method's declaration (``symmetrises``). Against the other convention a correct
    method scores about 1. The record's metric_options say which was used."""
    if probe.reference_grad is None:
        raise NotApplicable("no reference gradient for this layer")
    with torch.no_grad():
        upstream = _upstream(probe, probe.forward())
    grads = method_gradients(probe, upstream)
    errors = []
    if gradient_convention(probe.symmetrises, options.convention) == "symmetrised":
        reference = probe.reference_grad(upstream)
    else:
        reference = probe.reference_grad(upstream, symmetrise=False)
    for name, grad in grads.items():
        bad = int((~torch.isfinite(grad)).sum())
        if bad:
            raise NonFinite(f"gradient of {name} has {bad} non-finite entries of {grad.numel()}")
        ref = reference[name]
        if not bool(torch.isfinite(ref).all()):
            # E.g. the input, rounded to the case's dtype, left f's domain: nothing to compare.
            raise ValueError(f"the float64 reference gradient of {name} is non-finite")
        diff = (grad.detach().to("cpu", torch.float64) - ref).flatten(1).norm(dim=1)
        errors.append(diff / ref.flatten(1).norm(dim=1).clamp_min(1e-300))
    return float(torch.cat(errors).max())


def fd_check(probe: Probe, options: FdOptions) -> dict:
    """The paper's check: ⟨∇L, E⟩ against (L(x + hE) − L(x − hE))/2h for h = 2⁻¹ … 2⁻²⁰.

    L(x) = ⟨G, f(x)⟩ with a seeded upstream G; E a seeded direction scaled to the
    norm of x, so h is a relative step. Everything runs in the case's dtype with
    the method under test; sums accumulate in float64. A step that leaves the
    layer's domain (e.g. a matrix no longer positive definite) records None.
    """
    run = probe.run
    if run is None:
        raise NotApplicable("this case cannot be re-run on perturbed inputs")
    leaves = _leaves(probe)
    with torch.no_grad():
        upstream = _upstream(probe, probe.forward())
    grads = method_gradients(probe, upstream)
    generator = torch.Generator().manual_seed(int(probe.generator.initial_seed()) + 2)
    directions = {}
    for name, x in leaves.items():
        E = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        if x.ndim >= 2 and x.shape[-1] == x.shape[-2]:
            E = 0.5 * (E + E.mT)  # stay in the symmetric matrices the layer maps
        directions[name] = E * (x.detach().double().norm() / E.norm())
    analytic = sum(float((grads[n].double().cpu() * directions[n]).sum()) for n in leaves)

    def loss(step: float) -> float:
        moved = {
            n: (x.detach() + step * directions[n].to(x)) if n in leaves else x
            for n, x in probe.inputs.items()
        }
        with torch.no_grad():
            return float((run(moved).double().cpu() * upstream).sum())

    steps, errors = [], []
    for k in range(options.min_exponent, options.max_exponent + 1):
        h = 2.0**-k
        try:
            fd = (loss(h) - loss(-h)) / (2 * h)
            error = abs(fd - analytic) / abs(analytic) if analytic else abs(fd)
        except ValueError:  # left the layer's domain
            error = None
        steps.append(h)
        errors.append(error if error is None or math.isfinite(error) else None)
    finite = [(e, h) for e, h in zip(errors, steps, strict=True) if e is not None]
    if not finite or not math.isfinite(analytic):
        raise NonFinite("no finite difference step gave a finite error")
    best, best_step = min(finite)
    return {"steps": steps, "errors": errors, "min": best, "argmin": best_step}


# ---------------------------------------------------------------- iteration counts


def terms_needed(probe: Probe, options: TermsOptions) -> dict:
    """The smallest value of ``option`` at which the method's eigenpair-coupling gradient is
    within ``tolerance`` of the float64 reference, found by trying 1, 2, 3, ... in turn.

    The upstream gradient is V (11ᵀ − I) Vᵀ in the float64 eigenbasis V of the input:
    it excites only the off-diagonal (λᵢ, λⱼ) coupling, the term that K̃ and its
    truncations form, and not f′(λ) on the diagonal, which the truncations leave
    exact. For a 2 × 2 input with eigenvalue ratio x and a truncated geometric series
    of K terms, the relative error is exactly xᴷ: Wang et al.'s criterion xᴷ < 0.05.
    """
    if probe.with_options is None or probe.reference_grad is None or "A" not in probe.inputs:
        raise NotApplicable("terms_needed sweeps an option of a matrix-function method")
    if options.option not in probe.options:
        raise NotApplicable(f"method '{probe.method}' has no option '{options.option}'")
    A = probe.inputs["A"]
    A64 = A.detach().to("cpu", torch.float64)
    eigvecs = torch.from_numpy(np.linalg.eigh(A64.numpy())[1])
    n = A64.shape[-1]
    coupling = torch.ones(n, n, dtype=torch.float64) - torch.eye(n, dtype=torch.float64)
    upstream = eigvecs @ coupling @ eigvecs.mT
    reference = probe.reference_grad(upstream)["A"]
    reference_norm = reference.flatten(1).norm(dim=1)
    previous = None
    for value in range(1, options.limit + 1):
        forward = probe.with_options({options.option: value})
        leaf = A.detach().clone().requires_grad_(True)
        output = forward({**probe.inputs, "A": leaf})
        (grad,) = torch.autograd.grad(output, leaf, upstream.to(output))
        diff = (grad.detach().to("cpu", torch.float64) - reference).flatten(1).norm(dim=1)
        error = float((diff / reference_norm).max())
        if not math.isfinite(error):
            raise NonFinite(f"the gradient is non-finite at {options.option}={value}")
        if error < options.tolerance:
            return {"count": value, "error": error, "error_before": previous}
        previous = error
    raise ValueError(
        f"{options.option} up to {options.limit} never brought the error under "
        f"{options.tolerance:g} (last {previous:.3g})"
    )
