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

Damage never becomes a traceback. Entries of a run folder are never followed
through a symbolic link (they are refused); run.json must name a suite, its
fingerprint and its machine; a record of the wrong shape is reported with its
line number (a warning on the ``bench_cli`` logger) and skipped; a folder is
created complete (suite.yaml, env.json, run.json) under a temporary name and
renamed into place; a full disk or an I/O error is one line naming the folder,
which stays resumable. No (case, metric) is ever written twice unless its
earlier record asks to be measured again (``retry``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench_cli.errors import UserError
from bench_cli.fsafe import (
    _write_json,
    entry,
    json_text,
    read_bytes,
    read_text,
    utc_now,
    write_failed,
    write_whole_folder,
)
from bench_cli.provenance import describe_change, meta_problem, previous_provenance, same_code
from bench_cli.records import RECORDS, done_of, kind_of, parse_records, read_records

OURS = ("run.json", "env.json", "suite.yaml", RECORDS)
log = logging.getLogger("bench_cli")


class RunFolder:
    """One run's folder. Use ``open_for_run`` to write; reading needs no lock."""

    def __init__(self, path: str | Path, *, cache: bool = False):
        self.path = Path(path)
        # A folder opened to read (api.open_run) reads each file once and keeps it: a
        # command that shows, compares or reports a run never reads a file twice.
        self._cache: dict[str, Any] | None = {} if cache else None

    def _cached(self, name: str, read: Any) -> Any:
        if self._cache is None:
            return read()
        if name not in self._cache:
            self._cache[name] = read()
        return self._cache[name]

    # -- reading
    def _json(self, name: str) -> Any:
        """A JSON file of the folder (None if absent); damaged is one line."""
        file = entry(self.path, name)
        data = read_bytes(file, name)
        if data is None:
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise UserError(f"{file}: damaged ({exc.__class__.__name__}: {exc})"[:300]) from exc

    @property
    def meta(self) -> dict[str, Any]:
        """run.json: suite, fingerprint, machine key, invocations; one UserError if it is
        absent or damaged (then the folder is not one matbench can read or resume)."""
        return self._cached("meta", self._read_meta)

    def _read_meta(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise UserError(f"{self.path}: run folder not found")
        meta = self._json("run.json")
        file = self.path / "run.json"
        if meta is None:
            raise UserError(f"{self.path}: not a matbench run folder (no run.json)")
        problem = meta_problem(meta)
        if problem:
            raise UserError(f"{file}: damaged: {problem}")
        return meta

    @property
    def env(self) -> dict[str, Any]:
        """env.json: the environment of the first invocation ({} if absent). A damaged
        env.json is a warning and {}: it describes the run, it measured nothing."""
        return self._cached("env", self._read_env)

    def _read_env(self) -> dict[str, Any]:
        try:
            env = self._json("env.json")
        except UserError as exc:
            log.warning(f"{exc}; the environment is not shown")
            return {}
        if env is not None and not isinstance(env, dict):
            log.warning(f"{self.path / 'env.json'}: damaged: {kind_of(env)}, not a mapping")
            return {}
        return env or {}

    @property
    def suite_text(self) -> str:
        """The exact suite file that started the run."""
        return self._cached("suite_text", self._read_suite_text)

    def _read_suite_text(self) -> str:
        return read_text(
            entry(self.path, "suite.yaml"), "suite.yaml",
            "missing; a run folder keeps the suite that started it", "damaged: not UTF-8 text",
        )  # fmt: skip

    def records(self) -> list[dict[str, Any]]:
        """Every complete, well-formed record, in the order written (see read_records)."""
        return self._cached("records", lambda: read_records(self.path))

    def done(self, retry: bool = True) -> set[tuple[str, str]]:
        """(case key, metric) pairs that already have a record.

        With ``retry``, a pair whose latest record is marked ``retry`` (a case the
        scheduler stopped at its time limit) counts as not done, so a re-run measures
        it again; the new record is appended and the latest record of a pair wins."""
        if not (self.path / "run.json").exists():
            return set()
        return done_of(self.records(), retry)

    def note_nodes(self, nodes: dict[str, dict[str, Any]]) -> None:
        """Add the env.json of each node that measured part of this run (executor runs),
        under ``nodes`` by machine key; the top level stays the submitting host's."""
        env = self.env
        before = env.get("nodes")
        env["nodes"] = {**(before if isinstance(before, dict) else {}), **nodes}
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
        planned: dict[str, Any] | None = None,
    ) -> Iterator[RunWriter]:
        """Create or resume the run; refuse a folder holding another suite or machine.

        A new folder is built complete under a temporary name beside it and renamed into
        place, so a kill or a full disk during creation leaves either no run folder or a
        whole one. With ``provenance`` (bench_cli.env.provenance()), a resume whose
        records were measured by other code refuses, naming both, unless
        ``allow_mixed``: then the new records carry ``invocation``, their index in
        run.json's invocations.
        """
        invocation: dict[str, Any] = {"utc": utc_now(), "argv": sys.argv[1:], "pid": os.getpid()}
        if provenance is not None:
            invocation["provenance"] = provenance
        if planned is not None:  # {"cases": n, "metrics": [...]}: what show calls complete
            invocation["planned"] = planned
        created = self._create(
            suite_text,
            env,
            {
                "suite": suite_name,
                "fingerprint": fingerprint,
                "machine_key": env["machine_key"],
                "created_utc": utc_now(),
                "invocations": [invocation],
            },
        )
        with self._locked():
            meta = self.meta
            writer = RunWriter(entry(self.path, RECORDS))
            if not created:
                mixed = self._check_resume(meta, writer, suite_name, fingerprint, env, provenance)
                if mixed and not allow_mixed:
                    raise UserError(
                        f"{self.path}: {mixed}; resuming would mix code versions: "
                        "pass --allow-mixed to resume anyway, or choose another --out"
                    )
                meta.setdefault("invocations", []).append(invocation)
                _write_json(self.path / "run.json", meta)
                if mixed:
                    writer.mixed = mixed
                    writer.invocation = len(meta["invocations"]) - 1
            yield writer

    def being_written(self) -> bool:
        """Whether a matbench process holds this run's lock now (a run, or a resume, is
        writing it): its records are not final."""
        try:
            descriptor = os.open(entry(self.path, ".lock"), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False  # no lock file: nobody ever wrote through a lock here
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)  # (closing drops a lock we took)
        return False

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the folder's lock (.lock, flock): one process writes a run at a time."""
        try:
            descriptor = os.open(
                entry(self.path, ".lock"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
            )
        except OSError as exc:
            raise UserError(
                f"{self.path}: cannot write the run folder: {exc.strerror or exc}"
            ) from exc
        with os.fdopen(descriptor, "a") as lock_handle:
            try:
                fcntl.flock(lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(
                    f"{self.path}: another matbench process is writing this run"
                ) from None
            yield

    def _check_resume(
        self,
        meta: dict[str, Any],
        writer: RunWriter,
        suite_name: str,
        fingerprint: str,
        env: dict[str, Any],
        provenance: dict[str, Any] | None,
    ) -> str:
        """Refuse to resume a run of another suite, version or machine; why the code that
        measured the records so far differs from this invocation's ("" if it does not)."""
        if meta["suite"] != suite_name or meta["fingerprint"] != fingerprint:
            what = (
                "suite '" + str(meta.get("suite")) + "'"
                if meta.get("suite") != suite_name
                else f"a different version of suite '{suite_name}'"
            )
            raise UserError(f"{self.path}: this folder holds a run of {what}; choose another --out")
        if meta["machine_key"] != env["machine_key"]:
            raise UserError(
                f"{self.path}: this run was measured on machine "
                f"'{meta.get('machine_key')}', this is '{env['machine_key']}'; "
                "choose another --out"
            )
        if provenance is None or not writer.records:
            return ""
        before = previous_provenance(meta, self.env)
        if same_code(before, provenance):
            return ""
        return describe_change(before, provenance)

    def _create(self, suite_text: str, env: dict[str, Any], meta: dict[str, Any]) -> bool:
        """Make the run folder, complete, if it holds no run yet; True if this call made it.

        The files are written under a hidden temporary sibling, then renamed onto the
        path (a missing or empty folder): a run folder either holds run.json or is not
        there. A folder left by an older, interrupted creation (our files, no run.json,
        no records) is completed the same way."""
        if entry(self.path, "run.json").exists():
            return False
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path}: exists and is not a folder; choose another --out")
        if self.path.is_dir():
            names = {p.name for p in self.path.iterdir()}
            leftovers = {".lock", "suite.yaml", "env.json", "env.json.tmp", "run.json.tmp"}
            if not names <= leftovers:
                raise UserError(
                    f"{self.path}: folder is not empty and holds no matbench run; "
                    "choose another --out"
                )
            for name in names:
                entry(self.path, name).unlink()
        files = {"suite.yaml": suite_text, "env.json": json_text(env), "run.json": json_text(meta)}
        try:
            write_whole_folder(self.path, files, "creating")
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and (self.path / "run.json").exists():
                return False  # another process created it first: resume it like any run
            raise write_failed(self.path, exc) from exc
        return True


class RunWriter:
    """Appends records; each ``append`` is one write followed by fsync.

    It never writes a second record for a (case, metric) that has one, unless that
    record is marked ``retry`` (a case a scheduler stopped): a duplicate from any path
    (a resume, an executor's shards, a repeated option) is dropped with a warning."""

    def __init__(self, file: Path):
        self.file = file
        try:
            data, self.dropped = self._drop_torn_tail()
        except OSError as exc:
            raise write_failed(file.parent, exc) from exc
        self.mixed = ""  # why this invocation's code differs from the records', if it does
        self.invocation: int | None = None  # stamped on each record when mixed
        # Every record of the run, those found and those appended: the file is read once,
        # here, and the run's tables are made from this list.
        self.records: list[dict[str, Any]] = parse_records(data, file, warn=False)
        self.latest: dict[tuple[str, str], bool] = {  # (case, metric) -> marked retry
            (r["case"], r["metric"]): bool(r.get("retry")) for r in self.records
        }

    def _drop_torn_tail(self) -> tuple[bytes, bytes]:
        """Remove a torn last line (a kill during a write); (what stays, what was removed)."""
        try:
            descriptor = os.open(self.file, os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:
            return b"", b""
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise UserError(f"{self.file}: is not a regular file")
        with os.fdopen(descriptor, "rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                keep = data.rfind(b"\n") + 1
                handle.truncate(keep)
                return data[:keep], data[keep:]
        return data, b""

    def done(self, retry: bool = True) -> set[tuple[str, str]]:
        """The (case, metric) pairs done (see RunFolder.done), from the records held."""
        return done_of(self.records, retry)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records in one write and fsync (stamped with the invocation when mixed)."""
        if self.invocation is not None:
            records = [{**r, "invocation": self.invocation} for r in records]
        fresh = []
        for record in records:
            key = (record["case"], record["metric"])
            if key in self.latest and not self.latest[key]:
                log.warning(
                    f"{self.file}: a record of case {key[0]} {key[1]} is already written; "
                    "the second one is dropped"
                )
                continue
            self.latest[key] = bool(record.get("retry"))
            fresh.append(record)
        text = "".join(json.dumps(r, default=str, allow_nan=False) + "\n" for r in fresh)
        if not text:
            return
        try:
            descriptor = os.open(
                self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644
            )
            with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise write_failed(self.file.parent, exc) from exc
        # As a reader would see them: what was written, parsed back (no file read).
        self.records.extend(parse_records(text.encode("utf-8"), self.file, warn=False))


def runs_of(root: Path, suite_name: str) -> list[RunFolder]:
    """Run folders of a suite under a results root, oldest first."""
    base = Path(root) / suite_name
    if not base.is_dir():
        return []
    return [
        RunFolder(p)
        for p in sorted(base.iterdir())
        if not p.name.startswith(".") and (p / "run.json").is_file()
    ]
