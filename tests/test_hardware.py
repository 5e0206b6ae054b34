"""`matbench hardware`: one suite across every machine on record, a column per machine,
with compare's intervals and verdicts; each verdict is shown failing on a wrong
measurement (a machine made 3x slower is called slower, an identical one is not)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench_cli import api, hardware
from bench_cli.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "results" / "throughput" / "20261128T080510Z_amd-epyc-ac9bfb"


def _machine(tmp_path: Path, name: str, cpu: str, scale: float = 1.0) -> Path:
    """A copy of a committed throughput run as if measured on another machine, its times
    multiplied by ``scale`` (every sample, so per-round ratios stay as they were)."""
    folder = tmp_path / "results" / "throughput" / name
    shutil.copytree(RUN, folder)
    env = json.loads((folder / "env.json").read_text())
    env.update(cpu_model=cpu, machine_key=name)
    (folder / "env.json").write_text(json.dumps(env))
    lines = []
    for line in (folder / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["metric"] == "time" and record["status"] == "ok":
            for mode in ("fwd", "bwd", "fwd_bwd"):
                if mode in record["value"]:
                    samples = record["value"][mode]["samples"]
                    record["value"][mode]["samples"] = [s * scale for s in samples]
        record["machine_key"] = name
        lines.append(json.dumps(record))
    (folder / "records.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_a_column_per_machine_with_verdicts_that_can_fail(tmp_path):
    first = _machine(tmp_path, "20260101T000000Z_a", "CPU One")
    same = _machine(tmp_path, "20260102T000000Z_b", "CPU Two")
    slow = _machine(tmp_path, "20260103T000000Z_c", "CPU Three", scale=3.0)
    table = api.across_machines([first, same, slow])
    assert [m.split(",")[0] for m in table.machines] == ["CPU One", "CPU Two", "CPU Three"]
    assert table.frame.shape[1] == 3 and len(table.frame) == 16  # 4 methods x 4 sizes
    assert all(cell.endswith("~") for cell in table.frame.iloc[:, 1])  # the same times
    assert all(cell.endswith("slower") for cell in table.frame.iloc[:, 2])  # 3x the times
    assert all(cell.startswith("3.00×") for cell in table.frame.iloc[:, 2])
    # A suite name finds every committed run of it, oldest first.
    by_name = api.across_machines(["throughput"], results=tmp_path / "results")
    assert by_name.machines == table.machines


def test_machines_are_named_by_model_cores_torch_and_blas():
    env = {"cpu_model": "AMD EPYC 7B13", "cpu_count": 16, "torch": "2.13.0+cu128",
           "blas_lapack": "mkl (LAPACK enabled)", "gpus": [{"name": "NVIDIA H100"}]}  # fmt: skip
    assert hardware.machine_name(env) == (
        "NVIDIA H100, AMD EPYC 7B13, 16 cores, torch 2.13.0+cu128, mkl"
    )
    assert hardware._unique(["x", "x", "y", "x"]) == ["x", "x (2)", "y", "x (3)"]


def test_fewer_than_two_machines_or_no_runs_is_one_clear_error(tmp_path, cli):
    one = _machine(tmp_path, "20260101T000000Z_a", "CPU One")
    with pytest.raises(UserError, match="at least two"):
        api.across_machines([one])
    with pytest.raises(UserError, match="no runs of suite 'nothing'"):
        api.across_machines(["nothing"], results=tmp_path / "results")
    with pytest.raises(UserError, match="not a string"):
        api.across_machines("throughput")  # type: ignore[arg-type]
    result = cli("hardware", "nothing", "--results", str(tmp_path / "results"))
    assert result.exit_code == 2 and "no runs of suite 'nothing'" in result.output


def test_the_command_prints_the_committed_machines(cli):
    result = cli("hardware", "throughput", "--results", str(ROOT / "results"), "--format", "md")
    assert result.exit_code == 0, result.output
    assert "AMD EPYC" in result.output and "Intel(R) Xeon(R)" in result.output
    assert "95% bootstrap interval" in result.output
