"""Crash isolation, sharding and merging."""

import json
from pathlib import Path

import pytest

from tests.helpers import matbench
from tests.test_bad_input import _check_one_line

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # make test leaves it out; make test-all runs it

PLUGIN = '''\
"""Methods that misbehave, registered for the isolation test only."""
import os
import signal
import time

from bench_cli import registry


def segfault(A, func, p=None):
    """Kills its own process with SIGSEGV (test only)."""
    os.kill(os.getpid(), signal.SIGSEGV)


def hang(A, func, p=None):
    """Blocks SIGALRM, then sleeps: only a kill ends it (test only)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(3600)


def boom(A, func, p=None):
    """Raises (test only)."""
    raise RuntimeError("boom from the plugin")


for fn in (segfault, hang, boom):
    registry.register_method("matrix_function", fn.__name__, fn)
'''

SUITE = """\
name: hostile
timeout: 2
inputs: {kind: spd, batch: 2, dim: 4}
methods:
  first: {layer: matrix_function, func: log, method: eig_dk}
  segfault: {layer: matrix_function, func: log, method: segfault}
  hang: {layer: matrix_function, func: log, method: hang}
  boom: {layer: matrix_function, func: log, method: boom}
  last: {layer: matrix_function, func: log, method: autograd}
metrics: [forward_error]
"""


def _matbench(tmp_path, *args, plugin=True):
    env = {
        "MATBENCH_WORKER_GRACE_S": "2",
        **({"MATBENCH_PLUGINS": "misbehaving"} if plugin else {}),
    }
    return matbench(tmp_path, *args, env=env)


def test_isolate_survives_a_segfault_a_hang_and_an_exception(tmp_path):
    (tmp_path / "misbehaving.py").write_text(PLUGIN)
    (tmp_path / "suite.yaml").write_text(SUITE)
    result = _matbench(tmp_path, "run", "suite.yaml", "--isolate", "--out", "run")
    assert result.returncode == 0, result.stderr
    records = {
        json.loads(line)["axes"]["method"]: json.loads(line)
        for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    }
    assert records["first"]["status"] == records["last"]["status"] == "ok"
    assert records["segfault"]["status"] == "failed"
    assert records["segfault"]["reason"].startswith("crashed: SIGSEGV")
    assert "Fatal Python error" in records["segfault"]["reason"]  # the worker's stderr tail
    assert records["hang"]["status"] == "failed"
    assert records["hang"]["reason"].startswith("timeout: worker killed after 4 s")
    assert records["boom"]["status"] == "failed"
    assert records["boom"]["reason"] == "RuntimeError: boom from the plugin"


def _pairs(folder: Path) -> list[tuple[str, str]]:
    return [
        (json.loads(line)["case"], json.loads(line)["metric"])
        for line in (folder / "records.jsonl").read_text().splitlines()
    ]


SHARDED = """\
name: sharded
inputs: {kind: spd, batch: 2, dim: [3, 4, 5, 6]}
methods:
  dk: {layer: matrix_function, func: log, method: eig_dk}
  ag: {layer: matrix_function, func: sqrt, method: autograd}
metrics: [forward_error]
"""


def test_three_shards_merge_into_exactly_the_unsharded_run(cli, write_suite, tmp_path):
    suite = write_suite(SHARDED)
    assert cli("run", suite, "--out", "full").exit_code == 0
    sizes = []
    for i in (1, 2, 3):
        assert cli("run", suite, "--shard", f"{i}/3", "--out", f"s{i}").exit_code == 0
        sizes.append(len(_pairs(tmp_path / f"s{i}")))
    assert sorted(sizes) == [2, 3, 3]  # 8 cases, balanced to within one
    result = cli("merge", "s1", "s2", "s3", "--out", "merged")
    assert result.exit_code == 0, result.output
    merged, full = _pairs(tmp_path / "merged"), _pairs(tmp_path / "full")
    assert sorted(merged) == sorted(full) and len(set(merged)) == len(merged) == 8
    assert cli("show", "merged").exit_code == 0
    _check_one_line(cli("merge", "s1", "s1", "--out", "twice"), ["duplicate record"])
    _check_one_line(cli("merge", "s1", "s2", "--out", "merged"), ["not empty"])
    other = write_suite(SHARDED.replace("dim: [3, 4, 5, 6]", "dim: [7]"), name="other.yaml")
    assert cli("run", other, "--out", "o").exit_code == 0
    _check_one_line(cli("merge", "s1", "o", "--out", "mixed"), ["different suites"])
    _check_one_line(cli("run", suite, "--shard", "4/3"), ["--shard '4/3'"])


def test_a_torn_records_file_is_reported_and_the_run_resumes(cli, write_suite, tmp_path):
    suite = write_suite(SHARDED)
    assert cli("run", suite, "--out", "run", "--filter", "dim=3").exit_code == 0
    with (tmp_path / "run" / "records.jsonl").open("a") as handle:
        handle.write('{"case": "torn", "met')
    result = cli("run", suite, "--out", "run")
    assert result.exit_code == 0
    assert "dropped a torn last line" in result.stderr
    pairs = _pairs(tmp_path / "run")
    assert len(pairs) == 8 and len(set(pairs)) == 8


EXECUTOR_SUITE = (
    SHARDED
    + """\
executor:
  shards: 2
  time_min: 5
  resources:
    ag: {time_min: 10}
"""
)


def test_local_executor_runs_a_two_task_array_end_to_end(cli, write_suite, tmp_path):
    pytest.importorskip("submitit")
    suite = write_suite(SHARDED)
    assert cli("run", suite, "--out", "full").exit_code == 0
    result = cli("run", suite, "--executor", "local", "--shards", "2", "--out", "array")
    assert result.exit_code == 0, result.output
    (round_dir,) = (tmp_path / "array" / "shards").iterdir()  # one submitting invocation
    shard_dirs = sorted(p.name for p in round_dir.iterdir())
    assert shard_dirs == ["all-1-of-2", "all-2-of-2"]
    assert sorted(_pairs(tmp_path / "array")) == sorted(_pairs(tmp_path / "full"))
    # Running again adds nothing: the run is complete.
    again = cli("run", suite, "--executor", "local", "--out", "array")
    assert again.exit_code == 0 and len(_pairs(tmp_path / "array")) == 8


def test_per_method_resources_form_their_own_array(cli, write_suite, tmp_path):
    pytest.importorskip("submitit")
    result = cli("run", write_suite(EXECUTOR_SUITE), "--executor", "local", "--out", "run")
    assert result.exit_code == 0, result.output
    (round_dir,) = (tmp_path / "run" / "shards").iterdir()
    shard_dirs = sorted(p.name for p in round_dir.iterdir())
    assert shard_dirs == ["ag-1-of-2", "ag-2-of-2", "all-1-of-2", "all-2-of-2"]
    assert len(_pairs(tmp_path / "run")) == 8


def test_executor_bad_input(cli, write_suite, monkeypatch):
    suite = write_suite(SHARDED)
    _check_one_line(cli("run", suite, "--executor", "pbs"), ["unknown executor 'pbs'"])
    bad = write_suite(SHARDED + "executor: {shards: 0}\n", name="bad.yaml")
    _check_one_line(cli("run", bad, "--executor", "local"), ["executor.shards"])
    import builtins

    real_import = builtins.__import__

    def no_submitit(name, *args, **kwargs):
        if name == "submitit":
            raise ImportError("no submitit here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_submitit)
    _check_one_line(cli("run", suite, "--executor", "local"), ["pip install 'bench_cli[slurm]'"])


def test_a_paired_group_runs_in_the_worker_and_a_raising_method_fails_alone(tmp_path):
    (tmp_path / "misbehaving.py").write_text(PLUGIN)
    suite = SUITE.replace("metrics: [forward_error]", "metrics: [forward_error, time]")
    suite = suite.replace("timeout: 2", "timeout: 60\nbaseline: last")
    for hostile in ("segfault", "hang"):  # those would cost the whole group: left out here
        suite = suite.replace(
            f"  {hostile}: {{layer: matrix_function, func: log, method: {hostile}}}\n", ""
        )
    (tmp_path / "suite.yaml").write_text(suite)
    result = _matbench(tmp_path, "run", "suite.yaml", "--isolate", "--out", "run")
    assert result.returncode == 0, result.stderr
    timed = {
        r["axes"]["method"]: r
        for r in map(json.loads, (tmp_path / "run" / "records.jsonl").read_text().splitlines())
        if r["metric"] == "time"
    }
    assert timed["boom"]["status"] == "failed"
    assert timed["boom"]["reason"] == "RuntimeError: boom from the plugin"
    for method in ("first", "last"):  # interleaved in the worker, paired with the baseline
        assert timed[method]["status"] == "ok"
        assert timed[method]["value"]["fwd_bwd"]["paired"]["baseline"] == "last"
        assert timed[method]["value"]["interleaved"]["methods"] == ["first", "last"]
