"""The results folder of one run: append-only records, never overwritten.

    <run>/suite.yaml      exact copy of the suite file that started the run
    <run>/run.json        suite name, fingerprint, machine key, invocations
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
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_stamp() -> str:
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
        file = self.path / "run.json"
        if not file.exists():
            raise UserError(f"{self.path}: not a matbench run folder (no run.json)")
        return json.loads(file.read_text())

    @property
    def env(self) -> dict[str, Any]:
        file = self.path / "env.json"
        return json.loads(file.read_text()) if file.exists() else {}

    @property
    def suite_text(self) -> str:
        return (self.path / "suite.yaml").read_text()

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.path)

    def done(self) -> set[tuple[str, str]]:
        """(case key, metric) pairs that already have a record."""
        return {(r["case"], r["metric"]) for r in self.records()}

    # -- writing
    @contextlib.contextmanager
    def open_for_run(
        self, *, suite_name: str, fingerprint: str, suite_text: str, env: dict[str, Any]
    ) -> Iterator[RunWriter]:
        """Create or resume the run; refuse a folder holding another suite or machine."""
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
            yield RunWriter(self.path / RECORDS)


class RunWriter:
    """Appends records; each ``append`` is one write followed by fsync."""

    def __init__(self, file: Path):
        self.file = file
        self.dropped = self._drop_torn_tail()

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
        text = "".join(json.dumps(r, default=str, allow_nan=False) + "\n" for r in records)
        if not text:
            return
        with self.file.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def runs_of(root: Path, suite_name: str) -> list[RunFolder]:
    """Run folders of a suite under a results root, oldest first."""
    base = Path(root) / suite_name
    if not base.is_dir():
        return []
    return [RunFolder(p) for p in sorted(base.iterdir()) if (p / "run.json").exists()]
