"""Plugins, workers, the executor's reasons and the smaller things a hostile user found
(issue 17's classes 1, 8 and 9): one line and exit 2, never a traceback or a leftover.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench_cli import plugins, tables
from tests.helpers import matbench as _matbench
from tests.test_hostile_suites import _one_line

ROOT = Path(__file__).resolve().parent.parent

SUITE = """\
name: hostile
inputs: {kind: spd, batch: 2, dim: 4, condition: 10.0}
methods:
  eig: {layer: matrix_function, func: sqrt, method: eig}
metrics: [forward_error]
"""


# ---------------------------------------------------------------- class 8: plugins


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "raising_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    (folder / "syntax_plugin.py").write_text("def broken(:\n")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(plugins, "_plugins_loaded", False)
    yield folder
    monkeypatch.setattr(plugins, "_plugins_loaded", False)


@pytest.mark.parametrize(
    "module, fragment",
    [
        ("raising_plugin", "RuntimeError: boom at import"),
        ("syntax_plugin", "SyntaxError"),
        ("no_such_plugin", "No module named 'no_such_plugin'"),
    ],
)
def test_a_broken_plugin_is_one_line_naming_it(cli, plugin_dir, monkeypatch, module, fragment):
    monkeypatch.setenv("MATBENCH_PLUGINS", module)
    _one_line(cli("list", "methods"), f"'{module}'", fragment)
    monkeypatch.setattr(plugins, "_plugins_loaded", False)
    result = cli("--version")  # needs no plugin, so a broken one does not stop it
    assert result.exit_code == 0 and result.stdout.startswith("matbench ")


WORKER_ONLY = """\
import multiprocessing
if multiprocessing.parent_process() is not None:
    raise RuntimeError("this plugin breaks in workers only")
"""


@pytest.mark.slow
def test_a_plugin_that_fails_only_in_the_worker_is_one_line(tmp_path):
    (tmp_path / "worker_only.py").write_text(WORKER_ONLY)
    (tmp_path / "suite.yaml").write_text(SUITE)
    result = _matbench(
        tmp_path,
        "run",
        "suite.yaml",
        "--isolate",
        "--out",
        "run",
        env={"MATBENCH_PLUGINS": "worker_only"},
    )
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("matbench: error: ") and "worker_only" in lines[-1], lines[-1]
    assert "breaks in workers only" in lines[-1]


# ---------------------------------------------------------------- class 8: workers

ORPHANS = """\
import os, subprocess, time
from bench_cli import registry
from bench_cli.layers import matfun


@registry.register_method("matrix_function", "parent_of_a_sleeper", funcs=("sqrt",))
def parent_of_a_sleeper(A, func, p=None):
    child = subprocess.Popen(["sleep", "600"])
    with open(os.environ["PIDS_FILE"], "w") as handle:
        handle.write(f"{os.getpid()} {child.pid}\\n")
    time.sleep(600)
    return matfun.eig_dk_matrix_function(A, func, p)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie waits for its parent only
        return handle.read().split()[2] != "Z"


def _wait_for(predicate, limit_s: float) -> bool:
    """Liveness, not speed: poll until true, giving up only after a generous limit."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_and_their_children_die_with_a_killed_parent(tmp_path):
    (tmp_path / "orphans.py").write_text(ORPHANS)
    (tmp_path / "suite.yaml").write_text(
        SUITE.replace("method: eig", "method: parent_of_a_sleeper")
    )
    pids_file = tmp_path / "pids"
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}",
        "MATBENCH_PLUGINS": "orphans",
        "PIDS_FILE": str(pids_file),
    }
    parent = subprocess.Popen(
        [sys.executable, "-m", "bench_cli", "run", "suite.yaml", "--isolate", "--out", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for(lambda: pids_file.exists() and pids_file.read_text().strip(), 240)
        worker, child = map(int, pids_file.read_text().split())
        assert _alive(worker) and _alive(child)
        parent.kill()  # kill -9: no cleanup of its own runs
        parent.wait()
        assert _wait_for(lambda: not _alive(worker) and not _alive(child), 60), (
            "the worker or its child outlived the killed parent"
        )
    finally:
        parent.kill()
        for line in pids_file.read_text().split() if pids_file.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line), signal.SIGKILL)


# ---------------------------------------------------------------- class 1: executor reasons

SUBMITIT_FAILURE = (
    "Job (task=0) failed during processing with trace:\n"
    "----------------------\n"
    "Traceback (most recent call last):\n"
    '  File "/x/submitit/core/submission.py", line 55, in process_job\n'
    "    result = delayed.result()\n"
    "ValueError: the method divided by zero\n"
    "----------------------\n"
    "You can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n"
    "  - /runs/x/submitit/7_0_log.err\n"
    "  - /runs/x/submitit/7_0_log.out"
)


def test_a_failed_task_is_reported_by_its_own_exception():
    from bench_cli.scaleout import jobs as executor

    class Job:
        job_id = "7_0"
        state = "FAILED"

        def result(self):
            raise RuntimeError(SUBMITIT_FAILURE)

    class Task:
        gave_up = None
        job = Job()

    why = executor._task_failure(Task())
    assert why == "job 7_0: ValueError: the method divided by zero", why


# ---------------------------------------------------------------- class 9: smaller things


def test_control_characters_and_bars_never_reach_a_table_raw(cli, write_suite, tmp_path):
    text = SUITE.replace("  eig:", '  "ei|g\\e[31m":')
    suite = write_suite(text)
    result = cli("run", suite, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    shown = cli("show", tmp_path / "run", "--format", "md")
    assert "\x1b" not in shown.stdout and "\x1b" not in result.stdout
    row = next(line for line in shown.stdout.splitlines() if "ei" in line)
    assert row.count("|") - row.count("\\|") == 3, row  # two cells: the bar is escaped
    md = (tmp_path / "run" / "tables" / "forward-error.md").read_text()
    assert "\x1b" not in md


def test_markdown_cells_escape_bars_and_control_characters():
    # The escaped control characters' backslashes are escaped too: markdown shows them.
    assert tables.md_cell("a|b\x1b[0m\n") == "a\\|b\\\\x1b[0m\\\\n"


def test_plan_on_another_suites_folder_is_refused(cli, write_suite, tmp_path):
    other = write_suite(SUITE.replace("name: hostile", "name: other"), name="other.yaml")
    assert cli("run", other, "--out", tmp_path / "theirs").exit_code == 0
    suite = write_suite(SUITE)
    _one_line(cli("plan", suite, "--out", tmp_path / "theirs"), "suite 'other'")
    _one_line(cli("run", suite, "--dry-run", "--out", tmp_path / "theirs"), "suite 'other'")


def test_advise_on_an_absent_device_is_one_line(cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has the device")
    argv = ["advise", "--func", "sqrt", "--batch", "2", "--dim", "4", "--device", "cuda"]
    _one_line(cli(*argv), "--device cuda", "not available")


def test_advise_when_no_method_could_run_is_one_line(cli, monkeypatch):
    from bench_cli import advise

    def nothing_runs(data, reporter, save_to, advice, stop=None):
        suite = advise.spec.validate(data)
        records = []
        for case in suite.cases():
            for metric in suite.metrics:
                records.append(
                    {
                        "case": case.key,
                        "metric": metric.name,
                        "status": "failed",
                        "value": None,
                        "reason": "out of memory",
                        "axes": case.axes,
                        "params": case.key_params(),
                    }
                )
        return suite, records

    monkeypatch.setattr(advise, "_run", nothing_runs)
    argv = ["advise", "--func", "sqrt", "--batch", "2", "--dim", "4", "--device", "cpu"]
    _one_line(cli(*argv), "no method could run", "out of memory")


def test_ctrl_c_during_start_up_is_exit_130_without_a_traceback(tmp_path):
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name == 'pandas':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
        "sys.argv = ['matbench', 'show', 'x']\n"
        "from bench_cli.entry import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr


def test_plots_are_made_one_at_a_time_and_closed(monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    from bench_cli import plots

    records = []
    for batch in range(1, 13):  # twelve figures: one per batch, time against dim
        for dim in (4, 8):
            records.append(
                {
                    "metric": "time",
                    "status": "ok",
                    "value": {"fwd_bwd": {"samples": [1e-3 * dim, 1.1e-3 * dim]}},
                    "axes": {"method": "m", "dim": dim, "batch": batch, "dtype": "float32"},
                }
            )
    plt.close("all")  # figures other tests left open are not this test's
    open_at_save = []
    real = plt.Figure.savefig

    def save(fig, *args, **kwargs):
        open_at_save.append(len(plt.get_fignums()))
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", save)
    said = []
    written = plots.write(records, tmp_path / "plots", progress=said.append)
    # Twelve figures of time against dim (one per batch) and two against batch (one per
    # dim), each as PNG and SVG.
    assert len(written) == 28 and max(open_at_save) == 1  # never two figures held at once
    assert plt.get_fignums() == []
    assert said == [f"plots: 10 written to {tmp_path / 'plots'}"]


def test_records_keep_their_json_through_a_run(cli, write_suite, tmp_path):
    """A sanity check for the tests above: a run's records stay one JSON object per line."""
    result = cli("run", write_suite(SUITE), "--out", tmp_path / "run")
    assert result.exit_code == 0
    for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines():
        assert isinstance(json.loads(line), dict)


@pytest.mark.slow
def test_a_wide_sweep_draws_a_bounded_number_of_figures_and_says_so(tmp_path):
    from bench_cli import plots

    records = [
        {
            "metric": "time",
            "status": "ok",
            "value": {"fwd_bwd": {"samples": [1e-3 * dim]}},
            "axes": {"method": "m", "dim": dim, "batch": batch, "dtype": "float32"},
        }
        for batch in range(1, 31)  # thirty groups of one plot kind
        for dim in (4, 8)
    ]
    said = []
    written = plots.write(records, tmp_path, progress=said.append)
    # The cap on time-vs-dim, and time-vs-batch's two figures (one per dim), PNG and SVG.
    assert len(written) == 2 * (plots.MAX_FIGURES_PER_KIND + 2)
    assert said[-1] == (
        f"plots: time-vs-dim has 30 groups; drew the first {plots.MAX_FIGURES_PER_KIND} "
        "(the tables hold every value)"
    )
