"""matbench: benchmarks for structured (matrix-backprop) layers in PyTorch."""

__version__ = "0.1.0"
