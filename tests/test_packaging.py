"""A wheel carries the bundled and paper suites; installed elsewhere, it runs one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # make test leaves it out; make test-all runs it

ROOT = Path(__file__).resolve().parent.parent


def test_a_wheel_installed_elsewhere_runs_a_bundled_paper_suite(tmp_path):
    # Build from a clean copy of the sources: a stale build/ could hide a missing file.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT, source, symlinks=True,
        ignore=shutil.ignore_patterns(".*", "build", "results", "*.egg-info", "__pycache__"),
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path / "wheel")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "wheel").glob("bench_cli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    bundled = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "suites").rglob("*.yaml"))
    assert bundled and all(f"bench_cli/{name}" in names for name in bundled)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # the installed copy, not this checkout
    where = subprocess.run(
        [sys.executable, "-c", "import bench_cli.api as a; print(a.suites_dir())"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(site))
    result = subprocess.run(
        [sys.executable, "-m", "bench_cli", "reproduce", "song2021-truncation", "--quick",
         "--results", "out"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (elsewhere / "out" / "song2021-truncation-quick").iterdir()
    assert (run / "tables" / "reproduction.md").exists()
    assert "git" in (run / "env.json").read_text()


def test_the_docs_python_example_runs_as_printed_from_an_empty_folder(tmp_path):
    """The Python API page's example, copied out and run where no clone is: every name
    defined, every path absolute or bundled."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "python-api.md").read_text()
    block = page.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(block)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
        timeout=600, env={**os.environ, "MATBENCH_PLUGINS": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].split()[0] in ("True", "False"), done.stdout
