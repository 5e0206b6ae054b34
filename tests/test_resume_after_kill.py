"""Kill a real `matbench run` mid-way, run it again: nothing lost, nothing repeated."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # make test leaves it out; make test-all runs it

# Eight cases of roughly 0.3 s each, so a kill lands mid-run.
SUITE = """\
name: killme
inputs: {kind: spd, batch: 4, dim: [4, 6, 8, 10], condition: 10.0}
methods:
  log: {layer: matrix_function, func: log, method: autograd}
  sqrt: {layer: matrix_function, func: sqrt, method: autograd}
metrics:
  - time: {budget_s: 0.1, warmup: 1}
  - forward_error
"""
N_CASES, N_METRICS = 8, 2
ROOT = Path(__file__).resolve().parent.parent


def _default_sigint() -> None:
    """A run started from a background job inherits SIGINT ignored (a non-interactive shell
    sets that for `cmd &`), and Python then never raises KeyboardInterrupt: the SIGINT case
    ran to the end under `nohup bash .ci/run &`. The child gets the default disposition."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "bench_cli", "run", "suite.yaml", "--out", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _complete_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return path.read_bytes().count(b"\n")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_completes_on_rerun(tmp_path, sig):
    (tmp_path / "suite.yaml").write_text(SUITE)
    records = tmp_path / "run" / "records.jsonl"
    proc = _start(tmp_path)
    deadline = time.monotonic() + 120
    while _complete_lines(records) < 2 * N_METRICS and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be interrupted: {proc.communicate()}")
        time.sleep(0.02)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr and "--out run" in stderr
    before = records.read_bytes()
    kept = before[: before.rfind(b"\n") + 1]  # complete lines survive the kill
    n_before = kept.count(b"\n")
    assert 0 < n_before < N_CASES * N_METRICS, "the interruption should land mid-run"

    proc = _start(tmp_path)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    after = records.read_bytes()
    assert after.startswith(kept), "a record written before the interruption changed"
    lines = [json.loads(line) for line in after.decode().splitlines()]
    pairs = [(r["case"], r["metric"]) for r in lines]
    assert len(pairs) == N_CASES * N_METRICS and len(set(pairs)) == len(pairs)
    assert {r["status"] for r in lines} == {"ok"}
    assert f"{n_before // N_METRICS} of {N_CASES} cases were already done" in stderr
