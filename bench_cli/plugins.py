"""Plugins: modules that register methods, found by a suite's ``plugins:``, the
``bench_cli.plugins`` entry points and ``MATBENCH_PLUGINS``, imported once per process
(workers and array tasks too) on the first registry lookup. A plugin that cannot be
imported is one line naming the module and the error, and a method whose signature its
layer cannot call is refused at registration (``signature_problem``)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_cli.errors import UserError

PLUGIN_GROUP = "bench_cli.plugins"

log = logging.getLogger("bench_cli")


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
    line. The folder is remembered in MATBENCH_PLUGIN_PATH for child processes.

    A plugin found in a folder is imported from its file: the folder never joins
    ``sys.path``, so a ``matplotlib.py`` beside a suite stays a file and matplotlib stays
    matplotlib. A name already imported as something other than a plugin (``os``,
    ``bench_cli.cli``) is refused, and so is a plugin that changes the working folder or
    ``sys.argv`` while it is imported (both are put back). A folder that others may
    write is imported with a warning: anyone on the machine could change what runs."""
    module = name.removesuffix(".py")
    if not module or not all(part.isidentifier() for part in module.split(".")):
        return f"plugin '{name}': expected a module name or a file name.py beside the suite"
    if module in _imported:
        return None
    if module in _registrants and module in sys.modules:  # imported by hand, then named
        _imported[module] = Path(getattr(sys.modules[module], "__file__", None) or module)
        return None
    if module in sys.modules:
        where = getattr(sys.modules[module], "__file__", None) or "built in"
        return (
            f"plugin '{name}': a module of that name is already imported ({where}); "
            "give the plugin a name of its own"
        )
    located = _locate(module, folders)
    cwd, argv = os.getcwd(), list(sys.argv)
    try:
        if located is not None:
            folder, path = located
            _warn_if_others_can_write(folder)
            _import_from_folder(module, folder)
        else:
            path = None
            importlib.import_module(module)
    except ImportError as exc:
        looked = ", ".join(str(f) for f in _plugin_folders(folders))
        return f"plugin '{name}': cannot import it ({exc}); looked in {looked} and sys.path"
    except UserError as exc:
        return f"plugin '{name}': {exc}"
    except Exception as exc:  # noqa: BLE001 -- a plugin's own error, said in one line
        sys.modules.pop(module, None)
        return f"plugin '{name}' failed while importing: {type(exc).__name__}: {exc}"
    finally:
        moved, rewrote = os.getcwd() != cwd, sys.argv != argv
        os.chdir(cwd)
        sys.argv[:] = argv
    if moved or rewrote:
        what = "the working folder" if moved else "sys.argv"
        return (
            f"plugin '{name}' changed {what} while it was imported; a plugin must not "
            "(it would move or misname the run), so it is refused"
        )
    loaded = sys.modules.get(module)
    _imported[module] = Path(path or getattr(loaded, "__file__", "") or module)
    imported = os.environ.get(SUITE_PLUGINS_ENV, "").split(",")
    if module not in imported:
        os.environ[SUITE_PLUGINS_ENV] = ",".join(filter(None, [*imported, module]))
    return None


# Plugin modules this process imported, by module name: the file each came from.
_imported: dict[str, Path] = {}
# Modules that registered a method (bench_cli.registry.register_method says so).
_registrants: set[str] = set()


def note_registrant(module: str) -> None:
    """A module registered a method: naming it as a plugin later is not a conflict."""
    _registrants.add(module)


def imported_plugins() -> dict[str, Path]:
    """The plugin modules this process imported and the file each came from."""
    return dict(_imported)


def plugin_digests() -> dict[str, str]:
    """SHA-256 of each imported plugin's source (a package's every .py file): the code
    under test, recorded in a run's provenance beside matbench's own digest."""
    out = {}
    for module, path in sorted(_imported.items()):
        files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
        digest = hashlib.sha256()
        for file in files:
            try:
                digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
            except OSError:
                digest.update(file.name.encode() + b"\0unreadable\0")
        out[module] = digest.hexdigest()
    return out


def _locate(module: str, folders: Sequence[Path]) -> tuple[Path, Path] | None:
    """(folder, file) of a plugin found in a folder, remembered for child processes."""
    relative = Path(*module.split("."))
    for folder in _plugin_folders(folders):
        for path in (folder / f"{relative}.py", folder / relative / "__init__.py"):
            if path.is_file():
                known = os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep)
                if str(folder) not in known:
                    os.environ[PLUGIN_PATH_ENV] = os.pathsep.join(
                        filter(None, [*known, str(folder)])
                    )
                return folder, path
    return None


def _import_from_folder(module: str, folder: Path) -> None:
    """Import ``module`` (and its parent packages) from files under ``folder``, without
    putting the folder on sys.path."""
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        if name in sys.modules and depth < len(parts):
            continue
        base = folder.joinpath(*parts[:depth])
        package = base / "__init__.py"
        if package.is_file():
            spec = importlib.util.spec_from_file_location(
                name, package, submodule_search_locations=[str(base)]
            )
        else:
            spec = importlib.util.spec_from_file_location(name, base.with_suffix(".py"))
        if spec is None or spec.loader is None:
            raise ImportError(f"no module named '{name}' in {folder}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            sys.modules.pop(name, None)
            raise


def _warn_if_others_can_write(folder: Path) -> None:
    try:
        mode = folder.stat().st_mode
    except OSError:
        return
    if mode & stat.S_IWOTH:
        log.warning(
            f"plugin folder {folder} can be written by every user of this machine: "
            "anyone could change the code this run imports"
        )


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
