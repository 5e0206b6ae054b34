"""matbench: benchmarks for structured (matrix-backprop) layers in PyTorch.

The Python API (see :mod:`bench_cli.api`)::

    import bench_cli

    a = bench_cli.run_suite("smoke", out="/tmp/a")  # a bundled name or a YAML path
    b = bench_cli.run_suite("smoke", out="/tmp/b")
    frame = bench_cli.load_results(a.path)
    (comparison,) = bench_cli.compare_runs([a.path, b.path])
    outcome = bench_cli.reproduce("song2021-truncation", quick=True)

(docs/python-api.md runs this example as printed).

The layers alone: ``from bench_cli.layers import matrix_function, O2P, ...``.
Importing this package loads neither torch nor pandas; each name loads on first use.
"""

from typing import Any

from bench_cli._version import __version__

API = ("run_suite", "load_results", "compare_runs", "reproduce", "load_suite", "tables_of")
__all__ = [*API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in API:
        from bench_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench_cli' has no attribute '{name}'")
