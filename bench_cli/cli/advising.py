"""`matbench advise`: which method, for this function, size and machine."""

from __future__ import annotations

from pathlib import Path

from bench_cli import spec
from bench_cli.cli.console import (
    RichReporter,
    err_console,
    handles_errors,
    out_console,
)
from bench_cli.cli.options import (
    AdviseBatchOpt,
    AdviseBudgetOpt,
    AdviseConditionOpt,
    AdviseDeviceOpt,
    AdviseDimOpt,
    AdviseDtypeOpt,
    AdviseFuncOpt,
    AdviseNeedGradOpt,
    AdviseRankOpt,
    AdviseSamplesOpt,
    AdviseSaveOpt,
    AdviseSuiteOutOpt,
    AdviseToleranceOpt,
    ResultsOpt,
)
from bench_cli.errors import UserError


@handles_errors
def advise(
    func: AdviseFuncOpt,
    batch: AdviseBatchOpt,
    dim: AdviseDimOpt,
    dtype: AdviseDtypeOpt = "float32",
    device: AdviseDeviceOpt = "auto",
    tolerance: AdviseToleranceOpt = 1e-3,
    need_grad: AdviseNeedGradOpt = True,
    budget: AdviseBudgetOpt = 60.0,
    condition: AdviseConditionOpt = 1e2,
    samples: AdviseSamplesOpt = None,
    rank: AdviseRankOpt = None,
    save: AdviseSaveOpt = False,
    suite_out: AdviseSuiteOutOpt = None,
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
    for part in result.render(question):
        console.print(part)
    if suite_out is not None:
        written = advise_mod.write_suites(result, suite_out)
        console.print(f"suites: {', '.join(str(p) for p in written)}")
    for path in result.saved:
        console.print(f"saved: {path}")
