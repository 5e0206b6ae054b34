"""Sharding a run and merging the shards back into one run folder.

A shard is a deterministic, balanced subset: the cases sorted by key, every
N-th from position i − 1. Shard folders are ordinary run folders; merging
checks they hold the same suite (by fingerprint), refuses duplicate records,
and keeps runs from different machines apart, one merged run per machine key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from bench_cli.errors import UserError
from bench_cli.fsafe import json_text, write_failed, write_whole_folder
from bench_cli.store import RunFolder


def parse(text: str) -> tuple[int, int]:
    """ "i/N" as (i, N), or a UserError."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UserError(f"--shard '{text}': expected i/N with 1 <= i <= N, e.g. 2/4")
    return int(match.group(1)), int(match.group(2))


def select(cases: Sequence, index: int, count: int, together: bool = False) -> list:
    """Shard ``index`` (1-based) of ``count``: balanced to within one case, by key.
    ``together``: a paired-timing group (``Case.group_key``) stays in one shard, since its
    methods are timed in interleaved rounds; shards then balance groups, not cases."""
    if not together:
        ordered = sorted(cases, key=lambda case: case.key)
        return ordered[index - 1 :: count]
    groups: dict[str, list] = {}
    for case in cases:
        groups.setdefault(case.group_key, []).append(case)
    chosen = sorted(groups)[index - 1 :: count]
    return [case for key in chosen for case in groups[key]]


def merge(folders: Sequence[RunFolder], out: Path) -> list[Path]:
    """Combine shard folders into run folders under ``out`` (one per machine key)."""
    if not folders:
        raise UserError("merge needs at least one run folder")
    for folder in folders:
        if folder.being_written():
            raise UserError(
                f"{folder.path}: a matbench process is still writing this run (its lock is "
                "held); merge it once that run has ended"
            )
    metas = [folder.meta for folder in folders]
    fingerprints = {(m["suite"], m["fingerprint"]) for m in metas}
    if len(fingerprints) > 1:
        raise UserError(
            "these folders hold different suites or suite versions: "
            + ", ".join(sorted(f"{s} ({f})" for s, f in fingerprints))
        )
    machines: dict[str, list[RunFolder]] = {}
    for folder, meta in zip(folders, metas, strict=True):
        machines.setdefault(meta["machine_key"], []).append(folder)
    written = []
    for machine, group in machines.items():
        target = out if len(machines) == 1 else out / machine
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UserError(
                f"{target}: exists and is not empty (or not a folder); merge never overwrites"
            )
        seen: dict[tuple[str, str], tuple[str, bool]] = {}  # key: (folder, all retry-marked)
        records = []
        for folder in group:
            for record in folder.records():
                key = (record["case"], record["metric"])
                if key in seen and not (seen[key][1] or record.get("retry")):
                    raise UserError(
                        f"duplicate record {key[0]} {key[1]} in {folder.path} and "
                        f"{seen[key][0]}: these shards overlap"
                    )
                # A record a scheduler stopped (marked retry) and its re-measurement both
                # stay, the measurement last: it is the one every reader takes.
                earlier = seen.get(key, ("", True))[1]
                seen[key] = (str(folder.path), earlier and bool(record.get("retry")))
                records.append(record)
        records.sort(key=lambda r: not r.get("retry"))  # stable: retry-marked ones first
        first = group[0]
        meta = dict(first.meta)
        meta["merged_from"] = [str(folder.path) for folder in group]
        plans = [_plan_of(folder.meta) for folder in group]
        if all(plans):  # the merged run planned what its shards did together
            meta["planned"] = {
                "cases": sum(p["cases"] for p in plans if p),
                "metrics": (plans[0] or {}).get("metrics", []),
            }
        _write_whole(target, first.suite_text, first.env, meta, records)
        written.append(target)
    return written


def _plan_of(meta: dict) -> dict | None:
    if isinstance(meta.get("planned"), dict):
        return meta["planned"]
    invocations = [i for i in meta.get("invocations") or [] if isinstance(i, dict)]
    return next((i["planned"] for i in reversed(invocations) if "planned" in i), None)


def _write_whole(target: Path, suite_text: str, env: dict, meta: dict, records: list[dict]) -> None:
    """Write a merged run whole (built aside, renamed into place): an interrupted merge
    leaves no half folder that would read as an empty run."""
    files = {
        "suite.yaml": suite_text,
        "env.json": json_text(env),
        "records.jsonl": "".join(
            json.dumps(record, default=str, allow_nan=False) + "\n" for record in records
        ),
        "run.json": json_text(meta),
    }
    try:
        write_whole_folder(target, files, "merging")
    except OSError as exc:
        raise write_failed(target, exc) from exc
