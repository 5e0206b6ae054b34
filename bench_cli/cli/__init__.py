"""The ``matbench`` command line: each module parses its commands' arguments, calls
:mod:`bench_cli.api` and prints.

Every command turns a :class:`~bench_cli.errors.UserError` into one line on stderr and
exit code 2; ``--debug`` (anywhere on the command line) shows the traceback instead.
Modules that import torch (registry, runner, env, advise) are imported inside the
commands that run something: show, compare, report and merge never load torch.
"""

from bench_cli.cli import advising, listing, planning, reading, running
from bench_cli.cli.app import app, main

# The commands, in the order `matbench --help` lists them.
COMMANDS = (
    ("run", running.run),
    ("reproduce", running.reproduce),
    ("compare", reading.compare),
    ("hardware", reading.hardware),
    ("report", reading.report_),
    ("advise", advising.advise),
    ("merge", reading.merge),
    ("validate", planning.validate),
    ("plan", planning.plan),
    ("list", listing.list_),
    ("show", reading.show),
    ("env", reading.env),
)
for _name, _command in COMMANDS:
    app.command(_name)(_command)

__all__ = ["COMMANDS", "app", "main"]
