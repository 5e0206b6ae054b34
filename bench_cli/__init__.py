"""matbench: benchmarks for structured (matrix-backprop) layers in PyTorch."""

__version__ = "0.1.0"


def load_results(path):
    """A tidy pandas DataFrame of a run folder's records, one row per case and metric."""
    from bench_cli.compare import load_results as load

    return load(path)
