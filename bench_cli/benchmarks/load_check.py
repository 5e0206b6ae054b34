"""Does compare stay honest on a loaded machine, and still see a real slowdown?

Three runs of a suite (default: the bundled throughput.yaml), one after another:

- ``quiet``:   nothing else running;
- ``loaded``:  one busy process per core (pure Python spin loops) during the run;
- ``slowed``:  quiet again, with newton_schulz (``ns``) made 3x slower: a plugin
               busy-waits twice that method's own forward+backward time in every
               forward call (calibrated per shape).

Then ``compare quiet loaded`` and ``compare quiet slowed``, counting verdicts by
row kind (raw time, paired ratio, accuracy). What should hold: quiet vs loaded
gives ``~`` or ``?`` on every time row, never faster or slower; quiet vs slowed
flags the slowed method alone. (Under load no verdict can single it out: load
alone moved a paired ratio 2.9x in one run here, so compare says ``?`` there.)

    python -m bench_cli.benchmarks.load_check [--suite throughput] [--method ns] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench_cli.fsafe import utc_stamp

SLOWDOWN_PLUGIN = '''
"""Makes newton_schulz 3x slower in forward+backward (load_check only)."""
import dataclasses
import functools
import time

import torch

from bench_cli import registry

layer = registry.LAYERS["matrix_function"]
original = layer.methods["newton_schulz"]
cost = {}


@torch.enable_grad()  # the first call may come under no_grad (the timer's shape probe)
def _fwd_bwd_seconds(A, func, p, options):
    X = A.detach().clone().requires_grad_(True)
    def once():
        out = original.fn(X, func, p, **options)
        torch.autograd.grad(out, X, torch.ones_like(out))
    for _ in range(3):
        once()
    start = time.perf_counter()
    for _ in range(5):
        once()
    return (time.perf_counter() - start) / 5


@functools.wraps(original.fn)  # the same signature: options are read from it
def slowed(A, func, p=None, **options):
    key = (tuple(A.shape), A.dtype, func, p, tuple(sorted(options.items())))
    if key not in cost:
        cost[key] = _fwd_bwd_seconds(A, func, p, options)
    # A busy wait, not a sleep: a sleeping method lets the cores idle, and the methods
    # timed next to it in a round then pay for waking them (others' raw times moved
    # 0.76-1.56x in a run with time.sleep); a slower implementation keeps computing.
    until = time.perf_counter() + 2 * cost[key]
    while time.perf_counter() < until:
        pass
    return original.fn(A, func, p, **options)


layer.methods["newton_schulz"] = dataclasses.replace(original, fn=slowed)
'''


def _matbench(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bench_cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"matbench {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def _loaded(run):
    """Run ``run()`` while one busy process per core spins."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 1)
    ]
    try:
        return run()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def verdicts(a: Path, b: Path) -> tuple[dict[str, Counter], list[str]]:
    """compare a b: its verdicts by row kind, and the rows called faster or slower."""
    from bench_cli import compare, store

    result = compare.compare_runs(store.RunFolder(a), store.RunFolder(b))
    counts: dict[str, Counter] = {}
    for row in result.rows:
        kind = (
            "paired ratio"
            if "ratio_to_" in row.metric
            else ("raw time" if row.metric.startswith("time") else "accuracy")
        )
        counts.setdefault(kind, Counter())[row.verdict] += 1
    flagged = sorted(
        {
            f"{r.method} ({r.metric}: {r.verdict})"
            for r in result.rows
            if r.verdict in ("faster", "slower")
        }
    )
    return counts, flagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="throughput")
    parser.add_argument(
        "--out", type=Path, default=Path("results/benchmarks/load_check"),
        help="the three runs go to OUT/<time>_<machine>/{quiet,loaded,slowed}",
    )  # fmt: skip
    parser.add_argument(
        "--into", type=Path, default=None,
        help="an earlier load_check folder: make only the runs it lacks",
    )  # fmt: skip
    args = parser.parse_args()
    from bench_cli import env

    out = args.into or args.out / f"{utc_stamp()}_{env.collect()['machine_key']}"
    out.mkdir(parents=True, exist_ok=args.into is not None)
    plugin_dir = Path(tempfile.mkdtemp(prefix="matbench-slowdown-"))
    (plugin_dir / "matbench_slowdown.py").write_text(SLOWDOWN_PLUGIN)
    paths = [str(plugin_dir), os.environ.get("PYTHONPATH", "")]
    slowdown = {
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "MATBENCH_PLUGINS": "matbench_slowdown",
    }
    runs = {name: out / name for name in ("quiet", "loaded", "slowed")}
    print(f"runs under {out}", file=sys.stderr)
    if not runs["quiet"].exists():
        _matbench("run", args.suite, "--out", str(runs["quiet"]))
    if not runs["loaded"].exists():
        _loaded(lambda: _matbench("run", args.suite, "--out", str(runs["loaded"])))
    if not runs["slowed"].exists():
        _matbench("run", args.suite, "--out", str(runs["slowed"]), env=slowdown)
    for b in ("loaded", "slowed"):
        print(f"\ncompare quiet {b}:")
        counts, flagged = verdicts(runs["quiet"], runs[b])
        for kind, by_verdict in counts.items():
            shown = ", ".join(f"{verdict} {n}" for verdict, n in sorted(by_verdict.items()))
            print(f"  {kind}: {shown}")
        print(f"  flagged faster/slower: {', '.join(flagged) or 'none'}")


if __name__ == "__main__":
    main()
