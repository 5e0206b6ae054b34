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
import datetime as dt
import errno
import fcntl
import json
import logging
import os
import shutil
import stat
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench_cli.errors import UserError

RECORDS = "records.jsonl"
OURS = ("run.json", "env.json", "suite.yaml", RECORDS)
STATUSES = frozenset({"ok", "failed", "skipped", "nonfinite", "unsupported"})
MAX_META_BYTES = 16 * 2**20  # run.json, env.json, suite.yaml: far beyond any real one
log = logging.getLogger("bench_cli")


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_stamp() -> str:
    """The current UTC time as a folder-name stamp, 20261130T120000Z."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def write_failed(path: Path, exc: OSError) -> UserError:
    """One line for a write that failed: a full disk or an I/O error names the folder
    and says the run stays resumable."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
        return UserError(
            f"{path}: cannot write: {why}; every record written before is kept: free the "
            "space (or fix the disk) and run again with the same --out to resume"
        )
    return UserError(f"{path}: cannot write: {why}")


def json_text(data: Any) -> str:
    """run.json and env.json as written: indented, never NaN."""
    return json.dumps(data, indent=2, default=str, allow_nan=False) + "\n"


def write_whole_folder(path: Path, files: dict[str, str], tag: str) -> None:
    """Write ``files`` (name: text) into a hidden sibling of ``path``, then rename it onto
    ``path`` (missing, or an empty folder): a reader sees the whole folder or none of it.
    An OSError is raised as it is; the temporary sibling never stays behind."""
    temporary = path.parent / f".{path.name}.{tag}-{os.getpid()}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        for name, text in files.items():
            (temporary / name).write_text(text)
        os.rename(temporary, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        if path.is_symlink() or tmp.is_symlink():
            raise UserError(f"{path}: is a symbolic link; matbench never writes through one")
        tmp.write_text(json_text(data))
        os.replace(tmp, path)
    except OSError as exc:
        raise write_failed(path.parent, exc) from exc


def entry(folder: Path, name: str) -> Path:
    """``folder/name``, refused with one line when it is a symbolic link: a run folder's
    entries are never followed elsewhere, for reading or writing."""
    path = Path(folder) / name
    if path.is_symlink():
        raise UserError(
            f"{path}: is a symbolic link; matbench never follows links inside a run folder"
        )
    return path


def read_bytes(
    path: Path, what: str, limit: int | None = MAX_META_BYTES, follow: bool = False
) -> bytes | None:
    """A regular file's bytes (None if absent), opened without following a link unless
    ``follow``; a folder, a device, a FIFO (never waited on) or an unreadable file is one
    line, and so is a file over ``limit`` bytes, refused before it is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{path}: is a symbolic link; matbench never follows one") from exc
        raise UserError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (limit is not None and info.st_size > limit):
        os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{path}: {what} is not a regular file")
        raise UserError(f"{path}: {what} is {info.st_size} bytes, over the {limit} limit")
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise UserError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc


def output_folder(path: Path) -> Path:
    """A run's tables/ or plots/ folder, made if absent; refused when it is a link (it
    would write outside the run) or not a folder."""
    path = Path(path)
    if path.is_symlink():
        raise UserError(f"{path}: is a symbolic link; matbench never writes through one")
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failed(path, exc) from exc
    return path


def replace_file(path: Path, data: bytes) -> Path:
    """Write a derived file (a table, a plot) whole: a temporary file renamed over it, so
    a link in its place is replaced, never followed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_failed(path.parent, exc) from exc
    return path


def _kind(value: Any) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "text"}
    return names.get(type(value), type(value).__name__)


_SCALARS = (str, int, float, bool, type(None))
# A case's axes name each method option and input parameter twice: bare, and under
# these prefixes (spec.namespaced_axes); the case's own axes are never prefixed.
INPUTS_PREFIX, OPTIONS_PREFIX = "inputs.", "options."
CASE_AXES = ("method", "layer", "impl", "device", "dtype", "kind")


def upgrade_axes(record: dict[str, Any]) -> dict[str, Any]:
    """Give a record written before the prefixes its ``inputs.NAME`` and ``options.NAME``
    axes (in place), so every reader uses the same names for old and new runs. A name
    that was both lost its option's value in the bare axis; the option's value then
    comes from the record's params, where it was given."""
    axes = record["axes"]
    if any(key.startswith((INPUTS_PREFIX, OPTIONS_PREFIX)) for key in axes):
        return record
    params = record.get("params") or {}
    inputs = params.get("inputs") or {}
    options = params.get("options")
    given: dict[str, Any] = options if isinstance(options, dict) else {}
    for key, value in list(axes.items()):
        if key in CASE_AXES:
            continue
        if key in inputs:
            axes[INPUTS_PREFIX + key] = value
            if key in given and isinstance(given[key], str | int | float | bool | None):
                axes[OPTIONS_PREFIX + key] = given[key]
        else:
            axes[OPTIONS_PREFIX + key] = value
    return record


def record_problem(record: Any) -> str | None:
    """What makes a parsed line no matbench record (None if it is one): the fields every
    reader relies on, with their types."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {_kind(record)}"
    for key in ("case", "metric", "status"):
        if not isinstance(record.get(key), str):
            return f"'{key}' is missing or not text"
    if record["status"] not in STATUSES:
        return f"unknown status {record['status']!r}"
    if record.get("reason") is not None and not isinstance(record["reason"], str):
        return "'reason' is not text"
    axes, params = record.get("axes"), record.get("params")
    if not isinstance(axes, dict) or not all(isinstance(v, _SCALARS) for v in axes.values()):
        return "'axes' is missing or not a mapping of plain values"
    for key in ("method", "device", "dtype"):
        if not isinstance(axes.get(key), str):
            return f"'axes.{key}' is missing or not text"
    if not isinstance(params, dict) or not isinstance(params.get("inputs"), dict):
        return "'params.inputs' is missing or not a mapping"
    inputs = params["inputs"]
    if not isinstance(inputs.get("kind"), str) or not all(
        isinstance(v, _SCALARS) for v in inputs.values()
    ):
        return "'params.inputs' is not a mapping of plain values with a kind"
    for key in ("device", "dtype"):
        if key in params and not isinstance(params[key], str):
            return f"'params.{key}' is not text"
    for key, kinds in (("grid", int), ("machine_key", str), ("shard", str), ("invocation", int)):
        if record.get(key) is not None and (
            not isinstance(record[key], kinds) or isinstance(record[key], bool)
        ):
            return f"'{key}' is not {'a whole number' if kinds is int else 'text'}"
    if record["status"] == "ok" and "value" not in record:
        return "an ok record without a value"
    from bench_cli.metrics import value_problem  # no torch

    if record["status"] == "ok":
        return value_problem(record["metric"], record["value"])
    return value_problem("", record.get("value"))  # samples only, for a value kept anyway


def read_records(path: Path, warn: bool = True) -> list[dict[str, Any]]:
    """All complete, well-formed records of a run folder, in the order written.

    A torn final line is ignored (that case is measured again on resume). A line that
    is not JSON, or JSON of the wrong shape, is skipped and named with its line number
    on the ``bench_cli`` logger."""
    file = entry(Path(path), RECORDS)
    data = read_bytes(file, "records.jsonl", limit=None)
    if data is None:
        return []
    records: list[dict[str, Any]] = []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines[:-1], start=1):  # the last piece is torn or empty
        problem: str | None
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            problem = f"not a JSON record ({exc.__class__.__name__}: {exc})"[:200]
        else:
            problem = record_problem(record)
        if problem is None:
            records.append(upgrade_axes(record))
        elif warn:
            log.warning(f"{file}:{number}: damaged record skipped: {problem}")
    return records


class RunFolder:
    """One run's folder. Use ``open_for_run`` to write; reading needs no lock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

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
        try:
            env = self._json("env.json")
        except UserError as exc:
            log.warning(f"{exc}; the environment is not shown")
            return {}
        if env is not None and not isinstance(env, dict):
            log.warning(f"{self.path / 'env.json'}: damaged: {_kind(env)}, not a mapping")
            return {}
        return env or {}

    @property
    def suite_text(self) -> str:
        """The exact suite file that started the run."""
        file = entry(self.path, "suite.yaml")
        data = read_bytes(file, "suite.yaml")
        if data is None:
            raise UserError(f"{file}: missing; a run folder keeps the suite that started it")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{file}: damaged: not UTF-8 text ({exc})") from exc

    def records(self) -> list[dict[str, Any]]:
        """Every complete, well-formed record, in the order written (see read_records)."""
        return read_records(self.path)

    def done(self, retry: bool = True) -> set[tuple[str, str]]:
        """(case key, metric) pairs that already have a record.

        With ``retry``, a pair whose latest record is marked ``retry`` (a case the
        scheduler stopped at its time limit) counts as not done, so a re-run measures
        it again; the new record is appended and the latest record of a pair wins."""
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        if not (self.path / "run.json").exists():
            return set()
        for record in self.records():
            latest[(record["case"], record["metric"])] = record
        return {key for key, record in latest.items() if not (retry and record.get("retry"))}

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
            meta = self.meta
            mixed = ""
            if not created:
                if meta["suite"] != suite_name or meta["fingerprint"] != fingerprint:
                    what = (
                        "suite '" + str(meta.get("suite")) + "'"
                        if meta.get("suite") != suite_name
                        else f"a different version of suite '{suite_name}'"
                    )
                    raise UserError(
                        f"{self.path}: this folder holds a run of {what}; choose another --out"
                    )
                if meta["machine_key"] != env["machine_key"]:
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
                _write_json(self.path / "run.json", meta)
            writer = RunWriter(entry(self.path, RECORDS))
            if mixed:
                writer.mixed = mixed
                writer.invocation = len(meta["invocations"]) - 1
            yield writer

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
            self.dropped = self._drop_torn_tail()
        except OSError as exc:
            raise write_failed(file.parent, exc) from exc
        self.mixed = ""  # why this invocation's code differs from the records', if it does
        self.invocation: int | None = None  # stamped on each record when mixed
        self.latest: dict[tuple[str, str], bool] = {  # (case, metric) -> marked retry
            (r["case"], r["metric"]): bool(r.get("retry"))
            for r in read_records(file.parent, warn=False)
        }

    def _drop_torn_tail(self) -> bytes:
        """Remove a torn last line (a kill during a write); return what was removed."""
        try:
            descriptor = os.open(self.file, os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:
            return b""
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise UserError(f"{self.file}: is not a regular file")
        with os.fdopen(descriptor, "rb+") as handle:
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


def meta_problem(meta: Any) -> str | None:
    """What makes run.json unreadable: the fields every reader relies on."""
    if not isinstance(meta, dict):
        return f"expected a JSON object, got {_kind(meta)}"
    for key in ("suite", "fingerprint", "machine_key"):
        if not isinstance(meta.get(key), str):
            return f"'{key}' is missing or not text"
    invocations = meta.get("invocations", [])
    if not isinstance(invocations, list) or not all(isinstance(i, dict) for i in invocations):
        return "'invocations' is not a list of mappings"
    return None


def previous_provenance(meta: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    """The provenance of the latest invocation that recorded one; for runs made before
    invocations did, what env.json says of the code (version, git, torch; no digest)."""
    for invocation in reversed(meta.get("invocations", [])):
        if isinstance(invocation.get("provenance"), dict):
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
    return [
        RunFolder(p)
        for p in sorted(base.iterdir())
        if not p.name.startswith(".") and (p / "run.json").is_file()
    ]


def describe_nodes(env: dict[str, Any]) -> list[str]:
    """One line per node that measured an executor run, from its env.json's ``nodes``."""
    out = []
    for key, node in sorted((env.get("nodes") or {}).items()):
        hardware = ", ".join(g["name"] for g in node.get("gpus") or []) or node.get("cpu_model")
        out.append(f"{key}: {node.get('hostname')} ({hardware}, torch {node.get('torch')})")
    return out
