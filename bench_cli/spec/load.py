"""Reading suites: a file or text to a validated ``Suite`` (``load``, ``loads``), its
quick variant, the torch-free ``outline`` that reading a run needs, and the case
filters of ``--filter``."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import (
    ValidationError,
)

from bench_cli.errors import UserError, did_you_mean
from bench_cli.fsafe import read_text
from bench_cli.records import INPUTS_PREFIX, OPTIONS_PREFIX
from bench_cli.spec.checks import Errors, pydantic_errors
from bench_cli.spec.limits import MAX_CASES, MAX_SUITE_BYTES
from bench_cli.spec.model import SUITE_KEYS, Case, ReferenceSpec, Suite, SuiteShape, TableSpec
from bench_cli.spec.validate import validate
from bench_cli.spec.yaml_lines import Dumper, SuiteError, parse_yaml


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
    errors = Errors(source, lines)
    try:
        shape = SuiteShape.model_validate(data)
    except ValidationError as exc:
        pydantic_errors(errors, exc, (), SUITE_KEYS)
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
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True)


def read_suite_text(path: str | Path) -> str:
    """A suite file's text: a regular file of at most MAX_SUITE_BYTES, in UTF-8 (a FIFO,
    a device or a folder is refused without reading from it)."""

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a suite .yaml file")
    return read_text(
        path, "suite file", "suite file not found", "cannot read suite file: not UTF-8",
        limit=MAX_SUITE_BYTES, follow=True,
    )  # fmt: skip


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
