"""Validation, one function per section of a suite (shape and plugins, inputs,
methods, metrics, tables, reference and baseline), called in the order their errors
are collected: every error becomes one :class:`SuiteError` naming the file, the line
and the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from bench_cli import metrics as metrics_catalog
from bench_cli import plugins
from bench_cli.errors import did_you_mean, unknown_name
from bench_cli.records import CASE_AXES, INPUTS_PREFIX, OPTIONS_PREFIX
from bench_cli.spec.checks import (
    Errors,
    _axis_values,
    _check_list_axes,
    _grid_size,
    _method_label,
    _non_finite,
    _validate_combos,
    pydantic_errors,
)
from bench_cli.spec.limits import MAX_CASES, Loc
from bench_cli.spec.model import (
    SUITE_KEYS,
    MethodConfig,
    MetricConfig,
    Suite,
    SuiteShape,
    TableSpec,
)
from bench_cli.spec.yaml_lines import SuiteError


def validate(
    data: Any,
    source: str = "<suite>",
    lines: dict[Loc, int] | None = None,
    max_cases: int = MAX_CASES,
) -> Suite:
    """Validate parsed YAML into a Suite, or raise SuiteError (also for a grid of more
    than ``max_cases`` cases, before it is expanded)."""
    errors = Errors(source, lines or {})
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
        compile_modes=None if shape.compile is None else tuple(dict.fromkeys(shape.compile)),
        autocasts=None if shape.autocast is None else tuple(dict.fromkeys(shape.autocast)),
    )


# The sections of `validate`, in the order its errors are collected: each adds what is
# wrong with its part of the suite to ``errors`` and returns what the next parts need.


def _shape(data: Any, source: str, errors: Errors, max_cases: int) -> SuiteShape:
    """The suite's keys and types, its plugins imported, and its grid size checked."""

    if data is None:
        raise SuiteError(source, None, (), "empty suite file: expected a mapping with name, ...")
    if not isinstance(data, dict):
        got = "a list" if isinstance(data, list) else type(data).__name__
        raise SuiteError(source, 1, (), f"a suite must be a mapping of keys, got {got}")
    _check_list_axes(data, (), errors)
    _non_finite(data, (), errors)
    errors.raise_first()
    try:
        shape = SuiteShape.model_validate(data)
    except ValidationError as exc:
        pydantic_errors(errors, exc, (), SUITE_KEYS)
        errors.raise_first()
        raise  # unreachable: every ValidationError has at least one error
    if shape.plugins:
        here = Path(source).resolve().parent if Path(source).is_file() else None
        for i, name in enumerate(shape.plugins):
            problem = plugins.import_plugin(name, [here] if here else [])
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


def _inputs(shape: SuiteShape, errors: Errors) -> tuple[str | None, dict, dict]:
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


def _methods(shape: SuiteShape, kind: str | None, errors: Errors) -> list[MethodConfig]:
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


def _metrics(shape: SuiteShape, methods: list[MethodConfig], errors: Errors) -> list[MetricConfig]:
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
            pydantic_errors(errors, exc, ("metrics", i, name), metric.options.model_fields)
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
    shape: SuiteShape,
    kind: str | None,
    input_axes: dict,
    input_defaults: dict,
    methods: list[MethodConfig],
    metrics: list[MetricConfig],
    errors: Errors,
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


def _paired_methods(i: int, table: TableSpec, labels: list[str], errors: Errors) -> None:
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
    shape: SuiteShape, methods: list[MethodConfig], metrics: list[MetricConfig], errors: Errors
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
        elif len(shape.compile or ()) > 1:
            errors.add(
                ("baseline",),
                "with several compile modes each method is timed against its own first "
                f"mode ({shape.compile[0]}): remove baseline:",  # type: ignore[index]
            )
