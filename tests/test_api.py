"""The Python API under the CLI, provenance and resume refusal, imports without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bench_cli
from bench_cli import api, env, spec, store
from bench_cli.provenance import describe, previous_provenance, same_code
from tests.test_bad_input import _check_one_line

ROOT = Path(__file__).resolve().parent.parent


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != ".lock"}


def test_run_suite_writes_the_same_kind_of_folder_as_the_cli(write_suite, cli, tmp_path):
    path = write_suite()
    folder = bench_cli.run_suite(str(path), out=tmp_path / "api")
    assert isinstance(folder, store.RunFolder)
    result = cli("run", path, "--out", "cli")
    assert result.exit_code == 0, result.output
    assert _tree(folder.path) == _tree(tmp_path / "cli")
    keys = lambda f: sorted((r["case"], r["metric"]) for r in f.records())  # noqa: E731
    assert keys(folder) == keys(store.RunFolder(tmp_path / "cli"))
    frame = bench_cli.load_results(folder.path)
    assert len(frame) == len(folder.records()) and {"method", "dim"} <= set(frame.columns)
    (comparison,) = bench_cli.compare_runs([folder.path, tmp_path / "cli"])
    assert not comparison.only_a and not comparison.only_b


def test_run_suite_takes_a_bundled_name_and_reports_bad_input_as_user_errors(tmp_path):
    assert api.resolve_suite("smoke") == api.suites_dir() / "smoke.yaml"
    with pytest.raises(bench_cli.api.UserError, match="suite file not found"):
        bench_cli.run_suite("no-such-suite.yaml", out=tmp_path / "x")
    with pytest.raises(bench_cli.api.UserError, match="executor"):
        bench_cli.run_suite("smoke", out=tmp_path / "x", executor="kubernetes")
    assert not (tmp_path / "x").exists()  # nothing made before the error


def test_explicit_defaults_and_omitted_ones_are_the_same_case():
    def case(method_line: str, inputs: str):
        text = (
            f"name: k\ninputs: {inputs}\nmethods:\n  m: {method_line}\nmetrics: [forward_error]\n"
        )
        (c,) = spec.loads(text).cases()
        return c

    omitted = case("{layer: matrix_function, func: sqrt, method: eig}", "{kind: spd, dim: 4}")
    explicit = case(
        "{layer: matrix_function, func: sqrt, method: eig, gap: exact, degree: 9}",
        "{kind: spd, dim: 4, batch: 8, condition: 100.0}",
    )
    assert omitted.key == explicit.key and omitted.seed == explicit.seed
    other = case(
        "{layer: matrix_function, func: sqrt, method: eig, degree: 8}", "{kind: spd, dim: 4}"
    )
    assert other.key != omitted.key  # a changed value is a different case


def _partial_run(cli, write_suite) -> tuple[Path, Path]:
    path = write_suite()
    result = cli("run", path, "--out", "run", "--filter", "dim=3")
    assert result.exit_code == 0, result.output
    return path, Path.cwd() / "run"


def test_resume_under_other_code_refuses_naming_both_versions(cli, write_suite, monkeypatch):
    path, run = _partial_run(cli, write_suite)
    before = len(store.RunFolder(run).records())
    recorded = json.loads((run / "run.json").read_text())["invocations"][0]["provenance"]
    assert recorded["code"] == env.code_digest() and recorded["torch"]
    # The same code resumes without a word.
    assert cli("run", path, "--out", "run", "--filter", "dim=3").exit_code == 0
    changed = {**recorded, "code": "f" * 64, "git": {"commit": "a" * 40, "dirty": False}}
    monkeypatch.setattr(env, "provenance", lambda: changed)
    result = cli("run", path, "--out", "run")
    _check_one_line(result, ["resuming would mix code versions", "--allow-mixed"])
    assert f"code {recorded['code'][:8]}" in result.stderr and "code ffffffff" in result.stderr
    assert len(store.RunFolder(run).records()) == before  # nothing measured, nothing lost

    result = cli("run", path, "--out", "run", "--allow-mixed")
    assert result.exit_code == 0, result.output
    records = store.RunFolder(run).records()
    old, new = records[:before], records[before:]
    assert new and all(r["invocation"] == 2 for r in new)  # run.json's third invocation
    assert all("invocation" not in r for r in old)
    invocations = json.loads((run / "run.json").read_text())["invocations"]
    assert invocations[2]["provenance"]["code"] == "f" * 64


def test_a_deliberately_equal_provenance_check_would_be_caught():
    # same_code must tell code versions apart: a check that always said "same" fails here.
    base = {"code": "a" * 64, "torch": "2.13.0", "git": {"commit": "c" * 40, "dirty": False}}
    assert same_code(base, dict(base))
    assert not same_code(base, {**base, "code": "b" * 64})
    assert not same_code(base, {**base, "torch": "2.14.0"})
    legacy = {"code": None, "torch": "2.13.0", "git": {"commit": "c" * 40, "dirty": False}}
    assert same_code(legacy, base)  # an older run: the same clean commit
    assert not same_code({**legacy, "git": {"commit": "c" * 40, "dirty": True}}, base)


def test_committed_runs_made_before_provenance_refuse_a_dirty_resume(tmp_path):
    # An old run.json without provenance: judged by env.json's git commit.
    meta = {"invocations": [{"utc": "x", "argv": [], "pid": 1}]}
    old_env = {"matbench": "0.1.0", "git": {"commit": "c" * 40, "dirty": True}, "torch": "t"}
    previous = previous_provenance(meta, old_env)
    assert previous["code"] is None and "commit ccccccc dirty" in describe(previous)


TORCH_FREE = ["show", "compare", "report", "merge"]


@pytest.mark.slow
@pytest.mark.parametrize("command", TORCH_FREE)
def test_reading_commands_import_no_torch(command, tmp_path):
    run = ROOT / "results" / "smoke" / "20261128T072436Z_amd-epyc-ac9bfb"
    args = {
        "show": [str(run)],
        "compare": [str(run), str(run), "--device", "cpu"],
        "report": [str(run), "--out", str(tmp_path / "r.html")],
        "merge": [str(run), "--out", str(tmp_path / "merged")],
    }[command]
    if command == "show":  # show rewrites tables/ and plots/: work on a copy
        import shutil

        shutil.copytree(run, tmp_path / "run")
        args = [str(tmp_path / "run")]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bench_cli", command, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    assert "bench_cli.cli" in imported  # the check sees the imports at all
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_old_committed_runs_still_show_and_align_with_new_records():
    from bench_cli.compare import alignment_key

    run = store.RunFolder(ROOT / "results" / "smoke" / "20261128T072436Z_amd-epyc-ac9bfb")
    assert api.tables_of(run)  # an old folder still makes its tables
    cases = {
        (c.config.label, json.dumps(c.inputs, sort_keys=True), c.device, c.dtype): c
        for c in spec.loads(run.suite_text).cases()
    }
    records = run.records()
    assert records
    for record in records:
        params = record["params"]  # keyed as written, before keys hashed resolved options
        case = cases[
            (params["method"], json.dumps(params["inputs"], sort_keys=True), params["device"],
             params["dtype"])
        ]  # fmt: skip
        assert case.key_params() != params  # this code keys it differently...
        rewritten = {**record, "params": case.key_params()}
        assert alignment_key(rewritten) == alignment_key(record)  # ...and still aligns it


def test_runs_from_before_a_new_default_parameter_still_compare():
    # The older throughput run predates data_seed (a parameter with a default) and keyed
    # its cases by options as written; the newer one has both changes. They still align.
    old = ROOT / "results" / "throughput" / "20261128T080510Z_amd-epyc-ac9bfb"
    new = ROOT / "results" / "throughput" / "20261130T125037Z_intel-xeon-05fb84"
    assert "data_seed" not in store.RunFolder(old).records()[0]["axes"]
    assert "data_seed" in store.RunFolder(new).records()[0]["axes"]
    (comparison,) = bench_cli.compare_runs([old, new])
    assert comparison.rows and not comparison.only_a and not comparison.only_b
