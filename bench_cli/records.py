"""The record vocabulary, its one home: what a record is (``record_problem``), the
axes every reader uses (bare, ``inputs.NAME`` and ``options.NAME``), reading
records.jsonl (damaged lines reported and skipped), and the number a table path picks
out of a record (``metric_value``). No torch."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench_cli.fsafe import entry, read_bytes
from bench_cli.metrics import STATS

log = logging.getLogger("bench_cli")


RECORDS = "records.jsonl"


STATUSES = frozenset({"ok", "failed", "skipped", "nonfinite", "unsupported"})


def kind_of(value: Any) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "text"}
    return names.get(type(value), type(value).__name__)


_SCALARS = (str, int, float, bool, type(None))


# A case's axes name each method option and input parameter twice: bare, and under
# these prefixes (spec.namespaced_axes); the case's own axes are never prefixed.
INPUTS_PREFIX, OPTIONS_PREFIX = "inputs.", "options."


CASE_AXES = ("method", "layer", "impl", "device", "dtype", "kind", "compile", "autocast")


def upgrade_axes(record: dict[str, Any]) -> dict[str, Any]:
    """Give a record written before the prefixes its ``inputs.NAME`` and ``options.NAME``
    axes (in place), so every reader uses the same names for old and new runs. A name
    that was both lost its option's value in the bare axis; the option's value then
    comes from the record's params, where it was given."""
    axes = record["axes"]
    if any(key.startswith((INPUTS_PREFIX, OPTIONS_PREFIX)) for key in axes):
        return record
    params = record.get("params") or {}
    inputs = params.get("inputs") or {}
    options = params.get("options")
    given: dict[str, Any] = options if isinstance(options, dict) else {}
    for key, value in list(axes.items()):
        if key in CASE_AXES:
            continue
        if key in inputs:
            axes[INPUTS_PREFIX + key] = value
            if key in given and isinstance(given[key], str | int | float | bool | None):
                axes[OPTIONS_PREFIX + key] = given[key]
        else:
            axes[OPTIONS_PREFIX + key] = value
    return record


def record_problem(record: Any) -> str | None:
    """What makes a parsed line no matbench record (None if it is one): the fields every
    reader relies on, with their types."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {kind_of(record)}"
    for key in ("case", "metric", "status"):
        if not isinstance(record.get(key), str):
            return f"'{key}' is missing or not text"
    if record["status"] not in STATUSES:
        return f"unknown status {record['status']!r}"
    if record.get("reason") is not None and not isinstance(record["reason"], str):
        return "'reason' is not text"
    axes, params = record.get("axes"), record.get("params")
    if not isinstance(axes, dict) or not all(isinstance(v, _SCALARS) for v in axes.values()):
        return "'axes' is missing or not a mapping of plain values"
    for key in ("method", "device", "dtype"):
        if not isinstance(axes.get(key), str):
            return f"'axes.{key}' is missing or not text"
    if not isinstance(params, dict) or not isinstance(params.get("inputs"), dict):
        return "'params.inputs' is missing or not a mapping"
    inputs = params["inputs"]
    if not isinstance(inputs.get("kind"), str) or not all(
        isinstance(v, _SCALARS) for v in inputs.values()
    ):
        return "'params.inputs' is not a mapping of plain values with a kind"
    for key in ("device", "dtype"):
        if key in params and not isinstance(params[key], str):
            return f"'params.{key}' is not text"
    for key, kinds in (("grid", int), ("machine_key", str), ("shard", str), ("invocation", int)):
        if record.get(key) is not None and (
            not isinstance(record[key], kinds) or isinstance(record[key], bool)
        ):
            return f"'{key}' is not {'a whole number' if kinds is int else 'text'}"
    if record["status"] == "ok" and "value" not in record:
        return "an ok record without a value"
    from bench_cli.metrics import value_problem  # no torch

    if record["status"] == "ok":
        return value_problem(record["metric"], record["value"])
    return value_problem("", record.get("value"))  # samples only, for a value kept anyway


def read_records(path: Path, warn: bool = True) -> list[dict[str, Any]]:
    """All complete, well-formed records of a run folder, in the order written.

    A torn final line is ignored (that case is measured again on resume). A line that
    is not JSON, or JSON of the wrong shape, is skipped and named with its line number
    on the ``bench_cli`` logger."""
    file = entry(Path(path), RECORDS)
    data = read_bytes(file, "records.jsonl", limit=None)
    return [] if data is None else parse_records(data, file, warn)


def parse_records(data: bytes, file: Path, warn: bool = True) -> list[dict[str, Any]]:
    """The records in records.jsonl's bytes (see read_records); ``file`` names it."""
    records: list[dict[str, Any]] = []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines[:-1], start=1):  # the last piece is torn or empty
        problem: str | None
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            problem = f"not a JSON record ({exc.__class__.__name__}: {exc})"[:200]
        else:
            problem = record_problem(record)
        if problem is None:
            records.append(upgrade_axes(record))
        elif warn:
            log.warning(f"{file}:{number}: damaged record skipped: {problem}")
    return records


def done_of(records: Iterable[Mapping[str, Any]], retry: bool = True) -> set[tuple[str, str]]:
    """(case key, metric) pairs that have a record. With ``retry``, a pair whose latest
    record is marked ``retry`` (a case the scheduler stopped at its time limit) counts as
    not done, so a re-run measures it again; the latest record of a pair wins."""
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for record in records:
        latest[(record["case"], record["metric"])] = record
    return {key for key, record in latest.items() if not (retry and record.get("retry"))}


def metric_value(record: Mapping[str, Any], path: Sequence[str]) -> float | str:
    """The number a table path picks out of a record, or the record's status."""
    if record["status"] != "ok":
        return record["status"]
    value: Any = record["value"]
    top = value
    for part in path:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, Mapping) and "samples" in value and part in STATS:
            if not value["samples"]:
                return "n/a"  # e.g. epoch times of a method that does not train
            value = STATS[part](value["samples"])
        elif isinstance(value, Mapping) and "samples" in value and part == RATIO:
            ratios = [r for r in (value.get("paired") or {}).get("ratios") or [] if r]
            if not ratios:
                return "n/a"  # timed alone: no baseline in its group, or an older run
            value = STATS["median"](ratios)
        elif isinstance(value, Mapping) and "flops" in value and part in THROUGHPUT:
            if value["flops"] is None:
                return "n/a"  # the method declares no FLOP model for this mode
            rate = value["flops"] / STATS["median"](value["samples"])
            if part == "peak_fraction" and not top.get("peak_gflops"):
                return "n/a"  # no measured peak for this device and dtype
            value = rate if part == "flops_per_s" else rate / (top["peak_gflops"] * 1e9)
        else:
            raise KeyError(f"'{part}' not found in the value of metric '{record['metric']}'")
    if isinstance(value, Mapping) and "samples" in value:
        value = STATS["median"](value["samples"])
    if value is None:
        return "n/a"  # measured, but not defined for this case (e.g. no K̃, an inf norm)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):  # a categorical value, e.g. the dtype an op ran in
        return value
    if not isinstance(value, int | float):
        raise KeyError(f"'{'.'.join(path)}' of metric '{record['metric']}' is not a number")
    return float(value)


# Derived from a timing mode's nominal FLOPs and its median: the rate, and the fraction
# of the run's measured matmul peak.
THROUGHPUT = ("flops_per_s", "peak_fraction")


# A timing mode of a paired-timing run: the median of its per-round ratios to the baseline.
RATIO = "ratio_to_baseline"


def completeness(meta: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> str | None:
    """ "incomplete: N of M cases" for a run that has not measured every case it planned
    (interrupted, still running, a budget spent), or None: a run folder's plan is
    ``planned`` in run.json (a merge's) or in its latest invocation's entry. Runs made
    before plans were recorded say nothing."""
    plan = meta.get("planned")
    if not isinstance(plan, dict):
        invocations = [i for i in meta.get("invocations") or [] if isinstance(i, dict)]
        plan = next((i["planned"] for i in reversed(invocations) if "planned" in i), None)
    if not isinstance(plan, dict) or not isinstance(plan.get("cases"), int):
        return None
    metrics = set(plan.get("metrics") or [])
    have: dict[str, set[str]] = {}
    for case, metric in done_of(records):
        have.setdefault(case, set()).add(metric)
    finished = sum(metrics <= got for got in have.values())
    if finished >= plan["cases"]:
        return None
    return (
        f"incomplete: {finished} of {plan['cases']} cases have every metric (interrupted, "
        "still running or cut short; running the same command again finishes it)"
    )
