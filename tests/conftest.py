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
    monkeypatch.delenv("COLUMNS", raising=False)  # output as piped into a file: unwrapped
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


@pytest.fixture
def fake_timing(monkeypatch):
    """Replace the time metric's measurements by made-up ones: each method (by its
    implementation name) takes the seconds it is given, 1 ms otherwise, in 10 samples
    spread ±1%. Returns a setter for {impl: seconds} and {impl: noise reasons}, so
    rankings and verdicts are tested on known times, under any machine load."""
    from bench_cli.metrics import timing

    seconds: dict[str, float] = {}
    reasons: dict[str, list[str]] = {}

    def value(probe, options, own=None):
        own = own or [seconds.get(probe.method, 1e-3) * (1 + 0.01 * (i % 3 - 1)) for i in range(10)]
        why = reasons.get(probe.method, [])
        out = {"labels": {}, "input_sets": 1, "flush_l2_bytes": None, "peak_gflops": None}
        for mode in options.modes:
            out[mode] = {
                "samples": own, "mode": mode, "clock": "fake", "warmup": 0, "flops": None,
                "noise": {"noisy": bool(why), "reasons": why, "n": len(own)},
            }  # fmt: skip
        return out

    def group(probes, options, names, baselines, **_):  # watch, deadline: no real calls
        values = [value(p, options) for p in probes]
        for v, baseline in zip(values, baselines, strict=True):
            v["interleaved"] = {"methods": list(names), "baseline": None, "order": "fake"}
            if baseline is not None:
                for mode in options.modes:
                    base = values[baseline][mode]["samples"]
                    v[mode]["paired"] = {
                        "baseline": names[baseline],
                        "ratios": [a / b for a, b in zip(v[mode]["samples"], base, strict=True)],
                    }
        return values

    monkeypatch.setattr(timing, "measure_time", value)
    monkeypatch.setattr(timing, "measure_time_group", group)

    def set_times(times: dict[str, float], noisy: dict[str, list[str]] | None = None) -> None:
        seconds.update(times)
        reasons.update(noisy or {})

    return set_times
