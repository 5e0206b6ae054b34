"""End-to-end task benchmarks: networks with structured layers, trained on real images."""
