"""Nothing mixed: a plugin is part of the code under test (its source digest is in the
run's provenance, so an edited plugin is refused on resume like an edited matbench, and
with --allow-mixed the mixed cells are marked), and a plugin cannot reach outside its
case (its folder never joins sys.path; a plugin that moves the working folder or rewrites
sys.argv is refused; a module name already imported is refused; validate names the code
it imports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import matbench

pytestmark = pytest.mark.slow  # subprocesses: make test leaves it out; make test-all runs it

PLUGIN = '''
import torch
from bench_cli.registry import register_method

SCALE = {scale}


def mysqrt(A, func, p=None):
    """A square root through eigh, scaled by SCALE (1 is right)."""
    w, V = torch.linalg.eigh((A + A.mT) / 2)
    return SCALE * (V * w.clamp_min(0).sqrt().unsqueeze(-2)) @ V.mT
{extra}

register_method("matrix_function", "mysqrt", mysqrt, funcs=("sqrt",))
'''

SUITE = """\
name: sqrtplug
plugins: [sqrtplug]
dtype: [float64]
inputs: {kind: spd, batch: [2], dim: [4, 8], condition: [10.0]}
methods:
  mysqrt: {layer: matrix_function, func: sqrt, method: mysqrt}
metrics: [forward_error]
"""


def _write(folder: Path, scale: float = 1.0, extra: str = "") -> None:
    (folder / "sqrtplug.py").write_text(PLUGIN.format(scale=scale, extra=extra))
    (folder / "sqrtplug.yaml").write_text(SUITE)


def _records(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "records.jsonl").read_text().splitlines()]


def test_an_edited_plugin_is_a_changed_version_and_mixed_cells_are_marked(tmp_path):
    _write(tmp_path)
    first = matbench(tmp_path, "run", "sqrtplug.yaml", "--filter", "dim=4", "--out", "r")
    assert first.returncode == 0, first.stderr
    _write(tmp_path, scale=3.0)  # the method under test now returns 3·√A
    again = matbench(tmp_path, "run", "sqrtplug.yaml", "--out", "r")
    assert again.returncode == 2, again.stderr
    (line,) = [x for x in again.stderr.splitlines() if x.strip()]
    assert "plugin 'sqrtplug' changed" in line and "--allow-mixed" in line
    assert len(_records(tmp_path / "r")) == 1  # nothing measured by the edited plugin

    mixed = matbench(tmp_path, "run", "sqrtplug.yaml", "--out", "r", "--allow-mixed")
    assert mixed.returncode == 0, mixed.stderr
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    digests = [i["provenance"]["plugins"]["sqrtplug"] for i in run["invocations"]]
    assert len(digests) == 2 and digests[0] != digests[1]  # the refused resume left none
    by_dim = {r["axes"]["dim"]: r for r in _records(tmp_path / "r")}
    assert by_dim[4]["value"] < 1e-12 and by_dim[8]["value"] > 1.0  # two versions indeed
    assert "invocation" not in by_dim[4] and by_dim[8]["invocation"] == 1
    shown = matbench(tmp_path, "show", "r", env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    marked = [x for x in shown.stdout.splitlines() if "†1" in x]
    assert len(marked) == 1 and "8" in marked[0], shown.stdout  # the dim=8 cell only
    assert "†N: measured by the code of invocation N" in " ".join(shown.stdout.split())


def test_an_unchanged_plugin_resumes_without_a_mark(tmp_path):
    _write(tmp_path)
    assert (
        matbench(tmp_path, "run", "sqrtplug.yaml", "--filter", "dim=4", "--out", "r").returncode
        == 0
    )
    again = matbench(tmp_path, "run", "sqrtplug.yaml", "--out", "r")
    assert again.returncode == 0, again.stderr
    assert all("invocation" not in r for r in _records(tmp_path / "r"))
    shown = matbench(tmp_path, "show", "r", env={"COLUMNS": "200"})
    assert "†" not in shown.stdout


def test_a_module_beside_the_suite_does_not_shadow_an_installed_one(tmp_path):
    _write(tmp_path)
    (tmp_path / "matplotlib.py").write_text("raise SystemExit('the wrong matplotlib')\n")
    (tmp_path / "pandas.py").write_text("raise SystemExit('the wrong pandas')\n")
    # The installed command, as a user runs it (`python -m` would put the folder first).
    command = [str(Path(sys.executable).parent / "matbench"), "run", "sqrtplug.yaml"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [*command, "--out", "r"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "the wrong" not in done.stderr + done.stdout
    assert list((tmp_path / "r").glob("tables/*.md")), "no tables"
    assert list((tmp_path / "r").glob("plots/*.png")), "no plots"


def _one_line(done) -> str:
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr)
    return lines[0]


def test_a_plugin_that_moves_the_working_folder_is_refused(tmp_path):
    _write(
        tmp_path,
        extra="\nimport os\nos.makedirs('elsewhere', exist_ok=True)\nos.chdir('elsewhere')\n",
    )
    line = _one_line(matbench(tmp_path, "run", "sqrtplug.yaml", "--out", "r-noisy"))
    assert "plugin 'sqrtplug' changed the working folder" in line
    assert not (tmp_path / "r-noisy").exists() and not (tmp_path / "elsewhere" / "r-noisy").exists()


def test_a_plugin_that_rewrites_argv_is_refused(tmp_path):
    _write(tmp_path, extra="\nimport sys\nsys.argv[1:] = ['something', 'else']\n")
    line = _one_line(matbench(tmp_path, "run", "sqrtplug.yaml", "--out", "r"))
    assert "plugin 'sqrtplug' changed sys.argv" in line


def test_a_name_already_imported_is_refused(tmp_path):
    _write(tmp_path)
    for name in ("os", "bench_cli.cli"):
        (tmp_path / "sqrtplug.yaml").write_text(SUITE.replace("[sqrtplug]", f"[{name}]"))
        line = _one_line(matbench(tmp_path, "validate", "sqrtplug.yaml"))
        assert f"plugin '{name}': a module of that name is already imported" in line


def test_validate_names_the_plugin_code_and_warns_of_a_folder_others_can_write(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    _write(folder)
    done = matbench(folder, "validate", "sqrtplug.yaml")
    assert done.returncode == 0, done.stderr
    assert f"imports plugin sqrtplug from {folder / 'sqrtplug.py'}" in done.stdout
    assert "can be written by every user" not in done.stderr
    os.chmod(folder, 0o777)
    done = matbench(folder, "validate", "sqrtplug.yaml")
    assert done.returncode == 0 and "can be written by every user" in done.stderr


def test_a_cold_start_of_a_plugin_method_imports_the_plugin_in_its_fresh_process(tmp_path):
    _write(tmp_path)
    suite = SUITE.replace("metrics: [forward_error]", "metrics:\n  - first_call: {repeats: 1}")
    (tmp_path / "sqrtplug.yaml").write_text(suite.replace("dim: [4, 8]", "dim: [4]"))
    done = matbench(tmp_path, "run", "sqrtplug.yaml", "--out", "r")
    assert done.returncode == 0, done.stderr
    (record,) = _records(tmp_path / "r")
    assert record["status"] == "ok", record["reason"]  # the child found mysqrt
    assert record["value"]["fwd_s"]["samples"][0] > 0
