"""The suite schema (v1): YAML -> validated ``Suite`` -> grid of ``Case``s.

Validation happens in two steps. A pydantic model checks the suite's shape;
then each grid combination of ``inputs:`` and of every ``methods:`` entry is
checked against the registered family, layer and method option models. Every
error becomes one :class:`SuiteError` naming the file, the line and the key
path. A list value anywhere in ``inputs:`` or in a method's options is a grid
axis.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveFloat,
    StringConstraints,
    ValidationError,
)

from bench_cli import metrics as metrics_catalog
from bench_cli.errors import UserError, did_you_mean, unknown_name
from bench_cli.store import CASE_AXES, INPUTS_PREFIX, OPTIONS_PREFIX

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

# ---------------------------------------------------------------- YAML + lines


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 and 1.0e2 as floats (YAML 1.2), not strings."""


# add_implicit_resolver appends to lists shared with SafeLoader: copy them first.
_Loader.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class _Dumper(yaml.SafeDumper):
    """Quotes every string that _Loader would read back as another type (e.g. '2e-4')."""


_Dumper.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}


class SuiteError(UserError):
    """A mistake in a suite file, located by file, line and key path."""

    def __init__(self, source: str, line: int | None, loc: Loc, message: str):
        self.source, self.line, self.loc, self.message = source, line, loc, message
        where = f"{source}:{line}" if line else source
        path = format_loc(loc)
        super().__init__(f"{where}: {path + ': ' if path else ''}{message}")


def format_loc(loc: Loc) -> str:
    """A location as the suite shows it, e.g. methods.ns.iters[1]."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], source: str) -> None:
    """Map every key path to its line; refuse non-scalar keys, too many nodes (aliases
    expand here, before anything is built) and too deep a nesting."""
    count = 0
    stack: list[tuple[yaml.Node, Loc]] = [(node, loc)]
    while stack:
        node, loc = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise SuiteError(
                source, None, (), f"the suite expands to more than {MAX_YAML_NODES:,} YAML "
                "nodes (aliases?); a suite is far smaller"
            )  # fmt: skip
        if len(loc) > MAX_DEPTH:
            raise SuiteError(
                source, node.start_mark.line + 1, (), f"nested more than {MAX_DEPTH} levels deep"
            )
        lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    raise SuiteError(source, line, loc, "a key must be a plain name, not a list")
                key = key_node.value
                if key in seen:
                    raise SuiteError(
                        source, line, loc + (key,), f"duplicate key (first on line {seen[key]})"
                    )
                seen[key] = line
                lines[loc + (key,)] = line
                stack.append((value_node, loc + (key,)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, loc + (i,)) for i, item in enumerate(node.value))


def parse_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML text; return the data and a map from key path to line number."""
    loader = None
    try:
        loader = _Loader(text)  # the reader rejects some control characters right here
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        if node is not None:
            _index_lines(node, (), lines, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SuiteError(source, line, (), f"malformed YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise SuiteError(source, None, (), f"malformed YAML: {exc}") from exc
    except RecursionError as exc:
        raise SuiteError(source, None, (), f"nested more than {MAX_DEPTH} levels deep") from exc
    except ValueError as exc:  # int('9' * 5000): Python's digit limit
        raise SuiteError(source, None, (), f"a number with too many digits ({exc})") from exc
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


# ---------------------------------------------------------------- shape models


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


DType = Literal["float16", "bfloat16", "float32", "float64"]
DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:[0-9]+)?|mps|auto)$")
Device = Annotated[str, StringConstraints(pattern=DEVICE_PATTERN.pattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PairedSpec(_Strict):
    """A paired table: each method against ``baseline`` on the same data draws."""

    baseline: str  # a method label of the suite
    # none: a diagnostic (no direction is better); differences read higher or lower.
    better: Literal["higher", "lower", "none"] = "higher"
    # Method labels that are trivial answers (predict one segment, the majority class, ...):
    # every other method is compared with them too, and called better only if it beats them.
    trivial: Annotated[list[str], BeforeValidator(_as_list)] = []


class TableSpec(_Strict):
    """One table of a suite: a metric path, row and column axes, and optional scaling or pairing."""

    title: Annotated[str, StringConstraints(max_length=MAX_TITLE)]
    metric: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE)]
    rows: Annotated[list[str], BeforeValidator(_as_list)] = ["method"]
    cols: Annotated[list[str], BeforeValidator(_as_list)] = []
    file: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$", max_length=MAX_FILE)] | None
    ) = None
    # Fit log(value) against log(axis) along this axis: the empirical complexity exponent.
    scaling: str | None = None
    # Mean and 95% t interval per method over the data draws, and the paired difference
    # to a baseline method with its interval: a difference is claimed only where it
    # excludes zero.
    paired: PairedSpec | None = None

    @property
    def stem(self) -> str:
        """The file name the table is written under (from file:, else the title)."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.title.lower())[:MAX_STEM].strip("-")
        return self.file or slug or "table"


class ReferenceSpec(_Strict):
    """A published result a suite reproduces; never mixed into measured columns."""

    citation: str
    source: str  # table or figure
    hardware: str = ""
    metric: str  # the table path compared, e.g. abs_error or time.fwd_bwd.median
    compare: Literal["value", "speedup", "bound", "count"] = "value"
    baseline: str | None = None  # method label that speed-ups divide by
    # A speed-up holds when measured / published lies within [1/factor, factor].
    speedup_factor: float = Field(2.0, ge=1.0)
    # Relative, beside the published precision. A value comparison must state it (0:
    # at the published precision only); a default would decide the verdict unseen.
    tolerance: float | None = Field(None, ge=0.0)
    rounding_floor: float = Field(0.0, ge=0.0)  # both below it: rounding-dominated
    measured_scale: PositiveFloat = 1.0  # e.g. 1000 to compare seconds with published ms
    note: str = ""
    # Each entry names the axes of one measured cell and the published value (as text,
    # so its significant digits are known), or for compare: bound, the largest allowed.
    entries: list[dict[str, Any]] = Field(min_length=1)


class QuickSpec(_Strict):
    """`reproduce --quick`: smaller inputs and timing budgets, for CI."""

    inputs: dict[str, Any] = {}
    budget_s: PositiveFloat | None = None
    metric_options: dict[str, dict[str, Any]] = {}  # e.g. {task: {epochs: 2}}


class _SuiteShape(_Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]+$")]
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    device: Annotated[list[Device], BeforeValidator(_as_list)] = ["cpu"]
    dtype: Annotated[list[DType], BeforeValidator(_as_list)] = ["float32"]
    timeout: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)] = 300.0
    inputs: dict[str, Any]
    methods: dict[str, dict[str, Any]]
    metrics: list[str | dict[str, dict[str, Any] | None]]
    tables: list[TableSpec] = []
    reference: ReferenceSpec | None = None
    quick: QuickSpec | None = None
    executor: dict[str, Any] | None = None  # validated by bench_cli.executor
    # A method label: each group of cases that differ only in the method is timed in
    # interleaved rounds, with per-round ratios to this method (docs/measurement.md,
    # "Paired timing").
    baseline: str | None = None
    # Plugin modules (names, or .py files) to import before the methods are looked up:
    # found next to the suite file, then in the current folder (docs/plugins.md).
    plugins: Annotated[list[str], BeforeValidator(_as_list)] = []


SUITE_KEYS = tuple(_SuiteShape.model_fields)
TABLE_KEYS = tuple(TableSpec.model_fields)

# ---------------------------------------------------------------- validated suite


@dataclass(frozen=True)
class MethodConfig:
    """One named configuration after grid expansion, e.g. ``ns[iters=3]``."""

    label: str
    base: str  # the name in the suite's methods: block
    layer: str
    method: str
    options: dict[str, Any]  # as given (typed): the label
    resolved: dict[str, Any]  # with defaults filled in: recorded and keyed


@dataclass(frozen=True)
class MetricConfig:
    """One metric of a suite with its options as given and resolved."""

    name: str
    options: dict[str, Any]
    resolved: dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One point of the grid: a method configuration on one input setting, device and dtype."""

    suite: str
    suite_seed: int
    config: MethodConfig
    inputs: dict[str, Any]  # as given (typed), including kind
    resolved_inputs: dict[str, Any]
    device: str
    dtype: str
    grid: int = field(default=-1, compare=False)  # position in the suite's grid: table order
    key: str = field(init=False)
    seed: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", case_key(self.key_params()))
        # The seed of the data: from the suite seed and the inputs alone, never the method,
        # device or dtype, so every method of a comparison sees the same draw (paired).
        # Resolved inputs: an explicit default and an omitted one draw the same data.
        inputs = case_key({"seed": self.suite_seed, "inputs": self.resolved_inputs})
        digest = hashlib.sha256(f"{self.suite_seed}:{inputs}".encode()).hexdigest()
        object.__setattr__(self, "seed", int(digest[:8], 16))

    def key_params(self) -> dict[str, Any]:
        """What identifies the case: resolved options and inputs, so an explicit default
        and an omitted one are the same case (and one record)."""
        return {
            "suite": self.suite,
            "seed": self.suite_seed,
            "method": self.config.label,
            "layer": self.config.layer,
            "impl": self.config.method,
            "options": self.config.resolved,
            "inputs": self.resolved_inputs,
            "device": self.device,
            "dtype": self.dtype,
        }

    @property
    def axes(self) -> dict[str, Any]:
        """The values a table can pivot on, flat (see :func:`namespaced_axes`)."""
        return namespaced_axes(
            {"method": self.config.label, "layer": self.config.layer, "impl": self.config.method},
            self.config.resolved,
            self.resolved_inputs,
            {"device": self.device, "dtype": self.dtype},
        )

    @property
    def group_key(self) -> str:
        """What the case shares with the other methods of its paired-timing group: all
        but the method (the same inputs, device and dtype)."""
        params = self.key_params()
        for name in ("method", "layer", "impl", "options"):
            params.pop(name)
        return case_key(params)

    @property
    def label(self) -> str:
        """A readable one-line description of the case."""
        shown = ", ".join(f"{k}={v}" for k, v in self.inputs.items() if k != "kind")
        return f"{self.config.label} {self.inputs['kind']}({shown}) {self.device} {self.dtype}"


def namespaced_axes(
    head: Mapping[str, Any],
    options: Mapping[str, Any],
    inputs: Mapping[str, Any],
    tail: Mapping[str, Any],
) -> dict[str, Any]:
    """A case's axes. Every method option is there as ``options.NAME`` and every input
    parameter as ``inputs.NAME``, so the two never collide; each is also there under its
    bare name, where the input's value wins (spd's ``gap`` over eig's ``gap``), as in
    runs written before the prefixes existed. Validation refuses a bare name that is
    both in one suite, so no table or filter picks one silently."""
    axes = {**head, **options, **inputs, **tail}
    axes.update({OPTIONS_PREFIX + k: v for k, v in options.items()})
    axes.update({INPUTS_PREFIX + k: v for k, v in inputs.items() if k != "kind"})
    return axes


def case_key(params: Mapping[str, Any]) -> str:
    """A stable 16-hex key: independent of key order, since JSON keys are sorted."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Suite:
    """A validated suite: its grid (methods x inputs x devices x dtypes), metrics and tables."""

    name: str
    description: str
    seed: int
    devices: tuple[str, ...]
    dtypes: tuple[str, ...]
    timeout: float
    input_kind: str
    input_axes: dict[str, list[Any]]  # given keys only, typed
    input_defaults: dict[str, Any]
    methods: tuple[MethodConfig, ...]
    metrics: tuple[MetricConfig, ...]
    tables: tuple[TableSpec, ...]
    source: str = "<suite>"
    text: str = ""
    reference: ReferenceSpec | None = None
    executor: dict[str, Any] | None = None
    baseline: str | None = None  # the method paired timing divides by

    @property
    def paired_timing(self) -> bool:
        """Whether each group of methods is timed interleaved: a baseline and the time metric."""
        return self.baseline is not None and any(m.name == "time" for m in self.metrics)

    @property
    def case_count(self) -> int:
        """How many cases the grid has, without expanding it."""
        inputs = math.prod(len(values) for values in self.input_axes.values())
        return len(self.methods) * inputs * len(self.devices) * len(self.dtypes)

    @property
    def fingerprint(self) -> str:
        """What determines the measurements; tables and description may change freely."""
        return case_key(
            {
                "name": self.name,
                "seed": self.seed,
                "devices": self.devices,
                "dtypes": self.dtypes,
                "inputs": [self.input_kind, self.input_axes, self.input_defaults],
                "methods": [(m.label, m.layer, m.method, m.resolved) for m in self.methods],
                "metrics": [(m.name, m.options) for m in self.metrics],
                # Only when set, so suites without one keep their fingerprint.
                **({"baseline": self.baseline} if self.baseline else {}),
            }
        )

    def cases(self, devices: Sequence[str] | None = None) -> list[Case]:
        """The grid: methods x inputs x device x dtype, in a stable order."""
        return list(self.iter_cases(devices))

    def iter_cases(self, devices: Sequence[str] | None = None) -> Iterator[Case]:
        """The grid, one case at a time (``plan`` streams a large one)."""
        devices = [resolve_device(d) for d in (devices or self.devices)]
        devices = list(dict.fromkeys(devices))
        axes = list(self.input_axes)
        grid = 0
        for config in self.methods:
            for values in itertools.product(*(self.input_axes[a] for a in axes)):
                given = {"kind": self.input_kind, **dict(zip(axes, values, strict=True))}
                resolved = {**self.input_defaults, **given}
                for device in devices:
                    for dtype in self.dtypes:
                        yield Case(
                            self.name, self.seed, config, given, resolved, device, dtype,
                            grid=grid,
                        )  # fmt: skip
                        grid += 1


def resolve_device(device: str) -> str:
    """The device a case runs on: 'auto' becomes cuda where available, else cpu."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# ---------------------------------------------------------------- validation


class _Errors:
    """Collects errors with their locations; raises the first (by line) as one line."""

    def __init__(self, source: str, lines: dict[Loc, int]):
        self.source, self.lines = source, lines
        self.items: list[tuple[Loc, str, int]] = []
        self.seen: set[tuple[Loc, str]] = set()

    def add(self, loc: Loc, message: str, priority: int = 1) -> None:
        """Record an error; priority 0 (an unknown key) is reported before the rest,
        since a misspelt key also makes the key it meant look missing."""
        if (loc, message) not in self.seen:
            self.seen.add((loc, message))
            self.items.append((loc, message, priority))

    def line(self, loc: Loc) -> int | None:
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None

    def raise_first(self) -> None:
        if not self.items:
            return
        ordered = sorted(self.items, key=lambda item: (item[2], self.line(item[0]) or 0))
        loc, message, _ = ordered[0]
        # The next errors are said too (a count alone hides them), still on one line.
        shown = []
        for other, text, _ in ordered[1 : 1 + MORE_ERRORS_SHOWN]:
            line = self.line(other)
            where = " ".join(filter(None, [f"line {line}" if line else "", format_loc(other)]))
            shown.append(f"{where}: {text}" if where else text)
        rest = len(ordered) - 1 - len(shown)
        suffix = f"; also {'; '.join(shown)}" if shown else ""
        suffix += f" (and {rest} more error{'s' * (rest > 1)})" if rest else ""
        raise SuiteError(self.source, self.line(loc), loc, message + suffix)


MORE_ERRORS_SHOWN = 2  # besides the first: a third and later are counted


def _pydantic_errors(
    errors: _Errors, exc: ValidationError, prefix: Loc, allowed: Iterable[str], remap=None
) -> None:
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            key = loc[-1]
            parent = list(allowed if len(loc) == 1 else _nested_allowed(loc))
            valid = f"; valid: {', '.join(map(str, parent))}" if parent else ""
            errors.add(
                prefix + loc, f"unknown key '{key}'{did_you_mean(str(key), parent)}{valid}", 0
            )
            continue
        if err["type"] == "missing":
            errors.add(prefix + loc[:-1], f"required key '{loc[-1]}' is missing")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        if "input" in err and not isinstance(err["input"], dict | list):
            msg += f", got {err['input']!r}"
        errors.add(prefix + (remap(loc) if remap else loc), msg)


def _nested_allowed(loc: Loc) -> Sequence[str]:
    if loc and loc[0] == "tables":
        return TABLE_KEYS
    if loc and loc[0] == "reference":
        return tuple(ReferenceSpec.model_fields)
    if loc and loc[0] == "quick":
        return tuple(QuickSpec.model_fields)
    return ()


def _expand_options(
    raw: Mapping[str, Any], loc: Loc, errors: _Errors
) -> Iterator[tuple[dict[str, Any], dict[str, int]]]:
    """All grid combinations of raw option values, each with the list index it took,
    one at a time (a large grid is never held whole)."""
    keys = list(raw)
    choices: list[list[tuple[int | None, Any]]] = []
    for key in keys:
        value = raw[key]
        if isinstance(value, list):
            if not value:
                errors.add(loc + (key,), "empty list: a grid axis needs at least one value")
                return iter(())
            repeat = _repeated(value)
            if repeat is not None:
                first, again = repeat
                errors.add(
                    loc + (key, again),
                    f"repeated value {value[again]!r} (the same as [{first}]): a grid axis "
                    "lists each value once",
                )
                return iter(())
            choices.append(list(enumerate(value)))
        else:
            choices.append([(None, value)])
    return (
        (
            {k: v for k, (_, v) in zip(keys, picked, strict=True)},
            {k: i for k, (i, _) in zip(keys, picked, strict=True) if i is not None},
        )
        for picked in itertools.product(*choices)
    )


def _repeated(values: Sequence[Any]) -> tuple[int, int] | None:
    """The first (earlier index, index) of a value listed twice (2 and 2.0 are one)."""
    seen: dict[Any, int] = {}
    unhashable: list[tuple[int, Any]] = []
    for i, value in enumerate(values):
        try:
            if value in seen:
                return seen[value], i
            seen[value] = i
        except TypeError:  # a list or mapping value: compared one by one
            for j, other in unhashable:
                if other == value:
                    return j, i
            unhashable.append((i, value))
    return None


def _grid_size(raw: Mapping[str, Any], skip: Iterable[str] = ()) -> int:
    size = 1
    for key, value in raw.items():
        if key not in skip and isinstance(value, list):
            size *= max(len(value), 1)
    return size


def _non_finite(data: Any, loc: Loc, errors: _Errors) -> None:
    """Every infinite or NaN number in the suite, at its key path."""
    if isinstance(data, float) and not math.isfinite(data):
        errors.add(loc, f"expected a finite number, got {data}")
    elif isinstance(data, dict):
        for key, value in data.items():
            _non_finite(value, loc + (key,), errors)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _non_finite(value, loc + (i,), errors)


def _validate_combos(
    model: type[BaseModel],
    raw: Mapping[str, Any],
    loc: Loc,
    errors: _Errors,
) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, int]]]:
    """Validate every combination; yield (given typed, resolved, list indexes). Stops
    after MAX_ERRORS mistakes: one is reported, with a count of the rest."""
    for values, index in _expand_options(raw, loc, errors):
        if len(errors.items) >= MAX_ERRORS:
            return
        try:
            validated = model.model_validate(values)
        except ValidationError as exc:

            def remap(err_loc: Loc, index=index) -> Loc:
                key = err_loc[0] if err_loc else None
                return err_loc[:1] + (index[key],) + err_loc[1:] if key in index else err_loc

            _pydantic_errors(errors, exc, loc, model.model_fields, remap)
            continue
        resolved = validated.model_dump()
        given = {k: resolved[k] for k in values}
        yield given, resolved, index


def _method_label(base: str, given: Mapping[str, Any], index: Mapping[str, int]) -> str:
    varying = sorted(k for k in given if k in index)
    if not varying:
        return base
    return f"{base}[{','.join(f'{k}={given[k]}' for k in varying)}]"


def _check_list_axes(raw: Mapping[str, Any], loc: Loc, errors: _Errors) -> None:
    for key in ("device", "dtype"):
        if raw.get(key) == []:
            errors.add(loc + (key,), "empty list: a grid axis needs at least one value")


def validate(
    data: Any,
    source: str = "<suite>",
    lines: dict[Loc, int] | None = None,
    max_cases: int = MAX_CASES,
) -> Suite:
    """Validate parsed YAML into a Suite, or raise SuiteError (also for a grid of more
    than ``max_cases`` cases, before it is expanded)."""
    errors = _Errors(source, lines or {})
    shape = _shape(data, source, errors, max_cases)
    kind, input_axes, input_defaults = _inputs(shape, errors)
    methods = _methods(shape, kind, errors)
    metrics = _metrics(shape, methods, errors)
    _tables(shape, kind, input_axes, input_defaults, methods, metrics, errors)
    _reference_and_baseline(shape, methods, metrics, errors)
    errors.raise_first()
    return Suite(
        name=shape.name,
        description=shape.description,
        seed=shape.seed,
        devices=tuple(dict.fromkeys(shape.device)),
        dtypes=tuple(dict.fromkeys(shape.dtype)),
        timeout=shape.timeout,
        input_kind=kind or "",  # not None here: a missing kind raised above
        input_axes=input_axes,
        input_defaults=input_defaults,
        methods=tuple(methods),
        metrics=tuple(metrics),
        tables=tuple(shape.tables),
        source=source,
        reference=shape.reference,
        executor=shape.executor,
        baseline=shape.baseline,
    )


# The sections of `validate`, in the order its errors are collected: each adds what is
# wrong with its part of the suite to ``errors`` and returns what the next parts need.


def _shape(data: Any, source: str, errors: _Errors, max_cases: int) -> _SuiteShape:
    """The suite's keys and types, its plugins imported, and its grid size checked."""
    from bench_cli import registry  # layers and input families: imports torch

    if data is None:
        raise SuiteError(source, None, (), "empty suite file: expected a mapping with name, ...")
    if not isinstance(data, dict):
        got = "a list" if isinstance(data, list) else type(data).__name__
        raise SuiteError(source, 1, (), f"a suite must be a mapping of keys, got {got}")
    _check_list_axes(data, (), errors)
    _non_finite(data, (), errors)
    errors.raise_first()
    try:
        shape = _SuiteShape.model_validate(data)
    except ValidationError as exc:
        _pydantic_errors(errors, exc, (), SUITE_KEYS)
        errors.raise_first()
        raise  # unreachable: every ValidationError has at least one error
    if shape.plugins:
        here = Path(source).resolve().parent if Path(source).is_file() else None
        for i, name in enumerate(shape.plugins):
            problem = registry.import_plugin(name, [here] if here else [])
            if problem:
                errors.add(("plugins", i), problem)
        errors.raise_first()
    size = (
        _grid_size(shape.inputs)
        * sum(_grid_size(raw, ("layer", "method")) for raw in shape.methods.values())
        * len(set(shape.device))
        * len(set(shape.dtype))
    )
    if size > max_cases:
        raise SuiteError(
            source, errors.line(("methods",)), ("methods",),
            f"the grid has {size:,} cases, over the ceiling of {max_cases:,}: split the suite, "
            "or raise the ceiling with --max-cases",
        )  # fmt: skip

    return shape


def _inputs(shape: _SuiteShape, errors: _Errors) -> tuple[str | None, dict, dict]:
    """The input kind, each input parameter's list of values, and the defaults."""
    from bench_cli import registry

    inputs = dict(shape.inputs)
    given_kind = inputs.pop("kind", None)
    family = None
    kind: str | None = given_kind if isinstance(given_kind, str) else None
    if given_kind is None:
        errors.add(("inputs",), "required key 'kind' is missing")
    elif kind is None:
        errors.add(("inputs", "kind"), f"expected the name of an input kind, got {given_kind!r}")
    elif kind not in registry.input_families():
        errors.add(("inputs", "kind"), registry.unknown("input kind", kind))
    else:
        family = registry.input_family(kind)
    input_axes: dict[str, list[Any]] = {key: [] for key in inputs}
    input_defaults: dict[str, Any] = {}
    if family is not None:
        seen: dict[str, set[int]] = {key: set() for key in inputs}  # list indexes taken
        for given, resolved, index in _validate_combos(family.params, inputs, ("inputs",), errors):
            input_defaults = {k: v for k, v in resolved.items() if k not in given}
            for key, value in given.items():
                i = index.get(key, 0)
                if i not in seen[key]:
                    seen[key].add(i)
                    input_axes[key].append(value)

    return kind, input_axes, input_defaults


def _methods(shape: _SuiteShape, kind: str | None, errors: _Errors) -> list[MethodConfig]:
    """Every method configuration after grid expansion, each label made once."""
    from bench_cli import registry

    if not shape.methods:
        errors.add(("methods",), "no methods: the grid is empty")
    methods: list[MethodConfig] = []
    for base, raw in shape.methods.items():
        loc: Loc = ("methods", base)
        raw = dict(raw)
        layer_name, method_name = raw.pop("layer", None), raw.pop("method", None)
        if layer_name is None:
            errors.add(loc, "required key 'layer' is missing")
            continue
        for key, value in (("layer", layer_name), ("method", method_name)):
            if value is not None and not isinstance(value, str):
                errors.add(loc + (key,), f"expected a name, got {value!r}")
        if not isinstance(layer_name, str) or not isinstance(method_name, str | None):
            continue
        if layer_name not in registry.layers():
            errors.add(loc + ("layer",), registry.unknown("layer", layer_name))
            continue
        layer = registry.layer(layer_name)
        method_name = method_name or layer.default_method
        if method_name is None:
            errors.add(loc, f"required key 'method' is missing; known: {', '.join(layer.methods)}")
            continue
        if method_name not in layer.methods:
            errors.add(
                loc + ("method",),
                registry.unknown(f"method for {layer_name}", method_name, layer.methods)
                + "; a method from a plugin needs the plugin loaded: the suite's plugins:, "
                "MATBENCH_PLUGINS, or an installed package's entry point",
            )
            continue
        if kind is not None and kind not in layer.input_kinds:
            errors.add(
                ("inputs", "kind"),
                f"layer '{layer_name}' takes inputs {', '.join(layer.input_kinds)}, not '{kind}'",
            )
        model = registry.options_model(layer_name, method_name)
        for given, resolved, index in _validate_combos(model, raw, loc, errors):
            problem = registry.option_problem(layer_name, method_name, resolved)
            if problem:
                errors.add(loc, problem)
                continue
            label = _method_label(base, given, index)
            methods.append(MethodConfig(label, base, layer_name, method_name, given, resolved))

    owners: dict[str, str] = {}
    for made in methods:
        if made.label in owners:
            errors.add(
                ("methods", made.base),
                f"label '{made.label}' is also made by methods.{owners[made.label]}: "
                "two configurations would share one row; rename one",
            )
        owners.setdefault(made.label, made.base)

    return methods


def _metrics(
    shape: _SuiteShape, methods: list[MethodConfig], errors: _Errors
) -> list[MetricConfig]:
    """The metrics with their options resolved; gradients only where layers have them."""
    from bench_cli import registry

    metrics: list[MetricConfig] = []
    for i, entry in enumerate(shape.metrics):
        if isinstance(entry, dict):
            if len(entry) != 1:
                errors.add(
                    ("metrics", i),
                    "a metric with options is a one-key mapping {name: {option: value}}",
                )
                continue
            name, options = next(iter(entry.items()))
            options = options or {}
        else:
            name, options = entry, {}
        if name not in metrics_catalog.METRICS:
            errors.add(("metrics", i), unknown_name("metric", name, metrics_catalog.METRICS))
            continue
        metric = metrics_catalog.METRICS[name]
        try:
            resolved = metric.options.model_validate(options).model_dump()
        except ValidationError as exc:
            _pydantic_errors(errors, exc, ("metrics", i, name), metric.options.model_fields)
            continue
        metrics.append(MetricConfig(name, {k: resolved[k] for k in options}, resolved))
    if not shape.metrics:
        errors.add(("metrics",), "no metrics: nothing would be measured")
    for i, config in enumerate(metrics):
        if not metrics_catalog.METRICS[config.name].needs_grad(config.resolved):
            continue
        for method in methods:
            if not registry.layer(method.layer).differentiable:
                errors.add(
                    ("metrics", i),
                    f"metric '{config.name}' needs gradients, but layer "
                    f"'{method.layer}' (method '{method.label}') is not "
                    "differentiable",
                )

    return metrics


def _tables(
    shape: _SuiteShape,
    kind: str | None,
    input_axes: dict,
    input_defaults: dict,
    methods: list[MethodConfig],
    metrics: list[MetricConfig],
    errors: _Errors,
) -> None:
    """Each table's metric path, axes, scaling axis and paired methods."""
    input_names = (set(input_axes) | set(input_defaults)) - {"kind"}
    option_names = set().union(*(m.resolved for m in methods)) if methods else set()
    axis_names = set(CASE_AXES) | input_names | option_names
    axis_names |= {INPUTS_PREFIX + n for n in input_names}
    axis_names |= {OPTIONS_PREFIX + n for n in option_names}
    ambiguous = input_names & option_names

    def ambiguity(axis: str) -> str | None:
        if axis not in ambiguous:
            return None
        owner = next(m.label for m in methods if axis in m.resolved)
        return (
            f"axis '{axis}' is both an input parameter ({kind}) and an option of "
            f"'{owner}': write {INPUTS_PREFIX}{axis} or {OPTIONS_PREFIX}{axis}"
        )

    metric_names = [m.name for m in metrics]
    for i, table in enumerate(shape.tables):
        head = table.metric.split(".")[0]
        if metrics and head not in metric_names:
            errors.add(
                ("tables", i, "metric"),
                f"metric '{head}' is not measured by this suite{did_you_mean(head, metric_names)}"
                f"; measured: {', '.join(metric_names)}",
            )
        elif metrics:
            problem = metrics_catalog.path_problem(table.metric)
            if problem:
                errors.add(("tables", i, "metric"), problem)
        if table.scaling is not None and (problem := ambiguity(table.scaling)):
            errors.add(("tables", i, "scaling"), problem)
        elif table.scaling is not None and table.scaling not in axis_names:
            errors.add(
                ("tables", i, "scaling"),
                f"unknown axis '{table.scaling}'{did_you_mean(table.scaling, axis_names)}",
            )
        elif table.scaling is not None:
            values = _axis_values(table.scaling, input_axes, input_defaults, methods)
            if not values or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values
            ):
                errors.add(
                    ("tables", i, "scaling"),
                    f"'{table.scaling}' is not a numeric axis (values: "
                    f"{', '.join(map(str, list(dict.fromkeys(map(str, values)))[:5]))}); "
                    "scaling fits a power of a size",
                )
        both = [*table.rows, *table.cols]
        twice = [axis for j, axis in enumerate(both) if axis in both[:j]]
        if twice:
            errors.add(
                ("tables", i, "rows"),
                f"axis '{twice[0]}' appears twice in rows and cols; each axis once",
            )
        _paired_methods(i, table, [config.label for config in methods], errors)
        for part in ("rows", "cols"):
            for j, axis in enumerate(getattr(table, part)):
                if problem := ambiguity(axis):
                    errors.add(("tables", i, part, j), problem)
                elif axis not in axis_names:
                    errors.add(
                        ("tables", i, part, j),
                        f"unknown axis '{axis}'{did_you_mean(axis, axis_names)}; "
                        f"axes: {', '.join(sorted(axis_names))}",
                    )


def _paired_methods(i: int, table: TableSpec, labels: list[str], errors: _Errors) -> None:
    """A paired table's baseline and trivial answers name methods of the suite."""
    if table.paired is not None and table.paired.baseline not in labels:
        base = table.paired.baseline
        errors.add(
            ("tables", i, "paired", "baseline"),
            f"unknown method '{base}'{did_you_mean(base, labels)}; methods: {', '.join(labels)}",
        )
    for j, answer in enumerate(table.paired.trivial if table.paired else []):
        if answer not in labels:
            errors.add(
                ("tables", i, "paired", "trivial", j),
                f"unknown method '{answer}'{did_you_mean(answer, labels)}; "
                f"methods: {', '.join(labels)}",
            )


def _reference_and_baseline(
    shape: _SuiteShape, methods: list[MethodConfig], metrics: list[MetricConfig], errors: _Errors
) -> None:
    """A value reference's tolerance, and the paired-timing baseline."""
    metric_names = [m.name for m in metrics]
    if (
        shape.reference is not None
        and shape.reference.compare == "value"
        and shape.reference.tolerance is None
    ):
        errors.add(
            ("reference",),
            "a value comparison needs an explicit tolerance: (relative; 0 compares at the "
            "published precision only)",
        )
    if shape.baseline is not None:
        labels = [config.label for config in methods]
        if shape.baseline not in labels:
            errors.add(
                ("baseline",),
                f"unknown method '{shape.baseline}'{did_you_mean(shape.baseline, labels)}; "
                f"methods: {', '.join(labels)}",
            )
        elif "time" not in metric_names:
            errors.add(
                ("baseline",),
                "a baseline pairs timings: add the time metric, or remove baseline:",
            )


def _axis_values(
    axis: str,
    input_axes: Mapping[str, list[Any]],
    input_defaults: Mapping[str, Any],
    methods: Sequence[MethodConfig],
) -> list[Any]:
    """Every value an axis takes in the grid (names for method, layer, impl and the rest)."""
    if axis in CASE_AXES:
        return [axis]  # names, never sizes
    if axis.startswith(OPTIONS_PREFIX):
        axis = axis.removeprefix(OPTIONS_PREFIX)
        return [m.resolved[axis] for m in methods if axis in m.resolved]
    axis = axis.removeprefix(INPUTS_PREFIX)
    if axis in input_axes:
        return list(input_axes[axis])
    if axis in input_defaults:
        return [input_defaults[axis]]
    return [m.resolved[axis] for m in methods if axis in m.resolved]


@dataclass(frozen=True)
class Outline:
    """What reading a run needs of its suite: tables, metric names, the reference."""

    name: str
    description: str
    metric_names: tuple[str, ...]
    tables: tuple[TableSpec, ...]
    reference: ReferenceSpec | None


def outline(text: str, source: str = "<suite>") -> Outline:
    """Parse a suite's shape only: no layers, methods or input families are looked up, so
    this imports no torch (``show``, ``report``, ``compare`` and the generated docs pages
    use it)."""
    data, lines = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise SuiteError(source, 1, (), "a suite must be a mapping of keys")
    errors = _Errors(source, lines)
    try:
        shape = _SuiteShape.model_validate(data)
    except ValidationError as exc:
        _pydantic_errors(errors, exc, (), SUITE_KEYS)
        errors.raise_first()
        raise
    names = tuple(
        next(iter(entry)) if isinstance(entry, dict) else entry for entry in shape.metrics
    )
    return Outline(shape.name, shape.description, names, tuple(shape.tables), shape.reference)


def loads(text: str, source: str = "<suite>", max_cases: int = MAX_CASES) -> Suite:
    """Parse and validate suite YAML text; a SuiteError (file, line, key path) on a mistake."""
    if len(text) > MAX_SUITE_BYTES:
        raise SuiteError(source, None, (), f"over the {MAX_SUITE_BYTES:,}-byte limit of a suite")
    data, lines = parse_yaml(text, source)
    suite = validate(data, source, lines, max_cases)
    return _with_text(suite, text)


def _with_text(suite: Suite, text: str) -> Suite:
    import dataclasses

    return dataclasses.replace(suite, text=text)


def quick_text(text: str, source: str) -> str:
    """The suite as `--quick` runs it: named <name>-quick, with its quick: overrides applied."""
    data, _ = parse_yaml(text, source)
    if not isinstance(data, dict) or not isinstance(data.get("quick"), dict):
        raise UserError(f"{source}: this suite has no quick: block")
    quick = data.pop("quick")
    data["name"] = f"{data.get('name')}-quick"
    data.setdefault("inputs", {}).update(quick.get("inputs", {}))
    for name, overrides in (quick.get("metric_options") or {}).items():
        metrics = []
        for entry in data.get("metrics", []):
            if entry == name or (isinstance(entry, dict) and name in entry):
                options = dict((entry.get(name) or {}) if isinstance(entry, dict) else {})
                entry = {name: {**options, **overrides}}
            metrics.append(entry)
        data["metrics"] = metrics
    if quick.get("budget_s") is not None:
        metrics = []
        for entry in data.get("metrics", []):
            if entry == "time" or (isinstance(entry, dict) and "time" in entry):
                options = dict((entry.get("time") or {}) if isinstance(entry, dict) else {})
                options["budget_s"] = quick["budget_s"]
                entry = {"time": options}
            metrics.append(entry)
        data["metrics"] = metrics
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def read_suite_text(path: str | Path) -> str:
    """A suite file's text: a regular file of at most MAX_SUITE_BYTES, in UTF-8 (a FIFO,
    a device or a folder is refused without reading from it)."""
    from bench_cli.store import read_bytes  # no torch

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a suite .yaml file")
    data = read_bytes(path, "suite file", limit=MAX_SUITE_BYTES, follow=True)
    if data is None:
        raise UserError(f"{path}: suite file not found")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: cannot read suite file: {exc}") from exc


def load(path: str | Path, quick: bool = False, max_cases: int = MAX_CASES) -> Suite:
    """Read and validate a suite file (``quick``: as ``reproduce --quick`` runs it)."""
    text = read_suite_text(path)
    if quick:
        loads(text, str(path), max_cases)  # report mistakes against the file as written
        text = quick_text(text, str(path))
    return loads(text, str(path), max_cases)


# ---------------------------------------------------------------- filters


def parse_filters(filters: Sequence[str]) -> list[tuple[str | None, str]]:
    """--filter strings as (axis or None, glob) pairs."""
    parsed: list[tuple[str | None, str]] = []
    for text in filters:
        if "=" in text:
            key, pattern = text.split("=", 1)
            if not key.strip():
                raise UserError(f"--filter '{text}': expected AXIS=GLOB or GLOB")
            parsed.append((key.strip(), pattern.strip()))
        else:
            parsed.append((None, text))
    return parsed


def select(cases: Sequence[Case], filters: Sequence[str]) -> list[Case]:
    """Cases matching every filter: ``AXIS=GLOB`` on one axis, or ``GLOB`` on the label."""
    parsed = parse_filters(filters)
    if not parsed:
        return list(cases)
    known = set().union(*(c.axes for c in cases)) if cases else set()
    for key, _ in parsed:
        if key is not None and {INPUTS_PREFIX + key, OPTIONS_PREFIX + key} <= known:
            raise UserError(
                f"--filter: axis '{key}' is both an input parameter and a method option: "
                f"write {INPUTS_PREFIX}{key}= or {OPTIONS_PREFIX}{key}="
            )
        if key is not None and key not in known:
            raise UserError(
                f"--filter: unknown axis '{key}'{did_you_mean(key, known)}; "
                f"axes: {', '.join(sorted(known))}"
            )

    def matches(case: Case) -> bool:
        for key, pattern in parsed:
            if key is None:
                if not fnmatch.fnmatchcase(case.label, f"*{pattern}*"):
                    return False
            elif key not in case.axes or not fnmatch.fnmatchcase(str(case.axes[key]), pattern):
                return False
        return True

    return [case for case in cases if matches(case)]
