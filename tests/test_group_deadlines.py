"""Each method pays for itself: in a paired-timing group, a method that hangs, hangs
later, or crashes the worker fails alone with its own reason, and the others are timed
paired among themselves, saying who was left out, with and without --isolate. A crash
names the crashing code (the plugin's frame, not the worker's watcher thread). An
interrupt during a group keeps every finished method's records, and the resume
completes the run without duplicates, saying which groups were split."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import matbench
from tests.test_resume_after_kill import _default_sigint

pytestmark = pytest.mark.slow  # make test leaves it out; make test-all runs it

PLUGIN = '''\
"""Methods that misbehave inside a paired group (tests only)."""
import os
import signal
import time

import torch

from bench_cli import registry

CALLS = {"late": 0}


def sleepy(A, func, p=None):
    """Never returns: a Python sleep loop (SIGALRM can interrupt it)."""
    while True:
        time.sleep(0.05)


def late(A, func, p=None):
    """Right for three calls, then never returns (a hang found while timing)."""
    CALLS["late"] += 1
    while CALLS["late"] > 3:
        time.sleep(0.05)
    return A.clone()


def stuck(A, func, p=None):
    """Blocks SIGALRM, then sleeps: only a kill ends it (a native hang)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(3600)


def segv(A, func, p=None):
    """Kills its own process with SIGSEGV."""
    os.kill(os.getpid(), signal.SIGSEGV)


def slow_ok(A, func, p=None):
    """Correct, and SLOW_OK_S seconds a call."""
    time.sleep(float(os.environ.get("SLOW_OK_S", "0")))
    return A.clone()


for fn in (sleepy, late, stuck, segv, slow_ok):
    registry.register_method("matrix_function", fn.__name__, fn)
'''

TIME = "  - time: {budget_s: 0.001, modes: [fwd], min_repeats: 10, max_repeats: 10}\n"


def _suite(baseline: str, hostile: list[str], timeout: float = 3) -> str:
    methods = "".join(
        f"  {name}: {{layer: matrix_function, func: log, method: {name}}}\n" for name in hostile
    )
    return (
        f"name: group\ntimeout: {timeout:g}\nbaseline: {baseline}\n"
        "inputs: {kind: spd, batch: 2, dim: 4}\n"
        "methods:\n"
        "  first: {layer: matrix_function, func: log, method: eig_dk}\n"
        f"{methods}"
        "  last: {layer: matrix_function, func: log, method: autograd}\n"
        f"metrics:\n  - forward_error\n{TIME}"
    )


def _run(tmp_path: Path, suite: str, *args: str, slow: float = 0, **kwargs):
    (tmp_path / "misbehaving.py").write_text(PLUGIN)
    (tmp_path / "suite.yaml").write_text(suite)
    env = {
        "MATBENCH_WORKER_GRACE_S": "2", "MATBENCH_PLUGINS": "misbehaving", "SLOW_OK_S": str(slow)
    }  # fmt: skip
    return matbench(tmp_path, "run", "suite.yaml", "--out", "run", *args, env=env, **kwargs)


def _timed(tmp_path: Path) -> dict[str, dict]:
    lines = (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    return {r["axes"]["method"]: r for r in map(json.loads, lines) if r["metric"] == "time"}


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolate"])
def test_a_hanging_baseline_fails_alone_and_the_others_stay_paired(tmp_path, isolate):
    hostile = "stuck" if isolate else "sleepy"  # isolate: a hang SIGALRM cannot end
    done = _run(tmp_path, _suite(hostile, [hostile, "late"]), *(["--isolate"] if isolate else []))
    assert done.returncode == 0, done.stderr
    timed = _timed(tmp_path)
    assert timed[hostile]["status"] == "failed"
    reason = timed[hostile]["reason"]
    assert reason.startswith("timeout: ") and hostile in reason, reason
    assert timed["late"]["status"] == "failed"  # hung on its fourth call, while timing
    assert timed["late"]["reason"].startswith("timeout: late"), timed["late"]["reason"]
    for method in ("first", "last"):
        record = timed[method]
        assert record["status"] == "ok", record["reason"]
        interleaved = record["value"]["interleaved"]
        assert interleaved["methods"] == ["first", "last"]  # paired among themselves
        assert interleaved["baseline"] is None  # the baseline is gone: no ratios claimed
        assert set(interleaved["left_out"]) == {hostile, "late"}
        assert len(record["value"]["fwd"]["samples"]) == 10
    assert "the other methods were timed without it" in done.stderr


def test_a_crashing_method_in_a_group_names_the_plugins_frame(tmp_path):
    done = _run(tmp_path, _suite("last", ["segv"], timeout=30), "--isolate")
    assert done.returncode == 0, done.stderr
    timed = _timed(tmp_path)
    reason = timed["segv"]["reason"]
    assert reason.startswith("crashed: SIGSEGV in segv; at "), reason
    assert "misbehaving.py:" in reason and "in segv (plugin)" in reason, reason
    assert "isolate.py" not in reason.split("; stderr:")[0]  # not the watcher thread
    for method in ("first", "last"):
        assert timed[method]["status"] == "ok"
        assert timed[method]["value"]["fwd"]["paired"]["baseline"] == "last"


def test_a_crash_outside_groups_names_the_plugins_frame_too(tmp_path):
    suite = _suite("last", ["segv"], timeout=30).replace(TIME, "").replace("baseline: last\n", "")
    done = _run(tmp_path, suite, "--isolate")
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    (record,) = [r for r in map(json.loads, lines) if r["axes"]["method"] == "segv"]
    assert "misbehaving.py:" in record["reason"] and "in segv (plugin)" in record["reason"]


LONG = TIME.replace("max_repeats: 10", "max_repeats: 400").replace(
    "min_repeats: 10", "min_repeats: 400"
)


def test_an_interrupt_in_a_group_keeps_finished_methods_and_the_resume_completes(tmp_path):
    suite = _suite("last", ["slow_ok"], timeout=600).replace(TIME, LONG)
    # SIGINT's default disposition in the child (tests/test_resume_after_kill.py says why).
    process = _run(tmp_path, suite, slow=0.3, popen=True, preexec_fn=_default_sigint)
    records = tmp_path / "run" / "records.jsonl"
    started = time.monotonic()
    # Every method's forward_error is written before the group's timing starts (slow_ok's
    # 400 rounds then take two minutes): interrupt once all three are in.
    while time.monotonic() - started < 240 and process.poll() is None:
        if records.exists() and len(records.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=120)
    finally:
        process.kill()  # never left running past the test
    kept = [json.loads(x) for x in records.read_text().splitlines()]
    assert {r["metric"] for r in kept} == {"forward_error"}
    assert {r["axes"]["method"] for r in kept} == {"first", "slow_ok", "last"}

    done = _run(tmp_path, suite, slow=0)  # the same plugin and suite, now quick
    assert done.returncode == 0, done.stderr
    final = [json.loads(x) for x in records.read_text().splitlines()]
    pairs = [(r["case"], r["metric"]) for r in final]
    assert len(pairs) == len(set(pairs)) == 6  # 3 methods x 2 metrics, none twice
    assert kept == final[:3]  # the first session's records, untouched
    timed = _timed(tmp_path)
    assert all(timed[m]["status"] == "ok" for m in ("first", "slow_ok", "last"))


def test_a_resumed_split_group_is_named_and_paired_with_its_baseline_again(tmp_path):
    suite = _suite("last", ["slow_ok"], timeout=60)
    first = _run(tmp_path, suite, "--filter", "method=last")
    assert first.returncode == 0, first.stderr
    before = _timed(tmp_path)["last"]
    done = _run(tmp_path, suite)
    assert done.returncode == 0, done.stderr
    assert "split by an earlier session" in done.stderr and "last timed again" in done.stderr
    timed = _timed(tmp_path)
    assert timed["last"] == before  # its first record kept, no second one
    for method in ("first", "slow_ok"):
        assert timed[method]["value"]["fwd"]["paired"]["baseline"] == "last"
    lines = (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    pairs = [(r["case"], r["metric"]) for r in map(json.loads, lines)]
    assert len(pairs) == len(set(pairs)) == 6
