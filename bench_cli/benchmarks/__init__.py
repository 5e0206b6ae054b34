"""Benchmarks that answer one question each, printing ratios measured side by side."""
