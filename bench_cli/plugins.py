"""Plugins: modules that register methods, found by a suite's ``plugins:``, the
``bench_cli.plugins`` entry points and ``MATBENCH_PLUGINS``, imported once per process
(workers and array tasks too) on the first registry lookup. A plugin that cannot be
imported is one line naming the module and the error, and a method whose signature its
layer cannot call is refused at registration (``signature_problem``)."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_cli.errors import UserError

PLUGIN_GROUP = "bench_cli.plugins"


_plugins_loaded = False


def load_plugins() -> None:
    """Import plugin modules once per process: the ``bench_cli.plugins`` entry points of
    installed packages, then the modules named in MATBENCH_PLUGINS (comma-separated).
    Plugins register methods with :func:`register_method`. Runs on the first lookup in
    every process, isolated workers too."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for point in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            point.load()
        except Exception as exc:  # noqa: BLE001 -- a plugin's own error, said in one line
            raise UserError(f"plugin entry point '{point.name}' ({point.value}): {exc}") from exc
    for variable in ("MATBENCH_PLUGINS", SUITE_PLUGINS_ENV):
        for module in filter(None, (m.strip() for m in os.environ.get(variable, "").split(","))):
            problem = import_plugin(module)
            if problem:
                raise UserError(f"{variable}: {problem}")


# Folders plugins were found in (absolute, os.pathsep-separated), and the modules a
# suite's plugins: imported (comma-separated): set by the process that read the suite,
# so isolated workers and cluster jobs, which inherit its environment, import the same.
PLUGIN_PATH_ENV = "MATBENCH_PLUGIN_PATH"


SUITE_PLUGINS_ENV = "MATBENCH_SUITE_PLUGINS"


def _plugin_folders(extra: Sequence[Path]) -> list[Path]:
    inherited = [Path(p) for p in os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep) if p]
    return list(dict.fromkeys([*extra, *inherited, Path.cwd()]))


def import_plugin(name: str, folders: Sequence[Path] = ()) -> str | None:
    """Import one plugin module, given as a module name or a ``.py`` file name, from the
    first of ``folders``, the folders earlier plugins came from, and the current folder
    that holds it, else from the installed packages; None, or what went wrong in one
    line. The folder is remembered in MATBENCH_PLUGIN_PATH for child processes."""
    module = name.removesuffix(".py")
    if not module or not all(part.isidentifier() for part in module.split(".")):
        return f"plugin '{name}': expected a module name or a file name.py beside the suite"
    if module in sys.modules:
        return None
    relative = Path(*module.split("."))
    for folder in _plugin_folders(folders):
        if (folder / f"{relative}.py").is_file() or (folder / relative / "__init__.py").is_file():
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            known = os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep)
            if str(folder) not in known:
                os.environ[PLUGIN_PATH_ENV] = os.pathsep.join(filter(None, [*known, str(folder)]))
            break
    try:
        importlib.import_module(module)
    except ImportError as exc:
        looked = ", ".join(str(f) for f in _plugin_folders(folders))
        return f"plugin '{name}': cannot import it ({exc}); looked in {looked} and sys.path"
    except UserError as exc:
        return f"plugin '{name}': {exc}"
    except Exception as exc:  # noqa: BLE001 -- a plugin's own error, said in one line
        sys.modules.pop(module, None)
        return f"plugin '{name}' failed while importing: {type(exc).__name__}: {exc}"
    imported = os.environ.get(SUITE_PLUGINS_ENV, "").split(",")
    if module not in imported:
        os.environ[SUITE_PLUGINS_ENV] = ",".join(filter(None, [*imported, module]))
    return None


# How each layer calls a method: its positional arguments; every keyword-only parameter
# (with a default) is a suite option. Direct layers take their input alone.
CALLS: dict[str, tuple[str, ...]] = {
    "matrix_function": ("A", "func", "p"),
    "o2p": ("A", "func", "p"),
    "ncut": ("M", "k"),
    "gap_series": ("eigvals",),
}


def signature_problem(layer_name: str, fn: Callable[..., Any]) -> str | None:
    """What stops ``fn`` from being called as ``layer_name`` calls its methods (None if
    nothing): ``fn(A, func, p, **options)`` for a matrix function, options keyword-only
    with defaults, so each becomes a suite key with a value a suite may leave out."""
    shape = CALLS.get(layer_name, ("X",))
    expected = f"fn({', '.join(shape)}, *, option=default, ...)"
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None  # a builtin: nothing to read, the call will tell
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_var = any(p.kind is p.VAR_POSITIONAL for p in params)
    got = f"got ({', '.join(str(p) for p in params)})"
    if len(positional) < len(shape) and not takes_var:
        missing = ", ".join(shape[len(positional) :])
        return (
            f"takes {len(positional)} positional arguments, but is called with {len(shape)} "
            f"({', '.join(shape)}): add {missing}; expected {expected}, {got}"
        )
    extra = [p.name for p in positional[len(shape) :] if p.default is p.empty]
    if extra:
        return (
            f"positional parameter {extra[0]} is never passed: make it keyword-only "
            f"with a default (after *) to make it a suite option; expected {expected}, {got}"
        )
    required = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if required:
        return (
            f"option {required[0]} has no default: give it one (suites may leave an "
            f"option out); expected {expected}, {got}"
        )
    return None
