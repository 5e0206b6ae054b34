"""The results folder of one run: append-only records, never overwritten.

    <run>/suite.yaml      exact copy of the suite file that started the run
    <run>/run.json        suite name, fingerprint, machine key, invocations (each with the
                          provenance of the code that ran it)
    <run>/env.json        env.collect() at the first invocation
    <run>/records.jsonl   one JSON object per (case, metric), appended per case
    <run>/tables/         re-made by `matbench show`

Records of a case are written in one write and fsync'ed when the case ends,
so a killed run loses at most the case in flight. A torn last line (a kill
during the write) is dropped when the file is next opened for writing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench_cli.errors import UserError

RECORDS = "records.jsonl"


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_stamp() -> str:
    """The current UTC time as a folder-name stamp, 20261130T120000Z."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_records(path: Path) -> list[dict[str, Any]]:
    """All complete records of a run folder; a torn final line is ignored."""
    file = Path(path) / RECORDS
    if not file.exists():
        return []
    records = []
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                break  # torn write of the last case: that case will be re-run
            try:
                records.append(json.loads(raw.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UserError(
                    f"{file}:{number}: corrupt record ({exc}); was the file edited by hand?"
                ) from exc
    return records


class RunFolder:
    """One run's folder. Use ``open_for_run`` to write; reading needs no lock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- reading
    @property
    def meta(self) -> dict[str, Any]:
        """run.json: suite, fingerprint, machine key, invocations; a UserError if absent."""
        file = self.path / "run.json"
        if not file.exists():
            raise UserError(f"{self.path}: not a matbench run folder (no run.json)")
        return json.loads(file.read_text())

    @property
    def env(self) -> dict[str, Any]:
        """env.json: the environment of the first invocation ({} if absent)."""
        file = self.path / "env.json"
        return json.loads(file.read_text()) if file.exists() else {}

    @property
    def suite_text(self) -> str:
        """The exact suite file that started the run."""
        return (self.path / "suite.yaml").read_text()

    def records(self) -> list[dict[str, Any]]:
        """Every complete record, in the order written."""
        return read_records(self.path)

    def done(self, retry: bool = True) -> set[tuple[str, str]]:
        """(case key, metric) pairs that already have a record.

        With ``retry``, a pair whose latest record is marked ``retry`` (a case the
        scheduler stopped at its time limit) counts as not done, so a re-run measures
        it again; the new record is appended and the latest record of a pair wins."""
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for record in self.records():
            latest[(record["case"], record["metric"])] = record
        return {key for key, record in latest.items() if not (retry and record.get("retry"))}

    def note_nodes(self, nodes: dict[str, dict[str, Any]]) -> None:
        """Add the env.json of each node that measured part of this run (executor runs),
        under ``nodes`` by machine key; the top level stays the submitting host's."""
        env = self.env
        env.setdefault("nodes", {}).update(nodes)
        _write_json(self.path / "env.json", env)

    # -- writing
    @contextlib.contextmanager
    def open_for_run(
        self,
        *,
        suite_name: str,
        fingerprint: str,
        suite_text: str,
        env: dict[str, Any],
        provenance: dict[str, Any] | None = None,
        allow_mixed: bool = False,
    ) -> Iterator[RunWriter]:
        """Create or resume the run; refuse a folder holding another suite or machine.

        With ``provenance`` (bench_cli.env.provenance()), a resume whose records were
        measured by other code refuses, naming both, unless ``allow_mixed``: then the new
        records carry ``invocation``, their index in run.json's invocations.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock_handle = (self.path / ".lock").open("a")
        except OSError as exc:
            raise UserError(
                f"{self.path}: cannot write the run folder: {exc.strerror or exc}"
            ) from exc
        with lock_handle:
            try:
                fcntl.flock(lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(
                    f"{self.path}: another matbench process is writing this run"
                ) from None
            meta_file = self.path / "run.json"
            invocation = {"utc": utc_now(), "argv": sys.argv[1:], "pid": os.getpid()}
            if provenance is not None:
                invocation["provenance"] = provenance
            mixed = ""
            if meta_file.exists():
                meta = json.loads(meta_file.read_text())
                if meta.get("suite") != suite_name or meta.get("fingerprint") != fingerprint:
                    what = (
                        "suite '" + str(meta.get("suite")) + "'"
                        if meta.get("suite") != suite_name
                        else f"a different version of suite '{suite_name}'"
                    )
                    raise UserError(
                        f"{self.path}: this folder holds a run of {what}; choose another --out"
                    )
                if meta.get("machine_key") != env["machine_key"]:
                    raise UserError(
                        f"{self.path}: this run was measured on machine "
                        f"'{meta.get('machine_key')}', this is '{env['machine_key']}'; "
                        "choose another --out"
                    )
                if provenance is not None and self.records():
                    before = previous_provenance(meta, self.env)
                    if not same_code(before, provenance):
                        mixed = (
                            f"the records so far were measured by {describe(before)}; "
                            f"this is {describe(provenance)}"
                        )
                        if not allow_mixed:
                            raise UserError(
                                f"{self.path}: {mixed}; resuming would mix code versions: "
                                "pass --allow-mixed to resume anyway, or choose another --out"
                            )
                meta.setdefault("invocations", []).append(invocation)
            else:
                if any(p.name not in {".lock"} for p in self.path.iterdir()):
                    raise UserError(
                        f"{self.path}: folder is not empty and holds no matbench run; "
                        "choose another --out"
                    )
                meta = {
                    "suite": suite_name,
                    "fingerprint": fingerprint,
                    "machine_key": env["machine_key"],
                    "created_utc": utc_now(),
                    "invocations": [invocation],
                }
                (self.path / "suite.yaml").write_text(suite_text)
                _write_json(self.path / "env.json", env)
            _write_json(meta_file, meta)
            writer = RunWriter(self.path / RECORDS)
            if mixed:
                writer.mixed = mixed
                writer.invocation = len(meta["invocations"]) - 1
            yield writer


class RunWriter:
    """Appends records; each ``append`` is one write followed by fsync."""

    def __init__(self, file: Path):
        self.file = file
        self.dropped = self._drop_torn_tail()
        self.mixed = ""  # why this invocation's code differs from the records', if it does
        self.invocation: int | None = None  # stamped on each record when mixed

    def _drop_torn_tail(self) -> bytes:
        """Remove a torn last line (a kill during a write); return what was removed."""
        if not self.file.exists():
            return b""
        with self.file.open("rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                keep = data.rfind(b"\n") + 1
                handle.truncate(keep)
                return data[keep:]
        return b""

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records in one write and fsync (stamped with the invocation when mixed)."""
        if self.invocation is not None:
            records = [{**r, "invocation": self.invocation} for r in records]
        text = "".join(json.dumps(r, default=str, allow_nan=False) + "\n" for r in records)
        if not text:
            return
        with self.file.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def previous_provenance(meta: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    """The provenance of the latest invocation that recorded one; for runs made before
    invocations did, what env.json says of the code (version, git, torch; no digest)."""
    for invocation in reversed(meta.get("invocations", [])):
        if "provenance" in invocation:
            return invocation["provenance"]
    return {
        "matbench": env.get("matbench"),
        "git": env.get("git") or {},
        "torch": env.get("torch"),
        "code": None,
    }


def same_code(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two provenances name the same code: equal source digests and torch builds;
    without a digest (older runs), the same clean git commit and torch."""
    if a.get("torch") != b.get("torch"):
        return False
    if a.get("code") and b.get("code"):
        return a["code"] == b["code"]
    git_a, git_b = a.get("git") or {}, b.get("git") or {}
    clean = not git_a.get("dirty") and not git_b.get("dirty")
    return bool(git_a.get("commit")) and git_a.get("commit") == git_b.get("commit") and clean


def describe(provenance: dict[str, Any]) -> str:
    """One phrase: matbench 0.1.0 (commit 1a2b3c4 dirty, code 9f8e7d6c), torch 2.13.0."""
    git = provenance.get("git") or {}
    parts = []
    if git.get("commit"):
        parts.append(f"commit {git['commit'][:7]}" + (" dirty" if git.get("dirty") else ""))
    parts.append(f"code {provenance['code'][:8]}" if provenance.get("code") else "code unknown")
    return (
        f"matbench {provenance.get('matbench')} ({', '.join(parts)}), "
        f"torch {provenance.get('torch')}"
    )


def runs_of(root: Path, suite_name: str) -> list[RunFolder]:
    """Run folders of a suite under a results root, oldest first."""
    base = Path(root) / suite_name
    if not base.is_dir():
        return []
    return [RunFolder(p) for p in sorted(base.iterdir()) if (p / "run.json").exists()]


def describe_nodes(env: dict[str, Any]) -> list[str]:
    """One line per node that measured an executor run, from its env.json's ``nodes``."""
    out = []
    for key, node in sorted((env.get("nodes") or {}).items()):
        hardware = ", ".join(g["name"] for g in node.get("gpus") or []) or node.get("cpu_model")
        out.append(f"{key}: {node.get('hostname')} ({hardware}, torch {node.get('torch')})")
    return out
