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
