"""What the validation sections share: the error collector, option grids and their
combinations, and the sizes and values every section checks."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from bench_cli.errors import did_you_mean
from bench_cli.records import CASE_AXES, INPUTS_PREFIX, OPTIONS_PREFIX
from bench_cli.spec.limits import MAX_ERRORS, Loc
from bench_cli.spec.model import TABLE_KEYS, MethodConfig, QuickSpec, ReferenceSpec
from bench_cli.spec.yaml_lines import SuiteError, format_loc

# ---------------------------------------------------------------- validation


class Errors:
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


def pydantic_errors(
    errors: Errors, exc: ValidationError, prefix: Loc, allowed: Iterable[str], remap=None
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
    raw: Mapping[str, Any], loc: Loc, errors: Errors
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


def _non_finite(data: Any, loc: Loc, errors: Errors) -> None:
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
    errors: Errors,
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

            pydantic_errors(errors, exc, loc, model.model_fields, remap)
            continue
        resolved = validated.model_dump()
        given = {k: resolved[k] for k in values}
        yield given, resolved, index


def _method_label(base: str, given: Mapping[str, Any], index: Mapping[str, int]) -> str:
    varying = sorted(k for k in given if k in index)
    if not varying:
        return base
    return f"{base}[{','.join(f'{k}={given[k]}' for k in varying)}]"


def _check_list_axes(raw: Mapping[str, Any], loc: Loc, errors: Errors) -> None:
    for key in ("device", "dtype", "compile", "autocast"):
        if raw.get(key) == []:
            errors.add(loc + (key,), "empty list: a grid axis needs at least one value")


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
