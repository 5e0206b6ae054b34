"""Link-safe file helpers: UTC stamps, whole-folder writes (a temporary name, then a
rename), reads that never follow a symbolic link and stop at a size limit, and one
clear UserError for a full disk or an I/O error."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from bench_cli.errors import UserError

MAX_META_BYTES = 16 * 2**20  # run.json, env.json, suite.yaml: far beyond any real one


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


def read_text(path: Path, what: str, missing: str, damaged: str, **read: Any) -> str:
    """A UTF-8 text file (read_bytes' checks and options), with one line for ``missing``
    (the file is absent) and ``damaged`` (it is not UTF-8; the error follows)."""
    data = read_bytes(path, what, **read)
    if data is None:
        raise UserError(f"{path}: {missing}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: {damaged} ({exc})") from exc


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
