"""The small frictions a first user hit: each is one clear line (exit 2) that says
what to do, or output that stays readable when it is not a terminal."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_bad_input import _check_one_line

TWO_MISTAKES = """\
name: two
inputs: {kind: spd, dim: [4]}
methods:
  ns: {layer: matrix_function, func: sqrt, method: newton_schulz, iterz: 3}
  e: {layer: matrix_function, func: sqrt, method: eig, gap: nope}
  f: {layer: matrix_function, func: sqrt, method: eig, gap_epz: 1}
  g: {layer: matrix_function, func: sqrt, method: eig, degre: 1}
metrics: [forward_error]
"""


def test_the_next_errors_are_said_not_only_counted(cli, write_suite):
    result = cli("validate", write_suite(TWO_MISTAKES))
    _check_one_line(
        result,
        [
            "methods.ns.iterz: unknown key 'iterz' (did you mean 'iters'?)",
            "; also line 6 methods.f.gap_epz: unknown key 'gap_epz'",
            "line 7 methods.g.degre: unknown key 'degre'",
            "(and 1 more error)",
        ],
    )


def test_an_unknown_option_lists_the_methods_valid_ones(cli, write_suite):
    result = cli("validate", write_suite(TWO_MISTAKES))
    _check_one_line(result, ["valid: func, p, iters, norm, backward"])


def test_a_misspelt_bundled_suite_name_suggests_the_right_one(cli):
    result = cli("run", "smok")
    _check_one_line(result, ["smok: no such suite file", "(did you mean 'smoke'?)", "bundled: "])


def test_an_explicit_device_this_machine_lacks_is_one_line(cli, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = cli("run", "smoke", "--device", "cuda", "--out", "run")
    _check_one_line(result, ["--device cuda: CUDA is not available on this machine"])
    assert not (tmp_path / "run").exists()  # refused before any folder


def test_a_suites_own_absent_device_is_still_recorded_as_skipped(
    cli, write_suite, tmp_path, monkeypatch
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    suite = write_suite(
        "name: both\ndevice: [cpu, cuda]\ninputs: {kind: spd, dim: [3]}\n"
        "methods:\n  a: {layer: matrix_function, func: sqrt, method: autograd}\n"
        "metrics: [forward_error]\n"
    )
    result = cli("run", suite, "--out", "run")
    assert result.exit_code == 0
    assert "1 skipped" in result.output and "CUDA is not available" in result.output


@pytest.mark.slow
def test_paths_are_not_wrapped_when_stderr_is_not_a_terminal(tmp_path):
    out = tmp_path / ("a-rather-long-folder-name-" * 3) / "run"
    done = subprocess.run(
        [sys.executable, "-m", "bench_cli", "run", "smoke", "--filter", "dim=16",
         "--filter", "dtype=float64", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"records: {out / 'records.jsonl'}" in done.stderr.splitlines()


@pytest.mark.parametrize("args", [["--version"]])
def test_version_alone_prints_the_version(cli, args):
    result = cli(*args)
    assert result.exit_code == 0 and result.output.strip()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "smoke", "--timeout", "ten"], ["run: ", "'--timeout'", "(got 'ten')"]),
        (["run", "smoke", "--timeout=ten"], ["(got 'ten')"]),
        (["run"], ["run: ", "Missing argument"]),
        (["frobnicate"], ["No such command 'frobnicate'"]),
        (["list", "--wat"], ["list: ", "No such option"]),
    ],
)
@pytest.mark.slow
def test_a_bad_option_is_one_line_that_echoes_the_value(args, fragments, tmp_path):
    """Through the real entry point: click's usage errors, one line and exit 2 like every
    other mistake, not a boxed usage screen."""
    done = subprocess.run(
        [sys.executable, "-m", "bench_cli", *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("matbench: error: "), done.stderr
    assert all(fragment in lines[0] for fragment in fragments), lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("what", ["methods", "metrics"])
def test_list_fits_the_columns_it_is_given(what, tmp_path):
    import os

    done = subprocess.run(
        [sys.executable, "-m", "bench_cli", "list", what], cwd=tmp_path, capture_output=True,
        text=True, env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import unicodedata

    def width(line: str) -> int:  # K̃ is K and a combining tilde: one column
        return sum(not unicodedata.combining(c) for c in line)

    assert max(width(line) for line in done.stdout.splitlines()) <= 100


def test_an_unknown_method_hints_at_a_missing_plugin(cli, write_suite):
    suite = write_suite(
        "name: p\ninputs: {kind: spd, dim: 4}\n"
        "methods:\n  m: {layer: matrix_function, func: sqrt, method: my_sqrt}\n"
        "metrics: [forward_error]\n"
    )
    _check_one_line(cli("validate", suite), ["unknown method", "plugin", "MATBENCH_PLUGINS"])


def test_plan_says_its_estimate_is_a_guess_without_history(cli, write_suite):
    suite = write_suite(
        "name: g\ninputs: {kind: spd, batch: 2, dim: [4, 6]}\n"
        "methods:\n  e: {layer: matrix_function, func: sqrt, method: eig_dk}\n"
        "metrics: [forward_error, {time: {budget_s: 0.05}}]\n"
    )
    first = cli("plan", suite)
    assert first.exit_code == 0 and "a guess" in first.stdout
    assert cli("run", suite).exit_code == 0
    # A new run of it: every case now priced by its own earlier record on this machine.
    second = cli("plan", suite, "--out", "fresh")
    assert second.exit_code == 0 and "a guess" not in second.stdout
    assert "from this machine's earlier records of these cases" in second.stdout
