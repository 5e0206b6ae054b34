"""Bringing your own method: the plugins page's example (docs/plugins.md) works as
printed from an empty folder, a signature the layer cannot call is refused in one line
at registration, and an iSQRT written without symmetrisation is compared fairly in a
suite."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench_cli import plugins, registry
from bench_cli.errors import UserError
from bench_cli.layers import matfun

pytestmark = pytest.mark.slow  # make test leaves it out; make test-all runs it

PAGE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _example() -> tuple[dict[str, str], list[str]]:
    """The files and commands of the plugins page's example, as printed."""
    text = PAGE.read_text()
    blocks = re.findall(r"<!-- plugin-example: (\S+) -->\n```\w*\n(.*?)```", text, re.S)
    files = {name: body for name, body in blocks if name != "commands"}
    (commands,) = [body for name, body in blocks if name == "commands"]
    return files, [line for line in commands.splitlines() if line.strip()]


def test_the_readme_plugin_example_runs_as_printed_from_an_empty_folder(tmp_path):
    files, commands = _example()
    assert set(files) == {"isqrt_plugin.py", "isqrt.yaml"} and len(commands) == 3
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "200",
    }
    env.pop("PYTHONPATH", None)  # no PYTHONPATH needed
    env.pop("MATBENCH_PLUGIN_PATH", None)
    outputs = []
    for command in commands:
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        outputs.append(done.stdout + done.stderr)
    assert "isqrt.yaml: ok" in outputs[0]
    assert "isqrt[iters=10]" in outputs[1] and "8 records: 8 ok" in outputs[1]
    assert re.search(r"matrix_function\s+│ isqrt .*iters=5", outputs[2])
    (records,) = (tmp_path / "results" / "isqrt").glob("*/records.jsonl")
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    grad = {r["axes"]["method"]: r for r in rows if r["metric"] == "grad_error"}
    # The plugin declares symmetrises=False: compared with the gradient of f(A) as given;
    # the bundled method with f((A+Aᵀ)/2). Both then agree to the same order.
    assert grad["isqrt[iters=10]"]["metric_options"]["convention"] == "as_given"
    assert grad["ns[iters=10]"]["metric_options"]["convention"] == "symmetrised"
    assert grad["isqrt[iters=10]"]["value"] < 1e-2 and grad["ns[iters=10]"]["value"] < 1e-2


@pytest.fixture
def plugin_env(monkeypatch):
    """Reading a suite's plugins: records them in the environment for child processes;
    restored after the test, so no later test's workers inherit them."""
    monkeypatch.delenv(plugins.PLUGIN_PATH_ENV, raising=False)
    monkeypatch.delenv(plugins.SUITE_PLUGINS_ENV, raising=False)


def test_a_suites_plugin_reaches_isolated_workers(tmp_path):
    files, _ = _example()
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATBENCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench_cli", "run", "isqrt.yaml", "--isolate", "--out", "iso"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "8 records: 8 ok" in done.stderr


def test_a_plugin_next_to_the_suite_is_found_from_another_folder(
    cli, tmp_path, register_method, plugin_env
):
    files, _ = _example()  # register_method: the registry is restored after the test
    suite_dir = tmp_path / "elsewhere"
    suite_dir.mkdir()
    for name, body in files.items():
        far = name.replace("isqrt", "isqrt_far")
        (suite_dir / far).write_text(body.replace("isqrt", "isqrt_far"))
    result = cli("validate", suite_dir / "isqrt_far.yaml")  # cwd is tmp_path
    assert result.exit_code == 0, result.output


def test_a_missing_plugin_is_one_line_naming_where_it_looked(
    cli, write_suite, tmp_path, plugin_env
):
    files, _ = _example()
    suite = write_suite(files["isqrt.yaml"].replace("isqrt_plugin", "no_such_plugin"))
    result = cli("validate", suite)
    assert result.exit_code == 2
    assert "plugins[0]" in result.output or "plugins" in result.output
    assert "plugin 'no_such_plugin': cannot import it" in result.output
    assert str(tmp_path) in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "source, message",
    [
        (
            "def bad(A, *, func, iters: int = 5):\n    return A\n",
            "takes 1 positional arguments, but is called with 3 (A, func, p): add func, p",
        ),
        (
            "def bad(A, func, p, scale):\n    return A\n",
            "positional parameter scale is never passed: make it keyword-only",
        ),
        (
            "def bad(A, func, p=None, *, iters):\n    return A\n",
            "option iters has no default: give it one",
        ),
    ],
)
def test_a_wrong_signature_is_refused_at_registration_in_one_line(source, message):
    space: dict = {}
    exec(source, space)  # noqa: S102 -- the test's own fixed text
    with pytest.raises(UserError) as caught:
        registry.register_method("matrix_function", "bad_signature", space["bad"])
    text = str(caught.value)
    assert text.startswith("register_method('matrix_function', 'bad_signature'): ")
    assert message in text and "expected fn(A, func, p, *, option=default, ...)" in text
    assert "\n" not in text
    assert "bad_signature" not in registry.LAYERS["matrix_function"].methods


def test_a_right_signature_shows_its_real_options(register_method):
    def mine(A, func, p=None, *, iters: int = 7, scale: float = 1.0):
        """Mine."""
        return matfun.eig_dk_matrix_function(A, func, p)

    register_method(mine)
    model = registry.options_model("matrix_function", "mine")
    assert model.model_fields["iters"].default == 7
    assert model.model_fields["scale"].default == 1.0


def _isqrt_as_fast_mpn_cov_writes_it(A, func, p=None, *, iters: int = 5):
    """Coupled Newton-Schulz with trace normalisation on A as given, autograd backward."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand_as(A)
    trace = A.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    Y, Z = A / trace, eye
    for _ in range(iters):
        T = 0.5 * (3.0 * eye - Z @ Y)
        Y, Z = Y @ T, T @ Z
    return Y * trace.sqrt()


SUITE = """\
name: isqrt-conventions
seed: 2
dtype: [float64]
inputs: {kind: spd, batch: [3], dim: [12], condition: [50.0]}
methods:
  isqrt: {layer: matrix_function, func: sqrt, method: isqrt_t, iters: 12}
  ns: {layer: matrix_function, func: sqrt, method: newton_schulz, iters: 12}
metrics: [forward_error, {grad_error: {convention: CONVENTION}}]
"""


@pytest.mark.parametrize("declared", [False, True])
def test_an_unsymmetrised_isqrt_is_compared_fairly_only_by_its_own_convention(
    cli, write_suite, tmp_path, register_method, declared
):
    """The iSQRT-style method is right, so the convention it computes must score it like
    the bundled Newton-Schulz; the other convention must call it about 100 % wrong (a
    deliberately wrong reference makes the check fail)."""

    def isqrt_t(A, func, p=None, *, iters: int = 5):
        return _isqrt_as_fast_mpn_cov_writes_it(A, func, p, iters=iters)

    register_method(isqrt_t, funcs=("sqrt",), symmetrises=declared)
    values, used = {}, {}
    for convention in ("method", "symmetrised", "as_given"):
        suite = write_suite(SUITE.replace("CONVENTION", convention), name=f"{convention}.yaml")
        assert cli("run", suite, "--out", convention).exit_code == 0
        lines = (tmp_path / convention / "records.jsonl").read_text().splitlines()
        for record in map(json.loads, lines):
            if record["metric"] == "grad_error":
                values[(convention, record["axes"]["method"])] = record["value"]
                used[(convention, record["axes"]["method"])] = record["metric_options"]
    ns_error = values[("symmetrised", "ns")]
    assert ns_error < 1e-3
    # Its own convention (as_given) matches the bundled method's accuracy ...
    assert values[("as_given", "isqrt")] < 10 * ns_error + 1e-6
    # ... and the symmetrised reference calls the same right gradient about 100 % wrong.
    assert values[("symmetrised", "isqrt")] > 0.3
    expected = "symmetrised" if declared else "as_given"
    assert values[("method", "isqrt")] == values[(expected, "isqrt")]
    assert used[("method", "isqrt")]["convention"] == expected
