"""What a suite may ask of the parser and the grid (docs/suite-schema.md states them)."""

from __future__ import annotations

Loc = tuple[str | int, ...]

# Limits on what a suite may ask of the parser and the grid (docs/suite-schema.md states them).
MAX_SUITE_BYTES = 1_000_000  # a suite file; the largest bundled one is under 10 kB
MAX_YAML_NODES = 100_000  # nodes after expanding aliases: an alias bomb stops here
MAX_DEPTH = 64  # nesting levels of mappings and lists
MAX_CASES = 100_000  # grid size; --max-cases raises it
MAX_ERRORS = 1000  # validation stops collecting here: the first is reported, the rest counted
MAX_TIMEOUT_S = 7 * 24 * 3600.0  # a per-case limit of a week is already no limit
MAX_TITLE = 200
MAX_FILE = 100
MAX_STEM = 80
