"""Provenance: which code measured a run (run.json invocations), whether two
invocations ran the same code, and the nodes that measured an executor run."""

from __future__ import annotations

from typing import Any

from bench_cli.records import kind_of


def meta_problem(meta: Any) -> str | None:
    """What makes run.json unreadable: the fields every reader relies on."""
    if not isinstance(meta, dict):
        return f"expected a JSON object, got {kind_of(meta)}"
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
    if a.get("torch") != b.get("torch") or changed_plugins(a, b):
        return False
    if a.get("code") and b.get("code"):
        return a["code"] == b["code"]
    git_a, git_b = a.get("git") or {}, b.get("git") or {}
    clean = not git_a.get("dirty") and not git_b.get("dirty")
    return bool(git_a.get("commit")) and git_a.get("commit") == git_b.get("commit") and clean


def changed_plugins(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The plugin modules whose source differs between two provenances (added, removed
    or edited); none where either predates plugin digests."""
    if not isinstance(a.get("plugins"), dict) or not isinstance(b.get("plugins"), dict):
        return []
    names = sorted(set(a["plugins"]) | set(b["plugins"]))
    return [n for n in names if a["plugins"].get(n) != b["plugins"].get(n)]


def describe_change(before: dict[str, Any], now: dict[str, Any]) -> str:
    """Why two provenances differ, in one clause: the plugins first (the code under
    test), then matbench and torch."""
    plugins = changed_plugins(before, now)
    if plugins:
        parts = []
        for name in plugins:
            old, new = before["plugins"].get(name), now["plugins"].get(name)
            if old and new:
                parts.append(f"plugin '{name}' changed (source {old[:8]} -> {new[:8]})")
            else:
                parts.append(f"plugin '{name}' was {'removed' if old else 'added'}")
        return "; ".join(parts) + " since the records so far were measured"
    return f"the records so far were measured by {describe(before)}; this is {describe(now)}"


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


def describe_nodes(env: dict[str, Any]) -> list[str]:
    """One line per node that measured an executor run, from its env.json's ``nodes``."""
    out = []
    for key, node in sorted((env.get("nodes") or {}).items()):
        hardware = ", ".join(g["name"] for g in node.get("gpus") or []) or node.get("cpu_model")
        out.append(f"{key}: {node.get('hostname')} ({hardware}, torch {node.get('torch')})")
    return out
