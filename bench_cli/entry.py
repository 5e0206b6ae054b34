"""The console entry point. It imports the command line inside a guard, so Ctrl-C while
the libraries load (pandas, rich, torch) exits 130 without a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    """Run ``matbench``; Ctrl-C at any point, start-up included, exits 130 quietly."""
    try:
        from bench_cli.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        print("matbench: interrupted", file=sys.stderr)
        sys.exit(130)
