"""One declaration per method: everything the benchmark knows about it, beside its function.

A method is a function plus one :class:`Method` entry in its layer's table,
written with the :func:`declare` decorator directly above the function::

    @declare(MATRIX_METHODS, "newton_schulz", exact=False, funcs=("sqrt", "invsqrt"),
             flops=ns_flops, k_tilde=None, tuning=Tuning("iters", (10,), (5, 10, 20)))
    def newton_schulz(A, func, p=None, *, iters: int = 5, ...): ...

The registry (suite options, ``matbench list``), the FLOP model of the timing
metric, the K̃ bound of the stability metric, ``matbench advise`` and the tests
all read that entry; nothing else names the method. Every fact is given
explicitly: a method without a FLOP model says ``flops=None`` and its GFLOP/s
read n/a, never a guessed default.

This module imports nothing heavy, so tools that only read declarations stay light.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

# Nominal FLOPs: a d x d product costs 2d³; a symmetric eigendecomposition with vectors
# 9d³ and a thin SVD 21d³ (Golub & Van Loan's counts for the QR algorithms; an m x n SVD,
# m >= n, SVD·m·n²); an LU solve with d right-hand sides 8d³/3 (2d³/3 to factor, 2d² per
# right-hand side); a Householder QR of an m x n block, m >= n, about QR·m·n² (2mn² - 2n³/3).
# tests/test_flop_models.py checks every model against what the method executes.
MATMUL, EIGH, SVD, LU_SOLVE, QR = 2.0, 9.0, 21.0, 8.0 / 3.0, 2.0
LU_FACTOR = 2.0 / 3.0  # the factorization alone; each right-hand side adds 2d²

FUNCS = ("log", "sqrt", "invsqrt", "pow", "identity")
# The gap treatments of bench_cli.layers.spectral.gap_matrix.
Gap = Literal["exact", "clamp", "mask", "taylor", "pade", "clip"]

# (size, resolved options) -> nominal (forward, backward) FLOPs of one matrix; either part
# None when it has no model (e.g. a backward that iterates to a tolerance).
FlopModel = Callable[[int, Mapping[str, Any]], tuple[float | None, float | None]]


@dataclass(frozen=True)
class KTilde:
    """How a backward forms K̃ᵢⱼ ≈ 1/(λᵢ − λⱼ): the ``gap`` treatment of
    :func:`bench_cli.layers.spectral.gap_matrix` with its ``gap_eps`` and ``degree``;
    ``on_squares`` when the decomposition is an SVD, whose K̃ uses σ²; ``kept``: only
    pairs across the top-``kept`` eigenvalues enter the gradient (a projector's)."""

    gap: Gap
    gap_eps: float | None = None
    degree: int = 0
    on_squares: bool = False
    kept: int | None = None


EXACT_K = KTilde("exact")


@dataclass(frozen=True)
class Tuning:
    """The option ``matbench advise`` sweeps: ``short`` values on a budget under 20 s,
    ``full`` otherwise."""

    option: str
    short: tuple[Any, ...]
    full: tuple[Any, ...]


@dataclass(frozen=True)
class Method:
    """A method and its facts. Calling it calls the function."""

    name: str
    fn: Callable[..., Any]
    summary: str  # one line, for `matbench list`
    exact: bool  # exact forward and backward (up to rounding), not an approximation
    flops: FlopModel | None  # None: no model, GFLOP/s read n/a
    # The K̃ its backward uses, or a function of the resolved options giving it;
    # None: it forms no K̃ (and stability's max_k_tilde reads n/a).
    k_tilde: KTilde | Callable[[Mapping[str, Any]], KTilde | None] | None
    funcs: tuple[str, ...] = FUNCS  # the funcs it computes (matrix functions only)
    tuning: Tuning | None = None  # what advise tries
    rank_option: str | None = None  # the option advise sets from --rank; None: not truncated
    # Its gradient is that of f((A+Aᵀ)/2), as every bundled method's is; False for a
    # method that takes A as given (grad_error's convention "method" follows this).
    symmetrises: bool = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def k_tilde_for(self, options: Mapping[str, Any]) -> KTilde | None:
        """The K̃ this method forms with these resolved options, or None."""
        if self.k_tilde is None or isinstance(self.k_tilde, KTilde):
            return self.k_tilde
        return self.k_tilde(options)

    def flops_for(self, size: int, options: Mapping[str, Any]) -> tuple[float | None, ...]:
        """Nominal (forward, backward) FLOPs of one matrix; (None, None) without a model."""
        return (None, None) if self.flops is None else tuple(self.flops(size, options))


F = TypeVar("F", bound=Callable[..., Any])

MATRIX_METHODS: dict[str, Method] = {}  # matrix_function and o2p (bench_cli.layers.matfun)


def summary_of(fn: Callable[..., Any]) -> str:
    """The first line of a function's docstring."""
    return (inspect.getdoc(fn) or "").split("\n")[0]


def entry(
    name: str,
    fn: Callable[..., Any],
    *,
    exact: bool,
    flops: FlopModel | None,
    k_tilde: KTilde | Callable[[Mapping[str, Any]], KTilde | None] | None,
    funcs: tuple[str, ...] = FUNCS,
    tuning: Tuning | None = None,
    rank_option: str | None = None,
    summary: str | None = None,
    symmetrises: bool = True,
) -> Method:
    """A :class:`Method` entry, checked: every fact is named, funcs are known ones."""
    unknown = [f for f in funcs if f not in FUNCS]
    if unknown or not funcs:
        raise ValueError(f"method '{name}': funcs must be some of {', '.join(FUNCS)}")
    if not isinstance(exact, bool):
        raise TypeError(f"method '{name}': exact must be True or False")
    if not isinstance(symmetrises, bool):
        raise TypeError(f"method '{name}': symmetrises must be True or False")
    return Method(
        name, fn, summary or summary_of(fn), exact, flops, k_tilde, tuple(funcs), tuning,
        rank_option, symmetrises,
    )  # fmt: skip


def declare(table: MutableMapping[str, Method], name: str, **facts: Any) -> Callable[[F], F]:
    """Decorator: add the function below to ``table`` as method ``name`` with ``facts``
    (the keyword arguments of :func:`entry`); the function itself is returned unchanged."""

    def add(fn: F) -> F:
        if name in table:
            raise ValueError(f"method '{name}' is declared twice")
        table[name] = entry(name, fn, **facts)
        return fn

    return add
