"""The Typer application: one-line usage errors, --debug and --version, the entry
point. The commands register themselves from their own modules (bench_cli.cli)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

import bench_cli
from bench_cli.cli.console import (
    STATE,
    install_warnings,
    printable,
)


class _OneLineErrors(TyperGroup):
    """The command group, with a bad option or argument said in one line and exit 2
    (``matbench: error: run: invalid value for '--timeout': ... (got 'ten')``), as every
    other mistake is, instead of a boxed usage screen."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(
                args=argv, prog_name=prog_name, complete_var=complete_var,
                standalone_mode=False, **extra,
            )  # fmt: skip
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        except typer.TyperException as exc:  # click's usage errors
            if not standalone_mode:
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `matbench`: the help
                exc.show()
                sys.exit(getattr(exc, "exit_code", 2))
            sys.exit(_usage_line(exc, argv))
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


def _usage_line(exc: Exception, argv: list[str]) -> int:
    """Print a usage error as one line, with the value given; its exit code."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path.removeprefix("matbench").strip() if ctx is not None else ""
    where = f"{command}: " if command else ""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    param = getattr(exc, "param", None)
    for opt in getattr(param, "opts", []) or []:
        for i, token in enumerate(argv):
            if token == opt and i + 1 < len(argv):
                message += f" (got '{argv[i + 1]}')"
            elif token.startswith(opt + "="):
                message += f" (got '{token.split('=', 1)[1]}')"
    hint = f" (matbench {command} --help)" if command else " (matbench --help)"
    print(f"matbench: error: {where}{printable(message)}{hint}", file=sys.stderr)
    return int(getattr(exc, "exit_code", 2))


app = typer.Typer(
    cls=_OneLineErrors,
    name="matbench",
    help="Accuracy, stability and speed benchmarks for structured (matrix-backprop) layers.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:  # eager: answered before a command is required (or a plugin loaded)
        print(f"matbench {bench_cli.__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    STATE["debug"] = debug or STATE["debug_in_argv"]
    install_warnings()


def main() -> None:
    """Console entry point; accepts --debug after the command name too."""
    argv = sys.argv[1:]
    if "--debug" in argv:
        argv = [a for a in argv if a != "--debug"]
        STATE["debug_in_argv"] = True
    app(args=argv, prog_name="matbench")
