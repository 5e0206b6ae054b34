"""The suite schema (v1): YAML -> validated ``Suite`` -> grid of ``Case``s.

Validation happens in two steps. A pydantic model checks the suite's shape
(:mod:`~bench_cli.spec.model`); then each section is checked
(:mod:`~bench_cli.spec.validate`), each grid combination of ``inputs:`` and of every
``methods:`` entry against the registered family, layer and method option models. Every
error becomes one :class:`SuiteError` naming the file, the line and the key path
(:mod:`~bench_cli.spec.yaml_lines`). A list value anywhere in ``inputs:`` or in a
method's options is a grid axis. :mod:`~bench_cli.spec.load` reads files and texts,
and :mod:`~bench_cli.spec.catalog` finds the bundled suites. This package imports no
torch: the registry is consulted only when a suite is validated.
"""

from bench_cli.spec.catalog import (
    bundled_suites,
    paper_suite,
    paper_suites,
    resolve_suite,
    suites_dir,
)
from bench_cli.spec.limits import (
    MAX_CASES,
    MAX_DEPTH,
    MAX_ERRORS,
    MAX_FILE,
    MAX_STEM,
    MAX_SUITE_BYTES,
    MAX_TIMEOUT_S,
    MAX_TITLE,
    MAX_YAML_NODES,
    Loc,
)
from bench_cli.spec.load import (
    Outline,
    load,
    loads,
    outline,
    parse_filters,
    quick_text,
    read_suite_text,
    select,
)
from bench_cli.spec.model import (
    DEVICE_PATTERN,
    SUITE_KEYS,
    TABLE_KEYS,
    Case,
    MethodConfig,
    MetricConfig,
    PairedSpec,
    QuickSpec,
    ReferenceSpec,
    Suite,
    TableSpec,
    case_key,
    namespaced_axes,
    resolve_device,
)
from bench_cli.spec.validate import validate
from bench_cli.spec.yaml_lines import Dumper, SuiteError, format_loc, parse_yaml
