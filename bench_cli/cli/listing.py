"""`matbench list`: what the registry and the bundled suites hold."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table as RichTable

from bench_cli import api, spec
from bench_cli.cli.console import (
    add_row,
    handles_errors,
    out_console,
)
from bench_cli.errors import UserError, unknown_name


@handles_errors
def list_(
    what: Annotated[
        str, typer.Argument(help="layers, methods, inputs, metrics, suites or all")
    ] = "all",
) -> None:
    """List registered layers, methods, input families, metrics and bundled suites."""
    kinds = ("layers", "methods", "inputs", "metrics", "suites")
    if what != "all" and what not in kinds:
        raise UserError(unknown_name("list", what, (*kinds, "all")))
    console = out_console()
    for kind in kinds if what == "all" else (what,):
        console.print(_LISTS[kind]())


def _list_layers() -> RichTable:
    """The layers: their inputs, methods and what they compute."""
    from bench_cli import registry

    table = RichTable(title="layers", title_justify="left")
    for col in ("layer", "inputs", "methods", "summary"):
        table.add_column(col)
    for layer in registry.layers().values():
        add_row(
            table,
            layer.name,
            ", ".join(layer.input_kinds),
            ", ".join(layer.methods),
            layer.summary,
        )
    return table


def _list_methods() -> RichTable:
    """Every method of every layer: exactness, FLOP model, K̃ and options."""
    from bench_cli import registry

    table = RichTable(title="methods", title_justify="left")
    for col in ("layer", "method", "kind", "FLOPs", "K̃", "options", "summary"):
        table.add_column(col)
    for layer in registry.layers().values():
        for method in layer.methods.values():
            add_row(table, layer.name, method.name, *registry.describe(layer.name, method).values())
    return table


def _list_inputs() -> RichTable:
    """The input families and their parameters."""
    from bench_cli import registry

    table = RichTable(title="input kinds", title_justify="left")
    for col in ("kind", "parameters", "summary"):
        table.add_column(col)
    for family in registry.input_families().values():
        params = ", ".join(
            name if f.is_required() else f"{name}={f.default}"
            for name, f in family.params.model_fields.items()
        )
        add_row(table, family.name, params, family.summary)
    return table


def _list_metrics() -> RichTable:
    """The metrics: unit, options and table paths."""
    from bench_cli import metrics as metrics_catalog

    table = RichTable(title="metrics", title_justify="left")
    for col in ("metric", "unit", "options", "table paths", "summary"):
        table.add_column(col)
    for metric in metrics_catalog.METRICS.values():
        options = ", ".join(
            f"{n}={f.get_default(call_default_factory=True)}"
            for n, f in metric.options.model_fields.items()
        )
        paths = ", ".join(f"{metric.name}.{v}" if v else metric.name for v in metric.views)
        add_row(table, metric.name, metric.unit or "—", options, paths, metric.summary)
    return table


def _list_suites() -> RichTable:
    """The bundled suites, each validated."""
    root = api.suites_dir()
    table = RichTable(title=f"bundled suites ({root})", title_justify="left")
    for col in ("suite", "file", "description"):
        table.add_column(col)
    for name, path in api.bundled_suites().items():
        try:
            loaded = spec.load(path)
            description = loaded.description
            if loaded.reference is not None:
                description += f" [source: {loaded.reference.citation}]"
        except UserError as exc:
            description = f"invalid: {exc}"
        add_row(table, name, str(path.relative_to(root)), description)
    return table


_LISTS = {
    "layers": _list_layers,
    "methods": _list_methods,
    "inputs": _list_inputs,
    "metrics": _list_metrics,
    "suites": _list_suites,
}
