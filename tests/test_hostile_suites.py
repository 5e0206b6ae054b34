"""Hostile suites and options: everything knowable before measuring is refused before it,
in one line at its YAML line, with exit code 2 (issue 17's classes 1, 2, 3 and 5).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from bench_cli import spec
from bench_cli.errors import UserError

HEAD = """\
name: hostile
inputs: {kind: spd, batch: 2, dim: 4, condition: 10.0}
methods:
  eig: {layer: matrix_function, func: sqrt, method: eig}
metrics: [forward_error, time]
"""


def _one_line(result, *fragments, line=None):
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(lines) == 1 and lines[0].startswith("matbench: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    if line is not None:
        assert f".yaml:{line}:" in lines[0], lines[0]
    return lines[0]


def _suite(write_suite, text):
    return write_suite(textwrap.dedent(text))


# ---------------------------------------------------------------- class 1: grid and labels


@pytest.mark.parametrize("values", ["[3, 3, 5]", "[3, 5, 3.0]"])
def test_a_repeated_grid_value_is_refused_at_its_line(cli, write_suite, values):
    suite = _suite(
        write_suite,
        f"""\
        name: hostile
        inputs: {{kind: spd, batch: 2, dim: 4, condition: 10.0}}
        methods:
          ns:
            layer: matrix_function
            func: sqrt
            method: newton_schulz
            iters: {values}
        metrics: [forward_error]
        """,
    )
    _one_line(cli("validate", suite), "repeated value", "iters", line=8)


def test_a_repeated_input_value_is_refused(cli, write_suite):
    text = HEAD.replace("dim: 4", "dim: [4, 8, 4]")
    _one_line(cli("validate", _suite(write_suite, text)), "repeated value", "dim", line=2)


def test_two_methods_that_expand_to_one_label_are_refused(cli, write_suite):
    suite = _suite(
        write_suite,
        """\
        name: hostile
        inputs: {kind: spd, batch: 2, dim: 4, condition: 10.0}
        methods:
          ns: {layer: matrix_function, func: sqrt, method: newton_schulz, iters: [3, 5]}
          "ns[iters=3]": {layer: matrix_function, func: sqrt, method: newton_schulz, iters: 4}
        metrics: [forward_error]
        """,
    )
    _one_line(cli("validate", suite), "label 'ns[iters=3]'", line=5)


# ---------------------------------------------------------------- class 2: tables


@pytest.mark.parametrize(
    "table, fragment",
    [
        ("{title: T, metric: time.fwd_bwd.p99}", "'time.fwd_bwd.p99' is not a value"),
        ("{title: T, metric: forward_error.median}", "'forward_error.median' is not a value"),
        ("{title: T, metric: time}", "'time' is not a value"),
        ("{title: T, metric: forward_error, scaling: method}", "not a numeric axis"),
        ("{title: T, metric: forward_error, rows: [method, method]}", "twice"),
        ("{title: T, metric: forward_error, rows: [method], cols: [method]}", "twice"),
        ("{title: " + "x" * 300 + ", metric: forward_error}", "at most 200"),
        ("{title: T, file: " + "f" * 200 + ", metric: forward_error}", "at most 100"),
    ],
)
def test_table_mistakes_are_refused_before_measuring(cli, write_suite, table, fragment):
    suite = _suite(write_suite, HEAD + f"tables:\n  - {table}\n")
    _one_line(cli("validate", suite), fragment, line=7)
    _one_line(cli("run", suite, "--out", "never"), fragment)
    assert not os.path.exists("never")  # refused before any folder, before measuring


def test_a_long_title_makes_a_short_file_name(write_suite):
    title = "A " * 90  # 180 characters: allowed, and slugged to a safe length
    table = f"tables:\n  - {{title: {title}, metric: time.fwd}}\n"
    suite = spec.load(_suite(write_suite, HEAD + table))
    assert len(suite.tables[0].stem) <= 80


# ---------------------------------------------------------------- class 3: numbers


@pytest.mark.parametrize(
    "old, new, fragment",
    [
        ("condition: 10.0", "condition: .inf", "finite"),
        ("condition: 10.0", "condition: 1e400", "finite"),
        ("condition: 10.0", "condition: .nan", "finite"),
        ("metrics: [forward_error, time]", "metrics: [{time: {budget_s: .inf}}]", "finite"),
        ("metrics: [forward_error, time]", "timeout: .inf\nmetrics: [time]", "finite"),
        (
            "metrics: [forward_error, time]",
            "timeout: 1e300\nmetrics: [time]",
            "less than or equal to 604800",
        ),
    ],
)
def test_infinite_and_absurd_numbers_are_refused(cli, write_suite, old, new, fragment):
    suite = _suite(write_suite, HEAD.replace(old, new))
    _one_line(cli("validate", suite), fragment)


@pytest.mark.parametrize("value", ["inf", "nan", "1e300", "-1"])
def test_a_bad_timeout_option_is_one_line(cli, write_suite, value):
    suite = _suite(write_suite, HEAD)
    _one_line(cli("run", suite, "--timeout", value, "--out", "never"), "--timeout")
    assert not os.path.exists("never")


@pytest.mark.parametrize(
    "option, value",
    [("--budget", "inf"), ("--budget", "nan"), ("--condition", "inf"), ("--samples", "0")],
)
def test_advise_checks_its_numbers(cli, option, value):
    argv = ["advise", "--func", "sqrt", "--batch", "2", "--dim", "4", "--device", "cpu"]
    _one_line(cli(*argv, option, value), option)


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "-3"])
def test_a_bad_worker_grace_is_one_line(cli, write_suite, monkeypatch, value):
    monkeypatch.setenv("MATBENCH_WORKER_GRACE_S", value)
    suite = _suite(write_suite, HEAD)
    _one_line(cli("run", suite, "--isolate", "--out", "never"), "MATBENCH_WORKER_GRACE_S")
    assert not os.path.exists("never")


# ---------------------------------------------------------------- class 5: bounded parsing


def test_an_alias_bomb_is_refused_quickly(cli, write_suite):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    text = HEAD + "description: {" + ", ".join(lines) + "}\n"
    _one_line(cli("validate", _suite(write_suite, text)), "YAML nodes")


def test_deep_nesting_is_refused(cli, write_suite):
    text = HEAD + "description: " + "[" * 5000 + "]" * 5000 + "\n"
    _one_line(cli("validate", _suite(write_suite, text)), "nested")


def test_a_list_as_a_mapping_key_is_refused(cli, write_suite):
    text = HEAD + "? [a, b]\n: 1\n"
    _one_line(cli("validate", _suite(write_suite, text)), "key", line=6)


def test_a_5000_digit_integer_is_refused(cli, write_suite):
    text = HEAD.replace("batch: 2", "batch: " + "9" * 5000)
    _one_line(cli("validate", _suite(write_suite, text)), "digits")


def test_a_suite_file_over_the_size_limit_is_refused(cli, write_suite):
    text = HEAD + "# " + "x" * (spec.MAX_SUITE_BYTES + 10) + "\n"
    _one_line(cli("validate", _suite(write_suite, text)), "bytes")


def test_dev_zero_is_refused(cli):
    _one_line(cli("validate", "/dev/zero"), "not a regular file")


def test_a_fifo_without_a_writer_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "suite.yaml"
    os.mkfifo(fifo)
    done = subprocess.run(  # a subprocess, so a regression hangs there and is killed
        [sys.executable, "-m", "bench_cli", "validate", str(fifo)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "not a regular file" in done.stderr, done.stderr


def test_a_grid_over_the_case_ceiling_is_refused_before_expanding(cli, write_suite):
    values = "[" + ", ".join(str(i) for i in range(2, 102)) + "]"
    text = (
        HEAD.replace("batch: 2", f"batch: {values}")
        .replace("dim: 4", f"dim: {values}")
        .replace("condition: 10.0", f"condition: {values}")
    )
    suite = _suite(
        write_suite,
        text.replace("eig: {", f"eig: {{iters: {values}, ").replace(
            "method: eig", "method: newton_schulz"
        ),
    )
    _one_line(cli("validate", suite), "100,000,000 cases", "--max-cases")


def test_the_case_ceiling_can_be_raised(cli, write_suite):
    text = HEAD.replace("dim: 4", "dim: [2, 3, 4, 5]")
    suite = _suite(write_suite, text)
    _one_line(cli("validate", suite, "--max-cases", "3"), "4 cases", "--max-cases")
    result = cli("validate", suite, "--max-cases", "4")
    assert result.exit_code == 0 and "4 cases" in result.stdout
    _one_line(cli("plan", suite, "--max-cases", "3"), "4 cases")
    _one_line(cli("run", suite, "--max-cases", "3", "--out", "never"), "4 cases")


def test_the_ceiling_is_checked_by_the_library_too(write_suite):
    text = HEAD.replace("dim: 4", "dim: [2, 3, 4, 5]")
    with pytest.raises(UserError, match="4 cases"):
        spec.load(_suite(write_suite, text), max_cases=3)


def test_plan_streams_a_large_grid_as_lines(cli, write_suite, monkeypatch):
    from bench_cli.cli import planning

    monkeypatch.setattr(planning, "PLAN_TABLE_ROWS", 3)
    suite = _suite(write_suite, HEAD.replace("dim: 4", "dim: [2, 3, 4, 5]"))
    result = cli("plan", suite, "--results", "nowhere")
    lines = result.stdout.splitlines()
    assert result.exit_code == 0, result.output
    assert lines[:2] == ["hostile: 4 cases", "key\tmethod\tinputs\tdevice\tdtype\tstatus"]
    assert [line.split("\t")[2] for line in lines[2:6]] == [
        f"batch=2, dim={d}, condition=10.0" for d in (2, 3, 4, 5)
    ]
    assert lines[-1] == "0 done, 4 to do"
