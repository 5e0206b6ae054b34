"""Each command reads each file of a run folder once: counted at os.open, the one door
every read of run.json, env.json, suite.yaml and records.jsonl goes through (writes,
opened write-only, are not reads)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

RUN_FILES = ("run.json", "env.json", "suite.yaml", "records.jsonl")


@pytest.fixture
def reads(monkeypatch):
    """Counter of (folder name, file name) -> times opened for reading."""
    counted: Counter = Counter()
    real = os.open

    def counting(path, flags, *args, **kwargs):
        name = Path(path)
        if name.name in RUN_FILES and flags & os.O_ACCMODE != os.O_WRONLY:
            counted[(name.parent.name, name.name)] += 1
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting)
    return counted


def _twice(counted: Counter) -> dict:
    return {key: n for key, n in counted.items() if n > 1}


@pytest.fixture
def two_runs(cli, write_suite):
    suite = write_suite()
    for out in ("a", "b"):
        assert cli("run", suite, "--out", out, "--filter", "dim=3").exit_code == 0
    return suite


@pytest.mark.parametrize(
    "args",
    [
        ("show", "a"),
        ("show", "a", "--format", "md"),
        ("compare", "a", "b"),
        ("report", "a", "b", "--out", "page.html"),
    ],
    ids=lambda args: " ".join(args),
)
def test_a_reading_command_reads_each_file_once(args, two_runs, cli, reads):
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert reads[("a", "records.jsonl")] == 1 and reads[("a", "run.json")] == 1
    assert _twice(reads) == {}


def test_a_run_and_its_resume_read_each_file_once(cli, write_suite, reads):
    suite = write_suite()
    assert cli("run", suite, "--out", "r", "--filter", "dim=3").exit_code == 0
    assert _twice(reads) == {}, reads
    reads.clear()
    assert cli("run", suite, "--out", "r").exit_code == 0  # resumes: dim=4 is left
    assert reads[("r", "records.jsonl")] == 1 and _twice(reads) == {}, reads


def test_reproduce_from_a_run_reads_it_once(cli, reads):
    run = Path(__file__).resolve().parents[1] / "results" / "song2021-truncation"
    folder = sorted(p for p in run.iterdir() if (p / "run.json").is_file())[-1]
    result = cli("reproduce", "song2021-truncation", "--from", folder)
    assert result.exit_code == 0, result.output
    assert reads[(folder.name, "records.jsonl")] == 1 and _twice(reads) == {}, reads


def test_the_count_sees_a_second_read(two_runs, reads):
    """It can fail: a folder opened twice without the cache reads its records twice."""
    from bench_cli import store

    store.RunFolder("a").records()
    store.RunFolder("a").records()
    assert _twice(reads) == {("a", "records.jsonl"): 2}
