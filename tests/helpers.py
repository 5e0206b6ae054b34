"""Helpers the test modules share (one copy each): reading a run's records, and running
the real ``matbench`` entry point in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def read_records(folder: Path) -> list[dict]:
    """Every line of a run folder's records.jsonl, as written (no repair, no dedup)."""
    return [json.loads(line) for line in (Path(folder) / "records.jsonl").read_text().splitlines()]


def matbench(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    importable: Sequence[Path] = (),
    popen: bool = False,
    **kwargs: Any,
):
    """``python -m bench_cli ARGS`` in ``cwd``, with the repository, ``importable`` and
    ``cwd`` (a test's plugins) on the import path; ``env`` adds variables. A finished run
    (capture_output, text, 300 s) or, with ``popen``, the running process (pipes, text)
    for a test to signal."""
    folders = [str(ROOT), *map(str, importable), str(cwd), os.environ.get("PYTHONPATH")]
    path = os.pathsep.join(filter(None, folders))
    full_env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    command = [sys.executable, "-m", "bench_cli", *map(str, args)]
    if popen:
        return subprocess.Popen(
            command, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, **kwargs,
        )  # fmt: skip
    kwargs.setdefault("timeout", 300)
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, **kwargs)
