"""Structured layers: pure PyTorch, usable without the benchmark machinery.

    from bench_cli.layers import matrix_function, eigh, svd, O2P, NormalizedCuts, projector_loss

All take batched tensors (..., d, d) or (B, N, C), on any device, in float32
or float64, and differentiate with the matrix-backpropagation formulas of
Ionescu, Vantzos & Sminchisescu (ICCV 2015; arXiv 1509.07838).
"""

from bench_cli.layers.matfun import FUNCS, METHODS, loewner, matrix_function
from bench_cli.layers.ncut import (
    Cut,
    Degrees,
    NormalizedCuts,
    affinity,
    graph_degrees,
    normalized_cuts,
    projector_loss,
    segment_projector,
    top_projector,
)
from bench_cli.layers.pooling import FC, O2P, avg_pool, bilinear, max_pool, o2p, upper_triangle
from bench_cli.layers.spectral import GAPS, eigh, gap_matrix, svd

__all__ = [
    "Cut",
    "Degrees",
    "FC",
    "FUNCS",
    "GAPS",
    "METHODS",
    "NormalizedCuts",
    "O2P",
    "affinity",
    "avg_pool",
    "bilinear",
    "eigh",
    "gap_matrix",
    "graph_degrees",
    "loewner",
    "matrix_function",
    "max_pool",
    "normalized_cuts",
    "o2p",
    "projector_loss",
    "segment_projector",
    "svd",
    "top_projector",
    "upper_triangle",
]
