"""Run folders under attack: links, interrupted creation, a full disk, duplicate records,
interrupted merges. Each test names the probe it answers (issue 17's classes 1, 4, 6, 7, 9).
"""

from __future__ import annotations

import errno
import json
import os

import pytest

from bench_cli import api, store
from bench_cli.errors import UserError
from bench_cli.scaleout import shards
from tests.helpers import read_records as _records
from tests.test_store import rec

ENV = {"machine_key": "test-machine"}


def _one_error_line(result, *fragments):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert lines[-1].startswith("matbench: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.fixture
def measured(cli, write_suite, tmp_path):
    """A finished run of the tiny suite at tmp_path/run."""
    suite = write_suite()
    result = cli("run", suite, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    return suite, tmp_path / "run"


# ---------------------------------------------------------------- class 4: links


def test_show_never_writes_through_a_linked_tables_folder(cli, measured, tmp_path):
    _, run = measured
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "time.md").write_text("someone else's file\n")
    for path in (run / "tables").iterdir():
        path.unlink()
    (run / "tables").rmdir()
    (run / "tables").symlink_to(outside)
    result = cli("show", run)
    assert (outside / "time.md").read_text() == "someone else's file\n"
    assert sorted(p.name for p in outside.iterdir()) == ["time.md"]
    assert "symbolic link" in result.stderr
    assert result.exit_code == 0  # the tables are still printed; only the files are refused


def test_a_linked_records_file_is_refused_and_left_alone(cli, measured, tmp_path):
    suite, run = measured
    outside = tmp_path / "precious.txt"
    outside.write_text("a line without a newline")
    (run / "records.jsonl").unlink()
    (run / "records.jsonl").symlink_to(outside)
    for argv in (("run", suite, "--out", run), ("show", run), ("compare", run, run)):
        _one_error_line(cli(*argv), "symbolic link")
    assert outside.read_text() == "a line without a newline"  # not truncated, not appended


def test_a_linked_table_file_is_replaced_not_followed(cli, measured, tmp_path):
    _, run = measured
    outside = tmp_path / "precious.md"
    outside.write_text("keep me\n")
    (run / "tables" / "time.md").unlink()
    (run / "tables" / "time.md").symlink_to(outside)
    assert cli("show", run).exit_code == 0
    assert outside.read_text() == "keep me\n"
    assert not (run / "tables" / "time.md").is_symlink()


# ---------------------------------------------------------------- class 7: creation


def test_a_kill_during_creation_leaves_no_half_folder(monkeypatch, tmp_path):
    real = store.os.rename

    def killed(source, target):
        raise KeyboardInterrupt  # kill -INT with every file written, before the rename

    folder = store.RunFolder(tmp_path / "run")
    opening = folder.open_for_run(suite_name="s", fingerprint="f", suite_text="name: s\n", env=ENV)
    monkeypatch.setattr(store.os, "rename", killed)
    with pytest.raises(KeyboardInterrupt), opening:
        pass
    monkeypatch.setattr(store.os, "rename", real)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, no temporary
    with folder.open_for_run(suite_name="s", fingerprint="f", suite_text="name: s\n", env=ENV):
        pass
    assert folder.meta["suite"] == "s"


def test_a_folder_an_older_interrupted_creation_left_is_completed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "suite.yaml").write_text("name: s\n")  # what a kill before run.json left
    (run / ".lock").write_text("")
    folder = store.RunFolder(run)
    with folder.open_for_run(suite_name="s", fingerprint="f", suite_text="name: s\n", env=ENV):
        pass
    assert folder.meta["fingerprint"] == "f"


def test_a_folder_holding_other_files_is_still_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "thesis.tex").write_text("\\section{}")
    with (
        pytest.raises(UserError, match="holds no matbench run"),
        store.RunFolder(run).open_for_run(suite_name="s", fingerprint="f", suite_text="", env=ENV),
    ):
        pass
    assert (run / "thesis.tex").exists()


def test_two_runs_started_in_the_same_second_get_two_folders(monkeypatch, write_suite, tmp_path):
    from bench_cli.runner import plan as run_plan

    monkeypatch.setattr(run_plan, "utc_stamp", lambda: "20261130T120000Z")
    suite = api.load_suite(write_suite())
    first = api.choose_folder(suite, results=tmp_path)
    second = api.choose_folder(suite, results=tmp_path)
    assert first.path != second.path
    assert first.path.is_dir() and second.path.is_dir()  # both names taken at once


# ---------------------------------------------------------------- class 6: a full disk


def test_a_full_disk_mid_run_is_one_line_and_resumable(cli, write_suite, tmp_path, monkeypatch):
    suite = write_suite()
    calls = {"n": 0}
    real = os.fsync

    def full(fd):
        calls["n"] += 1
        if calls["n"] == 2:  # the second case's records
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(store.os, "fsync", full)
    result = cli("run", suite, "--out", tmp_path / "run")
    _one_error_line(result, "No space left on device", str(tmp_path / "run"), "resume")
    monkeypatch.setattr(store.os, "fsync", real)
    assert cli("run", suite, "--out", tmp_path / "run").exit_code == 0
    records = store.RunFolder(tmp_path / "run").records()
    pairs = [(r["case"], r["metric"]) for r in records]
    assert len(pairs) == len(set(pairs)) == 8  # 4 cases x 2 metrics, each once


# ---------------------------------------------------------------- class 1: duplicates


def test_no_pair_is_ever_written_twice(tmp_path):
    folder = store.RunFolder(tmp_path / "run")
    with folder.open_for_run(suite_name="s", fingerprint="f", suite_text="", env=ENV) as w:
        w.append([rec("a"), rec("b", retry=True)])
        w.append([rec("a", value=2.0)])  # a second record of a measured pair: dropped
        w.append([rec("b", value=3.0)])  # a retried stop measured again: kept
    with folder.open_for_run(suite_name="s", fingerprint="f", suite_text="", env=ENV) as w:
        w.append([rec("a", value=4.0), rec("b", value=5.0)])  # after a resume too
    assert [(r["case"], r["value"]) for r in folder.records()] == [
        ("a", 1.0),
        ("b", 1.0),
        ("b", 3.0),
    ]


# ---------------------------------------------------------------- class 9: merge


def test_an_interrupted_merge_leaves_no_folder_that_reads_as_a_run(
    cli, measured, tmp_path, monkeypatch
):
    _, run = measured
    real = json.dumps

    def killed(data, *args, **kwargs):
        if isinstance(data, dict) and "case" in data:
            raise KeyboardInterrupt  # killed while writing the merged records
        return real(data, *args, **kwargs)

    monkeypatch.setattr(shards.json, "dumps", killed)
    with pytest.raises(KeyboardInterrupt):
        shards.merge([store.RunFolder(run)], tmp_path / "merged")
    monkeypatch.setattr(shards.json, "dumps", real)
    assert not (tmp_path / "merged").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    result = cli("merge", run, "--out", tmp_path / "merged")
    assert result.exit_code == 0, result.output
    assert len(_records(tmp_path / "merged")) == len(_records(run))


def test_merge_onto_a_file_is_one_line(cli, measured, tmp_path):
    _, run = measured
    (tmp_path / "a-file").write_text("x")
    _one_error_line(cli("merge", run, "--out", tmp_path / "a-file"), "not empty (or not a folder)")
    assert (tmp_path / "a-file").read_text() == "x"


def test_report_names_the_file_it_failed_to_read_not_the_page(cli, measured, tmp_path):
    _, run = measured
    (run / "suite.yaml").unlink()
    result = cli("report", run, "--out", tmp_path / "page.html")
    _one_error_line(result, "suite.yaml", "missing")
    assert "cannot write" not in result.stderr
