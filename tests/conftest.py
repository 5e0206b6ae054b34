from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench_cli.cli import app

BASE_SUITE = """\
name: tiny
description: a tiny suite for tests
seed: 3
inputs:
  kind: spd
  batch: [2]
  dim: [3, 4]
  condition: [10.0]
methods:
  log: {layer: matrix_function, func: log, method: autograd}
  sqrt: {layer: matrix_function, func: sqrt, method: autograd}
metrics:
  - time: {budget_s: 0.002, warmup: 1, min_repeats: 2, max_repeats: 3}
  - forward_error
tables:
  - title: Time
    metric: time.fwd_bwd.median
    cols: [dim]
"""


@pytest.fixture
def write_suite(tmp_path: Path):
    """Write YAML text (dedented) to a file and return its path."""

    def write(text: str = BASE_SUITE, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def cli(tmp_path: Path, monkeypatch):
    """Invoke the CLI in a temporary working directory; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, [str(a) for a in args])
        return result

    return invoke


@pytest.fixture
def register_method(monkeypatch):
    """Register methods through registry.register_method for one test, then undo it."""
    from bench_cli import registry

    saved = {name: dict(layer.methods) for name, layer in registry.LAYERS.items()}
    yield lambda fn, layer="matrix_function", **facts: registry.register_method(
        layer, fn.__name__, fn, **facts
    )
    for name, methods in saved.items():
        registry.LAYERS[name].methods.clear()
        registry.LAYERS[name].methods.update(methods)
    registry.options_model.cache_clear()


# ---------------------------------------------------------------- the Slurm tests, by name

_slurm_reports: list = []


def pytest_runtest_logreport(report):
    if report.when == "call" and "slurm" in report.keywords:
        _slurm_reports.append(report)


def pytest_terminal_summary(terminalreporter):
    """Name each test that ran on the Slurm cluster, its outcome and time (CI's log)."""
    if not _slurm_reports:
        return
    terminalreporter.section("tests on the Slurm cluster")
    for report in _slurm_reports:
        terminalreporter.write_line(
            f"{report.outcome.upper():7} {report.nodeid} ({report.duration:.1f} s)"
        )
    total = sum(report.duration for report in _slurm_reports)
    terminalreporter.write_line(f"{len(_slurm_reports)} tests, {total:.0f} s in all")
