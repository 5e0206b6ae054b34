"""The suite's shape (pydantic models) and what validation makes of it: the
validated ``Suite``, its method and metric configs, and the ``Case``s of its grid."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveFloat,
    StringConstraints,
)

from bench_cli.records import INPUTS_PREFIX, OPTIONS_PREFIX
from bench_cli.spec.limits import MAX_FILE, MAX_STEM, MAX_TIMEOUT_S, MAX_TITLE

# ---------------------------------------------------------------- shape models


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


DType = Literal["float16", "bfloat16", "float32", "float64"]
# How a case's method is called (docs/measurement.md, "Compiled and mixed precision"):
# eager, or torch.compile with inductor in one of its modes, or with the aot_eager
# backend (traced, forward and backward, but no code generated: fast, no C++ compiler).
CompileMode = Literal[
    "eager", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs",
    "aot_eager",
]  # fmt: skip
EAGER = "eager"
# torch.autocast's dtype around the forward, or none.
Autocast = Literal["none", "bfloat16", "float16"]
NO_AUTOCAST = "none"
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


class SuiteShape(_Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]+$")]
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    device: Annotated[list[Device], BeforeValidator(_as_list)] = ["cpu"]
    dtype: Annotated[list[DType], BeforeValidator(_as_list)] = ["float32"]
    # Absent: eager, and no compile axis in the records (runs before it keep their keys).
    compile: Annotated[list[CompileMode], BeforeValidator(_as_list)] | None = None
    autocast: Annotated[list[Autocast], BeforeValidator(_as_list)] | None = None
    timeout: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)] = 300.0
    inputs: dict[str, Any]
    methods: dict[str, dict[str, Any]]
    metrics: list[str | dict[str, dict[str, Any] | None]]
    tables: list[TableSpec] = []
    reference: ReferenceSpec | None = None
    quick: QuickSpec | None = None
    executor: dict[str, Any] | None = None  # validated by bench_cli.scaleout.settings
    # A method label: each group of cases that differ only in the method is timed in
    # interleaved rounds, with per-round ratios to this method (docs/measurement.md,
    # "Paired timing").
    baseline: str | None = None
    # Plugin modules (names, or .py files) to import before the methods are looked up:
    # found next to the suite file, then in the current folder (docs/plugins.md).
    plugins: Annotated[list[str], BeforeValidator(_as_list)] = []


SUITE_KEYS = tuple(SuiteShape.model_fields)
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
    # None where the suite has no such axis: then the key, axes and label omit it.
    compile: str | None = None
    autocast: str | None = None
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
            **self._call_axes,
        }

    @property
    def _call_axes(self) -> dict[str, str]:
        """compile and autocast, where the suite has them."""
        axes = {"compile": self.compile, "autocast": self.autocast}
        return {name: value for name, value in axes.items() if value is not None}

    @property
    def axes(self) -> dict[str, Any]:
        """The values a table can pivot on, flat (see :func:`namespaced_axes`)."""
        return namespaced_axes(
            {"method": self.config.label, "layer": self.config.layer, "impl": self.config.method},
            self.config.resolved,
            self.resolved_inputs,
            {"device": self.device, "dtype": self.dtype, **self._call_axes},
        )

    @property
    def group_key(self) -> str:
        """What the case shares with the other methods of its paired-timing group: all
        but the method and how it is compiled (the same inputs, device, dtype and
        autocast): a method's eager and compiled versions are timed in one group."""
        params = self.key_params()
        for name in ("method", "layer", "impl", "options", "compile"):
            params.pop(name, None)
        return case_key(params)

    @property
    def label(self) -> str:
        """A readable one-line description of the case."""
        shown = ", ".join(f"{k}={v}" for k, v in self.inputs.items() if k != "kind")
        calls = "".join(f" {name}={value}" for name, value in self._call_axes.items())
        return (
            f"{self.config.label} {self.inputs['kind']}({shown}) {self.device} {self.dtype}{calls}"
        )

    @property
    def timing_name(self) -> str:
        """The case's name in its paired-timing group: the method, and how it is compiled
        where the suite compiles."""
        return (
            self.config.label if self.compile is None else f"{self.config.label} [{self.compile}]"
        )


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
    compile_modes: tuple[str, ...] | None = None  # None: no compile axis (eager)
    autocasts: tuple[str, ...] | None = None  # None: no autocast axis

    @property
    def paired_timing(self) -> bool:
        """Whether each group of methods is timed interleaved: the time metric, and a
        baseline or several compile modes (each method paired with its first mode)."""
        pairs = self.baseline is not None or len(self.compile_modes or ()) > 1
        return pairs and any(m.name == "time" for m in self.metrics)

    @property
    def case_count(self) -> int:
        """How many cases the grid has, without expanding it."""
        inputs = math.prod(len(values) for values in self.input_axes.values())
        calls = len(self.compile_modes or (None,)) * len(self.autocasts or (None,))
        return len(self.methods) * inputs * len(self.devices) * len(self.dtypes) * calls

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
                **({"compile": self.compile_modes} if self.compile_modes else {}),
                **({"autocast": self.autocasts} if self.autocasts else {}),
            }
        )

    def cases(self, devices: Sequence[str] | None = None) -> list[Case]:
        """The grid: methods x inputs x device x dtype (x compile x autocast), in a stable order."""
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
                calls = itertools.product(self.compile_modes or (None,), self.autocasts or (None,))
                for device, dtype, (mode, autocast) in itertools.product(
                    devices, self.dtypes, list(calls)
                ):
                    yield Case(
                        self.name, self.seed, config, given, resolved, device, dtype,
                        grid=grid, compile=mode, autocast=autocast,
                    )  # fmt: skip
                    grid += 1


def resolve_device(device: str) -> str:
    """The device a case runs on: 'auto' becomes cuda where available, else cpu."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
