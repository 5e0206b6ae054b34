"""Every bad input: exit code 2, one line naming file, line and key path; no traceback."""

import pytest

GOOD = """\
name: t
inputs:
  kind: spd
  dim: [4, 8]
methods:
  a: {layer: matrix_function, func: log, method: autograd}
metrics: [forward_error]
"""

CASES = {
    # id: (suite text, fragments the one error line must contain)
    "malformed-yaml": ("name: t\ninputs: {kind: spd, dim: [4]\n", [":3:", "malformed YAML"]),
    "empty-file": ("", ["empty suite file"]),
    "top-level-list": ("- a\n- b\n", [":1:", "must be a mapping", "a list"]),
    "unknown-top-key": (
        GOOD.replace("inputs:", "inptus:"),
        [":2:", "inptus", "unknown key", "did you mean 'inputs'"],
    ),
    "unknown-input-param": (
        GOOD.replace("dim:", "dimm:"),
        [":4:", "inputs.dimm", "did you mean 'dim'"],
    ),
    "unknown-method-option": (
        GOOD.replace("func: log,", "func: log, iter: 3,"),
        [":6:", "methods.a.iter", "unknown key"],
    ),
    "unknown-layer": (
        GOOD.replace("layer: matrix_function", "layer: matrix_fn"),
        [":6:", "methods.a.layer", "unknown layer 'matrix_fn'", "did you mean 'matrix_function'"],
    ),
    "unknown-method": (
        GOOD.replace("method: autograd", "method: autograde"),
        [":6:", "methods.a.method", "did you mean 'autograd'"],
    ),
    "unknown-metric": (
        GOOD.replace("[forward_error]", "[forward_eror]"),
        [":7:", "metrics[0]", "did you mean 'forward_error'"],
    ),
    "unknown-input-kind": (
        GOOD.replace("kind: spd", "kind: sdp"),
        [":3:", "inputs.kind", "unknown input kind 'sdp'"],
    ),
    "wrong-type": (
        GOOD.replace("dim: [4, 8]", "dim: [4, abc]"),
        [":4:", "inputs.dim[1]", "valid integer", "'abc'"],
    ),
    "wrong-type-scalar": (
        GOOD.replace("name: t", "name: t\nseed: many"),
        [":2:", "seed", "valid integer"],
    ),
    "negative-size": (
        GOOD.replace("dim: [4, 8]", "dim: [4, -8]"),
        [":4:", "inputs.dim[1]", "greater than 0", "-8"],
    ),
    "zero-size": (GOOD.replace("dim: [4, 8]", "dim: 0"), [":4:", "inputs.dim", "greater than 0"]),
    "empty-grid-axis": (
        GOOD.replace("dim: [4, 8]", "dim: []"),
        [":4:", "inputs.dim", "empty list"],
    ),
    "empty-grid-methods": (
        GOOD.replace("  a: {layer: matrix_function, func: log, method: autograd}\n", "").replace(
            "methods:", "methods: {}"
        ),
        [":5:", "methods", "no methods"],
    ),
    "empty-device-list": (GOOD + "device: []\n", [":8:", "device", "empty list"]),
    "bad-func": (GOOD.replace("func: log", "func: exp"), [":6:", "methods.a.func", "'exp'"]),
    "pow-without-p": (
        GOOD.replace("func: log", "func: pow"),
        [":6:", "methods.a", "needs the exponent p"],
    ),
    "method-func-mismatch": (
        GOOD.replace("method: autograd", "method: newton_schulz"),
        [":6:", "methods.a", "computes func sqrt, invsqrt only, not 'log'"],
    ),
    "bad-name": (GOOD.replace("name: t", "name: Big Name"), [":1:", "name", "pattern"]),
    "duplicate-key": (GOOD + "name: u\n", [":8:", "name", "duplicate key"]),
    "table-unknown-axis": (
        GOOD + "tables: [{title: x, metric: forward_error, cols: [dimm]}]\n",
        [":8:", "tables[0].cols[0]", "did you mean 'dim'"],
    ),
    "table-unmeasured-metric": (
        GOOD + "tables: [{title: x, metric: time.fwd.median}]\n",
        [":8:", "tables[0].metric", "not measured"],
    ),
}


def _check_one_line(result, fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("matbench: error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["validate", "run", "plan"])
def test_bad_suite_is_one_line_exit_2(case, command, cli, write_suite):
    text, fragments = CASES[case]
    path = write_suite(text, name="bad.yaml")
    _check_one_line(cli(command, path), ["bad.yaml", *fragments])


def test_missing_suite_file(cli):
    _check_one_line(cli("run", "nowhere.yaml"), ["nowhere.yaml", "not found"])


def test_output_folder_that_cannot_be_written(cli, write_suite, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = cli("run", write_suite(GOOD), "--out", blocker / "run")
    _check_one_line(result, ["a-file/run", "cannot write"])


def test_bad_filter_and_format(cli, write_suite, tmp_path):
    _check_one_line(cli("run", write_suite(GOOD), "--filter", "dimm=4"), ["did you mean 'dim'"])
    _check_one_line(cli("run", write_suite(GOOD), "--filter", "dim=99"), ["no case matches"])
    _check_one_line(cli("run", write_suite(GOOD), "--device", "gpu"), ["--device 'gpu'"])
    _check_one_line(cli("show", tmp_path), ["not a matbench run folder"])
    _check_one_line(cli("list", "layerz"), ["did you mean 'layers'"])


def test_debug_shows_the_traceback(cli, write_suite):
    path = write_suite(GOOD.replace("dim:", "dimm:"))
    result = cli("--debug", "validate", path)
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception)
    assert "dimm" in str(result.exception)


def test_debug_after_the_command_name_via_main(write_suite, monkeypatch, capsys):
    import sys

    from bench_cli import cli as cli_mod
    from bench_cli.cli import console

    path = write_suite(GOOD.replace("dim:", "dimm:"))
    monkeypatch.setattr(sys, "argv", ["matbench", "validate", str(path), "--debug"])
    monkeypatch.setitem(console.STATE, "debug_in_argv", False)
    with pytest.raises(Exception, match="dimm"):
        cli_mod.main()


def test_metric_that_does_not_apply_names_metric_and_layer(cli, write_suite, monkeypatch):
    import dataclasses

    from bench_cli import registry

    frozen = dataclasses.replace(registry.LAYERS["avg_pool"], differentiable=False)
    monkeypatch.setitem(registry.LAYERS, "avg_pool", frozen)
    text = (
        "name: t\ninputs: {kind: features, samples: 4, channels: 2}\n"
        "methods:\n  avg: {layer: avg_pool}\nmetrics: [forward_error, grad_error]\n"
    )
    _check_one_line(
        cli("validate", write_suite(text)),
        [
            ":5:",
            "metrics[1]",
            "metric 'grad_error' needs gradients",
            "layer 'avg_pool'",
            "not differentiable",
        ],
    )
    forward_only = text.replace(
        "[forward_error, grad_error]", "[forward_error, {time: {modes: [fwd]}}]"
    )
    assert cli("validate", write_suite(forward_only, name="ok.yaml")).exit_code == 0
