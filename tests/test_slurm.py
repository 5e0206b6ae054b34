"""`--executor slurm` against a real Slurm cluster: sbatch job arrays, sacct, scancel.

CI starts a single-node cluster with accounting (`.ci/slurm-up.sh`) and sets
MATBENCH_REQUIRE_SLURM=1, so these tests cannot silently skip there. Elsewhere they
skip with the reason when no `sinfo` answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from bench_cli import spec
from tests.helpers import matbench

PLUGINS = Path(__file__).parent / "plugins"


def _cluster_problem() -> str | None:
    if shutil.which("sinfo") is None:
        return "no Slurm client here (sinfo not found); .ci/slurm-up.sh starts a local cluster"
    try:
        result = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "sinfo gave no answer in 20 s"
    states = result.stdout.split()
    if result.returncode != 0 or not states:
        return f"no Slurm controller answers sinfo: {result.stderr.strip()[:200]}"
    if not any(s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states):
        return f"no usable Slurm node (states: {', '.join(states)})"
    return None


PROBLEM = _cluster_problem()
if PROBLEM and os.environ.get("MATBENCH_REQUIRE_SLURM") == "1":
    raise RuntimeError(f"MATBENCH_REQUIRE_SLURM=1 but {PROBLEM}")
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or ""),
]

SHARDED = """\
name: sharded
inputs: {kind: spd, batch: 2, dim: [7, 5, 3, 4]}
methods:
  dk: {layer: matrix_function, func: log, method: eig_dk}
  ag: {layer: matrix_function, func: sqrt, method: autograd}
metrics: [forward_error]
tables:
  - {title: err, metric: forward_error, rows: [method], cols: [dim]}
"""


def _pairs(folder: Path) -> list[tuple[str, str]]:
    return [
        (r["case"], r["metric"])
        for r in map(json.loads, (folder / "records.jsonl").read_text().splitlines())
    ]


def test_three_slurm_shards_give_the_unsharded_local_run(cli, write_suite, tmp_path):
    suite = write_suite(SHARDED)
    assert cli("run", suite, "--out", "local").exit_code == 0
    result = cli("run", suite, "--executor", "slurm", "--shards", "3", "--out", "slurm")
    assert result.exit_code == 0, result.output
    local, slurm = _pairs(tmp_path / "local"), _pairs(tmp_path / "slurm")
    assert sorted(slurm) == sorted(local) and len(set(slurm)) == len(slurm) == 8
    (round_dir,) = (tmp_path / "slurm" / "shards").iterdir()
    assert sorted(p.name for p in round_dir.iterdir()) == [f"all-{i}-of-3" for i in (1, 2, 3)]
    # The nodes that measured are on record, per record and in env.json.
    records = [json.loads(x) for x in (tmp_path / "slurm" / "records.jsonl").open()]
    env = json.loads((tmp_path / "slurm" / "env.json").read_text())
    assert {r["machine_key"] for r in records} == set(env["nodes"])
    # Grid order in the table whichever shard finished first: dim 7, 5, 3, 4 as written.
    text = (tmp_path / "slurm" / "tables" / "err.md").read_text().splitlines()
    header = next(line for line in text if line.startswith("| method"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == [
        f"dim={d}" for d in (7, 5, 3, 4)
    ]


def test_a_partition_sbatch_refuses_is_one_line_and_exit_2(cli, write_suite, tmp_path):
    suite = write_suite(SHARDED)
    result = cli("run", suite, "--executor", "slurm", "--partition", "nope", "--out", "r")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("matbench: error: "), result.stderr
    assert "nope" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()  # refused before any folder was made


# 200 cases: 10 sizes x 20 data draws, each sleeping 0.4 s, so a task of 10 cases is
# mid-run for about 4 s: long enough to cancel, short enough for CI.
MANY = """\
name: many
inputs: {kind: spd, batch: 1, dim: [3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
         data_seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]}
methods:
  slow: {layer: matrix_function, func: sqrt, method: sleepy, sleep_s: 0.4}
metrics: [forward_error]
"""


def _matbench(*args: str, cwd: Path) -> subprocess.Popen:
    env = {"MATBENCH_PLUGINS": "slow_methods"}
    return matbench(cwd, *args, env=env, importable=[PLUGINS], popen=True)


def _count(path: Path) -> int:
    file = path / "records.jsonl"
    return len(file.read_text().splitlines()) if file.exists() else 0


def test_cancelled_tasks_mid_array_then_a_resume_leave_every_record_once(
    tmp_path, monkeypatch, register_method
):
    monkeypatch.syspath_prepend(str(PLUGINS))
    import slow_methods  # registers sleepy here too, to list the grid's keys

    from bench_cli import registry

    if "sleepy" not in registry.LAYERS["matrix_function"].methods:  # restored by a test
        register_method(slow_methods.sleepy, funcs=("sqrt", "log"))

    suite = tmp_path / "many.yaml"
    suite.write_text(MANY)
    run = tmp_path / "run"
    parent = _matbench("run", str(suite), "--executor", "slurm", "--shards", "20",
                       "--out", str(run), cwd=tmp_path)  # fmt: skip
    cancelled: dict[str, int] = {}
    give_up = time.monotonic() + 600  # a hang guard only: load makes tasks slower, not faster
    while len(cancelled) < 3 and parent.poll() is None and time.monotonic() < give_up:
        time.sleep(0.2)
        rounds = list((run / "shards").glob("*")) if (run / "shards").exists() else []
        for folder in sorted(p for r in rounds for p in r.iterdir()):
            if folder.name in cancelled or not 1 <= _count(folder) < 10:
                continue  # not started measuring yet, or finished
            array = subprocess.run(["squeue", "-h", "-o", "%F"], capture_output=True, text=True)
            array_id = array.stdout.split()[0]
            task = int(folder.name.split("-")[1]) - 1  # all-i-of-20 is array task i - 1
            subprocess.run(["scancel", f"{array_id}_{task}"], check=True)
            cancelled[folder.name] = _count(folder)
            if len(cancelled) == 3:
                break
    out, err = parent.communicate(timeout=240)
    assert len(cancelled) == 3, (cancelled, err)
    assert parent.returncode == 1, err
    assert "3 array task(s) failed" in err and all(name in err for name in cancelled), err
    first = _pairs(run)
    assert len(first) == len(set(first))
    # The cancelled tasks' finished cases were kept, not thrown away with the task.
    assert 170 + 3 <= len(first) < 200, len(first)

    again = _matbench("run", str(suite), "--executor", "slurm", "--shards", "3",
                      "--out", str(run), cwd=tmp_path)  # fmt: skip
    out, err = again.communicate(timeout=240)
    assert again.returncode == 0, err
    pairs = _pairs(run)
    expected = {(case.key, "forward_error") for case in spec.loads(MANY).cases()}
    assert len(pairs) == len(set(pairs)) == 200 and set(pairs) == expected
