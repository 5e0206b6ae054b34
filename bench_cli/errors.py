"""The one exception type for a user's mistake.

The CLI turns a :class:`UserError` into one line on stderr and exit code 2;
anything else is a bug in matbench and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A bad suite, a missing file, an unknown name: something the user can fix."""


class IncompleteRun(Exception):
    """A run that saved what it measured but could not finish (executor tasks that
    failed or were stopped). The CLI prints the tables, then this line, and exits 1."""

    def __init__(self, message: str, finished):
        super().__init__(message)
        self.finished = finished  # bench_cli.dispatch.Finished: folder, records, tables
        self.folder = finished.folder


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> str:
    """ "unknown <kind> '<name>'", a did-you-mean, and the known names."""
    choices = sorted(choices)
    return f"unknown {kind} '{name}'{did_you_mean(name, choices)}; known: {', '.join(choices)}"
