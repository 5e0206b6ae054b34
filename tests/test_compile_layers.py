"""Our approximations compile whole: no graph break in the forward or the backward.

Counted with dynamo's own counters under the ``aot_eager`` backend, which traces the
forward and the backward exactly as inductor does but generates no code (so the test
needs no C++ compiler and takes seconds). The compiled results are compared with eager
ones in float64: the graph-safe paths (the in-graph finiteness assertion, the Lyapunov
loop as a ``while_loop``, the Padé coefficients as constants) compute the same steps,
so they agree to rounding (1e-12 relative is ~5000 ulps: a different summation order in
a dozen products at d = 12, not a different algorithm, which would differ by the
methods' truncation error, 1e-4 or more here).
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from bench_cli.layers.matfun import matrix_function

APPROXIMATIONS = [
    ("newton_schulz", {}),
    ("mpa_lya", {}),
    ("mtp_lya", {}),
    ("mpa_lya", {"degree": 8}),  # the partial-fraction form
    ("newton_schulz", {"backward": "autograd"}),
]


def _spd(batch: int = 3, d: int = 12, dtype=torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    X = torch.randn(batch, d, d, generator=generator, dtype=dtype)
    return X @ X.mT / d + 0.5 * torch.eye(d, dtype=dtype)


def _forward(method, options):
    # check_finite is on: the default, and the check that used to break the graph.
    return lambda A: matrix_function(A, "sqrt", method, **options)


def _fwd_bwd(forward, A, upstream):
    """The forward (compiled or not) and its backward, which AOT autograd compiles with
    the forward: a compiled layer is called as people call one, backward outside."""
    out = forward(A)
    (grad,) = torch.autograd.grad(out, A, upstream)
    return out, grad


def _compiled(method, options):
    torch._dynamo.reset()
    counters.clear()
    return torch.compile(_forward(method, options), backend="aot_eager")


@pytest.mark.parametrize(("method", "options"), APPROXIMATIONS)
def test_approximations_compile_without_graph_breaks(method, options):
    A = _spd().requires_grad_(True)
    upstream = torch.randn(A.shape, generator=torch.Generator().manual_seed(5), dtype=A.dtype)
    compiled = _compiled(method, options)
    out, grad = _fwd_bwd(compiled, A, upstream)
    assert dict(counters["graph_break"]) == {}, f"{method}: {dict(counters['graph_break'])}"
    assert counters["stats"]["unique_graphs"] >= 1  # it did compile something
    eager_out, eager_grad = _fwd_bwd(_forward(method, options), A, upstream)
    torch.testing.assert_close(out, eager_out, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, eager_grad, rtol=1e-12, atol=1e-14)


def test_the_graph_break_count_sees_a_break():
    """The counter the test above reads does count a break: a read-back in the layer."""

    def with_read_back(A):
        if bool(A.sum() > 0):  # data-dependent Python control flow: a break
            return matrix_function(A, "sqrt", "newton_schulz")
        return A

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(with_read_back, backend="aot_eager")
    compiled(_spd())
    assert sum(counters["graph_break"].values()) >= 1


def test_compiled_finiteness_check_still_refuses_nan():
    A = _spd()
    A[0, 1, 1] = float("nan")
    torch._dynamo.reset()
    compiled = torch.compile(lambda A: matrix_function(A, "sqrt", "newton_schulz"),
                             backend="aot_eager")  # fmt: skip
    with pytest.raises(RuntimeError, match="non-finite entries"):
        compiled(A)
    with pytest.raises(ValueError, match="non-finite entries"):  # eager: ValueError, as before
        matrix_function(A, "sqrt", "newton_schulz")
