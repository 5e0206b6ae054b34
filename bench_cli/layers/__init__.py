"""Structured layers: pure PyTorch, usable without the benchmark machinery.

from bench_cli.layers import matrix_function
"""

from bench_cli.layers.matfun import FUNCS, matrix_function

__all__ = ["FUNCS", "matrix_function"]
