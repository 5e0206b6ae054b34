"""`make gpu-check`: its plan at full size, and a CPU rehearsal end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_cli import gpu_check

pytestmark = pytest.mark.slow  # make test leaves it out; make test-all runs it

REPO_RESULTS = Path(__file__).resolve().parent.parent / "results"


def test_the_full_plan_is_the_issue_s_list():
    steps = gpu_check.plan("cuda", Path("r"), quick=False)
    names = [s.name for s in steps]
    assert names[:4] == ["throughput", "song2022", "gcp-cost", "stability-gpu"]
    assert all("--quick" not in s.argv and "cuda" in s.argv for s in steps)
    advise = [s.argv for s in steps if s.argv[0] == "advise"]
    sizes = {(a[a.index("--batch") + 1], a[a.index("--dim") + 1]) for a in advise}
    assert sizes == {("64", "48"), ("32", "256"), ("128", "64")}
    assert {a[a.index("--func") + 1] for a in advise} == {"sqrt", "log"}
    assert {a[a.index("--tolerance") + 1] for a in advise} == {"1e-2", "1e-5"}
    assert len(advise) == 12 and all("--save" in a for a in advise)


def test_extended_adds_the_compile_autocast_cold_start_and_eigh_size_suites():
    steps = gpu_check.plan("cuda", Path("r"), quick=False, extended=True)
    added = [s.argv[1] for s in steps if s.name in gpu_check.EXTENDED]
    assert added == ["compile", "autocast", "cold-start", "eigh-sizes"]
    assert not any(
        s.name in gpu_check.EXTENDED
        for s in gpu_check.plan("cpu", Path("r"), quick=True, extended=True)
    )


def test_the_cpu_rehearsal_writes_run_folders_and_comparisons(tmp_path):
    out = tmp_path / "check"
    rc = gpu_check.main(
        ["--device", "cpu", "--quick", "--results", str(tmp_path / "r"),
         "--committed", str(REPO_RESULTS), "--out", str(out)]
    )  # fmt: skip
    assert rc == 0, (out / "summary.md").read_text()
    summary = (out / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 6  # header, 4 suites, 2 advise calls (one tolerance each)
    assert all("| 0 |" in row for row in rows[1:])
    for suite in ("throughput-quick", "song2022-fast-matsqrt-quick", "stability-gpu-quick"):
        assert list((tmp_path / "r" / suite).glob("*/records.jsonl")), suite
    assert len(list((tmp_path / "r" / "advise-time").glob("*/records.jsonl"))) == 2
    # song2022's quick run shares its cases with the committed CPU run: a real comparison.
    compared = (out / "compare-song2022-fast-matsqrt-quick.md").read_text()
    assert "geometric mean of time ratios" in compared
