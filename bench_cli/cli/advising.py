"""`matbench advise`: which method, for this function, size and machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench_cli import spec
from bench_cli.cli.console import (
    RichReporter,
    err_console,
    handles_errors,
    out_console,
)
from bench_cli.cli.options import (
    ResultsOpt,
)
from bench_cli.errors import UserError


@handles_errors
def advise(
    func: Annotated[str, typer.Option("--func", help="sqrt, invsqrt or log.")],
    batch: Annotated[int, typer.Option("--batch", help="Matrices per call.")],
    dim: Annotated[list[int], typer.Option("--dim", help="Matrix size (repeatable).")],
    dtype: Annotated[str, typer.Option("--dtype", help="float32 or float64.")] = "float32",
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "auto",
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance", help="Largest acceptable relative forward and gradient error, in (0, 1]."
        ),
    ] = 1e-3,
    need_grad: Annotated[
        bool,
        typer.Option(
            "--need-grad/--no-grad",
            help="Rank by forward+backward (default) or forward time; check gradients or not.",
        ),
    ] = True,
    budget: Annotated[float, typer.Option("--budget", help="Seconds for the whole advice.")] = 60.0,
    condition: Annotated[
        float, typer.Option("--condition", help="Condition number of the spd probe.")
    ] = 1e2,
    samples: Annotated[
        int | None,
        typer.Option("--samples", help="Samples N of the covariance probe (default 2·dim)."),
    ] = None,
    rank: Annotated[
        int | None,
        typer.Option("--rank", help="Also consider truncated and low-rank methods of this rank."),
    ] = None,
    save: Annotated[
        bool,
        typer.Option(
            "--save", help="Write the advice runs as ordinary run folders under --results."
        ),
    ] = False,
    suite_out: Annotated[
        Path | None,
        typer.Option(
            "--suite-out",
            help="Write the generated suites: FILE (timing) and FILE's siblings "
            "<stem>-spd/-covariance/-stability.yaml.",
        ),
    ] = None,
    results: ResultsOpt = Path("results"),
) -> None:
    """Which method should I use for this function, at these sizes, on this hardware?"""
    from bench_cli import advise as advise_mod

    if dtype not in ("float32", "float64"):
        raise UserError(f"--dtype must be float32 or float64, got '{dtype}'")
    if not spec.DEVICE_PATTERN.match(device):
        raise UserError(f"--device '{device}': expected cpu, cuda, cuda:N, mps or auto")
    question = advise_mod.Question(
        func=func,
        batch=batch,
        dims=list(dim),
        dtype=dtype,
        device=device,
        tolerance=tolerance,
        need_grad=need_grad,
        budget_s=budget,
        condition=condition,
        samples=samples,
        rank=rank,
    )
    question.check()
    err = err_console()
    result = advise_mod.advise(
        question, reporter_factory=lambda: RichReporter(err), save_to=results if save else None
    )
    console = out_console()
    for part in advise_mod.render(result, question):
        console.print(part)
    if suite_out is not None:
        written = advise_mod.write_suites(result, suite_out)
        console.print(f"suites: {', '.join(str(p) for p in written)}")
    for path in result.saved:
        console.print(f"saved: {path}")
