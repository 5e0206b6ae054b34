"""merge and show tell the truth, and the API checks its arguments: merge refuses a run
whose lock is held; a record a scheduler stopped (marked retry) merges with its
re-measurement; show and report say "incomplete: N of M cases" for a run that did not
finish, and nothing for one that did; run_suite names the parameter of a wrong type."""

from __future__ import annotations

import fcntl
import json
import shutil

import pytest

from bench_cli import api
from bench_cli.errors import UserError

SUITE = """
name: truth
dtype: [float64]
inputs: {kind: spd, batch: [2], dim: [4, 6]}
methods:
  dk: {layer: matrix_function, func: sqrt, method: eig_dk}
metrics: [forward_error]
"""


@pytest.fixture
def run(cli, write_suite, tmp_path):
    done = cli("run", write_suite(SUITE), "--out", "run")
    assert done.exit_code == 0, done.output
    return tmp_path / "run"


def test_merge_refuses_a_run_whose_lock_is_held(cli, run, tmp_path):
    with open(run / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused = cli("merge", run, "--out", "merged")
        assert refused.exit_code == 2
        assert "still writing this run" in refused.output
        assert not (tmp_path / "merged").exists()
    merged = cli("merge", run, "--out", "merged")  # the lock released: merged
    assert merged.exit_code == 0, merged.output


def test_a_retry_marked_record_merges_with_its_remeasurement(cli, run, tmp_path):
    lines = (run / "records.jsonl").read_text().splitlines()
    stopped = {**json.loads(lines[0]), "status": "failed", "retry": True, "value": None}
    shard = tmp_path / "shard"
    shutil.copytree(run, shard)
    (shard / "records.jsonl").write_text(json.dumps(stopped) + "\n")  # the stopped one
    merged = cli("merge", shard, run, "--out", "merged")
    assert merged.exit_code == 0, merged.output
    records = [
        json.loads(x) for x in (tmp_path / "merged" / "records.jsonl").read_text().splitlines()
    ]
    assert len(records) == 3 and records[0].get("retry")  # kept, before the measurement
    assert api.open_run(tmp_path / "merged").done() == {
        (r["case"], r["metric"]) for r in map(json.loads, lines)
    }
    twice = cli("merge", run, run, "--out", "again")  # two measurements: still refused
    assert twice.exit_code == 2 and "these shards overlap" in twice.output


def test_show_and_report_say_a_run_is_incomplete(cli, run):
    shown = cli("show", run)
    assert shown.exit_code == 0 and "incomplete" not in shown.output
    lines = (run / "records.jsonl").read_text().splitlines()
    (run / "records.jsonl").write_text(lines[0] + "\n")  # as if stopped after one case
    shown = cli("show", run)
    assert shown.exit_code == 0, shown.output
    assert "incomplete: 1 of 2 cases" in shown.output
    report = cli("report", run)
    assert report.exit_code == 0, report.output
    assert "incomplete: 1 of 2 cases" in (run / "report.html").read_text()


@pytest.mark.parametrize(
    "arguments, named",
    [
        ({"suite": None}, "suite must be a suite file"),
        ({"out": 123}, "out must be a folder path"),
        ({"timeout": "5"}, "timeout must be seconds"),
        ({"timeout": -1.0}, "timeout must be positive"),
        ({"devices": "cpu"}, "devices must be a list of device names"),
        ({"filter": "dim=4"}, "filter must be a list of AXIS=GLOB strings"),
        ({"devices": ["cpu", 0]}, "0 is not a string"),
        ({"isolate": "yes"}, "isolate must be True or False"),
    ],
)
def test_the_api_names_the_parameter_of_a_wrong_type(write_suite, tmp_path, arguments, named):
    given = {"suite": write_suite(SUITE), "out": tmp_path / "r", **arguments}
    with pytest.raises(UserError, match="run_suite: ") as caught:
        api.run_suite(**given)
    assert named in str(caught.value) and "--" not in str(caught.value)
    assert not (tmp_path / "r").exists()
