"""Hardware and software metadata, and the machine key that names run folders."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from bench_cli._version import __version__


def cpu_model() -> str:
    """The CPU model name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build_setting(name: str) -> str | None:
    match = re.search(rf"{name}=([^,\s]+)", torch.__config__.show())
    return match.group(1) if match else None


def lapack_backend() -> str:
    """The BLAS/LAPACK torch was built with."""
    config = torch.__config__.show()
    if "LAPACK is enabled" not in config:
        return "none"
    blas = _build_setting("BLAS_INFO") or "unknown"
    return f"{blas} (LAPACK enabled)"


def git_commit() -> dict[str, Any]:
    """The commit and dirty state of the checkout matbench runs from; None for both when
    it is not a git checkout (e.g. a wheel install, even inside someone's repository)."""
    root = Path(__file__).resolve().parent.parent  # this module is in the package

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5,
            check=True,
        ).stdout.strip()  # fmt: skip

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


@functools.cache
def code_digest() -> str:
    """SHA-256 of the package's Python sources and suites (paths and bytes): the code that
    measures, whether or not it sits in a git checkout."""
    root = Path(__file__).resolve().parent  # the package: this module lives in it
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def provenance() -> dict[str, Any]:
    """Which code measures: matbench's version, the git commit and dirty state of its
    checkout (None outside one), a digest of its sources, and the torch build."""
    return {
        "matbench": __version__,
        "git": git_commit(),
        "code": code_digest(),
        "torch": torch.__version__,
        "torch_git": getattr(torch.version, "git_version", None),
    }


def gpus() -> list[dict[str, Any]]:
    """Name, memory and capability of each visible GPU."""
    if not torch.cuda.is_available():
        return []
    out = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        out.append(
            {
                "index": index,
                "name": props.name,
                "memory_gib": round(props.total_memory / 2**30, 2),
                "capability": f"{props.major}.{props.minor}",
                "multiprocessors": props.multi_processor_count,
            }
        )
    return out


def cuda_driver() -> str | None:
    """The NVIDIA driver version, or None."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return result.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def collect() -> dict[str, Any]:
    """Everything a reader needs to judge whether two runs are comparable."""
    gpu_list = gpus()
    return {
        "machine_key": machine_key(gpu_list),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpus": gpu_list,
        "cuda_driver": cuda_driver() if gpu_list else None,
        "tf32": {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
        },
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "blas_lapack": lapack_backend(),
        "matbench": __version__,
        "git": git_commit(),
    }


def _slug(text: str) -> str:
    text = re.sub(r"\((r|tm)\)|cpu|processor|@.*|nvidia|\d+-core", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:32] or "unknown"


def machine_key(gpu_list: list[dict[str, Any]] | None = None) -> str:
    """A short readable hardware name plus a hash of the host and its hardware."""
    gpu_list = gpus() if gpu_list is None else gpu_list
    hardware = gpu_list[0]["name"] if gpu_list else cpu_model()
    count = f"x{len(gpu_list)}" if len(gpu_list) > 1 else ""
    identity = f"{platform.node()}|{cpu_model()}|{os.cpu_count()}|{[g['name'] for g in gpu_list]}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:6]
    return f"{_slug(hardware)}{count}-{digest}"
