import json

import pytest

from bench_cli import store
from bench_cli.errors import UserError

ENV = {"machine_key": "test-machine"}


def rec(case, metric="m", status="ok", **extra):
    """A record with every field a reader relies on (record_problem)."""
    return {
        "case": case,
        "metric": metric,
        "status": status,
        "value": 1.0,
        "axes": {"method": "x", "device": "cpu", "dtype": "float32"},
        "params": {"inputs": {"kind": "spd"}, "device": "cpu", "dtype": "float32"},
        **extra,
    }


def _open(folder, fingerprint="f1", suite="s"):
    return folder.open_for_run(
        suite_name=suite, fingerprint=fingerprint, suite_text="name: s\n", env=ENV
    )


def test_append_is_durable_and_append_only(tmp_path):
    folder = store.RunFolder(tmp_path / "run")
    with _open(folder) as writer:
        writer.append([rec("a")])
    with _open(folder) as writer:
        writer.append([rec("b")])
    assert [r["case"] for r in folder.records()] == ["a", "b"]
    assert folder.done() == {("a", "m"), ("b", "m")}
    assert len(folder.meta["invocations"]) == 2
    assert (tmp_path / "run" / "suite.yaml").read_text() == "name: s\n"


def test_torn_last_line_is_ignored_then_dropped(tmp_path):
    folder = store.RunFolder(tmp_path / "run")
    with _open(folder) as writer:
        writer.append([rec("a")])
    with (tmp_path / "run" / "records.jsonl").open("a") as handle:
        handle.write('{"case": "b", "metr')  # a kill in the middle of a write
    assert [r["case"] for r in folder.records()] == ["a"]
    with _open(folder) as writer:
        writer.append([rec("c")])
    lines = (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    assert [json.loads(line)["case"] for line in lines] == ["a", "c"]


def test_refuses_other_suite_other_fingerprint_other_machine(tmp_path):
    folder = store.RunFolder(tmp_path / "run")
    with _open(folder):
        pass
    with pytest.raises(UserError, match="suite 's'"), _open(folder, suite="t"):
        pass
    with pytest.raises(UserError, match="different version"), _open(folder, fingerprint="f2"):
        pass
    other = folder.open_for_run(
        suite_name="s", fingerprint="f1", suite_text="", env={"machine_key": "elsewhere"}
    )
    with pytest.raises(UserError, match="measured on machine 'test-machine'"), other:
        pass


def test_a_second_writer_is_refused(tmp_path):
    folder = store.RunFolder(tmp_path / "run")
    with _open(folder), pytest.raises(UserError, match="another matbench process"), _open(folder):
        pass


def test_nan_never_enters_a_record(tmp_path):
    folder = store.RunFolder(tmp_path / "run")
    with _open(folder) as writer, pytest.raises(ValueError):
        writer.append([rec("a", value=float("nan"))])
    assert folder.records() == []
