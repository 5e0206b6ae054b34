"""Damaged run folders: every command that reads one answers in one line, never a traceback.

One good run is measured once; each example copies it, damages the copy the way a
disk, an editor or a hostile user would (a record of the wrong shape, a corrupt or
wrong-shape run.json or env.json, a missing suite.yaml, a file replaced by a folder
or by a link to a file outside the run), and runs one command on it: show, compare
(either side), report, merge, plan or run (resume). CI runs 320 examples.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bench_cli.cli import app
from tests.test_hostile_input import _paths

RUNNER = CliRunner()
FILES = ("run.json", "env.json", "suite.yaml", "records.jsonl")

SUITE = """\
name: damaged
seed: 1
inputs: {kind: spd, batch: 2, dim: 3, condition: 10.0}
methods:
  log: {layer: matrix_function, func: log, method: autograd}
  sqrt: {layer: matrix_function, func: sqrt, method: eig}
metrics:
  - time: {budget_s: 0.001, warmup: 1, min_repeats: 2, max_repeats: 3}
  - forward_error
tables:
  - {title: Time, metric: time.fwd_bwd.median}
  - {title: Error, metric: forward_error, cols: [dim]}
"""


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("good")
    (root / "suite.yaml").write_text(SUITE)
    result = RUNNER.invoke(app, ["run", str(root / "suite.yaml"), "--out", str(root / "run")])
    assert result.exit_code == 0, result.output
    return root


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _mutate(data, draw):
    """Delete or replace one value somewhere inside a JSON document (or the whole)."""
    paths = list(_paths(data))
    if not paths or draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    target = draw(st.sampled_from(paths))
    parent = data
    for part in target[:-1]:
        parent = parent[part]
    if draw(st.booleans()):
        del parent[target[-1]]
    else:
        parent[target[-1]] = draw(json_values)
    return data


def damage(folder: Path, outside: Path, draw) -> str:
    """Damage a copy of the good run in one way; return what was done."""
    kind = draw(
        st.sampled_from(
            ["record", "record", "record", "json-file", "bytes", "delete", "folder", "link"]
        )
    )
    if kind == "record":
        lines = (folder / "records.jsonl").read_text().splitlines()
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = json.dumps(_mutate(json.loads(lines[i]), draw))
        (folder / "records.jsonl").write_text("\n".join(lines) + "\n")
        return f"record {i}"
    name = draw(st.sampled_from(FILES if kind != "json-file" else ("run.json", "env.json")))
    path = folder / name
    if kind == "json-file":
        path.write_text(json.dumps(_mutate(json.loads(path.read_text()), draw)))
    elif kind == "bytes":
        data = path.read_bytes()
        cut = draw(st.integers(0, len(data)))
        path.write_bytes(data[:cut] + draw(st.binary(max_size=12)) + data[cut:])
    elif kind == "delete":
        path.unlink()
    elif kind == "folder":
        path.unlink()
        path.mkdir()
    else:
        name = draw(st.sampled_from((*FILES, "tables")))
        path = folder / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        path.symlink_to(outside)
    return f"{kind} {name}"


COMMANDS = ["show", "show-md", "compare-ab", "compare-ba", "report", "merge", "plan", "run"]


def _argv(command: str, good: Path, damaged: Path, scratch: Path) -> list[str]:
    suite = str(good / "suite.yaml")
    return {
        "show": ["show", str(damaged)],
        "show-md": ["show", str(damaged), "--format", "md"],
        "compare-ab": ["compare", str(good / "run"), str(damaged)],
        "compare-ba": ["compare", str(damaged), str(good / "run")],
        "report": ["report", str(damaged), "--out", str(scratch / "report.html")],
        "merge": ["merge", str(damaged), "--out", str(scratch / "merged")],
        "plan": ["plan", suite, "--out", str(damaged)],
        "run": ["run", suite, "--out", str(damaged)],
    }[command]


@settings(
    max_examples=320,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.slow
@given(st.data())
def test_no_command_raises_on_a_damaged_folder(good_run, data):
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        damaged = scratch / "run"
        shutil.copytree(good_run / "run", damaged, symlinks=True)
        outside = scratch / "outside.txt"
        outside.write_text("not matbench's\n")
        what = damage(damaged, outside, data.draw)
        command = data.draw(st.sampled_from(COMMANDS))
        result = RUNNER.invoke(app, _argv(command, good_run, damaged, scratch))
        context = (what, command, result.output, result.stderr)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            context,
            result.exc_info,
        )
        assert result.exit_code in (0, 1, 2), context
        if result.exit_code == 2:  # one error line, last (after any warnings)
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("matbench: error: ")]
            assert len(errors) == 1 and lines[-1] == errors[0], context
        assert outside.read_text() == "not matbench's\n", context  # links are never followed
